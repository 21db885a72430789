"""Inference latency of the sentiment models: Keras vs stock ONNX export vs rnnzoo bundles.

    python benchmarks/bench_inference.py [--budget 1.0]

For the BiLSTM classifier (Embedding 20000x128, BiLSTM 128, as `sentiment_bilstm`) and the GRU
variant (`sentiment_gru`, GRU 128), at batch 1 and 32, T=50 and 200 (full-length rows):

* Keras ``model.predict``
* a ``tf.function`` call (TensorFlow's default threads)
* onnxruntime on the stock export, ``model.export(path, format="onnx")`` (1 thread)
* rnnzoo fp32 bundle through ``rnnzoo.export.runtime`` (1 thread; includes input checks)
* rnnzoo int8 bundle (1 thread)

Median latency in ms, ratio against ``tf.function`` in brackets (higher is faster), plus the
fraction of the single-core GEMM peak (numpy, 1 BLAS thread, measured in the same run) that the
fp32 bundle reaches. Weights are random (speed does not depend on them). One run: the machines
are shared, so read ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

SHAPES = [(1, 50), (32, 50), (1, 200), (32, 200)]


def gemm_peak_gflops() -> float:
    """Single-core fp32 GEMM throughput with numpy, in a subprocess pinned to one BLAS thread."""
    code = (
        "import numpy as np, time\n"
        "a = np.random.rand(1024, 1024).astype(np.float32); b = a.copy()\n"
        "for _ in range(3): a @ b\n"
        "best = 1e9\n"
        "for _ in range(15):\n"
        "    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)\n"
        "print(2 * 1024**3 / best / 1e9)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    return float(out.stdout.strip())


def timed(fn, budget: float) -> float:
    """Median seconds per call, after warm-up, within about ``budget`` seconds."""
    for _ in range(3):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 500):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def recurrent_flops(cell: str, units: int, emb: int, bidirectional: bool, b: int, t: int) -> float:
    gates = {"lstm": 4, "gru": 3, "simple": 1}[cell]
    per_step = 2 * gates * units * (emb + units) * b
    return per_step * t * (2 if bidirectional else 1)


def bench_entry(entry: str, budget: float, work: Path) -> tuple[list[str], dict]:
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf
    from rnnzoo.export import runtime, to_onnx

    import rnnzoo

    task = rnnzoo.create_model(entry)
    cfg = task.config.model
    task.preprocessor.tokenizer.fit([" ".join(f"w{i}" for i in range(cfg.vocab_size))],
                                    max_size=cfg.vocab_size)
    task.preprocessor.label_names = ["negative", "positive"]
    model = task.model
    report = to_onnx(task, work / f"{entry}", quantize="int8")
    fp32 = runtime.load(report.path)
    int8 = runtime.load(report.int8_path)

    stock_dir = work / f"{entry}_stock"
    model(np.ones((1, 4), np.int32))  # Keras' exporter needs a model that has been called
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.export(str(stock_dir / "model.onnx"), format="onnx", verbose=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    stock = ort.InferenceSession(str(stock_dir / "model.onnx"), opts,
                                 providers=["CPUExecutionProvider"])
    stock_in = stock.get_inputs()[0].name
    import onnx

    stock_ops = {n.op_type for n in onnx.load(str(stock_dir / "model.onnx")).graph.node}

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    rows: dict[str, dict] = {k: {} for k in ("keras_predict", "tf_function", "stock_onnx",
                                             "rnnzoo_fp32", "rnnzoo_int8")}
    rng = np.random.default_rng(0)
    for b, t in SHAPES:
        x = rng.integers(2, cfg.vocab_size, size=(b, t)).astype(np.int32)
        rows["keras_predict"][(b, t)] = timed(lambda x=x: model.predict(x, verbose=0), budget)
        rows["tf_function"][(b, t)] = timed(lambda x=x: fn(x).numpy(), budget)
        rows["stock_onnx"][(b, t)] = timed(lambda x=x: stock.run(None, {stock_in: x}), budget)
        rows["rnnzoo_fp32"][(b, t)] = timed(lambda x=x: fp32.predict_tokens(x), budget)
        rows["rnnzoo_int8"][(b, t)] = timed(lambda x=x: int8.predict_tokens(x), budget)
    info = {"cfg": cfg, "stock_has_loop": "Loop" in stock_ops,
            "fused": report.graphs["model"]["recurrent_ops"],
            "int8_ops": report.int8.get("op_counts", {})}
    return rows, info


LABELS = {
    "keras_predict": "Keras `model.predict`",
    "tf_function": "`tf.function` call",
    "stock_onnx": "ORT on `model.export(format=\"onnx\")`",
    "rnnzoo_fp32": "rnnzoo fp32 bundle",
    "rnnzoo_int8": "rnnzoo int8 bundle",
}


def print_table(entry: str, rows: dict, info: dict, peak: float) -> None:
    cfg = info["cfg"]
    print(f"\n### {entry}: Embedding {cfg.vocab_size}x{cfg.embedding_dim}, "
          f"{'Bi' if cfg.bidirectional else ''}{cfg.cell.upper()} {cfg.units}")
    print(f"fused ops in the rnnzoo graph: {info['fused']}; stock export has Loop: "
          f"{info['stock_has_loop']}; int8 graph ops: {info['int8_ops']}\n")
    head = " | ".join(f"B{b} T{t}" for b, t in SHAPES)
    print(f"| path (ms, ratio vs tf.function) | {head} |")
    print("|---" * (len(SHAPES) + 1) + "|")
    base = rows["tf_function"]
    for key, label in LABELS.items():
        cells = [f"{rows[key][s] * 1e3:.2f} ({base[s] / rows[key][s]:.1f}x)" for s in SHAPES]
        print(f"| {label} | " + " | ".join(cells) + " |")
    stock = rows["stock_onnx"]
    fp32 = rows["rnnzoo_fp32"]
    cells = [f"{stock[s] / fp32[s]:.1f}x" for s in SHAPES]
    print("| rnnzoo fp32 speed-up over the stock export | " + " | ".join(cells) + " |")
    cells = []
    for b, t in SHAPES:
        flops = recurrent_flops(cfg.cell, cfg.units, cfg.embedding_dim, cfg.bidirectional, b, t)
        gflops = flops / fp32[(b, t)] / 1e9
        cells.append(f"{gflops:.0f} GF/s = {gflops / peak:.0%}")
    print("| rnnzoo fp32 recurrent GFLOP/s, share of 1-core GEMM peak | " + " | ".join(cells)
          + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--entries", default="sentiment_bilstm,sentiment_gru")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    peak = gemm_peak_gflops()
    print(f"# bench_inference: {os.cpu_count()} CPUs; single-core numpy fp32 GEMM peak "
          f"(1024^3): {peak:.1f} GFLOP/s; ORT 1 intra-op thread; TF default threads")
    with tempfile.TemporaryDirectory() as work:
        for entry in args.entries.split(","):
            rows, info = bench_entry(entry, args.budget, Path(work))
            print_table(entry, rows, info, peak)


if __name__ == "__main__":
    main()
