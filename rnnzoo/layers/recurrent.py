"""Reusable recurrent layers shared by every family."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras

CELLS = {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
MERGE_MODES = ("concat", "sum", "mul", "ave")
# The ModelConfig fields a family may declare for its recurrent stack, read by
# ``RecurrentStack.from_model_config`` (``units`` is always there).
STACK_FIELDS = ("cell", "num_layers", "bidirectional", "merge_mode", "dropout", "reset_after",
                "weight_dropout")


def _rnn_layers(rnn: Any) -> list:
    """The Keras RNN layers inside one stack layer (both directions of a ``Bidirectional``)."""
    if isinstance(rnn, keras.layers.Bidirectional):
        return [rnn.forward_layer, rnn.backward_layer]
    return [rnn]


@contextlib.contextmanager
def dropped_recurrent_kernels(layers: list, rate: float, seed: Any) -> Iterator[None]:
    """DropConnect on the recurrent matrices (AWD-LSTM's weight drop, Merity et al. 2018).

    While the block runs, each cell's ``recurrent_kernel`` attribute is a dropped (and
    1/(1-rate)-scaled) copy of the variable: one mask per call, shared by every time step and
    every row of the batch, so the recurrence is regularised without per-step noise on the
    state. The variable is put back on exit; the cells stay stock Keras cells, so weights,
    checkpoints and the fused ONNX export (traced with ``training=False``) are unchanged.
    """
    saved = []
    try:
        for layer in layers:
            cell = layer.cell
            kernel = cell.recurrent_kernel
            dropped = keras.random.dropout(keras.ops.cast(kernel, cell.compute_dtype), rate,
                                           seed=seed)
            # object.__setattr__: a tensor, not a tracked weight (Keras would track it).
            object.__setattr__(cell, "recurrent_kernel", dropped)
            saved.append((cell, kernel))
        yield
    finally:
        for cell, kernel in saved:
            object.__setattr__(cell, "recurrent_kernel", kernel)


@keras.saving.register_keras_serializable(package="rnnzoo")
class RecurrentStack(keras.layers.Layer):
    """``num_layers`` recurrent layers of one cell type, optionally bidirectional.

    Dropout is applied between layers (not inside the cells), so the inference graph of every
    layer stays on the fused-operator path of the ONNX exporter. ``weight_dropout`` drops
    entries of the recurrent matrices while training (:func:`dropped_recurrent_kernels`), which
    leaves the inference graph untouched for the same reason. Masks from
    ``Embedding(mask_zero=True)`` flow through every layer; inputs must be post-padded.

    With ``return_state=True`` the call returns ``(outputs, states)`` where ``states`` is a flat
    list: per layer ``[h]`` (simple, gru) or ``[h, c]`` (lstm), forward before backward.
    ``initial_state`` takes the same flat list, which is what a one-step decoder needs.
    """

    def __init__(
        self,
        units: int,
        cell: str = "lstm",
        num_layers: int = 1,
        bidirectional: bool = False,
        merge_mode: str = "concat",
        dropout: float = 0.0,
        return_sequences: bool = True,
        return_state: bool = False,
        reset_after: bool = True,
        weight_dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= weight_dropout < 1.0:
            raise ValueError(f"weight_dropout must be in [0, 1), got {weight_dropout}")
        self.units = units
        self.cell = cell
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.dropout = dropout
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.reset_after = reset_after
        self.weight_dropout = weight_dropout
        # Only with weight drop: a stack without it keeps exactly its former variables.
        self.weight_seed = (keras.random.SeedGenerator(name="weight_dropout_seed")
                            if weight_dropout else None)
        self.supports_masking = True
        self.rnns = []
        for i in range(num_layers):
            last = i == num_layers - 1
            kw = {"reset_after": reset_after} if cell == "gru" else {}
            rnn = CELLS[cell](
                units,
                return_sequences=(not last) or return_sequences,
                return_state=return_state,
                name=f"{cell}_{i}",
                **kw,
            )
            if bidirectional:
                rnn = keras.layers.Bidirectional(rnn, merge_mode=merge_mode, name=f"bi{cell}_{i}")
            self.rnns.append(rnn)
        self.drops = [keras.layers.Dropout(dropout) for _ in range(num_layers - 1)]

    @classmethod
    def from_model_config(cls, m: Any, **kwargs: Any) -> RecurrentStack:
        """The stack a family's ``ModelConfig`` ``m`` describes: ``units`` and those of
        ``STACK_FIELDS`` it declares, so every family reads its fields the same way; ``kwargs``
        (``name``, ``return_sequences``, a fixed ``bidirectional``...) add to them."""
        fields = {f: getattr(m, f) for f in STACK_FIELDS if hasattr(m, f)}
        return cls(m.units, **{**fields, **kwargs})

    @property
    def states_per_layer(self) -> int:
        return (2 if self.cell == "lstm" else 1) * (2 if self.bidirectional else 1)

    @property
    def output_units(self) -> int:
        if self.bidirectional and self.merge_mode == "concat":
            return 2 * self.units
        return self.units

    def build(self, input_shape: Any) -> None:
        shape = tuple(input_shape)
        for i, rnn in enumerate(self.rnns):
            rnn.build(shape)
            shape = shape[:-1] + (self.output_units,)
            if i < self.num_layers - 1:
                self.drops[i].build(shape)
        self.built = True

    def call(
        self,
        inputs: Any,
        mask: Any = None,
        initial_state: list | None = None,
        training: bool | None = None,
    ) -> Any:
        x = inputs
        states_out: list = []
        k = self.states_per_layer
        drop = bool(training) and self.weight_dropout > 0
        for i, rnn in enumerate(self.rnns):
            init = None if initial_state is None else list(initial_state[i * k : (i + 1) * k])
            weights = (dropped_recurrent_kernels(_rnn_layers(rnn), self.weight_dropout,
                                                 self.weight_seed)
                       if drop else contextlib.nullcontext())
            with weights:
                result = rnn(x, mask=mask, initial_state=init, training=training)
            if self.return_state:
                x, states = result[0], list(result[1:])
                states_out.extend(states)
            else:
                x = result
            if i < self.num_layers - 1:
                x = self.drops[i](x, training=training)
        if self.return_state:
            return x, states_out
        return x

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if not self.return_sequences:
            return None
        return [mask, None] if self.return_state else mask

    def compute_output_shape(self, input_shape: Any) -> Any:
        batch, time = input_shape[0], input_shape[1]
        out = (batch, time, self.output_units) if self.return_sequences else (
            batch, self.output_units)
        if self.return_state:
            n_states = self.states_per_layer * self.num_layers
            return out, [(batch, self.units) for _ in range(n_states)]
        return out

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            units=self.units,
            cell=self.cell,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            merge_mode=self.merge_mode,
            dropout=self.dropout,
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            reset_after=self.reset_after,
            weight_dropout=self.weight_dropout,
        )
        return config


@keras.saving.register_keras_serializable(package="rnnzoo")
class MaskedGlobalPooling1D(keras.layers.Layer):
    """Max or mean over valid time steps only (Keras' GlobalMaxPooling1D ignores the mask);
    ``max_mean`` concatenates both (the max picks the strongest cue, the mean keeps how much
    of the text carries it), doubling the width."""

    MODES = ("max", "mean", "max_mean")

    def __init__(self, mode: str = "max", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if self.mode == "max_mean":
            return keras.ops.concatenate([self._pool(inputs, mask, "max"),
                                          self._pool(inputs, mask, "mean")], axis=-1)
        return self._pool(inputs, mask, self.mode)

    @staticmethod
    def _pool(inputs: Any, mask: Any, mode: str) -> Any:
        ops = keras.ops
        if mask is None:
            return ops.max(inputs, axis=1) if mode == "max" else ops.mean(inputs, axis=1)
        m = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        if mode == "max":
            neg = ops.cast(-1e4, inputs.dtype)  # safe in bfloat16 too
            pooled = ops.max(ops.where(m > 0, inputs, neg), axis=1)
            # An all-padding row pools to 0, not to -1e4.
            return pooled * ops.cast(ops.sum(m, axis=1) > 0, inputs.dtype)
        total = ops.sum(inputs * m, axis=1)
        return total / ops.maximum(ops.sum(m, axis=1), ops.cast(1.0, inputs.dtype))

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Any) -> Any:
        width = input_shape[2]
        if self.mode == "max_mean" and width is not None:
            width *= 2
        return (input_shape[0], width)

    def get_config(self) -> dict:
        config = super().get_config()
        config["mode"] = self.mode
        return config
