"""Music generation speed at batch 1: Keras (compiled step) vs the ONNX runtime bundle.

    python benchmarks/bench_music.py [--run RUN_DIR | --entry music_lstm] [--steps 256]

Generates ``--steps`` frames from the start frame, one piece at a time (batch 1, what
``rnnzoo generate`` does), with the same seed through both engines, which share one sampling loop
(``rnnzoo.tasks.music_generation.sample_frames`` over ``graph_step``), and prints frames/s, the
ratio to Keras and whether the sampled frames are identical. Rows: Keras (the decoder step as a
traced-once ``tf.function``), the fp32 bundle on 1 onnxruntime thread, and the int8 bundle
(dynamic quantization; LSTMs become ``DynamicQuantizeLSTM``, GRU and SimpleRNN stay fp32).
Without ``--run`` it uses a randomly initialised entry at full size: speed does not depend on
the weights. One run on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _task(run: str | None, entry: str):
    import numpy as np

    import rnnzoo

    if run:
        return rnnzoo.load(run)
    task = rnnzoo.create_model(entry)
    rng = np.random.default_rng(0)
    task.model.set_weights([rng.normal(0, 0.1, w.shape).astype("float32")
                            for w in task.model.get_weights()])
    return task


def _rate(model, steps: int, repeats: int) -> tuple[float, object]:
    """Best frames/s over ``repeats`` runs (after one warm-up), and the frames of the last."""
    model.generate(4, seed=0)  # traces the Keras step / warms the sessions
    best, frames = 0.0, None
    for _ in range(repeats):
        t = time.perf_counter()
        frames = model.generate(steps, seed=0)
        best = max(best, steps / (time.perf_counter() - t))
    return best, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a trained music run/preset directory")
    parser.add_argument("--entry", default="music_lstm", help="entry to build without --run")
    parser.add_argument("--steps", type=int, default=256, help="frames per piece")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import numpy as np
    from rnnzoo.export import runtime, to_onnx

    task = _task(args.run, args.entry)
    m = task.config.model
    with tempfile.TemporaryDirectory() as tmp:
        to_onnx(task, Path(tmp) / "bundle", quantize="int8")
        engines = [("Keras (tf.function step)", task),
                   ("ONNX fp32 (1 thread)", runtime.load(Path(tmp) / "bundle")),
                   ("ONNX int8 (1 thread)", runtime.load(Path(tmp) / "bundle-int8"))]
        rows = [(label, *_rate(model, args.steps, args.repeats)) for label, model in engines]
    keras_rate, keras_frames = rows[0][1], rows[0][2]
    print(f"\n### {task.name}: {m.cell} x{m.num_layers}, {m.units} units, "
          f"{task.model.count_params():,} params; batch 1, {args.steps} frames, "
          f"{os.cpu_count()} CPUs\n")
    print("| engine | frames/s | ms/frame | vs Keras | same frames as Keras (seed 0) |")
    print("|---|---|---|---|---|")
    for label, rate, frames in rows:
        same = "yes" if np.array_equal(frames, keras_frames) else "no"
        print(f"| {label} | {rate:,.0f} | {1000 / rate:.3f} | {rate / keras_rate:.1f}x | "
              f"{same} |")


if __name__ == "__main__":
    main()
