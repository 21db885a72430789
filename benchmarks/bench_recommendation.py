"""Next-item recommendation speed: one interaction at batch 1 (the runtime vs Keras), and users
per second when scoring many histories at once.

    python benchmarks/bench_recommendation.py [--preset recommender_gru4rec.ml1m]
        [--data ../shared/data/recsys_sequences/ml-1m/ml-1m.train.txt] [--steps 300]
        [--repeats 3] [--users 1024]

1. **Per interaction.** ``s.step(item)`` of ``model.stream(k=10)``: one item through the
   one-step ``decoder`` graph with the user's state carried, then the top 10 over every item of
   the catalogue with the seen items filtered (what a live application pays per click). The
   items are a real user's sequence from ``--data`` (the first user with ``--steps`` items),
   the stream reset when they run out. Keras (the step graph as a traced-once
   ``tf.function``, TensorFlow on 1 thread) and the ONNX bundles (fp32, and int8 when the preset
   ships it; onnxruntime on 1 thread), taking turns repeat by repeat. Median and 90th
   percentile wall ms, median CPU ms of this process, and Keras' median over each engine's.
2. **Batch scoring.** ``recommend(histories, k=10)`` on the first ``--users`` users of the
   file (each user's last ``max_length`` items read through the ``model`` graph, equal lengths
   batched together, seen items filtered): users per second, once per engine after a warm-up.

One run on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRESET = "recommender_gru4rec.ml1m"
DATA = REPO.parent / "shared" / "data" / "recsys_sequences" / "ml-1m" / "ml-1m.train.txt"


def _engines(preset: str) -> list[tuple[str, Any]]:
    """(label, model) per engine: Keras on 1 thread, then each ONNX bundle on 1 thread."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import rnnzoo
    from rnnzoo.presets import preset_info

    engines = [("Keras (tf.function step, 1 thread)",
                rnnzoo.from_preset(preset, backend="keras"))]
    shipped = preset_info(preset).get("onnx", {})
    for precision in ("fp32", "int8"):
        if precision in shipped:
            engines.append((f"ONNX {precision} (1 thread)",
                            rnnzoo.from_preset(preset, backend="onnx", precision=precision)))
    return engines


def _stepper(model: Any, items: list[int]) -> Callable[[int], Any]:
    s = model.stream(k=10)

    def step(i: int) -> Any:
        if i % len(items) == 0:
            s.reset()
        return s.step(items[i % len(items)])

    return step


def _timed(steppers: list[Callable[[int], Any]], steps: int, repeats: int
           ) -> list[tuple[list[float], list[float]]]:
    for step in steppers:  # warm-up (traces the Keras step)
        for i in range(10):
            step(i)
    out: list[tuple[list[float], list[float]]] = [([], []) for _ in steppers]
    for _ in range(repeats):
        for step, (wall, cpu) in zip(steppers, out):
            for i in range(steps):
                t, c = time.perf_counter(), time.process_time()
                step(i)
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default=PRESET)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--steps", type=int, default=300, help="interactions per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--users", type=int, default=1024, help="histories scored at once")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rnnzoo.apps.recommendation.data import load_sequences

    data = load_sequences(args.data)
    loo = data.split("last")
    user = next(h for h in loo.histories if len(h) >= args.steps)
    items = [int(i) for i in user[:args.steps]]
    histories = [h.tolist() for h in loo.histories[:args.users]]
    engines = _engines(args.preset)
    for _, model in engines:  # every engine ranks the same way
        assert model.recommend(items[:20])["items"] == engines[0][1].recommend(items[:20])["items"]
    timings = _timed([_stepper(m, items) for _, m in engines], args.steps, args.repeats)
    keras_wall, keras_cpu = (statistics.median(timings[0][0]),
                             statistics.median(timings[0][1]))
    catalogue = engines[0][1].preprocessor.size - 1
    print(f"\n{args.preset}: top 10 of {catalogue:,} items after one interaction, state carried, "
          f"batch 1; {args.steps} steps x {args.repeats} repeats per engine, "
          f"{os.cpu_count()} CPUs\n")
    print("| engine | median ms/step | p90 ms/step | vs Keras | CPU ms/step | vs Keras (CPU) |")
    print("|---|---|---|---|---|---|")
    for (label, _), (wall, cpu) in zip(engines, timings):
        med = statistics.median(wall)
        print(f"| {label} | {med * 1e3:.3f} | {np.percentile(wall, 90) * 1e3:.3f} | "
              f"{keras_wall / med:.1f}x | {statistics.median(cpu) * 1e3:.3f} | "
              f"{keras_cpu / statistics.median(cpu):.1f}x |")
    print(f"\nbatch scoring: recommend(k=10) for the first {len(histories):,} users "
          f"(mean history {np.mean([len(h) for h in histories]):.0f} items)\n")
    print("| engine | users/s | s for all |")
    print("|---|---|---|")
    for label, model in engines:
        model.recommend(histories[:64])
        t = time.perf_counter()
        model.recommend(histories)
        took = time.perf_counter() - t
        print(f"| {label} | {len(histories) / took:,.0f} | {took:.2f} |")


if __name__ == "__main__":
    main()
