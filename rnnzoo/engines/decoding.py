"""The decoding entry point (``generate``) and the one step function over named graphs.

``generate`` runs any sampler (by name or instance) over a numpy ``step``; ``graph_step`` turns a
one-step decoder graph of a ``GraphRunner`` (compiled Keras models or onnxruntime sessions) into
that step, so every generative task writes its encode/step logic once for both backends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import numpy as np

from rnnzoo.engines.base import _UNUSED_RNG, GenerationResult, Sampler, State, StepFn
from rnnzoo.engines.sampling import TokenSampler, get_sampler

__all__ = ["GenerationResult", "GraphRunner", "State", "StepFn", "generate", "generate_stream",
           "graph_step"]


def generate(
    step: StepFn,
    start_tokens: np.ndarray,
    state: State,
    max_length: int,
    end_token: int,
    sampler: str | Sampler = "greedy",
    seed: int | np.random.Generator | None = None,
    record: tuple[str, ...] = (),
    pad_token: int = 0,
    **sampler_kwargs: Any,
) -> GenerationResult:
    """Decode a batch with ``step`` using a sampler chosen by name (or a ``Sampler``).

    ``start_tokens`` int [batch] is the first input of every row; ``state`` holds arrays with the
    batch as axis 0 (recurrent state and per-sequence constants). Generation stops at
    ``max_length`` tokens or when every row has produced ``end_token``. Stochastic samplers draw
    from ``np.random.default_rng(seed)``, so a fixed seed reproduces the output exactly.
    ``record`` names state keys to return per generated token (see ``GenerationResult``).
    """
    chosen = get_sampler(sampler, **sampler_kwargs)
    return chosen.run(
        step,
        start_tokens,
        state,
        max_length=max_length,
        end_token=end_token,
        rng=_UNUSED_RNG if chosen.deterministic else np.random.default_rng(seed),
        record=record,
        pad_token=pad_token,
    )


def generate_stream(
    step: StepFn,
    start_token: int,
    state: State,
    max_length: int,
    end_token: int,
    sampler: str | Sampler = "greedy",
    seed: int | np.random.Generator | None = None,
    **sampler_kwargs: Any,
) -> Iterator[list[int]]:
    """``generate`` for one sequence (``state`` of batch 1), as it is decoded: the token
    samplers yield each token as ``[token]`` when it is chosen (the same loop and random draws
    as ``generate``, so the tokens are the same); beam search, which knows its best sequence
    only at the end, yields it once. ``end_token`` is included when produced. Closing the
    iterator stops the decoding (no step runs for tokens nobody reads)."""
    chosen = get_sampler(sampler, **sampler_kwargs)
    rng = _UNUSED_RNG if chosen.deterministic else np.random.default_rng(seed)
    if isinstance(chosen, TokenSampler):
        for token in chosen.stream(step, start_token, state, max_length, end_token, rng):
            yield [token]
        return
    out = chosen.run(step, np.array([start_token], np.int32), state, max_length=max_length,
                     end_token=end_token, rng=rng)
    yield out.sequences()[0]


# ---------------------------------------------------------------------------------------------
# The decoding engine: one step function over named graphs, for Keras and onnxruntime alike
# ---------------------------------------------------------------------------------------------


class GraphRunner(Protocol):
    """What a decoding engine needs from a model: run a named graph on named numpy arrays.

    ``rnnzoo.task.KerasGraphs`` (compiled Keras models) and
    ``rnnzoo.export.bundle.BundleRuntime`` (onnxruntime sessions) both implement it, so every
    generative task writes its encode/step logic once.
    """

    def input_names(self, graph: str) -> list[str]: ...

    def output_names(self, graph: str) -> list[str]: ...

    def run(self, graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def graph_step(runner: GraphRunner, graph: str = "decoder") -> StepFn:
    """The ``step(tokens_t, state)`` of a one-step decoder graph.

    Naming contract of the graph: its first input takes the previous token and its first output
    is the logits; every other input is read from ``state`` by name; an output ``new_<x>``
    replaces ``state[x]`` and any other output (e.g. ``attention``) is stored under its own
    name, where ``generate(record=...)`` can collect it.
    """
    inputs, outputs = runner.input_names(graph), runner.output_names(graph)
    token_input, state_inputs = inputs[0], inputs[1:]
    updates = [(n, n[4:] if n.startswith("new_") else n) for n in outputs[1:]]
    # A runner may offer ``run_unchecked`` (onnxruntime bundles): after a first step checked
    # by ``run``, the loop feeds the graph its own outputs, so the per-call checks of names,
    # dtypes and ranks only cost time. Keyed by the state's arrays' dtypes and ranks, which a
    # step cannot change without the checked call seeing it first.
    fast = getattr(runner, "run_unchecked", None)
    checked: set[tuple] = set()

    def step(tokens_t: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        feeds = {token_input: np.asarray(tokens_t, dtype=np.int32)}
        for n in state_inputs:
            feeds[n] = state[n]
        if fast is None:
            outs = runner.run(graph, feeds)
        else:
            key = tuple((v.dtype, v.ndim) if isinstance(v, np.ndarray) else None
                        for v in feeds.values())
            if key in checked:
                outs = fast(graph, feeds)
            else:
                outs = runner.run(graph, feeds)
                checked.add(key)
        new = dict(state)
        for out, key in updates:
            new[key] = outs[out]
        return outs[outputs[0]], new

    return step
