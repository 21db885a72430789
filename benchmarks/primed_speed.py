"""Generation speed at batch 1 of a primed generator (char LM, music): Keras vs ONNX bundles.

Shared by ``bench_charlm.py`` and ``bench_music.py``, which differ only in what one generation
call is and how outputs compare. Each engine generates ``--steps`` outputs one sequence at a
time (batch 1, what ``rnnzoo generate`` does) with the same seed; Keras and onnxruntime share
one sampling loop (``rnnzoo.engines.primed.sample_primed`` over ``graph_step``), so the output
should be identical. Rows: Keras (the decoder step as a traced-once ``tf.function``), the fp32
bundle and the int8 bundle (dynamic quantization) on 1 onnxruntime thread.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def parse_args(doc: str, what: str, entry: str, steps: int, steps_help: str
               ) -> argparse.Namespace:
    """``--run``/``--entry``, ``--steps`` and ``--repeats`` of a benchmark script."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--run", help=f"a trained {what} run/preset directory")
    parser.add_argument("--entry", default=entry, help="entry to build without --run")
    parser.add_argument("--steps", type=int, default=steps, help=steps_help)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return args


def random_weights(task: Any) -> Any:
    """``task`` with random weights (speed does not depend on them)."""
    import numpy as np

    rng = np.random.default_rng(0)
    task.model.set_weights([rng.normal(0, 0.1, w.shape).astype("float32")
                            for w in task.model.get_weights()])
    return task


def _rate(model: Any, generate: Callable[[Any, int], Any], steps: int,
          repeats: int) -> tuple[float, Any]:
    """Best outputs/s over ``repeats`` runs (after one warm-up), and the last output."""
    generate(model, 4)  # traces the Keras graphs / warms the sessions
    best, output = 0.0, None
    for _ in range(repeats):
        t = time.perf_counter()
        output = generate(model, steps)
        best = max(best, steps / (time.perf_counter() - t))
    return best, output


def compare_engines(task: Any, args: argparse.Namespace, generate: Callable[[Any, int], Any],
                    same: Callable[[Any, Any], bool], unit: str, output: str) -> None:
    """Export ``task`` (fp32 and int8), time ``generate(model, steps)`` on each engine and
    print the markdown table (``unit``: "character"; ``output``: "text")."""
    from rnnzoo.export import runtime, to_onnx

    m = task.config.model
    with tempfile.TemporaryDirectory() as tmp:
        to_onnx(task, Path(tmp) / "bundle", quantize="int8")
        engines = [("Keras (tf.function step)", task),
                   ("ONNX fp32 (1 thread)", runtime.load(Path(tmp) / "bundle")),
                   ("ONNX int8 (1 thread)", runtime.load(Path(tmp) / "bundle-int8"))]
        rows = [(label, *_rate(model, generate, args.steps, args.repeats))
                for label, model in engines]
    keras_rate, keras_output = rows[0][1], rows[0][2]
    print(f"\n### {task.name}: {m.cell} x{m.num_layers}, {m.units} units, "
          f"{task.model.count_params():,} params; batch 1, {args.steps} {unit}s, "
          f"{os.cpu_count()} CPUs\n")
    print(f"| engine | {unit}s/s | ms/{unit} | vs Keras | same {output} as Keras (seed 0) |")
    print("|---|---|---|---|---|")
    for label, rate, out in rows:
        print(f"| {label} | {rate:,.0f} | {1000 / rate:.3f} | {rate / keras_rate:.1f}x | "
              f"{'yes' if same(out, keras_output) else 'no'} |")
