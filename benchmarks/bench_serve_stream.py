"""Time to first token over HTTP: ``POST :stream`` against the full ``POST :predict`` latency of
``rnnzoo serve``, for the char LM preset.

Starts ``rnnzoo serve MODEL`` on 127.0.0.1 and, for each length of generated text, alternates
``:predict`` and ``:stream`` requests (the same body: a prompt, ``steps`` characters, a seed per
repetition), one at a time on a keep-alive connection, so that other load on a shared machine
falls on both alike. For ``:predict`` it times the whole answer; for ``:stream`` the first
``data:`` event (the first character, what a reader sees first) and the last event. Prints
medians and 90th percentiles in ms, and checks that each stream's text equals the predict
text of the same request.

    python benchmarks/bench_serve_stream.py                     # steps 20, 200, 1000; 15 reps
    python benchmarks/bench_serve_stream.py --steps 200 --reps 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "rnnzoo.cli", "serve", model, "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                raise SystemExit(f"server exited: {out}") from None
            time.sleep(0.1)
    raise SystemExit("the server did not start")


class Connection:
    """One keep-alive HTTP/1.1 connection with just enough parsing for these answers
    (Content-Length JSON, chunked server-sent events), so the timings are the server's."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def post(self, path: str, body: dict) -> tuple[dict[str, str], bytes]:
        raw = json.dumps(body).encode()
        self.sock.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                          b"application/json\r\nContent-Length: %d\r\n\r\n%s"
                          % (path.encode(), len(raw), raw))
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        if status != 200:
            raise SystemExit(f"{path}: HTTP {status}")
        return headers, b""

    def predict(self, path: str, body: dict) -> bytes:
        headers, _ = self.post(path, body)
        return self._exactly(int(headers["content-length"]))

    def stream(self, path: str, body: dict) -> tuple[list[float], list[bytes]]:
        """Arrival times (perf_counter) and payloads of each event of a chunked SSE answer."""
        headers, _ = self.post(path, body)
        assert headers.get("transfer-encoding") == "chunked", headers
        times, events, pending = [], [], b""
        while True:
            size = int(self._until(b"\r\n"), 16)
            data = self._exactly(size)
            self._until(b"\r\n")
            if size == 0:
                return times, events
            pending += data
            while b"\n\n" in pending:
                event, pending = pending.split(b"\n\n", 1)
                times.append(time.perf_counter())
                events.append(event)


def measure(port: int, model: str, steps: int, reps: int) -> dict[str, Any]:
    conn = Connection(port)
    predict_ms, first_ms, last_ms = [], [], []
    for rep in range(reps + 1):  # the first repetition warms up
        body = {"instances": [{"prompt": "ROMEO:", "steps": steps, "temperature": 0.8,
                               "seed": rep}]}
        t0 = time.perf_counter()
        reply = json.loads(conn.predict(f"/v1/models/{model}:predict", body))
        t_predict = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        times, events = conn.stream(f"/v1/models/{model}:stream", body)
        text = "".join(json.loads(e.split(b"data: ", 1)[1])["delta"] for e in events
                       if e.startswith(b"data: "))
        if text != reply["predictions"][0]["text"]:
            raise SystemExit(f"steps {steps}: the stream's text differs from :predict's")
        if len(events) != steps + 1:
            raise SystemExit(f"steps {steps}: {len(events)} events, expected {steps + 1}")
        if rep:
            predict_ms.append(t_predict)
            first_ms.append((times[0] - t0) * 1000)
            last_ms.append((times[-1] - t0) * 1000)
    conn.sock.close()

    def stats(values: list[float]) -> dict[str, float]:
        return {"p50": float(np.median(values)), "p90": float(np.percentile(values, 90))}

    return {"steps": steps, "reps": reps, "predict_ms": stats(predict_ms),
            "stream_first_ms": stats(first_ms), "stream_last_ms": stats(last_ms)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="charlm_lstm.shakespeare")
    p.add_argument("--steps", type=int, nargs="+", default=[20, 200, 1000])
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    port = free_port()
    proc = start_server(args.model, port)
    try:
        rows = [measure(port, args.model, steps, args.reps) for steps in args.steps]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    print(f"# {args.model}, rnnzoo serve on 127.0.0.1, one request at a time; "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("| steps | :predict p50 (p90) ms | :stream first event p50 (p90) ms "
          "| :stream last event p50 (p90) ms | first event / predict |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        pr, fi, la = r["predict_ms"], r["stream_first_ms"], r["stream_last_ms"]
        print(f"| {r['steps']} | {pr['p50']:.1f} ({pr['p90']:.1f}) | {fi['p50']:.1f} "
              f"({fi['p90']:.1f}) | {la['p50']:.1f} ({la['p90']:.1f}) | "
              f"{fi['p50'] / pr['p50']:.3f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"model": args.model, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
