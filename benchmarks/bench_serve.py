"""Throughput and latency of ``rnnzoo serve`` with and without request batching, in one run.

Starts ``rnnzoo serve MODEL`` on 127.0.0.1 twice (``--no-batching``, then batching), and for each
drives ``POST /v1/models/MODEL:predict`` (one text per request, texts of varied length) from 1, 8
and 64 concurrent keep-alive clients for a fixed time. Prints requests/s, p50/p99 latency, the
error count, the merged batch sizes the server reports (``/stats``) and the server's resident
memory after warm-up and at the end (growth under load would show there).

The clients are a few lines of asyncio on raw sockets (no HTTP library) so that they take as
little of the machine's CPU as possible; client and server share the machine, as the README says.

    python benchmarks/bench_serve.py                     # sentiment_bilstm.sst2, 8 s per point
    python benchmarks/bench_serve.py --seconds 4 --concurrency 1 8 64 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TEXTS = [
    "a gorgeous , witty , seductive movie .",
    "the acting , costumes , music , cinematography and sound are all astounding given the "
    "production 's austere locales .",
    "it 's slow -- very , very slow .",
    "a sometimes tedious film .",
    "the movie is a disaster from start to finish and nothing in it works .",
    "unflinchingly bleak and desperate",
    "an utterly charming and hilarious film that reminded me of why i love movies in the first "
    "place , with performances that are never less than convincing .",
    "the story is predictable and the jokes fall flat .",
    "one of the greatest family-oriented , fantasy-adventure movies ever .",
    "it 's a lovely film with lovely performances by buy and accorsi .",
    "too slow , too long and too little happens .",
    "effective but too-tepid biopic",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(model: str, port: int, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rnnzoo.cli", "serve", model, "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                raise SystemExit(f"server exited: {out}") from None
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start within 60 s")


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                  body: bytes) -> tuple[int, bytes]:
    writer.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, await reader.readexactly(length)


async def drive(port: int, path: str, clients: int, seconds: float) -> dict:
    """``clients`` keep-alive connections sending back to back for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        try:
            while time.perf_counter() < stop:
                body = json.dumps({"instances": [TEXTS[i % len(TEXTS)]]}).encode()
                i += 1
                t0 = time.perf_counter()
                status, reply = await request(reader, writer, path, body)
                latencies.append(time.perf_counter() - t0)
                if status != 200 or b"predictions" not in reply:
                    errors += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    return {"clients": clients, "requests": len(lat), "errors": errors,
            "requests_per_s": len(lat) / wall, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99))}


def get_json(port: int, path: str) -> dict:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def run_mode(model: str, batching: bool, args: argparse.Namespace) -> dict:
    port = free_port()
    extra = ["--threads", str(args.threads)] + ([] if batching else ["--no-batching"])
    proc = start_server(model, port, extra)
    path = f"/v1/models/{model}:predict"
    try:
        asyncio.run(drive(port, path, max(args.concurrency), args.warmup))
        rss_start = rss_mb(proc.pid)
        points = []
        for clients in args.concurrency:
            point = asyncio.run(drive(port, path, clients, args.seconds))
            points.append(point)
            print(f"  {'batching' if batching else 'no batching':<12} {clients:>3} clients: "
                  f"{point['requests_per_s']:7.1f} req/s  p50 {point['p50_ms']:6.1f} ms  "
                  f"p99 {point['p99_ms']:6.1f} ms  errors {point['errors']}", flush=True)
        stats = get_json(port, "/stats")["models"][model]
        rss_end = rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"batching": batching, "points": points, "server_stats": stats,
            "rss_mb_after_warmup": round(rss_start, 1), "rss_mb_end": round(rss_end, 1),
            "exit_code": proc.returncode}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="sentiment_bilstm.sst2")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--seconds", type=float, default=8.0, help="per concurrency level")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=1, help="rnnzoo serve --threads")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    print(f"rnnzoo serve {args.model} on 127.0.0.1, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), {args.seconds:g} s per point, "
          f"one text per request", flush=True)
    results = [run_mode(args.model, False, args), run_mode(args.model, True, args)]
    unbatched = {pt["clients"]: pt["requests_per_s"] for pt in results[0]["points"]}
    print("\n| clients | no batching req/s | p50 / p99 ms | batching req/s | p50 / p99 ms | "
          "speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for a, b in zip(results[0]["points"], results[1]["points"]):
        print(f"| {a['clients']} | {a['requests_per_s']:.0f} | {a['p50_ms']:.1f} / "
              f"{a['p99_ms']:.1f} | {b['requests_per_s']:.0f} | {b['p50_ms']:.1f} / "
              f"{b['p99_ms']:.1f} | {b['requests_per_s'] / unbatched[a['clients']]:.2f}x |")
    for r in results:
        s = r["server_stats"]
        print(f"{'batching' if r['batching'] else 'no batching'}: {s['requests']} requests in "
              f"{s['runtime_calls']} runtime calls (largest batch {s['largest_batch']}); server "
              f"RSS {r['rss_mb_after_warmup']} MB after warm-up -> {r['rss_mb_end']} MB at the "
              f"end; SIGTERM exit code {r['exit_code']}; errors "
              f"{sum(pt['errors'] for pt in r['points'])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results},
                                              indent=2) + "\n")


if __name__ == "__main__":
    main()
