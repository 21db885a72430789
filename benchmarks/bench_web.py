"""Per-call latency of ``rnnzoo web``'s page in headless Chromium (onnxruntime-web, wasm) against
the Python runtime (onnxruntime) on the same bundles.

Builds the site of the classifier, the char LM, the tagger, the translator, the forecaster,
the two music models and the two speech recognisers (int8 where shipped), serves it on
127.0.0.1 with the cross-origin isolation headers (COOP/COEP) that let onnxruntime-web use wasm
threads, and times one call of each application, as a person's click runs it: the page's
``window.rnnzoo.run`` (tokenising, the graphs, the post-processing; timed inside the page with
``performance.now()``) and the Python runtime's user call (``predict``, ``generate``, ``tag``,
``translate`` greedy and beam 5, ``forecast``, music's ``generate``, ``serve_predict`` of a
base64 WAV file for the speech recognisers) on the site's own copy of each bundle, at 1 and 2
threads each. The sides alternate in blocks of 5 calls, so load on a shared machine falls on
both alike. Prints medians, 90th percentiles and minima in ms (the minimum: the cost without
contention on a loaded machine).

    python benchmarks/bench_web.py                       # 20 calls per cell
    python benchmarks/bench_web.py --reps 40 --threads 1 --json out.json

Needs ``cd rnnzoo/web/js && npm ci``, Playwright and Debian's chromium.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import math
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

#: (preset, call, input, options): one timed cell each.
CALLS = [
    ("sentiment_bilstm.sst2", "classify", "a gorgeous , witty , seductive movie .", {}),
    ("tagger_bilstm_crf.conll03", "tag",
     "John Smith flew from London to Paris to meet Airbus executives .", {}),
    ("charlm_lstm.shakespeare", "generate 100 characters, greedy", "ROMEO:",
     {"steps": 100, "temperature": 0}),
    ("translator_gru_attention.spa_eng", "translate, greedy",
     "¿Dónde está la estación de tren?", {}),
    ("translator_gru_attention.spa_eng", "translate, beam 5",
     "¿Dónde está la estación de tren?", {"beam": 5}),
    ("forecaster_lstm.etth1", "forecast 24 steps after 96", json.dumps(
        [round(17 + 9 * math.sin(2 * math.pi * t / 24), 3) for t in range(96)]), {}),
    ("music_lstm.jsb", "generate 64 frames, seeded", "",
     {"steps": 64, "temperature": 1, "seed": 0}),
    ("music_lstm_nade.jsb", "generate 64 frames, seeded (NADE)", "",
     {"steps": 64, "temperature": 1, "seed": 0}),
    # A WAV file (base64, as rnnzoo serve takes it; written in main): 2 s of tone bursts at 8 kHz.
    ("ctc_lstm_stream.fsdd", "transcribe 2 s of 8 kHz WAV (streaming)", "", {}),
    ("ctc_bilstm.fsdd", "transcribe 2 s of 8 kHz WAV", "", {}),
]
PRESETS = list(dict.fromkeys(name for name, *_ in CALLS))
BLOCK = 5
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server that sends COOP/COEP: the page is cross-origin isolated, so
    SharedArrayBuffer (and with it onnxruntime-web's wasm threads) is available."""

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _wav_base64() -> str:
    """2 s of tone bursts under faint noise as a 16-bit 8 kHz WAV file, base64."""
    import base64
    import io

    from scipy.io import wavfile

    from rnnzoo.apps.speech_recognition.data import tone_bursts

    x = tone_bursts([300, 700, 1200, 2500, 400, 900, 1800, 3000], 8000)
    x = x + np.random.default_rng(0).normal(0, 0.01, len(x)).astype(np.float32)
    buf = io.BytesIO()
    wavfile.write(buf, 8000, np.round(np.clip(x, -1, 1) * 32767).astype(np.int16))
    return base64.b64encode(buf.getvalue()).decode("ascii")


def python_call(model: Any, name: str, text: str, options: dict) -> Any:
    if name.startswith("sentiment"):
        return model.predict([text])
    if name.startswith("charlm"):
        return model.generate(text, **options)
    if name.startswith("translator"):
        return model.translate(text, beam=options.get("beam"))
    if name.startswith("ctc"):  # as rnnzoo serve reads a base64 WAV file
        return model.serve_predict([text], {})
    if name.startswith("music"):
        options = dict(options)
        return model.generate(options.pop("steps"), primer=json.loads(text) if text else None,
                              **options)
    if name.startswith("forecaster"):
        return model.forecast(json.loads(text))
    return model.tag(text)


def stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "min_ms": float(np.min(ms)), "calls": len(ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=20, help="timed calls per cell (default 20)")
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]

    from playwright.sync_api import sync_playwright
    from rnnzoo.export import runtime

    from rnnzoo.web import build_site

    wav = _wav_base64()
    tmp = Path(tempfile.mkdtemp(prefix="rnnzoo-web-bench-"))
    try:
        site = build_site(PRESETS, tmp / "site")
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(IsolatedHandler, directory=str(tmp / "site")))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        results: dict[str, Any] = {"site": {m["name"]: m["precision"] for m in site["models"]},
                                   "cells": []}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            for n in threads:
                page = browser.new_page()
                page.goto(f"{base}/?threads={n}")
                page.wait_for_function("document.body.dataset.state === 'ready'")
                got = page.evaluate("[crossOriginIsolated, window.rnnzoo.ort.env.wasm.numThreads]")
                if got != [True, n]:
                    raise SystemExit(f"the page runs {got[1]} thread(s) (isolated: {got[0]}), "
                                     f"not {n}")
                models: dict[str, Any] = {}
                for name, what, text, options in CALLS:
                    text = text or (wav if name.startswith("ctc") else text)
                    if name not in models:
                        models[name] = runtime.load(tmp / "site" / "models" / name,
                                                    intra_op_threads=n)
                    model = models[name]
                    page.evaluate("([m, i, o]) => window.rnnzoo.run(m, i, o)",
                                  [name, text, options])  # load and warm up
                    for _ in range(2):
                        python_call(model, name, text, options)
                    web, py = [], []
                    while len(web) < args.reps:
                        web += page.evaluate("""async ([m, i, o, k]) => { const ms = [];
                            for (let j = 0; j < k; j++) { const t = performance.now();
                              await window.rnnzoo.run(m, i, o); ms.push(performance.now() - t); }
                            return ms; }""", [name, text, options, BLOCK])
                        for _ in range(BLOCK):
                            t = time.perf_counter()
                            python_call(model, name, text, options)
                            py.append((time.perf_counter() - t) * 1e3)
                    for side, ms in (("chromium wasm", web), ("python onnxruntime", py)):
                        cell = {"model": name, "call": what, "threads": n, "runtime": side,
                                **stats(ms)}
                        if "steps" in options:
                            cell["per_char_ms"] = cell["median_ms"] / options["steps"]
                        results["cells"].append(cell)
                        print(json.dumps(cell), flush=True)
                page.close()
            results["chromium"] = browser.version
            browser.close()
        server.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    results["onnxruntime_web"] = site["onnxruntime_web"]
    print()
    print("| call | threads | Chromium wasm: median (p90, min) ms | Python onnxruntime: median "
          "(p90, min) ms |")
    print("| --- | --- | --- | --- |")
    cells = results["cells"]
    for web, py in zip(cells[::2], cells[1::2]):
        name = f"{web['model']} ({results['site'][web['model']]}): {web['call']}"
        print(f"| {name} | {web['threads']} | {web['median_ms']:.1f} ({web['p90_ms']:.1f}, "
              f"{web['min_ms']:.1f}) | {py['median_ms']:.1f} ({py['p90_ms']:.1f}, "
              f"{py['min_ms']:.1f}) |")
    print(f"\nChromium {results['chromium']}, onnxruntime-web {results['onnxruntime_web']}, "
          f"{results['machine']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
