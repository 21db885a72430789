"""Throughput and latency of ``rnnzoo serve`` with and without request batching, in one run.

Starts ``rnnzoo serve MODEL`` on 127.0.0.1 twice, side by side (``--no-batching`` and batching,
otherwise the same options), and drives ``POST /v1/models/MODEL:predict`` (one text per request,
texts of varied length) from 1, 8 and 64 concurrent keep-alive clients for a fixed time per
mode, alternating between the two servers in slices (off-on, on-off, ...) so that other load on
a shared machine falls on both modes alike. Prints requests/s, p50/p99 latency, the error count,
the speed-up of each round, the merged batch sizes the server reports (``/stats``) and each
server's resident memory after warm-up and at the end (growth under load would show there).

The clients are an asyncio protocol on raw transports (prebuilt request bytes, keep-alive, no
HTTP library, uvloop when installed) so that they take as little of the machine's CPU as
possible: client and server share the machine, so the CPU each used is printed beside every
point (in cores), with the mean number of requests per runtime call.

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
from typing import Any

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


def request_bytes(path: str, text: str) -> bytes:
    body = json.dumps({"instances": [text]}).encode()
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))


class Client(asyncio.Protocol):
    """One keep-alive connection sending prebuilt requests back to back until ``stop``: a
    protocol on the raw transport (no streams, no HTTP library), so that the load generator,
    which shares the machine with the server, costs as little CPU as possible."""

    def __init__(self, requests: list[bytes], first: int, stop: float, latencies: list[float],
                 done: asyncio.Future) -> None:
        self.requests, self.i, self.stop = requests, first, stop
        self.latencies, self.done = latencies, done
        self.errors = 0
        self.buf = b""
        self.t0 = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send_next()

    def send_next(self) -> None:
        assert self.transport is not None
        self.t0 = time.perf_counter()
        if self.t0 >= self.stop:
            self.transport.close()
            return
        self.transport.write(self.requests[self.i % len(self.requests)])
        self.i += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        at = self.buf.find(b"content-length:", 0, head_end)
        if at < 0:
            at = self.buf.lower().find(b"content-length:", 0, head_end)
        length = int(self.buf[at + 15:self.buf.find(b"\r\n", at)])
        end = head_end + 4 + length
        if len(self.buf) < end:
            return
        self.latencies.append(time.perf_counter() - self.t0)
        if self.buf[9:12] != b"200" or b'"predictions"' not in self.buf[head_end:end]:
            self.errors += 1
        self.buf = self.buf[end:]
        self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.errors + (1 if exc is not None else 0))


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time so far of a process (all its threads) or of one thread."""
    stat = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(port: int, path: str, clients: int, seconds: float,
                server_pid: int | None = None) -> dict:
    """``clients`` keep-alive connections sending back to back for ``seconds``; requests/s,
    latency percentiles, errors, and the CPU the server and this client used (in cores)."""
    loop = asyncio.get_running_loop()
    requests = [request_bytes(path, t) for t in TEXTS]
    latencies: list[float] = []
    server_cpu = cpu_seconds(server_pid) if server_pid else 0.0
    main_cpu = cpu_seconds(server_pid, server_pid) if server_pid else 0.0  # the event loop
    client_cpu = time.process_time()
    t0 = time.perf_counter()
    stop = t0 + seconds
    dones = []
    for k in range(clients):
        done = loop.create_future()
        await loop.create_connection(
            lambda k=k, done=done: Client(requests, k, stop, latencies, done), "127.0.0.1", port)
        dones.append(done)
    errors = sum(await asyncio.gather(*dones))
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - client_cpu
    lat = np.asarray(latencies) * 1000
    out = {"clients": clients, "requests": len(lat), "errors": errors, "wall_s": wall,
           "requests_per_s": len(lat) / wall, "p50_ms": float(np.percentile(lat, 50)),
           "p99_ms": float(np.percentile(lat, 99)), "client_cpu_cores": client_cpu / wall,
           "latencies_ms": lat}
    if server_pid:
        out["server_cpu_cores"] = (cpu_seconds(server_pid) - server_cpu) / wall
        out["event_loop_cpu_cores"] = (cpu_seconds(server_pid, server_pid) - main_cpu) / wall
    return out


def run_client(coro: Any) -> Any:
    """Run the load generator on uvloop when installed (it comes with uvicorn[standard]; the
    same loop for both modes), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def get_json(port: int, path: str) -> dict:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


MODES = (False, True)  # batching off, on


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(args: argparse.Namespace) -> list[dict]:
    """Both servers (``--no-batching`` and batching) run side by side, the idle one using no
    CPU; for each concurrency level the load alternates between them in ``--rounds`` slices
    (off-on, on-off, ...), so that whatever else the shared machine does falls on both modes
    alike. A point's requests/s is its requests over its summed time; the per-slice ratios are
    kept to show the spread."""
    model, path = args.model, f"/v1/models/{args.model}:predict"
    procs, ports = {}, {}
    try:
        for batching in MODES:
            ports[batching] = free_port()
            procs[batching] = start_server(model, ports[batching], [
                "--threads", str(args.threads), "--intra-op-threads", str(args.intra_op_threads),
                "--precision", args.precision] + ([] if batching else ["--no-batching"]))
        for batching in MODES:
            run_client(drive(ports[batching], path, max(args.concurrency), args.warmup))
        rss_start = {b: rss_mb(procs[b].pid) for b in MODES}
        points: dict[bool, list[dict]] = {b: [] for b in MODES}
        for clients in args.concurrency:
            slices: dict[bool, list[dict]] = {b: [] for b in MODES}
            calls = {b: [0, 0] for b in MODES}  # instances, runtime calls
            for r in range(args.rounds):
                for batching in (MODES if r % 2 == 0 else MODES[::-1]):
                    before = get_json(ports[batching], "/stats")["models"][model]
                    slices[batching].append(run_client(drive(
                        ports[batching], path, clients, args.seconds / args.rounds,
                        procs[batching].pid)))
                    after = get_json(ports[batching], "/stats")["models"][model]
                    calls[batching][0] += after["instances"] - before["instances"]
                    calls[batching][1] += after["runtime_calls"] - before["runtime_calls"]
            for batching in MODES:
                sl = slices[batching]
                wall = sum(x["wall_s"] for x in sl)
                lat = np.concatenate([x["latencies_ms"] for x in sl])
                point = {"clients": clients, "requests": len(lat),
                         "errors": sum(x["errors"] for x in sl), "seconds": wall,
                         "requests_per_s": len(lat) / wall,
                         "p50_ms": float(np.percentile(lat, 50)),
                         "p99_ms": float(np.percentile(lat, 99)),
                         "server_cpu_cores": sum(x["server_cpu_cores"] * x["wall_s"]
                                                 for x in sl) / wall,
                         "client_cpu_cores": sum(x["client_cpu_cores"] * x["wall_s"]
                                                 for x in sl) / wall,
                         "event_loop_cpu_cores": sum(x["event_loop_cpu_cores"] * x["wall_s"]
                                                     for x in sl) / wall,
                         "requests_per_call": calls[batching][0] / max(1, calls[batching][1]),
                         "slice_requests_per_s": [x["requests_per_s"] for x in sl]}
                points[batching].append(point)
                print(f"  {'batching' if batching else 'no batching':<12} {clients:>3} clients: "
                      f"{point['requests_per_s']:7.1f} req/s  p50 {point['p50_ms']:6.1f} ms  "
                      f"p99 {point['p99_ms']:6.1f} ms  errors {point['errors']}  CPU server "
                      f"{point['server_cpu_cores']:.2f} (event loop "
                      f"{point['event_loop_cpu_cores']:.2f}) client "
                      f"{point['client_cpu_cores']:.2f} cores  {point['requests_per_call']:.1f} "
                      "per call", flush=True)
            ratios = [b["requests_per_s"] / a["requests_per_s"]
                      for a, b in zip(slices[False], slices[True])]
            points[True][-1]["slice_speedups"] = ratios
            print(f"  {clients} clients, speed-up per round: "
                  f"{', '.join(f'{x:.2f}x' for x in ratios)}", flush=True)
        stats = {b: get_json(ports[b], "/stats")["models"][model] for b in MODES}
        rss_end = {b: rss_mb(procs[b].pid) for b in MODES}
    finally:
        for proc in procs.values():
            stop_server(proc)
    return [{"batching": b, "points": points[b], "server_stats": stats[b],
             "rss_mb_after_warmup": round(rss_start[b], 1), "rss_mb_end": round(rss_end[b], 1),
             "exit_code": procs[b].returncode} for b in MODES]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="sentiment_bilstm.sst2")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--seconds", type=float, default=8.0,
                   help="per concurrency level and mode, split into --rounds slices")
    p.add_argument("--rounds", type=int, default=4,
                   help="alternating slices per point (off-on, on-off, ...)")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=1, help="rnnzoo serve --threads")
    p.add_argument("--intra-op-threads", default="1",
                   help="rnnzoo serve --intra-op-threads (1, N or auto), both modes")
    p.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                   help="rnnzoo serve --precision (which of the preset's bundles), both modes")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    print(f"rnnzoo serve {args.model} on 127.0.0.1, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), {args.seconds:g} s per point "
          f"and mode in {args.rounds} alternating slices, "
          f"one text per request; serve --threads {args.threads} --intra-op-threads "
          f"{args.intra_op_threads} --precision {args.precision} in both modes", flush=True)
    results = run(args)
    unbatched = {pt["clients"]: pt["requests_per_s"] for pt in results[0]["points"]}
    print("\n| clients | no batching req/s | p50 / p99 ms | batching req/s | p50 / p99 ms | "
          "speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for a, b in zip(results[0]["points"], results[1]["points"]):
        print(f"| {a['clients']} | {a['requests_per_s']:.0f} | {a['p50_ms']:.1f} / "
              f"{a['p99_ms']:.1f} | {b['requests_per_s']:.0f} | {b['p50_ms']:.1f} / "
              f"{b['p99_ms']:.1f} | {b['requests_per_s'] / unbatched[a['clients']]:.2f}x |")
    print("\nCPU per request (microseconds; server = event loop + runtime worker threads):")
    for r in results:
        for pt in r["points"]:
            per = 1e6 / pt["requests_per_s"]
            loop_us = pt["event_loop_cpu_cores"] * per
            print(f"  {'batching' if r['batching'] else 'no batching':<12} {pt['clients']:>3} "
                  f"clients: event loop {loop_us:4.0f}, workers "
                  f"{(pt['server_cpu_cores'] * per) - loop_us:4.0f}, client "
                  f"{pt['client_cpu_cores'] * per:3.0f}")
    for r in results:
        s = r["server_stats"]
        print(f"{'batching' if r['batching'] else 'no batching'}: {s['requests']} requests in "
              f"{s['runtime_calls']} runtime calls (largest batch {s['largest_batch']}); server "
              f"RSS {r['rss_mb_after_warmup']} MB after warm-up -> {r['rss_mb_end']} MB at the "
              f"end; SIGTERM exit code {r['exit_code']}; errors "
              f"{sum(pt['errors'] for pt in r['points'])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "load_before": load_before,
                                               "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
