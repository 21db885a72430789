"""Handwriting recognition speed: lines per second of the onnxruntime bundles (fp32, int8) and the
Keras tf.function graph at batch 1 and 32, and the streaming latency per stroke.

    python benchmarks/bench_handwriting.py [--preset handwriting_bilstm_ctc.iamondb | --run DIR]
        [--data ../shared/data/handwriting_ctc/iamondb_val1.npz] [--lines 64] [--threads 1]
        [--json OUT.json]

1. **Lines per second** (best path, ``recognize``: features, the network, decoding) on the
   first ``--lines`` lines of ``--data``, every engine with ``--threads`` intra-op threads, at
   batch 1 (one call per line) and batch 32 (``batch_size=32``: length-sorted padded batches).
   Engines take turns per repetition, so load on a shared machine falls on all of them; the
   best of three repetitions is kept. Transcripts of every engine are compared with Keras'.
2. **Streaming latency per stroke**: the streaming entry (``handwriting_lstm_stream``, built at
   the preset's feature statistics with fresh weights: latency does not depend on the weights;
   or ``--stream-run DIR``) fed the same lines stroke by stroke through ``model.stream()``,
   ``step(stroke)`` timed (features, the ``stream`` graph, best-path decoding): median and
   90th percentile milliseconds per stroke on Keras and on its exported fp32 bundle.
3. The markdown tables, printed (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRESET = "handwriting_bilstm_ctc.iamondb"
DATA = REPO.parent / "shared" / "data" / "handwriting_ctc" / "iamondb_val1.npz"
KERAS = "Keras (tf.function)"


def _threads(n: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _models(args: argparse.Namespace) -> tuple[dict, Path]:
    from rnnzoo.export import runtime

    import rnnzoo
    from rnnzoo.presets import resolve_preset

    if args.run:
        keras_model, folder = rnnzoo.load(args.run), Path(args.run)
    else:
        keras_model = rnnzoo.from_preset(args.preset, backend="keras")
        folder = resolve_preset(args.preset)
    models = {"runtime fp32": runtime.load(folder / "onnx" / "fp32",
                                           intra_op_threads=args.threads)}
    if (folder / "onnx" / "int8").is_dir():
        models["runtime int8"] = runtime.load(folder / "onnx" / "int8",
                                              intra_op_threads=args.threads)
    models[KERAS] = keras_model
    return models, folder


def lines_per_second(models: dict, lines: list, batch: int, reps: int = 2) -> dict:
    """Best-of-``reps`` lines/s of ``recognize`` per engine at ``batch``, and its transcripts."""
    for model in models.values():  # warm-up: tracing, session first runs
        model.recognize(lines[:batch], batch_size=batch)
    best = {name: 0.0 for name in models}
    texts: dict = {}
    for _ in range(reps):
        for name, model in models.items():
            t = time.perf_counter()
            if batch == 1:
                out = [model.recognize([ln])[0] for ln in lines]
            else:
                out = model.recognize(lines, batch_size=batch)
            best[name] = max(best[name], len(lines) / (time.perf_counter() - t))
            texts[name] = out
    return {"lines_per_s": best, "texts": texts}


def stream_latency(folder: Path, lines: list, stream_run: str | None, threads: int) -> dict:
    """Milliseconds per ``step(stroke)`` of a streaming recognizer on Keras and its bundle."""
    from rnnzoo.export import runtime

    import rnnzoo
    from rnnzoo.apps.handwriting_recognition.data import HandwritingPreprocessor
    from rnnzoo.registry import create_model

    if stream_run:
        task = rnnzoo.load(stream_run)
    else:
        task = create_model("handwriting_lstm_stream")
        pre = HandwritingPreprocessor.from_file(folder / "assets" / "handwriting.json",
                                                RuntimeError)
        task.preprocessor.alphabet = pre.alphabet
        task.preprocessor.fit(lines[:50])
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        from rnnzoo.export import to_onnx

        to_onnx(task, bundle)
        engines = {KERAS: task, "runtime fp32": runtime.load(bundle, intra_op_threads=threads)}
        for model in engines.values():  # warm-up
            s = model.stream()
            for st in lines[0].strokes[:3]:
                s.step(st)
        times: dict = {name: [] for name in engines}
        finals: dict = {name: [] for name in engines}
        for ln in lines:
            for name, model in engines.items():
                s = model.stream()
                text = ""
                for st in ln.strokes:
                    t = time.perf_counter()
                    text = s.step(st)
                    times[name].append(time.perf_counter() - t)
                finals[name].append(text)
    ms = {name: {"median": 1000 * float(np.median(v)),
                 "p90": 1000 * float(np.percentile(v, 90)), "strokes": len(v)}
          for name, v in times.items()}
    same = float(np.mean([a == b for a, b in zip(finals[KERAS], finals["runtime fp32"])]))
    return {"ms_per_stroke": ms, "transcripts_equal": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=PRESET)
    ap.add_argument("--run", help="a run directory instead of the preset (with --bundle export)")
    ap.add_argument("--stream-run", dest="stream_run")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--lines", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    _threads(args.threads)
    from rnnzoo.apps.handwriting_recognition.ink import read_npz

    lines = read_npz(args.data)[: args.lines]
    models, folder = _models(args)
    result: dict = {"lines": len(lines), "threads": args.threads}
    rows = []
    for batch in (1, 32):
        r = lines_per_second(models, lines, batch)
        ref = r["texts"][KERAS]
        for name, lps in r["lines_per_s"].items():
            agree = float(np.mean([a == b for a, b in zip(r["texts"][name], ref)]))
            rows.append((name, batch, lps, lps / r["lines_per_s"][KERAS], agree))
        result[f"batch_{batch}"] = r["lines_per_s"]
    print(f"\nLines per second ({len(lines)} IAM-OnDB lines, best path, {args.threads} "
          "thread(s))\n")
    print("| engine | batch | lines/s | vs Keras | transcripts = Keras |")
    print("|---|---:|---:|---:|---:|")
    for name, batch, lps, ratio, agree in rows:
        print(f"| {name} | {batch} | {lps:.1f} | {ratio:.2f}x | {agree:.0%} |")
    lat = stream_latency(folder, lines[:16], args.stream_run, args.threads)
    result["stream"] = lat
    print("\nStreaming (handwriting_lstm_stream), per stroke\n")
    print("| engine | median ms | p90 ms | strokes |")
    print("|---|---:|---:|---:|")
    for name, v in lat["ms_per_stroke"].items():
        print(f"| {name} | {v['median']:.2f} | {v['p90']:.2f} | {v['strokes']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
