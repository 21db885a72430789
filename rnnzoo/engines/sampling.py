"""Token samplers (greedy, temperature, top-k, top-p) and the lookup of every sampler by name.

Samplers are chosen by name (as in keras-hub ``samplers/``)::

    result = generate(step, start, state, max_length=50, end_token=2, sampler="top_p", p=0.9)

Names rather than classes keep configs, the CLI and the TF-free runtime speaking one vocabulary.
"""

from __future__ import annotations

import abc
import difflib
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from rnnzoo.engines.base import (
    _UNUSED_RNG,
    GenerationResult,
    Sampler,
    State,
    StepFn,
    _categorical,
    _check_int,
    _check_logits,
    _check_number,
    _check_temperature,
    _gathered_log_probs,
    _init_params,
    _log_norm,
    _prepare,
    _recorded_value,
    log_softmax,
)
from rnnzoo.engines.beam import BeamSampler

__all__ = [
    "GreedySampler",
    "Sampler",
    "TemperatureSampler",
    "TokenSampler",
    "TopKSampler",
    "TopPSampler",
    "get_sampler",
    "list_samplers",
    "log_softmax",
]

_PROBE = 512  # sampled entries per row that bound the k-th largest from below


def _top_sorted(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of each row of a 2-D array, best first."""
    if k >= x.shape[1]:
        return np.argsort(-x, axis=1, kind="stable")[:, :k]
    if x.shape[1] >= 8 * _PROBE and k <= _PROBE // 16:
        found = _top_sorted_probed(x, k)
        if found is not None:
            return found
    return _top_sorted_full(x, k)


def _top_sorted_probed(x: np.ndarray, k: int) -> np.ndarray | None:
    """Exact top-k for wide rows (a vocabulary, or beams x vocabulary) without partitioning them.

    The k-th largest of a strided sample is a lower bound on the row's k-th largest, so the
    entries at or above it (about ``k * width / _PROBE`` of them) contain the answer; only those
    are partitioned. Per decoding step this is several times cheaper than ``argpartition`` over
    the whole row, which dominated beam search's numpy time at batch 1. Returns None (use the
    full path) when the bound is not finite or admits too many entries.
    """
    n, m = x.shape
    sample = x[:, :: m // _PROBE]
    bound = -np.partition(-sample, k - 1, axis=1)[:, k - 1]
    if not np.isfinite(bound).all():
        return None
    rows, cols = np.nonzero(x >= bound[:, None])
    counts = np.bincount(rows, minlength=n)
    width = int(counts.max())
    if width > m // 8:
        return None
    pos = np.arange(rows.size) - (np.cumsum(counts) - counts)[rows]
    idx = np.zeros((n, width), dtype=np.int64)
    vals = np.full((n, width), -np.inf, dtype=x.dtype)  # padding: below every finite survivor
    idx[rows, pos] = cols
    vals[rows, pos] = x[rows, cols]
    return np.take_along_axis(idx, _top_sorted_full(vals, k), axis=1)


def _top_sorted_full(x: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-x, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(x, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


# ---------------------------------------------------------------------------------------------
# Token samplers
# ---------------------------------------------------------------------------------------------


class TokenSampler(Sampler):
    """Samplers that pick one token per row per step; they share one batched loop.

    Rows that have produced ``end_token`` leave the batch: once at least an eighth of the rows
    in the step's batch have finished, every state array is compacted to the live rows (one
    gather along axis 0, which is what the state contract allows), so a batch of sentences of
    mixed lengths stops paying for the short ones. Until then finished rows keep stepping with
    ``end_token`` as their input and their outputs are masked: pad tokens, no score, zero
    recordings. Stochastic samplers compact too, so the random draws of a batch depend on when
    its rows finish (a fixed seed still reproduces the output exactly). The loop stops as soon as
    every row has produced ``end_token``.
    """

    # A sampler that picks argmax(logits) needs no [n, vocab] log-probabilities: the loop then
    # computes the chosen token's log-probability only (see ``_log_norm``).
    picks_argmax: ClassVar[bool] = False
    # Compact when this share of the step's batch has finished (a gather of the whole state
    # costs about what stepping that many idle rows costs for a step or two).
    compact_fraction: ClassVar[float] = 0.125

    @abc.abstractmethod
    def select(self, log_probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Token ids [n] from log-probabilities [n, vocab] (float64)."""

    def _choose(self, logits: np.ndarray, t: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
        """Token ids [n] and their log-probabilities [n] (float64) for one step."""
        if self.picks_argmax:
            m, lse = _log_norm(logits, t)
            chosen = np.argmax(logits, axis=-1)
            return chosen, _gathered_log_probs(logits, chosen[:, None], m, lse)[:, 0]
        if np.isnan(logits.max()):
            raise ValueError(f"step returned NaN logits at step {t}")
        logp = log_softmax(logits)
        chosen = np.asarray(self.select(logp, rng), dtype=np.int64)
        return chosen, logp[np.arange(logp.shape[0]), chosen]

    def _loop(self, step: StepFn, start: np.ndarray, state: State, max_length: int,
              end_token: int, rng: np.random.Generator, record: tuple[str, ...]
              ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
        """The batched decoding loop, one yield per step: the input rows that produced a token
        (``[k]``), their tokens, their log-probabilities and the ``record`` values. Ends after
        ``max_length`` steps or once every row has produced ``end_token``. ``_run`` collects
        it; ``stream`` hands a batch-1 caller each token as it is chosen, so a streamed
        decode is the same decode."""
        n = start.shape[0]
        rows = np.arange(n)  # the input row of each row of the step's batch
        live = np.ones(n, dtype=bool)  # rows of the step's batch still decoding
        tokens_in = start
        for t in range(max_length):
            logits, state = step(tokens_in, state)
            chosen, logp = self._choose(_check_logits(logits, rows.size, t, end_token), t, rng)
            chosen = chosen.astype(np.int32)
            yield (rows[live], chosen[live], logp[live],
                   {key: _recorded_value(state, key)[live] for key in record})
            ended = live & (chosen == end_token)
            if ended.any():
                live &= ~ended
                if not live.any():
                    return
            idle = rows.size - int(live.sum())
            if idle and idle >= self.compact_fraction * rows.size:
                state = {key: np.asarray(value)[live] for key, value in state.items()}
                rows, chosen = rows[live], chosen[live]
                live = np.ones(rows.size, dtype=bool)
            tokens_in = np.where(live, chosen, end_token).astype(np.int32)

    def stream(self, step: StepFn, start_token: int, state: State, max_length: int,
               end_token: int, rng: np.random.Generator | None = None) -> Iterator[int]:
        """Decode one sequence (``state`` of batch 1) and yield each token as it is chosen,
        ``end_token`` included when produced: the loop of ``run``, so the tokens are those
        ``run`` returns for the same rng. Stopping the iteration stops the decoding."""
        start, state, max_length, end_token, _ = _prepare(
            np.array([start_token]), state, max_length, end_token, ())
        if rng is None:
            rng = _UNUSED_RNG if self.deterministic else np.random.default_rng()
        for _, chosen, _, _ in self._loop(step, start, state, max_length, end_token, rng, ()):
            yield int(chosen[0])

    def _run(self, step, start, state, max_length, end_token, rng, record, pad_token):
        n = start.shape[0]
        out = np.full((n, max_length), pad_token, dtype=np.int32)
        lengths = np.zeros(n, dtype=np.int32)
        log_probs = np.zeros(n, dtype=np.float64)
        done = np.zeros(n, dtype=bool)
        rec_steps: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {k: [] for k in record}
        steps = 0
        for ids, chosen, logp, values in self._loop(step, start, state, max_length, end_token,
                                                    rng, record):
            t = steps
            steps += 1
            out[ids, t] = chosen
            lengths[ids] += 1
            log_probs[ids] += logp
            for key in record:
                rec_steps[key].append((t, ids, values[key]))
            done[ids[chosen == end_token]] = True
        recorded = {}
        for key, entries in rec_steps.items():
            like = entries[0][2]
            full = np.zeros((n, steps) + like.shape[1:], dtype=like.dtype)
            for t, ids, value in entries:
                full[ids, t] = value
            recorded[key] = full
        return GenerationResult(
            tokens=out[:, :steps],
            lengths=lengths,
            scores=log_probs.copy(),
            log_probs=log_probs,
            finished=done,
            recorded=recorded,
            steps=steps,
        )


class GreedySampler(TokenSampler):
    """The most likely token at every step: deterministic, the baseline for parity tests."""

    name = "greedy"
    deterministic = True
    picks_argmax = True

    def __init__(self) -> None:
        pass

    def select(self, log_probs, rng):
        return np.argmax(log_probs, axis=-1)


class TemperatureSampler(TokenSampler):
    """Sample from softmax(logits / temperature): < 1 sharpens towards greedy, > 1 flattens."""

    name = "temperature"

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = _check_temperature(temperature)

    def select(self, log_probs, rng):
        return _categorical(log_probs / self.temperature, rng)


class TopKSampler(TokenSampler):
    """Sample among the ``k`` most likely tokens (after temperature), cutting off the long tail
    of unlikely tokens that pure sampling picks surprisingly often over a long sequence."""

    name = "top_k"

    def __init__(self, k: int = 5, temperature: float = 1.0) -> None:
        self.k = _check_int("k", k, 1, " (1 = greedy)")
        self.temperature = _check_temperature(temperature)

    def select(self, log_probs, rng):
        k = min(self.k, log_probs.shape[-1])
        top = _top_sorted(log_probs, k)
        scaled = np.take_along_axis(log_probs, top, axis=-1) / self.temperature
        pick = _categorical(scaled, rng)
        return top[np.arange(top.shape[0]), pick]


class TopPSampler(TokenSampler):
    """Nucleus sampling: sample among the smallest set of most likely tokens whose probability
    (after temperature) reaches ``p``; unlike top-k the set adapts to how peaked the model is."""

    name = "top_p"

    def __init__(self, p: float = 0.9, temperature: float = 1.0) -> None:
        self.p = _check_number("p", p, "in (0, 1]", lambda v: 0 < v <= 1)
        self.temperature = _check_temperature(temperature)

    def select(self, log_probs, rng):
        scaled = log_softmax(log_probs / self.temperature)
        order = np.argsort(-scaled, axis=-1, kind="stable")
        sorted_lp = np.take_along_axis(scaled, order, axis=-1)
        probs = np.exp(sorted_lp)
        before = np.cumsum(probs, axis=-1) - probs  # mass of strictly better tokens
        keep = before < self.p
        keep[:, 0] = True  # the most likely token is always in the nucleus
        pick = _categorical(np.where(keep, sorted_lp, -np.inf), rng)
        return order[np.arange(order.shape[0]), pick]


# ---------------------------------------------------------------------------------------------
# Lookup by name
# ---------------------------------------------------------------------------------------------

_SAMPLERS: dict[str, type[Sampler]] = {
    cls.name: cls
    for cls in (GreedySampler, TemperatureSampler, TopKSampler, TopPSampler, BeamSampler)
}


def list_samplers() -> list[str]:
    """The names ``get_sampler`` and ``generate(sampler=...)`` accept."""
    return sorted(_SAMPLERS)


def get_sampler(name_or_sampler: str | Sampler, **kwargs: Any) -> Sampler:
    """A sampler instance from its name and parameters (or an instance, returned as is).

    Names rather than classes keep configs, the CLI and the TF-free runtime speaking one
    vocabulary; unknown names and parameters fail with the valid choices in the message.
    """
    if isinstance(name_or_sampler, Sampler):
        if kwargs:
            raise ValueError(
                f"got a sampler instance and parameters {sorted(kwargs)}; pass either a name "
                f"with parameters or a configured instance"
            )
        return name_or_sampler
    if not isinstance(name_or_sampler, str):
        raise ValueError(
            f"sampler must be a name {list_samplers()} or a Sampler, got {name_or_sampler!r}"
        )
    cls = _SAMPLERS.get(name_or_sampler)
    if cls is None:
        close = difflib.get_close_matches(name_or_sampler, list(_SAMPLERS), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown sampler {name_or_sampler!r}{hint} Available: {', '.join(list_samplers())}"
        )
    accepted = _init_params(cls)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no parameters"
        raise ValueError(f"sampler {cls.name!r} takes {takes}; got unexpected {unknown}")
    return cls(**kwargs)
