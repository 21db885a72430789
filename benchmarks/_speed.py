"""What the per-application speed benchmarks share: the Keras task and the ONNX bundles of one
preset on the same threads, a median-of-passes timer, and the ratio table against
``tf.function`` (the baseline every row is read against)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BASELINE = "`tf.function` (Keras graph)"


def passes(fn: Callable[[], Any], budget: float) -> float:
    """Median seconds of ``fn()`` after one warm-up, at least 3 runs, within ``budget``."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < 50):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def load_engines(preset: str, threads: int) -> tuple[Any, dict[str, Any]]:
    """The preset's Keras task and its fp32/int8 runtimes, TensorFlow and onnxruntime both
    limited to ``threads`` (so the ratios compare engines, not thread counts)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from rnnzoo.export import runtime

    import rnnzoo
    from rnnzoo.presets import installed_presets

    keras_task = rnnzoo.from_preset(preset, backend="keras")
    folder = Path(preset) if Path(preset).is_dir() else installed_presets()[preset][1]
    runtimes = {p: runtime.load(folder / "onnx" / p, intra_op_threads=threads)
                for p in ("fp32", "int8") if (folder / "onnx" / p).is_dir()}
    return keras_task, runtimes


def print_ratio_table(rows: dict[str, dict[int, float]], sizes: Sequence[int], unit: str) -> None:
    """One markdown row per engine: ``unit``/s at each batch size and the ratio to the
    baseline row."""
    base = rows[BASELINE]
    print("| engine | " + " | ".join(f"batch {b} {unit}/s" for b in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, row in rows.items():
        cells = [f"{row[b]:,.0f} ({row[b] / base[b]:.2f}x)" for b in sizes]
        print(f"| {name} | {' | '.join(cells)} |")
