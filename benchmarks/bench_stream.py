"""Per-step latency of streaming at batch 1: the slim runtime (onnxruntime) vs the Keras step.

    python benchmarks/bench_stream.py [--steps 300] [--repeats 3] [--only charlm,music,...]

One ``step`` of a stream is what a live application pays per token, frame or observation: the
character LM's ``s.step(char)`` (next-character probabilities), the music generator's
``s.step(frame)`` (next-frame key probabilities), the translator decoder's ``s.step(token)``
(next-token probabilities over the 8,000 target tokens, from ``model.stream(source)``: what
``translate(text, stream=True)`` runs per token, plus the softmax) and the echo-state
forecaster's ``s.step(observation)`` (updated forecast). Each runs on the shipped preset
through the Keras backend (the step graph as a traced-once ``tf.function``,
``rnnzoo.task.KerasGraphs``) and through the ONNX bundles (fp32,
and int8 where the preset ships one) on 1 onnxruntime thread, with the same inputs: the first
``--steps`` characters of a fixed text, frames of a fixed roll, tokens of a fixed target,
rows of a fixed series. Prints one markdown table: median and 90th percentile wall ms per step
over all repeats (after a warm-up), the median CPU ms per step of this process (every thread;
what a step costs whatever else runs on the machine), and Keras' median over each engine's.
The engines take turns, repeat by repeat. One run on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

TEXT = ("ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and "
        "Juliet is the sun.\nArise, fair sun, and kill the envious moon,\n") * 8


def _timed(steppers: list[Callable[[int], Any]], steps: int, repeats: int
           ) -> list[tuple[list[float], list[float]]]:
    """Per stepper, the wall and CPU seconds (this process, all threads: onnxruntime's and
    TensorFlow's) of each ``step(i)``, ``i < steps``, ``repeats`` times, after 10 warm-up
    steps. The steppers take turns, repeat by repeat, so a load change on a shared machine
    falls on all of them alike."""
    for step in steppers:
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


def _stream_steps(model: Any, inputs: list) -> Callable[[int], Any]:
    """``step(i)``: feed ``inputs[i]`` to one stream (reset at the end of the inputs)."""
    s = model.stream()

    def step(i: int) -> Any:
        if i % len(inputs) == 0:
            s.reset()
        return s.step(inputs[i % len(inputs)])

    return step


def charlm(model: Any, steps: int) -> Callable[[int], Any]:
    return _stream_steps(model, list(TEXT[:steps]))


def music(model: Any, steps: int) -> Callable[[int], Any]:
    rng = np.random.default_rng(0)
    roll = (rng.random((steps, 88)) < 0.05).astype(np.uint8)
    return _stream_steps(model, list(roll))


def translator(model: Any, steps: int) -> Callable[[int], Any]:
    """The decoder's stream of one sentence (``model.stream(source)``), fed a fixed token
    sequence after ``<s>``, restarted every 30 tokens as a new sentence would be."""
    s = model.stream("¿dónde está la estación de tren más cercana?")
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, len(model.vocabulary), size=steps).astype(np.int32)

    def step(i: int) -> Any:
        if i % 30 == 0:
            s.reset()
        return s.step(tokens[i:i + 1])

    return step


def forecaster(model: Any, steps: int) -> Callable[[int], Any]:
    pre = model.preprocessor
    rows = pre.mean + pre.std * np.sin(np.arange(steps)[:, None] / 7.0)
    return _stream_steps(model, list(rows))


BENCHES = {"charlm": ("charlm_lstm.shakespeare", charlm, "character"),
           "music": ("music_lstm.jsb", music, "frame"),
           "translator": ("translator_gru_attention.spa_eng", translator, "decoder token"),
           "esn": ("esn_forecaster.mackey_glass", forecaster, "observation")}


def _engines(preset: str) -> list[tuple[str, Any]]:
    """(label, model) per engine: Keras, then each ONNX bundle the preset ships."""
    import rnnzoo
    from rnnzoo.presets import preset_info

    engines = [("Keras (tf.function step)", rnnzoo.from_preset(preset, backend="keras"))]
    shipped = preset_info(preset).get("onnx", {})
    for precision in ("fp32", "int8"):
        if precision in shipped:
            engines.append((f"ONNX {precision} (1 thread)",
                            rnnzoo.from_preset(preset, backend="onnx", precision=precision)))
    return engines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(BENCHES),
                        help=f"comma-separated subset of {', '.join(BENCHES)}")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows = []
    for key in args.only.split(","):
        preset, make, unit = BENCHES[key]
        engines = _engines(preset)
        timings = _timed([make(model, args.steps) for _, model in engines], args.steps,
                         args.repeats)
        keras_wall = statistics.median(timings[0][0])
        keras_cpu = statistics.median(timings[0][1])
        for (label, _), (wall, cpu) in zip(engines, timings):
            rows.append((preset, unit, label, statistics.median(wall),
                         float(np.percentile(wall, 90)), keras_wall / statistics.median(wall),
                         statistics.median(cpu), keras_cpu / statistics.median(cpu)))
    print(f"\nbatch 1, {args.steps} steps x {args.repeats} repeats per engine, "
          f"{os.cpu_count()} CPUs\n")
    print("| preset | one step = | engine | median ms/step | p90 ms/step | vs Keras | "
          "CPU ms/step | vs Keras (CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for preset, unit, label, median, p90, ratio, cpu, cpu_ratio in rows:
        print(f"| `{preset}` | {unit} | {label} | {median * 1e3:.3f} | {p90 * 1e3:.3f} | "
              f"{ratio:.1f}x | {cpu * 1e3:.3f} | {cpu_ratio:.1f}x |")


if __name__ == "__main__":
    main()
