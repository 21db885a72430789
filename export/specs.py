"""Typed descriptions of the graphs a task exports, and random inputs generated from them.

A :class:`GraphSpec` says what one ONNX graph computes (the Keras model to trace, its named
inputs with their *kind*, its output names) so the exporter, the validation, the runtime's input
checks and the Keras decoding engine all read one declaration instead of string-keyed dicts.
Input kinds decide how dummy inputs are drawn: post-padded ``tokens``, a 0/1 ``mask`` matching
the lengths of a time axis, float ``features``/``state`` arrays, or ``images``. This module is
TF-free (numpy only): the runtime imports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

InputKind = Literal["tokens", "mask", "features", "state", "images"]
Dim = int | str  # an int is fixed; a str names a dynamic axis shared across inputs


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One named graph input. ``shape`` uses names for dynamic axes (``"batch"``, ``"time"``);
    inputs that share a name share that size (and, for time axes, the per-row lengths)."""

    name: str
    kind: InputKind
    shape: tuple[Dim, ...]
    dtype: str = "float32"
    vocab_size: int = 0  # tokens: ids are drawn from [1, vocab_size)

    def __post_init__(self) -> None:
        if self.kind == "tokens" and self.vocab_size < 2:
            raise ValueError(f"input {self.name!r}: tokens need vocab_size >= 2")

    @property
    def time_axis(self) -> str | None:
        """The name of the time axis (axis 1) of a [batch, time, ...] input, if dynamic."""
        return self.shape[1] if len(self.shape) > 1 and isinstance(self.shape[1], str) else None


@dataclasses.dataclass
class GraphSpec:
    """One exported graph: ``fn`` (a Keras model) with named inputs and outputs.

    ``sequence_outputs`` maps a [batch, time, ...] output to the input whose post-padded lengths
    mark its valid steps (Keras and ONNX differ only at padded steps, which nothing reads).
    ``sizes`` are the dynamic-axis sizes validated against Keras: batch 1, a mixed batch with a
    length-1 row, and length-1 rows.
    """

    name: str
    file: str
    fn: Any
    inputs: list[InputSpec]
    outputs: list[str]
    sequence_outputs: dict[str, str] = dataclasses.field(default_factory=dict)
    expect_recurrent: bool = True
    tolerance: float = 1e-4
    sizes: tuple[Mapping[str, int], ...] = (
        {"batch": 1, "time": 17}, {"batch": 8, "time": 23}, {"batch": 3, "time": 1})

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {i.name: {ax: d for ax, d in enumerate(i.shape) if isinstance(d, str)}
                for i in self.inputs}

    def sample_feeds(self, seed: int = 0) -> list[dict[str, np.ndarray]]:
        return sample_feeds(self.inputs, self.sizes, seed=seed)

    def keras_outputs(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``fn`` (Keras, inference mode) on named numpy inputs; outputs by name."""
        args = [feeds[n] for n in self.input_names]
        result = self.fn(args[0] if len(args) == 1 else args, training=False)
        if not isinstance(result, (list, tuple)):
            result = [result]
        return {n: np.asarray(v) for n, v in zip(self.outputs, result)}


def random_lengths(rng: np.random.Generator, batch: int, time: int) -> np.ndarray:
    """Per-row lengths in [1, time]: row 0 full length and, with two rows or more, row 1 of
    length 1 (the no-padding and the length-1 edges of the fused operators)."""
    lengths = rng.integers(1, time + 1, size=batch)
    lengths[0] = time
    if batch > 1:
        lengths[1] = 1
    return lengths


def random_tokens(rng: np.random.Generator, lengths: np.ndarray, time: int, vocab_size: int,
                  dtype: Any = np.int32) -> np.ndarray:
    """Post-padded random ids in [1, vocab_size) with the given row lengths."""
    tokens = rng.integers(1, vocab_size, size=(len(lengths), time))
    tokens[np.arange(time)[None, :] >= np.asarray(lengths)[:, None]] = 0
    return tokens.astype(dtype)


def sample_feeds(inputs: Sequence[InputSpec], sizes: Sequence[Mapping[str, int]],
                 seed: int = 0) -> list[dict[str, np.ndarray]]:
    """One feed dict per ``sizes`` entry, consistent across inputs: inputs sharing a time axis
    share its per-row lengths (tokens are post-padded to them; masks mark them)."""
    rng = np.random.default_rng(seed)
    feeds = []
    for size in sizes:
        dims = {"batch": 1, **size}
        for spec in inputs:  # a time axis not named in ``sizes`` gets a small random size
            for d in spec.shape:
                if isinstance(d, str) and d not in dims:
                    dims[d] = int(rng.integers(2, 8)) if dims.get("time", 2) > 1 else 1
        lengths = {d: random_lengths(rng, dims["batch"], n) for d, n in dims.items()
                   if d != "batch"}
        feed = {}
        for spec in inputs:
            shape = tuple(dims[d] if isinstance(d, str) else d for d in spec.shape)
            axis = spec.time_axis
            if spec.kind == "tokens":
                if axis is None:
                    value = rng.integers(1, spec.vocab_size, size=shape)
                elif len(shape) == 3:
                    # [batch, time, symbols] (a tagger's characters per word): every step
                    # holds 1..symbols ids, post-padded; padded steps hold none.
                    inner = rng.integers(1, shape[2] + 1, size=shape[0] * shape[1])
                    value = random_tokens(rng, inner, shape[2], spec.vocab_size).reshape(shape)
                    value[np.arange(shape[1])[None, :] >= lengths[axis][:, None]] = 0
                else:
                    value = random_tokens(rng, lengths[axis], shape[1], spec.vocab_size)
            elif spec.kind == "mask":
                valid = np.arange(shape[1])[None, :] < lengths[axis][:, None]
                value = valid
            elif spec.kind == "images":
                value = rng.uniform(-1, 1, size=shape)
            else:
                value = rng.normal(0, 0.5, size=shape)
            feed[spec.name] = np.asarray(value).astype(spec.dtype)
        feeds.append(feed)
    return feeds


def token_batches(vocab_size: int, shapes: Sequence[tuple[int, int]] = ((1, 17), (8, 23), (3, 1)),
                  seed: int = 0) -> list[np.ndarray]:
    """Post-padded int32 token batches, one per ``(batch, time)``: the shapes export validation
    and the runtime comparisons use."""
    spec = InputSpec("tokens", "tokens", ("batch", "time"), "int32", vocab_size)
    sizes = [{"batch": b, "time": t} for b, t in shapes]
    return [f["tokens"] for f in sample_feeds([spec], sizes, seed=seed)]
