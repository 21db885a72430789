"""Classifier inference at equal threads: TensorFlow (``tf.function``) vs the rnnzoo bundles.

    python benchmarks/bench_inference.py [--threads 1,2] [--budget 1.0] [--stock]

The shipped ``sentiment_bilstm.sst2`` preset (Embedding 20000x128, two BiLSTM-128 layers, max
pooling): its Keras model from the preset's weights, and fp32 and int8 ONNX bundles that this
version's exporter writes from it (``--shipped``: the bundles stored in the preset instead).
For each thread count N, a fresh process is pinned to N
cores (``os.sched_setaffinity``) and both engines get N threads: TensorFlow through
``tf.config.threading`` (intra- and inter-op N), onnxruntime through ``intra_op_threads=N``;
with N > 1 also the ``intra_op_threads="auto"`` policy (1 thread below 8 rows, N from there)
and ``inter_op_threads=N`` with one intra-op thread (parallel execution: the forward and backward
LSTM of a layer run at the same time).

Rows: Keras ``model.predict``, a ``tf.function`` call, (``--stock``: onnxruntime on Keras'
``model.export(format="onnx")``, a ``Loop`` graph), the rnnzoo fp32 and int8 bundles through
``rnnzoo.export.runtime`` (input checks included). Median ms per call with the ratio to the
``tf.function`` call at the same thread count in brackets (higher is faster), at batch 1, 8 and
32 and 50 or 200 tokens per row (full-length rows). Also the GEMM peak at N threads, measured in
the same process (numpy 1024^3 fp32 matmul with N BLAS threads, and an onnxruntime ``MatMul``
node with N intra-op threads), and the share of the higher one that the fp32 bundle's recurrent
FLOPs reach at every shape. Read the ratios: one run, and absolute times move with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESET = "sentiment_bilstm.sst2"
SHAPES = [(1, 50), (8, 50), (32, 50), (1, 200), (32, 200)]


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


def gemm_peaks(threads: int, work: Path) -> dict[str, float]:
    """fp32 GEMM GFLOP/s at ``threads``: numpy (BLAS threads set before numpy loads, so in a
    subprocess) and an onnxruntime MatMul node (the kernels the bundles run)."""
    code = (
        "import numpy as np, time\n"
        "a = np.random.rand(1024, 1024).astype(np.float32); b = a.copy()\n"
        "for _ in range(3): a @ b\n"
        "best = 1e9\n"
        "for _ in range(15):\n"
        "    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)\n"
        "print(2 * 1024**3 / best / 1e9)\n"
    )
    n = str(threads)
    env = dict(os.environ, OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1024, 1024]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [1024, 1024])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1024, 1024])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = work / "gemm.onnx"
    onnx.save(model, str(path))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    a = np.random.rand(1024, 1024).astype(np.float32)
    for _ in range(3):
        sess.run(None, {"a": a, "b": a})
    best = 1e9
    for _ in range(15):
        t = time.perf_counter()
        sess.run(None, {"a": a, "b": a})
        best = min(best, time.perf_counter() - t)
    return {"numpy": float(out.stdout.strip()), "onnxruntime": 2 * 1024**3 / best / 1e9}


def recurrent_flops(cfg, b: int, t: int) -> float:
    """Multiply-adds x 2 of every recurrent layer's input and recurrent matrices."""
    gates = {"lstm": 4, "gru": 3, "simple": 1}[cfg.cell]
    dirs = 2 if cfg.bidirectional else 1
    total, width = 0.0, cfg.embedding_dim
    for _ in range(cfg.num_layers):
        total += 2 * gates * cfg.units * (width + cfg.units) * b * t * dirs
        width = cfg.units * dirs
    return total


def child(threads: int, budget: float, stock: bool, shipped: bool, bundle_dir: str) -> dict:
    """One thread count, in a process pinned to ``threads`` cores."""
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from rnnzoo.export import runtime

    import rnnzoo

    task = rnnzoo.from_preset(PRESET, backend="keras")
    cfg = task.config.model
    model = task.model
    if shipped:
        bundles = REPO / "rnnzoo" / "pretrained" / PRESET / "onnx"
    else:  # what this version's exporter writes from the preset's weights
        bundles = Path(bundle_dir)
        if not (bundles / "fp32").exists():
            from rnnzoo.export import to_onnx

            to_onnx(task, bundles / "fp32", quantize="int8")
            (bundles / "fp32-int8").rename(bundles / "int8")
    engines = {"rnnzoo_fp32": runtime.load(bundles / "fp32", intra_op_threads=threads),
               "rnnzoo_int8": runtime.load(bundles / "int8", intra_op_threads=threads)}
    if threads > 1:
        engines["rnnzoo_fp32_auto"] = runtime.load(bundles / "fp32", intra_op_threads="auto")
        engines["rnnzoo_int8_auto"] = runtime.load(bundles / "int8", intra_op_threads="auto")
        engines["rnnzoo_fp32_par"] = runtime.load(bundles / "fp32", intra_op_threads=1,
                                                  inter_op_threads=threads)
        engines["rnnzoo_int8_par"] = runtime.load(bundles / "int8", intra_op_threads=1,
                                                  inter_op_threads=threads)
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    rows: dict[str, dict] = {"keras_predict": {}, "tf_function": {}}
    with tempfile.TemporaryDirectory() as work:
        peaks = gemm_peaks(threads, Path(work))
        stock_sess = None
        if stock:
            import onnxruntime as ort

            model(np.ones((1, 4), np.int32))  # Keras' exporter needs a called model
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.export(str(Path(work) / "stock.onnx"), format="onnx", verbose=False)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            stock_sess = ort.InferenceSession(str(Path(work) / "stock.onnx"), opts,
                                              providers=["CPUExecutionProvider"])
            rows["stock_onnx"] = {}
        rows.update({k: {} for k in engines})
        rng = np.random.default_rng(0)
        for b, t in SHAPES:
            key = f"B{b} T{t}"
            x = rng.integers(2, cfg.vocab_size, size=(b, t)).astype(np.int32)
            rows["keras_predict"][key] = timed(lambda x=x: model.predict(x, verbose=0),
                                               budget / 2)
            rows["tf_function"][key] = timed(lambda x=x: fn(x).numpy(), budget)
            if stock_sess is not None:
                feed = stock_sess.get_inputs()[0].name
                rows["stock_onnx"][key] = timed(
                    lambda x=x, f=feed: stock_sess.run(None, {f: x}), budget)
            for name, engine in engines.items():
                rows[name][key] = timed(lambda x=x, e=engine: e.predict_tokens(x), budget)
    flops = {f"B{b} T{t}": recurrent_flops(cfg, b, t) for b, t in SHAPES}
    return {"threads": threads, "rows": rows, "peaks": peaks, "flops": flops,
            "model": f"Embedding {cfg.vocab_size}x{cfg.embedding_dim}, {cfg.num_layers} x "
                     f"{'Bi' if cfg.bidirectional else ''}{cfg.cell.upper()} {cfg.units}"}


LABELS = {
    "keras_predict": "Keras `model.predict`",
    "tf_function": "`tf.function` call",
    "stock_onnx": "ORT on `model.export(format=\"onnx\")`",
    "rnnzoo_fp32": "rnnzoo fp32 bundle",
    "rnnzoo_int8": "rnnzoo int8 bundle",
    "rnnzoo_fp32_auto": "rnnzoo fp32, `intra_op_threads=\"auto\"`",
    "rnnzoo_int8_auto": "rnnzoo int8, `intra_op_threads=\"auto\"`",
    "rnnzoo_fp32_par": "rnnzoo fp32, 1 intra-op x N inter-op threads (directions in parallel)",
    "rnnzoo_int8_par": "rnnzoo int8, 1 intra-op x N inter-op threads (directions in parallel)",
}


def print_table(res: dict) -> None:
    n = res["threads"]
    peaks = res["peaks"]
    peak = max(peaks.values())
    print(f"\n### {n} thread{'s' if n > 1 else ''} each ({PRESET}: {res['model']})")
    print(f"fp32 GEMM peak at {n} thread(s): numpy {peaks['numpy']:.1f} GFLOP/s, onnxruntime "
          f"MatMul {peaks['onnxruntime']:.1f} GFLOP/s\n")
    keys = [f"B{b} T{t}" for b, t in SHAPES]
    print("| path (ms, ratio vs tf.function) | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    base = res["rows"]["tf_function"]
    for name, label in LABELS.items():
        if name not in res["rows"]:
            continue
        row = res["rows"][name]
        plain = name in ("rnnzoo_fp32", "rnnzoo_int8")
        thr = f" ({n} thread{'s' if n > 1 else ''})" if plain else ""
        cells = [f"{row[k] * 1e3:.2f} ({base[k] / row[k]:.2f}x)" for k in keys]
        print(f"| {label}{thr} | " + " | ".join(cells) + " |")
    for name in ("rnnzoo_fp32", "tf_function"):
        row = res["rows"][name]
        cells = []
        for k in keys:
            gflops = res["flops"][k] / row[k] / 1e9
            cells.append(f"{gflops:.0f} GF/s = {gflops / peak:.0%}")
        print(f"| {LABELS[name]}: recurrent GFLOP/s, share of the {n}-thread GEMM peak | "
              + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--threads", default="1,2", help="thread counts, one process each")
    parser.add_argument("--stock", action="store_true",
                        help="also time onnxruntime on Keras' own ONNX export")
    parser.add_argument("--shipped", action="store_true",
                        help="time the preset's shipped bundles instead of exporting them anew")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bundles", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.budget, args.stock, args.shipped,
                                           args.bundles)))
        return
    counts = [int(t) for t in args.threads.split(",")]
    cores = len(os.sched_getaffinity(0))
    print(f"# bench_inference: {cores} cores granted; each thread count in its own process "
          "pinned to that many cores; TensorFlow and onnxruntime both get N threads")
    with tempfile.TemporaryDirectory() as bundles:
        for n in counts:
            if n > cores:
                print(f"\n(skipping {n} threads: only {cores} cores)")
                continue
            cmd = [sys.executable, __file__, "--child", str(n), "--budget", str(args.budget),
                   "--bundles", bundles]
            cmd += (["--stock"] if args.stock else []) + (["--shipped"] if args.shipped else [])
            out = subprocess.run(cmd, capture_output=True, text=True,
                                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode or not lines:
                sys.exit(f"{n} threads: the measuring process failed:\n{out.stderr[-3000:]}")
            print_table(json.loads(lines[-1][len("RESULT "):]))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
