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
from pathlib import Path

from _speed import BASELINE, load_engines, passes, print_ratio_table

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="protein_ss_bigru.cb6133")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "protein_ss"))
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=20.0)
    args = parser.parse_args()
    keras_task, runtimes = load_engines(args.preset, args.threads)
    import tensorflow as tf

    from rnnzoo.data.batching import length_sorted_batches

    seqs = keras_task.load_data(args.data, seed=0).split("dev")[0][: args.chains]
    residues = sum(len(s) for s in seqs)
    ids = [keras_task.preprocessor.encode(s) for s in seqs]
    model = keras_task.model
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    rows: dict[str, dict[int, float]] = {}
    for batch in (1, 32):
        batches = [b for _, b in length_sorted_batches(ids, batch)]
        engines = {BASELINE: lambda bs=batches: [fn(b).numpy() for b in bs]}
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
    print_ratio_table(rows, (1, 32), "residues")


if __name__ == "__main__":
    main()
