"""Stateful streaming inference: one small object over a model's ``step(x, state)``.

A recurrent model can be driven a step (or a chunk) at a time, its state carried between calls:
live input, interactive generation, branching from a shared prefix. Each application supplies
the functional form (``initial_state(batch)`` and ``step(x, state) -> (y, state)``, on Keras and
on onnxruntime alike); :class:`Stream` only holds the state between calls, so every application
offers the same ``model.stream()`` object. Numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rnnzoo.errors import DataError

__all__ = ["Stream", "StreamStep", "state_feeds", "zero_state"]

StreamStep = Callable[[Any, dict[str, np.ndarray]], tuple[Any, dict[str, np.ndarray]]]


def _copied(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {n: np.array(v, copy=True) for n, v in state.items()}


def state_names(cell: str, layers: int) -> list[str]:
    """``state_<i>``, the names every exported recurrent step gives its carried states: two per
    layer for an LSTM (``h``, ``c``), one for a GRU or simple RNN."""
    return [f"state_{i}" for i in range(layers * (2 if cell == "lstm" else 1))]


def zero_state(widths: Mapping[str, int], batch: int) -> dict[str, np.ndarray]:
    """Zeros for each state input of a step graph (``state_<i>`` -> width): the state every
    whole-sequence call starts from."""
    return {n: np.zeros((batch, w), np.float32) for n, w in widths.items()}


def state_feeds(state: Any, widths: Mapping[str, int], batch: int) -> dict[str, np.ndarray]:
    """The state inputs of a step graph from a user's ``state`` (as ``initial_state`` gave
    it), checked: the same keys, ``[batch, width]`` each; a DataError naming the fix
    otherwise (a wrong state would run, and answer for another stream)."""
    if not isinstance(state, Mapping) or set(state) != set(widths):
        raise DataError(f"step: state must be a dict with keys {sorted(widths)} (from "
                        "initial_state)")
    feeds = {}
    for n, w in widths.items():
        v = np.asarray(state[n])
        if v.shape != (batch, w):
            raise DataError(f"step: state[{n!r}] must have shape [{batch}, {w}], found "
                            f"{v.shape}")
        feeds[n] = v.astype(np.float32, copy=False)
    return feeds


class Stream:
    """The state of one stream over ``step``: ``step(x)`` feeds an input (one step or a chunk)
    and returns the output after it; ``state`` (name -> array) may be read, saved and assigned;
    ``copy()`` branches; ``reset()`` goes back to the state the stream started from."""

    def __init__(self, step: StreamStep, initial: Mapping[str, np.ndarray]) -> None:
        self._step = step
        self._initial = _copied(initial)
        self._state = _copied(initial)

    def step(self, x: Any) -> Any:
        """Feed ``x`` from the current state; the output after its last step (the state moves
        on only when the step succeeds)."""
        y, state = self._step(x, self._state)
        self._state = dict(state)
        return y

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The recurrent state now, a copy: changing it leaves the stream alone."""
        return _copied(self._state)

    @state.setter
    def state(self, value: Mapping[str, Any]) -> None:
        if not isinstance(value, Mapping) or set(value) != set(self._initial):
            raise ValueError(f"state: expected a mapping with keys {sorted(self._initial)}")
        new = {}
        for n, v in value.items():
            v = np.asarray(v, dtype=self._initial[n].dtype)
            if v.shape != self._initial[n].shape:
                raise ValueError(f"state[{n!r}]: expected shape {self._initial[n].shape}, "
                                 f"found {v.shape}")
            new[n] = v.copy()
        self._state = new

    def copy(self) -> Stream:
        """An independent stream at the same state (and the same start for ``reset``)."""
        other = Stream(self._step, self._initial)
        other._state = _copied(self._state)
        return other

    def reset(self) -> None:
        """Back to the state the stream started from."""
        self._state = _copied(self._initial)
