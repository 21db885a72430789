"""Action recognition inference speed: sequences per second of the ONNX bundles (onnxruntime)
against the Keras model under ``tf.function``, at batch 1 and 16, in one run.

    python benchmarks/bench_action.py [--preset action_bilstm.msr_action3d]
        [--data ../shared/data/video_frames/msr_action3d_skeleton/train_odd_subjects]
        [--split dev] [--threads 1] [--budget 10]

The sequences are the split's (real lengths: MSR Action3D sequences have 13-100 frames after
resampling, median 38), featurised once and batched as the user call batches them (sorted by
length, post-padded). Rows: the graph alone (``tf.function`` of the Keras model; the fp32 and
int8 bundles through ``rnnzoo.export.runtime``, input checks included) and the whole user call
``classify`` (features, batching, softmax) on both backends. Both engines get the same threads
(TensorFlow intra- and inter-op, onnxruntime intra-op). One pass over the sequences is timed
repeatedly within ``--budget`` seconds per row; the median pass gives sequences/s. Absolute
numbers move with the machine; read the ratios.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _speed import BASELINE, load_engines, passes, print_ratio_table

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "video_frames" / "msr_action3d_skeleton" / \
    "train_odd_subjects"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="action_bilstm.msr_action3d")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--split", default="dev")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=10.0)
    args = parser.parse_args()
    keras_task, runtimes = load_engines(args.preset, args.threads)
    import numpy as np
    import tensorflow as tf

    seqs = keras_task.load_data(args.data, seed=0).split(args.split)[0]
    pre = keras_task.preprocessor
    feats = [pre.features(s) for s in seqs]
    order = np.argsort([len(f) for f in feats], kind="stable")
    model = keras_task.model
    fn = tf.function(lambda x, m: model([x, m], training=False), reduce_retracing=True)
    rows: dict[str, dict[int, float]] = {}
    sizes = (1, 16)
    for batch in sizes:
        batches = [pre.batch([feats[i] for i in order[k:k + batch]])
                   for k in range(0, len(order), batch)]
        engines = {BASELINE: lambda bs=batches: [fn(x, m).numpy() for x, m in bs]}
        for precision, rt in runtimes.items():
            engines[f"ONNX {precision} bundle (graph)"] = \
                lambda bs=batches, rt=rt: [rt._probs_of(x, m) for x, m in bs]
        engines["`classify`, Keras"] = lambda b=batch: keras_task.classify(seqs, batch_size=b)
        for precision, rt in runtimes.items():
            engines[f"`classify`, ONNX {precision}"] = \
                lambda b=batch, rt=rt: rt.classify(seqs, batch_size=b)
        for name, engine in engines.items():
            rows.setdefault(name, {})[batch] = len(seqs) / passes(engine, args.budget)
    cfg = keras_task.config.model
    frames = sum(len(f) for f in feats)
    print(f"{args.preset} ({cfg.cell.upper()} {cfg.units} x {cfg.num_layers} layer(s), "
          f"bidirectional={cfg.bidirectional}), {len(seqs)} {args.split} sequences, {frames} "
          f"frames, {args.threads} thread(s) each\n")
    print_ratio_table(rows, sizes, "sequences")


if __name__ == "__main__":
    main()
