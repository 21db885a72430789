"""Primed generation: condition a recurrent model on a prompt, then sample one step at a time.

The character language models (a prompt of characters) and the music generators (a primer of
piano-roll frames) generate the same way: run the prompt through the model to reach a state and
the logits of the next step, then repeat ``draw from the logits -> feed the draw back through
the one-step decoder graph``. This module holds that loop once, over the ``step(inputs, state)``
of :func:`rnnzoo.engines.decoding.graph_step`, so Keras graphs and onnxruntime bundles (and both
applications) share it and a seed gives the same output on every backend. What differs per
application is only ``choose(logits, rng)``: a token sampler over the softmax (text) or one
Bernoulli draw per key (music). Also what the two applications' ``generate`` options and int8
checks share (``add_generation_arguments``, ``held_out``, ``int8_report``, ``int8_gate``).
Numpy only.
"""

from __future__ import annotations

import abc
import argparse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from rnnzoo.engines.decoding import GraphRunner, State, StepFn, graph_step
from rnnzoo.engines.stream import Stream
from rnnzoo.errors import DataError, short_repr

__all__ = ["BundleStates", "PrimedGenerator", "add_generation_arguments", "check_seed",
           "generation_request",
           "held_out", "int8_gate", "int8_report", "iter_primed", "prime_steps", "sample_primed",
           "steps_and_temperature"]

Choose = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def check_seed(seed: Any) -> int | None:
    """A generation call's ``seed``: None or an integer >= 0 (what ``np.random.default_rng``
    takes), else a ``DataError`` before any work (numpy would raise a TypeError mid-call)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise DataError(f"seed: expected an integer >= 0 or None, found {short_repr(seed)}")
    return seed


def prime_steps(step: StepFn, state: State, feed: np.ndarray) -> tuple[np.ndarray, State]:
    """Feed ``feed[:, t]`` (``[B, P, ...]``, ``P >= 1``) through ``step`` one step at a time;
    the logits after the last input and the state they leave."""
    if feed.shape[1] < 1:
        raise ValueError("prime_steps: nothing to feed (the prompt needs at least one step)")
    logits = None
    for t in range(feed.shape[1]):
        logits, state = step(feed[:, t], state)
    return logits, state


def iter_primed(step: StepFn, state: State, logits: np.ndarray, steps: int, choose: Choose,
                rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The sampling loop, one draw at a time: ``steps`` draws ``choose(logits, rng)`` (one array
    ``[B, ...]`` each), each fed back through ``step`` except the last (no step is run for
    logits nobody reads). ``logits`` are those after the prompt. Stopping the iteration stops
    the loop: what ``generate(stream=True)`` yields from, and ``sample_primed`` collects."""
    for t in range(steps):
        chosen = choose(logits, rng)
        yield chosen
        if t + 1 < steps:
            logits, state = step(chosen, state)


def sample_primed(step: StepFn, state: State, logits: np.ndarray, steps: int, choose: Choose,
                  rng: np.random.Generator,
                  on_sample: Callable[[np.ndarray], Any] | None = None) -> np.ndarray:
    """``iter_primed``'s draws stacked along axis 1: ``[B, steps, ...]``. ``on_sample`` sees
    each draw as it is made."""
    out = []
    for chosen in iter_primed(step, state, logits, steps, choose, rng):
        out.append(chosen)
        if on_sample is not None:
            on_sample(chosen)
    return np.stack(out, axis=1)


class PrimedGenerator(abc.ABC):
    """The recurrent-state side of a primed generator, written once for the Keras task and the
    onnxruntime runtime: which graphs to run and the zero state generation starts from."""

    @abc.abstractmethod
    def _runner(self) -> GraphRunner:
        """The graphs to run (``model`` and ``decoder``): Keras graphs or an onnxruntime bundle."""

    @abc.abstractmethod
    def _state_sizes(self) -> dict[str, int]:
        """Width of each recurrent state input of the ``decoder`` graph."""

    def _zero_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """Zero recurrent states for ``batch`` rows (what training starts every sequence from)."""
        return {n: np.zeros((batch, w), np.float32) for n, w in self._state_sizes().items()}

    @abc.abstractmethod
    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """The state a stream starts from: the zero state after the start symbol or frame,
        as ``generate`` and scoring begin."""

    @abc.abstractmethod
    def step(self, x: Any, state: dict[str, np.ndarray]) -> tuple[np.ndarray,
                                                                   dict[str, np.ndarray]]:
        """Feed ``x`` (one step or a chunk) from ``state``: the next-step probabilities after
        its last step, and the state after it (the functional form of ``stream``)."""

    def stream(self, batch: int = 1) -> Stream:
        """A :class:`rnnzoo.engines.stream.Stream` from ``initial_state(batch)``: ``step(x)``
        carries the state between calls (live input, interactive generation, branching)."""
        return Stream(self.step, self.initial_state(batch))

    def _decoder_step(self) -> StepFn:
        """The one-step ``decoder`` graph as a ``step(inputs, state)`` function, made once per
        runner: a stream calls it per step, and a step function checks its feeds only on its
        first call."""
        runner = self._runner()
        cached = getattr(self, "_decoder_step_cache", None)
        if cached is None or cached[0] is not runner:
            cached = self._decoder_step_cache = (runner, graph_step(runner, "decoder"))
        return cached[1]


class BundleStates:
    """For a runtime that is its own graph runner (a ``BundleRuntime``): the state widths are
    read from the ``decoder`` session's inputs (all but the first, the step's input)."""

    sessions: dict[str, Any]

    def _runner(self) -> GraphRunner:
        return self  # type: ignore[return-value]

    def _state_sizes(self) -> dict[str, int]:
        return decoder_state_sizes(self.sessions)


def decoder_state_sizes(sessions: dict[str, Any]) -> dict[str, int]:
    """``{state input: width}`` of the ``decoder`` onnxruntime session of a bundle."""
    inputs = sessions["decoder"].get_inputs()[1:]
    return {i.name: int(i.shape[1]) for i in inputs}


def generation_request(item: Any, where: str, known: set[str], example: str,
                       default_steps: int, max_steps: int) -> Mapping[str, Any]:
    """One served generation request (``rnnzoo serve``), checked: an object (None: every
    default) with only ``known`` keys and at most ``max_steps`` steps. ``example`` shows the
    shape in the error for anything else."""
    item = {} if item is None else item
    if not isinstance(item, Mapping):
        raise DataError(f"{where}: expected an object such as {example}, found "
                        f"{short_repr(item)}")
    unknown = sorted(set(item) - known)
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(unknown)}; expected "
                        f"{', '.join(sorted(known))}")
    steps = item.get("steps", default_steps)
    if isinstance(steps, int) and steps > max_steps:
        raise DataError(f"{where}: steps {steps} exceeds the server's limit of {max_steps}")
    return item


def int8_gate(comparison: Mapping[str, Any], metric: str, what: str,
              relative: float) -> str | None:
    """The int8 rule of the primed generators: an int8 bundle ships when its ``metric`` (lower
    is better; ``<metric>_fp32`` and ``<metric>_int8`` in ``comparison``) is at most
    ``relative`` (0.005: 0.5%) above fp32's. None: ship it; else why not, naming ``what`` the
    metric is."""
    a, b = comparison.get(f"{metric}_fp32"), comparison.get(f"{metric}_int8")
    if a is None or b is None or b > a * (1 + relative):
        return f"int8 {what} more than {relative:.1%} above fp32's"
    return None


def held_out(task: Any, eval_data: Any, limit: int) -> Any:
    """The first ``limit`` items of the test (else dev, else train) split of ``eval_data`` as
    ``task`` reads it: what a primed generator's ``_compare_runtimes`` measures int8 on. None
    without data (the caller then draws a fixed random sample)."""
    if eval_data is None:
        return None
    data = task.load_data(eval_data, task.config.training.seed)
    return (data.test or data.dev or data.train)[:limit]


def int8_report(metric: str, label: str, fp32: float, int8: float, drift: float,
                counted: tuple[str, int, str]) -> dict:
    """A primed generator's ``_compare_runtimes`` result, the same for text and music: ``metric``
    on both bundles (``<metric>_fp32``/``_int8``, what ``int8_gate`` reads), the largest
    probability drift and a summary; ``counted`` is ``(key, how many, noun)`` of what was
    scored."""
    key, n, noun = counted
    return {key: n, f"{metric}_fp32": fp32, f"{metric}_int8": int8, "max_prob_drift": drift,
            "summary": f"{label} fp32 {fp32:.4f} -> int8 {int8:.4f} on {n} {noun}; max "
                       f"probability drift {drift:.4f}"}


def add_generation_arguments(parser: argparse.ArgumentParser, steps_help: str,
                             temperature_help: str) -> None:
    """``--steps``, ``--temperature`` and ``--seed`` of ``rnnzoo generate``, declared alike by
    every primed generator: the verb is shared and its parser keeps the last declaration, so
    the types must agree. No defaults here: ``steps_and_temperature`` applies each task's."""
    parser.add_argument("--steps", type=int, help=steps_help)
    parser.add_argument("--temperature", type=float, help=temperature_help)
    parser.add_argument("--seed", type=int, help="random seed (same seed, same output)")


def steps_and_temperature(args: argparse.Namespace, default_steps: int) -> tuple[int, float]:
    """``--steps`` (else the task's ``default_steps``) and ``--temperature`` (else 1)."""
    steps = args.steps if args.steps is not None else default_steps
    return steps, args.temperature if args.temperature is not None else 1.0
