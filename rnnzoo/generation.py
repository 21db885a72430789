"""Samplers that drive a numpy step function: greedy, temperature, top-k, top-p and beam search.

Every generative family exposes one step, ``step(tokens_t, state) -> (logits_t, state)``. Keras runs
it through a compiled function and the deployed runtime through onnxruntime sessions; the samplers
here only see numpy arrays, so both engines share one decoding loop and a test can compare them
token by token. That is why this module imports numpy and the standard library only (plus
onnxruntime, lazily, for beam search's per-step selection): an app that runs exported bundles
must not need TensorFlow or Keras.

The state contract: ``state`` is a dict of arrays whose axis 0 is the batch (``batch * width`` in
beam search). It holds the recurrent state and any per-sequence constants (encoder outputs, source
masks) that the step passes through unchanged. Beam search tiles every array ``width`` times along
axis 0 (``np.repeat``) and reorders all of them when it re-ranks beams, so a step never needs to
know whether it is being beamed. Keys named in ``record=`` (e.g. ``"attention"``) are read from
the state returned by each step and returned stacked per step for the returned sequences.

Samplers are chosen by name (as in keras-hub ``samplers/``)::

    result = generate(step, start, state, max_length=50, end_token=2, sampler="top_p", p=0.9)
"""

from __future__ import annotations

import abc
import difflib
import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

__all__ = [
    "BeamSampler",
    "GenerationResult",
    "GraphRunner",
    "GreedySampler",
    "Sampler",
    "State",
    "StepFn",
    "TemperatureSampler",
    "TokenSampler",
    "TopKSampler",
    "TopPSampler",
    "ctc_greedy_decode",
    "ctc_prefix_beam_search",
    "generate",
    "graph_step",
    "get_sampler",
    "list_samplers",
    "log_softmax",
]

_UNUSED_RNG = np.random.default_rng(0)  # handed to deterministic samplers, which never draw

State = dict[str, np.ndarray]
StepFn = Callable[[np.ndarray, State], tuple[np.ndarray, State]]


# ---------------------------------------------------------------------------------------------
# Result and numeric helpers
# ---------------------------------------------------------------------------------------------


@dataclass
class GenerationResult:
    """What ``generate`` returns. Row ``i`` of every array is one returned sequence.

    ``tokens`` int32 [n, L]: generated tokens, without the start token, including the end token
    when it was produced; positions past ``lengths[i]`` hold ``pad_token`` (0 by default).
    ``L`` is the longest returned sequence, so ``L <= max_length``.
    ``lengths`` int32 [n]: number of generated tokens (end token included).
    ``scores`` float64 [n]: the ranking score. For the token samplers it is the sum of the model's
    log-probabilities (untempered ``log_softmax(logits)``) of the generated tokens; for beam search
    it is that sum divided by the length penalty (``lengths ** length_penalty``).
    ``log_probs`` float64 [n]: the raw sum of log-probabilities, for every sampler.
    ``finished`` bool [n]: whether the sequence ended with ``end_token`` (False: hit max_length).
    ``recorded`` {key: [n, L, ...]}: the state arrays named in ``record=``, one entry per
    generated token (the value the step returned when it produced that token), zero past the end.
    ``steps``: how many times the step function was called (early stopping makes it < max_length).
    ``num_return``: sequences returned per input row; with ``num_return > 1`` (beam search) row
    ``i * num_return + j`` is the ``j``-th best hypothesis of input row ``i``.
    """

    tokens: np.ndarray
    lengths: np.ndarray
    scores: np.ndarray
    log_probs: np.ndarray
    finished: np.ndarray
    recorded: dict[str, np.ndarray] = field(default_factory=dict)
    steps: int = 0
    num_return: int = 1

    def sequences(self, include_end: bool = True) -> list[list[int]]:
        """The sequences as Python lists without padding (handy for detokenizing)."""
        out = []
        for row, length, fin in zip(self.tokens, self.lengths, self.finished):
            n = int(length) - (0 if include_end or not fin else 1)
            out.append([int(x) for x in row[:n]])
        return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities along the last axis, in float64 with max-subtraction.

    float64 because beam scores are sums over many steps and ties between beams should be decided
    by the model, not by float32 rounding; rows whose logits are all ``-inf`` stay ``-inf``.
    """
    shifted = np.array(logits, dtype=np.float64)  # a fresh copy, worked on in place (per step)
    m = shifted.max(axis=-1, keepdims=True)
    finite = np.isfinite(m)
    if not finite.all():  # the edge-case passes run only when needed: this is per step
        m = np.where(finite, m, 0.0)
    shifted -= m
    with np.errstate(divide="ignore", invalid="ignore"):
        lse = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        shifted -= lse
    if np.isneginf(lse).any():
        shifted = np.where(np.isneginf(lse), -np.inf, shifted)
    return shifted


def _log_norm(logits: np.ndarray, step_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row ``(m, lse)`` with ``log_softmax(x) == (float64(x) - m) - lse``, as float64 [n, 1].

    The samplers that need only a few log-probabilities per row (greedy, beam search) compute
    them from these two numbers instead of materialising the float64 [n, vocab] array: the same
    operations in the same order, so the selected values are bit-identical to ``log_softmax``'s,
    at one exp pass instead of six full-vocabulary passes and copies. A NaN logit is reported
    here (the row maximum propagates it), which saves a separate pass.
    """
    m = logits.max(axis=-1, keepdims=True).astype(np.float64)
    if np.isnan(m).any():
        raise ValueError(f"step returned NaN logits at step {step_index}")
    finite = np.isfinite(m)
    if not finite.all():
        m = np.where(finite, m, 0.0)
    shifted = np.subtract(logits, m, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        np.exp(shifted, out=shifted)
        lse = np.log(shifted.sum(axis=-1, keepdims=True))
    return m, lse


def _gathered_log_probs(logits: np.ndarray, index: np.ndarray, m: np.ndarray,
                        lse: np.ndarray) -> np.ndarray:
    """``log_softmax(logits)`` at ``index`` [n, k] (float64 [n, k]) from ``_log_norm``."""
    picked = logits[np.arange(index.shape[0])[:, None], index].astype(np.float64)
    with np.errstate(invalid="ignore"):
        out = (picked - m) - lse
    dead = np.isneginf(lse[:, 0])
    if dead.any():  # all-(-inf) rows stay -inf, as in log_softmax
        out[dead] = -np.inf
    return out


def _categorical(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row from softmax(logits) by the Gumbel-max trick (-inf entries never win)."""
    gumbel = rng.gumbel(size=logits.shape)
    return np.argmax(logits + gumbel, axis=-1)


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


_BLOCK = 64  # entries per block of a row in ``_top_rows``


def _top_rows(x: np.ndarray, k: int) -> np.ndarray:
    """Indices [n, k] of the ``k`` largest entries of each row of ``x`` [n, v], in no order.

    Exact, in three short passes for wide rows: the maximum of every block of 64 entries, the
    ``k`` blocks with the largest maxima (each of the row's ``k`` largest entries lies in a block
    whose maximum is at least the k-th largest value, and at most ``k`` blocks have one), then a
    partition of those ``k * 64`` entries (plus the ragged tail). Several times cheaper than
    ``argpartition`` over the row, which is what beam search paid per beam per step.
    """
    n, v = x.shape
    if k >= v:
        return np.broadcast_to(np.arange(v), (n, v))
    nb = v // _BLOCK
    if nb < 4 * k:
        return np.argpartition(x, v - k, axis=1)[:, v - k:]
    cut = nb * _BLOCK
    blocks = x[:, :cut].reshape(n, nb, _BLOCK)
    best = np.argpartition(blocks.max(axis=2), nb - k, axis=1)[:, nb - k:]  # [n, k] blocks
    rows = np.arange(n)[:, None]
    idx = (best[:, :, None] * _BLOCK + np.arange(_BLOCK)).reshape(n, k * _BLOCK)
    if cut < v:
        idx = np.concatenate([idx, np.broadcast_to(np.arange(cut, v), (n, v - cut))], axis=1)
    vals = x[rows, idx]
    pos = np.argpartition(vals, vals.shape[1] - k, axis=1)[:, vals.shape[1] - k:]
    return idx[rows, pos]


def _top_sorted_full(x: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-x, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(x, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


_SELECT_MIN_VOCAB = 1024  # rows this wide are selected by onnxruntime (``_top_log_probs``)
_SELECT_BLOCK = 64  # block width of ``beam_select.onnx`` (8,000 = 125 x 64; else -inf padding)
_SELECT_GRAPH = Path(__file__).with_name("beam_select.onnx")
_SELECT_OUTPUTS = ["top_values", "top", "max", "sum_exp"]


@functools.lru_cache(maxsize=1)
def _select_session() -> Any:
    """The one-thread onnxruntime session of ``beam_select.onnx``, or None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - onnxruntime is a core dependency
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(_SELECT_GRAPH), options, providers=["CPUExecutionProvider"])


def _top_log_probs(logits: np.ndarray, k: int, step_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` best tokens [n, k] (in no order) and their log-probabilities (float64).

    For vocabulary-wide float32 rows one onnxruntime call (``beam_select.onnx``: block maxima,
    two small ``TopK``, a block-wise ``exp`` sum) replaces several numpy passes, which at batch
    1 cost as much as the decoder step itself. Its
    ``exp`` runs and is summed per block in float32, so log-probabilities agree with
    ``log_softmax`` to about 2e-7 (a float32 ulp of the logits), not bit for bit; the tokens are
    those of a stable full sort. Rows with a non-finite maximum or normaliser (NaN, all -inf)
    take the numpy path, which reports or handles them.
    """
    n, v = logits.shape
    blocks = -(-v // _SELECT_BLOCK)
    session = _select_session() if v >= _SELECT_MIN_VOCAB and k <= blocks else None
    if session is not None and logits.dtype == np.float32:
        if v % _SELECT_BLOCK:
            padded = np.full((n, blocks * _SELECT_BLOCK), -np.inf, dtype=np.float32)
            padded[:, :v] = logits
            logits3 = padded.reshape(n, blocks, _SELECT_BLOCK)
        else:
            logits3 = np.ascontiguousarray(logits).reshape(n, blocks, _SELECT_BLOCK)
        values, top, m, z = session.run(_SELECT_OUTPUTS, {"logits": logits3,
                                                          "k": np.array([k], dtype=np.int64)})
        if np.isfinite(m).all() and np.isfinite(z).all():  # every sum_exp >= 1: no dead rows
            return top, (values.astype(np.float64) - m.astype(np.float64)) - np.log(z)
    m, lse = _log_norm(logits, step_index)
    top = _top_rows(logits, k)
    return top, _gathered_log_probs(logits, top, m, lse)


# ---------------------------------------------------------------------------------------------
# Argument checks (shared by every sampler)
# ---------------------------------------------------------------------------------------------


def _check_number(name: str, value: Any, valid: str, ok: Callable[[float], bool]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number {valid}, got {value!r}")
    if not math.isfinite(float(value)) or not ok(float(value)):
        raise ValueError(f"{name} must be {valid}, got {value!r}")
    return float(value)


def _check_int(name: str, value: Any, minimum: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}{hint}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{hint}, got {value!r}")
    return int(value)


def _check_temperature(temperature: Any) -> float:
    return _check_number("temperature", temperature, "> 0 (1.0 = the model's distribution)",
                         lambda t: t > 0)


def _prepare(
    start_tokens: Any, state: State, max_length: Any, end_token: Any, record: Sequence[str]
) -> tuple[np.ndarray, State, int, int, tuple[str, ...]]:
    start = np.asarray(start_tokens)
    if start.ndim != 1 or start.shape[0] == 0:
        raise ValueError(
            f"start_tokens must be a non-empty 1-D array [batch], got shape {start.shape}"
        )
    if not np.issubdtype(start.dtype, np.integer):
        raise ValueError(f"start_tokens must hold integers, got dtype {start.dtype}")
    batch = start.shape[0]
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict of arrays, got {type(state).__name__}")
    checked: State = {}
    for key, value in state.items():
        arr = np.asarray(value)
        if arr.ndim == 0 or arr.shape[0] != batch:
            raise ValueError(
                f"state[{key!r}] has shape {arr.shape}; every state array needs the batch "
                f"({batch}) as axis 0"
            )
        checked[key] = arr
    max_length = _check_int("max_length", max_length, 1)
    end_token = _check_int("end_token", end_token, 0)
    if isinstance(record, str):
        record = (record,)
    return start.astype(np.int32), checked, max_length, end_token, tuple(record)


def _check_logits(logits: Any, n: int, step_index: int, end_token: int) -> np.ndarray:
    arr = np.asarray(logits)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(
            f"step returned logits of shape {arr.shape} at step {step_index}; expected "
            f"[{n}, vocab]"
        )
    if end_token >= arr.shape[1]:
        raise ValueError(f"end_token {end_token} is outside the vocabulary (size {arr.shape[1]})")
    return arr


def _recorded_value(new_state: State, key: str) -> np.ndarray:
    if key not in new_state:
        raise ValueError(
            f"cannot record {key!r}: the step's state has keys {sorted(new_state)}"
        )
    return np.asarray(new_state[key])


def _pad_recorded(per_seq: list[list[np.ndarray]], length: int, like: np.ndarray) -> np.ndarray:
    """Stack ragged per-sequence lists of per-step arrays into [n, length, ...], zero-padded."""
    out = np.zeros((len(per_seq), length) + like.shape, dtype=like.dtype)
    for i, steps in enumerate(per_seq):
        if steps:
            out[i, : len(steps)] = np.stack(steps)
    return out


# ---------------------------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------------------------


class Sampler(abc.ABC):
    """Base class: a decoding strategy over a step function.

    Subclasses set ``name`` (the string that ``get_sampler`` accepts) and either implement
    ``select`` (one token per row per step; the shared loop in ``TokenSampler`` does the rest)
    or override ``_run`` (beam search). Constructors validate their arguments so that a bad
    ``top_p`` fails before the first, possibly expensive, step call.
    """

    name: ClassVar[str] = ""
    # Samplers that never draw get a shared generator instead of a fresh one per call
    # (seeding one from OS entropy costs about as much as a decoder step at batch 1).
    deterministic: ClassVar[bool] = False

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, so a sampler can be stored in a config and rebuilt by name."""
        return {key: getattr(self, key) for key in _init_params(type(self))}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def run(
        self,
        step: StepFn,
        start_tokens: np.ndarray,
        state: State,
        max_length: int,
        end_token: int,
        rng: np.random.Generator | None = None,
        record: Sequence[str] = (),
        pad_token: int = 0,
    ) -> GenerationResult:
        """Decode from ``start_tokens`` for at most ``max_length`` steps (see ``generate``)."""
        start, state, max_length, end_token, record = _prepare(
            start_tokens, state, max_length, end_token, record
        )
        pad_token = _check_int("pad_token", pad_token, 0)
        if rng is None:
            rng = _UNUSED_RNG if self.deterministic else np.random.default_rng()
        return self._run(step, start, state, max_length, end_token, rng, record, pad_token)

    @abc.abstractmethod
    def _run(
        self,
        step: StepFn,
        start: np.ndarray,
        state: State,
        max_length: int,
        end_token: int,
        rng: np.random.Generator,
        record: tuple[str, ...],
        pad_token: int,
    ) -> GenerationResult:
        """The decoding loop of this sampler (subclasses implement it)."""


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

    def _run(self, step, start, state, max_length, end_token, rng, record, pad_token):
        n = start.shape[0]
        out = np.full((n, max_length), pad_token, dtype=np.int32)
        lengths = np.zeros(n, dtype=np.int32)
        log_probs = np.zeros(n, dtype=np.float64)
        done = np.zeros(n, dtype=bool)
        rows = np.arange(n)  # the input row of each row of the step's batch
        live = np.ones(n, dtype=bool)  # rows of the step's batch still decoding
        rec_steps: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {k: [] for k in record}
        tokens_in = start
        steps = 0
        for t in range(max_length):
            logits, state = step(tokens_in, state)
            steps += 1
            chosen, logp = self._choose(_check_logits(logits, rows.size, t, end_token), t, rng)
            chosen = chosen.astype(np.int32)
            ids = rows[live]
            out[ids, t] = chosen[live]
            lengths[ids] += 1
            log_probs[ids] += logp[live]
            for key in record:
                rec_steps[key].append((t, ids, _recorded_value(state, key)[live]))
            ended = live & (chosen == end_token)
            if ended.any():
                done[rows[ended]] = True
                live &= ~ended
                if not live.any():
                    break
            idle = rows.size - int(live.sum())
            if idle and idle >= self.compact_fraction * rows.size:
                state = {key: np.asarray(value)[live] for key, value in state.items()}
                rows, chosen = rows[live], chosen[live]
                live = np.ones(rows.size, dtype=bool)
            tokens_in = np.where(live, chosen, end_token).astype(np.int32)
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


@dataclass
class _Hyp:
    """A beam-search hypothesis, stored as a backpointer (history is rebuilt once, at the end)."""

    row: int  # input row (batch index)
    score: float  # log_prob / length ** length_penalty
    log_prob: float
    length: int
    prefix_step: int  # step after which the prefix's last token was chosen (-1: empty prefix)
    prefix_slot: int  # beam slot of the prefix at prefix_step
    last_token: int | None  # end_token for finished hypotheses, None otherwise
    last_rec: dict[str, np.ndarray] | None


class BeamSampler(Sampler):
    """Beam search, batched: the ``batch * width`` beams step together as one flat batch.

    Semantics:

    * Start: every state array is tiled ``width`` times (``np.repeat(axis=0)``) and only beam 0
      of each row is alive (the others score ``-inf``), so the first step does not fill the beam
      with ``width`` copies of the same hypothesis.
    * Each step scores every (beam, token) candidate by its summed log-probability. A candidate
      that emits ``end_token`` and ranks in the top ``width`` of all candidates becomes a finished
      hypothesis of its row; the ``width`` best other candidates become the next beams, and every
      state array is reordered along axis 0 to follow them, except arrays the step has returned
      unchanged (the same object) since the start: they are still equal across a row's beams.
    * Length penalty (the simple form, as in Hugging Face ``length_penalty``, *not* GNMT's
      ``((5 + len) / 6) ** alpha``): ``score = log_prob / len ** length_penalty`` where ``len``
      counts the generated tokens including the end token. ``1.0`` (default) ranks by mean
      log-probability per token, ``0.0`` by the raw sum (which favours short outputs), larger
      values favour longer outputs.
    * Stopping, per row: with ``early_stop=True`` a row stops once ``width`` hypotheses have
      finished (Hugging Face ``early_stopping=True``): fast, but a longer hypothesis still in the
      beam could have scored better. With ``early_stop=False`` a row stops only when no live beam
      can still beat its ``num_return``-th best finished hypothesis: log-probabilities only
      decrease, so the bound for a live beam is its log-prob divided by the most favourable
      future length penalty (``max_length`` when ``length_penalty > 0``, the next length
      otherwise); this is exact for the beam (Hugging Face ``early_stopping="never"``). At most
      ``width`` finished hypotheses are kept per row. The whole search stops when every row has.
    * At ``max_length``, rows that have not stopped also offer their live beams (without an end
      token, ``finished=False``) as hypotheses, ranked with the same penalty, as Hugging Face does.
    * The ``num_return`` best hypotheses per row are returned (``num_return <= width``); a row
      with fewer hypotheses (tiny vocabularies) is filled with empty ones scoring ``-inf``.
      Recorded arrays follow the backpointers, so they belong to the returned hypothesis.
    """

    name = "beam"
    deterministic = True

    def __init__(
        self,
        width: int = 5,
        length_penalty: float = 1.0,
        early_stop: bool = True,
        num_return: int = 1,
    ) -> None:
        self.width = _check_int("width", width, 1, " (1 = greedy)")
        self.length_penalty = _check_number(
            "length_penalty", length_penalty, "finite (score = log_prob / len ** length_penalty)",
            lambda v: True,
        )
        if not isinstance(early_stop, (bool, np.bool_)):
            raise ValueError(f"early_stop must be True or False, got {early_stop!r}")
        self.early_stop = bool(early_stop)
        self.num_return = _check_int("num_return", num_return, 1, f" and <= width ({width})")
        if self.num_return > self.width:
            raise ValueError(
                f"num_return must be an integer >= 1 and <= width ({width}), got {num_return!r}"
            )

    def _penalty(self, length: int) -> float:
        return float(length) ** self.length_penalty

    def _run(self, step, start, state, max_length, end_token, rng, record, pad_token):
        batch, width, alpha = start.shape[0], self.width, self.length_penalty
        n = batch * width
        state = {key: np.repeat(value, width, axis=0) for key, value in state.items()}
        tiled = set(state)  # keys still holding these tiled arrays
        tokens_in = np.repeat(start, width).astype(np.int32)
        beam_scores = np.full((batch, width), -np.inf)
        beam_scores[:, 0] = 0.0
        done = np.zeros(batch, dtype=bool)
        finished: list[list[_Hyp]] = [[] for _ in range(batch)]
        tok_hist: list[np.ndarray] = []  # [batch, width] token chosen for each new slot
        par_hist: list[np.ndarray] = []  # [batch, width] slot it extends
        rec_hist: dict[str, list[np.ndarray]] = {key: [] for key in record}
        rows = np.arange(batch)[:, None]
        beam_base = None
        steps = 0
        for t in range(max_length):
            logits, new_state = step(tokens_in, state)
            steps += 1
            logits = _check_logits(logits, n, t, end_token)
            vocab = logits.shape[1]
            if beam_base is None:
                beam_base = np.arange(width)[:, None] * vocab
            for key, value in new_state.items():
                if np.shape(value)[:1] != (n,):
                    raise ValueError(
                        f"step returned state[{key!r}] of shape {np.shape(value)}; beam search "
                        f"needs batch * width ({n}) as axis 0 to reorder it"
                    )
            rec_now = {key: _recorded_value(new_state, key) for key in record}

            # Selection in three small passes instead of scoring all width x vocab candidates:
            # within a beam the ranking by log-probability is the ranking by logit, so each
            # beam's best k tokens (k = 2 * width, from the float32 logits) hold every candidate
            # of the row's best 2 * width; only those k get a log-probability (from one
            # normaliser pass, ``_top_log_probs``) plus their beam's score. At most one
            # end-token candidate per beam, so the best 2 * width hold the best `width` that do
            # not end: one selection serves finished and live hypotheses.
            k = min(2 * width, vocab)
            tok_k, logp_k = _top_log_probs(logits, k, t)
            cand = beam_scores.reshape(n, 1) + logp_k
            cand = cand.reshape(batch, width * k)
            flat = (beam_base + tok_k.reshape(batch, width, k)).reshape(batch, width * k)
            order = np.lexsort((flat, -cand), axis=-1)[:, : min(2 * width, width * k)]
            top = flat[rows, order]  # best first; ties: the lower beam, then the lower token
            top_vals_all = cand[rows, order]
            is_end = top % vocab == end_token

            # Finished hypotheses: end-token candidates ranked in the top `width` of their row.
            top_all, top_vals = top[:, :width], top_vals_all[:, :width]
            ends = is_end[:, :width] & np.isfinite(top_vals) & ~done[:, None]
            for b, r in zip(*np.nonzero(ends)):
                slot = int(top_all[b, r] // vocab)
                raw = float(top_vals[b, r])
                self._add(finished[b], _Hyp(
                    row=int(b), score=raw / self._penalty(t + 1), log_prob=raw, length=t + 1,
                    prefix_step=t - 1, prefix_slot=slot, last_token=end_token,
                    last_rec={key: rec_now[key][b * width + slot].copy() for key in record},
                ))

            # Live beams: the best `width` candidates that do not end (in rank order; an end
            # candidate only fills in when a tiny vocabulary leaves too few, and scores -inf).
            pick = np.argsort(is_end, axis=1, kind="stable")[:, :width]
            top_live = top[rows, pick]
            beam_scores = np.where(is_end[rows, pick], -np.inf, top_vals_all[rows, pick])
            src = (top_live // vocab).astype(np.int64)
            tok = (top_live % vocab).astype(np.int32)
            flat_src = (rows * width + src).reshape(-1)
            # Arrays the step has passed through unchanged since the start (encoder outputs,
            # masks) are still the tiled copies, equal across a row's beams: not reordered.
            tiled = {key for key in tiled if new_state.get(key) is state[key]}
            state = {key: value if key in tiled else np.asarray(value)[flat_src]
                     for key, value in new_state.items()}
            tok_hist.append(tok)
            par_hist.append(src)
            for key in record:
                value = rec_now[key][flat_src]
                rec_hist[key].append(value.reshape((batch, width) + value.shape[1:]))

            tokens_in = tok.reshape(-1).copy()
            for b in np.nonzero(~done)[0]:
                if self._row_done(finished[b], beam_scores[b], t, max_length, alpha):
                    done[b] = True
                    beam_scores[b] = -np.inf  # its candidates can no longer win or finish
                    tokens_in[b * width : (b + 1) * width] = end_token
            if done.all():
                break

        pools = [list(hyps) for hyps in finished]
        for b in np.nonzero(~done)[0]:  # only possible when all max_length steps ran
            for slot in range(width):
                raw = float(beam_scores[b, slot])
                if np.isfinite(raw):
                    pools[b].append(_Hyp(
                        row=int(b), score=raw / self._penalty(steps), log_prob=raw, length=steps,
                        prefix_step=steps - 1, prefix_slot=slot, last_token=None, last_rec=None,
                    ))
        return self._collect(pools, tok_hist, par_hist, rec_hist, record, steps, pad_token)

    def _add(self, hyps: list[_Hyp], hyp: _Hyp) -> None:
        """Keep the ``width`` best finished hypotheses of a row, best first (stable on ties)."""
        hyps.append(hyp)
        hyps.sort(key=lambda h: -h.score)
        del hyps[self.width:]

    def _row_done(
        self, hyps: list[_Hyp], scores: np.ndarray, t: int, max_length: int, alpha: float
    ) -> bool:
        best_live = float(scores.max())
        if not np.isfinite(best_live):
            return True  # nothing left alive (tiny vocabulary or all -inf logits)
        if self.early_stop:
            return len(hyps) >= self.width
        if len(hyps) < self.num_return or t + 1 >= max_length:
            return False
        # Log-probs only decrease; the most favourable penalty is the longest length if alpha > 0.
        future_len = max_length if alpha > 0 else t + 2
        return best_live / self._penalty(future_len) <= hyps[self.num_return - 1].score

    def _collect(self, pools, tok_hist, par_hist, rec_hist, record, steps, pad_token):
        seqs: list[list[int]] = []
        recs: dict[str, list[list[np.ndarray]]] = {key: [] for key in record}
        scores, log_probs, fin = [], [], []
        for b, pool in enumerate(pools):
            pool = sorted(pool, key=lambda h: -h.score)[: self.num_return]
            while len(pool) < self.num_return:
                pool.append(_Hyp(b, -np.inf, -np.inf, 0, -1, 0, None, None))
            for hyp in pool:
                tokens, hyp_rec = self._backtrack(hyp, tok_hist, par_hist, rec_hist, record)
                seqs.append(tokens)
                for key in record:
                    recs[key].append(hyp_rec[key])
                scores.append(hyp.score)
                log_probs.append(hyp.log_prob)
                fin.append(hyp.last_token is not None)
        length = max(len(s) for s in seqs)
        out = np.full((len(seqs), length), pad_token, dtype=np.int32)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
        recorded = {
            key: _pad_recorded(recs[key], length, rec_hist[key][0][0, 0]) for key in record
        }
        return GenerationResult(
            tokens=out,
            lengths=np.array([len(s) for s in seqs], dtype=np.int32),
            scores=np.array(scores, dtype=np.float64),
            log_probs=np.array(log_probs, dtype=np.float64),
            finished=np.array(fin, dtype=bool),
            recorded=recorded,
            steps=steps,
            num_return=self.num_return,
        )

    @staticmethod
    def _backtrack(hyp, tok_hist, par_hist, rec_hist, record):
        """Follow backpointers from the hypothesis' prefix slot back to the first step."""
        tokens: list[int] = []
        recs: dict[str, list[np.ndarray]] = {key: [] for key in record}
        if hyp.length == 0:
            return tokens, recs
        b = hyp.row
        slot = hyp.prefix_slot
        for s in range(hyp.prefix_step, -1, -1):
            tokens.append(int(tok_hist[s][b, slot]))
            for key in record:
                recs[key].append(rec_hist[key][s][b, slot])
            slot = int(par_hist[s][b, slot])
        tokens.reverse()
        for key in record:
            recs[key].reverse()
        if hyp.last_token is not None:
            tokens.append(hyp.last_token)
            for key in record:
                recs[key].append(hyp.last_rec[key])
        return tokens, recs


# ---------------------------------------------------------------------------------------------
# Lookup by name and the entry point
# ---------------------------------------------------------------------------------------------

_SAMPLERS: dict[str, type[Sampler]] = {
    cls.name: cls
    for cls in (GreedySampler, TemperatureSampler, TopKSampler, TopPSampler, BeamSampler)
}


def list_samplers() -> list[str]:
    """The names ``get_sampler`` and ``generate(sampler=...)`` accept."""
    return sorted(_SAMPLERS)


@functools.cache
def _init_params(cls: type) -> list[str]:
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


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


# ---------------------------------------------------------------------------------------------
# CTC decoding: per-frame log-probabilities -> label sequences (speech recognition)
# ---------------------------------------------------------------------------------------------


def ctc_greedy_decode(log_probs: np.ndarray, blank: int = 0) -> list[int]:
    """Best path: the most likely label per frame, repeats merged, blanks removed (Graves et
    al. 2006). ``log_probs`` is ``[T, C]`` (only the valid frames of one utterance)."""
    lp = np.asarray(log_probs)
    if lp.ndim != 2:
        raise ValueError(f"ctc_greedy_decode: expected [frames, classes], got shape {lp.shape}")
    if not len(lp):
        return []
    best = lp.argmax(axis=-1)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(c) for c in best[keep] if c != blank]


def ctc_prefix_beam_search(log_probs: np.ndarray, beam_width: int = 8, blank: int = 0,
                           prune: float = -30.0) -> list[tuple[list[int], float]]:
    """CTC prefix beam search (Hannun et al. 2014, without a language model): the
    ``beam_width`` most probable label sequences with their log-probabilities, best first.

    Unlike the best path, a prefix's score sums over every alignment that collapses to it
    (blank-ending and label-ending paths kept apart, so ``a a`` needs a blank between), so it
    returns the most probable *sequence* when the beam holds every live prefix. Labels whose
    frame log-probability is below ``prune`` are not extended (they cannot matter in float64
    next to a path of log-probability > ``prune``)."""
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2:
        raise ValueError(f"ctc_prefix_beam_search: expected [frames, classes], got shape "
                         f"{lp.shape}")
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) \
            or beam_width < 1:
        raise ValueError(f"beam_width must be an integer >= 1, got {beam_width!r}")
    neg = -np.inf
    # prefix -> [log P(prefix, ending in blank), log P(prefix, ending in its last label)]
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, neg]}
    for row in lp:
        labels = [c for c in range(len(row)) if c != blank and row[c] > prune]
        nxt: dict[tuple[int, ...], list[float]] = {}
        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            here = nxt.setdefault(prefix, [neg, neg])
            here[0] = np.logaddexp(here[0], total + row[blank])
            last = prefix[-1] if prefix else None
            for c in labels:
                ext = nxt.setdefault(prefix + (c,), [neg, neg])
                if c == last:  # "aa" needs a blank between; "a a" without one stays "a"
                    ext[1] = np.logaddexp(ext[1], pb + row[c])
                    here[1] = np.logaddexp(here[1], pnb + row[c])
                else:
                    ext[1] = np.logaddexp(ext[1], total + row[c])
        ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))
        beams = dict(ranked[:beam_width])
    ranked = sorted(beams.items(), key=lambda kv: -np.logaddexp(*kv[1]))
    return [(list(p), float(np.logaddexp(*s))) for p, s in ranked]
