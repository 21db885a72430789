"""The decoding contract every engine shares: state, step, result, argument checks, the
``Sampler`` base and the float64 log-probability helpers.

Every generative family exposes one step, ``step(tokens_t, state) -> (logits_t, state)``. Keras runs
it through a compiled function and the deployed runtime through onnxruntime sessions; the samplers
of ``rnnzoo.engines`` only see numpy arrays, so both engines share one decoding loop and a test can
compare them token by token. That is why this package imports numpy and the standard library only
(plus onnxruntime, lazily, for beam search's per-step selection): an app that runs exported bundles
must not need TensorFlow or Keras.

The state contract: ``state`` is a dict of arrays whose axis 0 is the batch (``batch * width`` in
beam search). It holds the recurrent state and any per-sequence constants (encoder outputs, source
masks) that the step passes through unchanged. Beam search tiles every array ``width`` times along
axis 0 (``np.repeat``) and reorders all of them when it re-ranks beams, so a step never needs to
know whether it is being beamed. Keys named in ``record=`` (e.g. ``"attention"``) are read from
the state returned by each step and returned stacked per step for the returned sequences.
"""

from __future__ import annotations

import abc
import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = ["GenerationResult", "Sampler", "State", "StepFn", "log_softmax"]

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
# The sampler base class
# ---------------------------------------------------------------------------------------------


@functools.cache
def _init_params(cls: type) -> list[str]:
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


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
