"""Character generation speed at batch 1: Keras (compiled step) vs the ONNX runtime bundle.

    python benchmarks/bench_charlm.py [--run RUN_OR_PRESET_DIR | --entry charlm_lstm] [--steps 500]

Generates ``--steps`` characters after a prompt, one text at a time (batch 1, what
``rnnzoo generate`` does), with the same seed through both engines, which share one sampling
loop (``rnnzoo.tasks.text_generation._TextGenerator.generate`` over ``graph_step``), and prints
characters/s, the ratio to Keras and whether the text is identical. Rows: Keras (the decoder
step as a traced-once ``tf.function``), the fp32 bundle and the int8 bundle (dynamic
quantization) on 1 onnxruntime thread. Without ``--run`` it uses a randomly initialised entry
at full size with a 65-character vocabulary: speed does not depend on the weights. One run on a
shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import string
import tempfile
import time
from pathlib import Path

PROMPT = "ROMEO:"


def _task(run: str | None, entry: str):
    import numpy as np

    import rnnzoo
    from rnnzoo.tasks.text_generation import CharVocab

    if run:
        return rnnzoo.load(run)
    task = rnnzoo.create_model(entry)
    alphabet = (string.ascii_letters + string.digits + " \n.,;:!?'-")[:65]
    task.preprocessor = CharVocab.fit(alphabet + PROMPT, task.config.model.vocab_size)
    rng = np.random.default_rng(0)
    task.model.set_weights([rng.normal(0, 0.1, w.shape).astype("float32")
                            for w in task.model.get_weights()])
    return task


def _rate(model, steps: int, repeats: int) -> tuple[float, str]:
    """Best characters/s over ``repeats`` runs (after one warm-up), and the last text."""
    model.generate(PROMPT, 4, seed=0)  # traces the Keras graphs / warms the sessions
    best, text = 0.0, ""
    for _ in range(repeats):
        t = time.perf_counter()
        text = model.generate(PROMPT, steps, temperature=0.8, seed=0)
        best = max(best, steps / (time.perf_counter() - t))
    return best, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a trained charlm run/preset directory")
    parser.add_argument("--entry", default="charlm_lstm", help="entry to build without --run")
    parser.add_argument("--steps", type=int, default=500, help="characters per text")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from rnnzoo.export import runtime, to_onnx

    task = _task(args.run, args.entry)
    m = task.config.model
    with tempfile.TemporaryDirectory() as tmp:
        to_onnx(task, Path(tmp) / "bundle", quantize="int8")
        engines = [("Keras (tf.function step)", task),
                   ("ONNX fp32 (1 thread)", runtime.load(Path(tmp) / "bundle")),
                   ("ONNX int8 (1 thread)", runtime.load(Path(tmp) / "bundle-int8"))]
        rows = [(label, *_rate(model, args.steps, args.repeats)) for label, model in engines]
    keras_rate, keras_text = rows[0][1], rows[0][2]
    print(f"\n### {task.name}: {m.cell} x{m.num_layers}, {m.units} units, "
          f"{task.model.count_params():,} params; batch 1, {args.steps} characters, "
          f"{os.cpu_count()} CPUs\n")
    print("| engine | characters/s | ms/character | vs Keras | same text as Keras (seed 0) |")
    print("|---|---|---|---|---|")
    for label, rate, text in rows:
        same = "yes" if text == keras_text else "no"
        print(f"| {label} | {rate:,.0f} | {1000 / rate:.3f} | {rate / keras_rate:.1f}x | "
              f"{same} |")


if __name__ == "__main__":
    main()
