"""Frame-prediction speed: 10 frames read, 10 predicted (the Moving MNIST task), the ONNX
runtime against Keras' tf.function, at batch 1 and batch 16.

    python benchmarks/bench_video.py [--preset video_convlstm.moving_mnist]
        [--data ../shared/data/video_frames/mnist_train] [--repeats 5] [--threads 1]

Each engine runs ``predict_frames(frames[:, :10], steps=10)`` (19 calls of the per-frame step
graph, the state carried in numpy) on generated validation sequences: Keras (the step as a
traced-once ``tf.function``) and the ONNX bundles (fp32, and int8 when the preset ships it),
each engine on ``--threads`` threads, taking turns repeat by repeat. Sequences per second
(median over repeats) and each engine's speed over Keras'. All engines are first checked to
predict the same frames. One run on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRESET = "video_convlstm.moving_mnist"
DATA = REPO.parent / "shared" / "data" / "video_frames" / "mnist_train"


def _engines(preset: str, threads: int) -> list[tuple[str, Any]]:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from rnnzoo.export import runtime

    import rnnzoo
    from rnnzoo.presets.resolve import _resolve

    directory, meta = _resolve(preset)
    engines = [(f"Keras (tf.function step, {threads} thread)",
                rnnzoo.from_preset(preset, backend="keras"))]
    for precision in ("fp32", "int8"):
        if precision in meta.get("onnx", {}):
            rt = runtime.load(directory / meta["onnx"][precision]["path"],
                              intra_op_threads=threads)
            engines.append((f"ONNX {precision} ({threads} thread)", rt))
    return engines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default=PRESET)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rnnzoo.apps.video_prediction.data import DataConfig, load_video_data

    seqs = load_video_data(args.data, DataConfig(val_sequences=64)).dev
    engines = _engines(args.preset, args.threads)
    ref = engines[0][1].predict_frames(seqs[:4, :10])
    for label, model in engines[1:]:
        drift = float(np.abs(model.predict_frames(seqs[:4, :10]) - ref).max())
        print(f"{label}: max pixel difference from Keras {drift:.2e}")
    print(f"\n{args.preset}: 10 frames in, 10 predicted (19 step calls), {args.repeats} repeats, "
          f"{os.cpu_count()} CPUs\n")
    print("| engine | batch | sequences/s | ms/sequence | vs Keras |")
    print("|---|---|---|---|---|")
    for batch in (1, 16):
        x = seqs[:batch, :10]
        timings: list[list[float]] = [[] for _ in engines]
        for _, model in engines:  # warm-up (traces the Keras step for this batch size)
            model.predict_frames(x, batch_size=batch)
        for _ in range(args.repeats):
            for (_, model), times in zip(engines, timings):
                t = time.perf_counter()
                model.predict_frames(x, batch_size=batch)
                times.append(time.perf_counter() - t)
        keras = statistics.median(timings[0])
        for (label, _), times in zip(engines, timings):
            med = statistics.median(times)
            print(f"| {label} | {batch} | {batch / med:.1f} | {med / batch * 1e3:.1f} | "
                  f"{keras / med:.1f}x |")


if __name__ == "__main__":
    main()
