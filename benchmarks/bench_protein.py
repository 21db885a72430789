"""Protein secondary structure inference speed: residues per second of the ONNX bundles
(onnxruntime) against the Keras model under ``tf.function``, at batch 1 and 32.

    python benchmarks/bench_protein.py [--preset protein_ss_bigru.cb6133]
        [--data ../shared/data/protein_ss] [--chains 64] [--threads 1] [--budget 20]

The chains are the first ``--chains`` of the data's dev split (real lengths: CB6133 valid
chains average ~210 residues), batched as the user call batches them (sorted by length,
post-padded). Rows: the graph alone (``tf.function`` of the Keras model; the fp32 and int8
bundles through ``rnnzoo.export.runtime``, input checks included) and the whole user call
``predict_structure`` (encoding, softmax, Q3 sums, strings) on both backends. Both engines get
the same threads (TensorFlow intra- and inter-op, onnxruntime intra-op). One pass over the
chains is timed repeatedly within ``--budget`` seconds per row; the median pass gives
residues/s. Absolute numbers move with the machine; read the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def passes(fn, budget: float) -> float:
    """Median seconds of ``fn()`` after one warm-up, at least 3 runs, within ``budget``."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < 50):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="protein_ss_bigru.cb6133")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "protein_ss"))
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=20.0)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from rnnzoo.export import runtime

    import rnnzoo
    from rnnzoo.data.batching import length_sorted_batches
    from rnnzoo.presets import installed_presets

    keras_task = rnnzoo.from_preset(args.preset, backend="keras")
    folder = Path(args.preset) if Path(args.preset).is_dir() else \
        installed_presets()[args.preset][1]
    runtimes = {p: runtime.load(folder / "onnx" / p, intra_op_threads=args.threads)
                for p in ("fp32", "int8") if (folder / "onnx" / p).is_dir()}
    seqs = keras_task.load_data(args.data, seed=0).split("dev")[0][: args.chains]
    residues = sum(len(s) for s in seqs)
    ids = [keras_task.preprocessor.encode(s) for s in seqs]
    model = keras_task.model
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    rows: dict[str, dict[int, float]] = {}
    for batch in (1, 32):
        batches = [b for _, b in length_sorted_batches(ids, batch)]
        engines = {"`tf.function` (Keras graph)": lambda bs=batches: [fn(b).numpy()
                                                                     for b in bs]}
        for precision, rt in runtimes.items():
            engines[f"ONNX {precision} bundle (graph)"] = \
                lambda bs=batches, rt=rt: [rt._scores_of(b) for b in bs]
        engines["`predict_structure`, Keras"] = \
            lambda b=batch: keras_task.predict_structure(seqs, batch_size=b)
        for precision, rt in runtimes.items():
            engines[f"`predict_structure`, ONNX {precision}"] = \
                lambda b=batch, rt=rt: rt.predict_structure(seqs, batch_size=b)
        for name, engine in engines.items():
            rows.setdefault(name, {})[batch] = residues / passes(engine, args.budget)
    cfg = keras_task.config.model
    print(f"{args.preset} ({cfg.cell.upper()} {cfg.units} x {cfg.num_layers} layers, "
          f"bidirectional; convolutions {cfg.conv_kernels} x {cfg.conv_filters}), "
          f"{len(seqs)} dev chains, {residues} residues, {args.threads} thread(s) each\n")
    base = rows["`tf.function` (Keras graph)"]
    print("| engine | batch 1 residues/s | batch 32 residues/s |")
    print("|---|---|---|")
    for name, row in rows.items():
        cells = [f"{row[b]:,.0f} ({row[b] / base[b]:.2f}x)" for b in (1, 32)]
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
