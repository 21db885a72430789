"""Layers of the forecasting families: last-value normalisation, learned horizon queries, and
the echo-state reservoir.

The reservoir is written so that the ONNX exporter fuses it: a leaky echo-state update
``h' = (1 - a) h + a tanh(W_in x + W h + b)`` is exactly a Keras GRU (``reset_after=True``)
whose gates are constants: update gate ``z = sigmoid(logit(1 - a)) = 1 - a`` and reset gate
``r = sigmoid(30) = 1.0`` (to float32 precision), with the reservoir matrices in the candidate
branch. With ``a = 1`` it is a plain SimpleRNN. Both are stock Keras layers, so training,
saving, the cuDNN path and the fused ONNX ``GRU``/``RNN`` operators all apply unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

# sigmoid(30) rounds to 1.0 in float32: the reset gate is exactly open.
_OPEN_GATE = 30.0


@keras.saving.register_keras_serializable(package="rnnzoo")
class LastValueShift(keras.layers.Layer):
    """``mode="last"``: subtract each window's last row from every row (the model forecasts the
    change from the last observation); ``"mean"``: subtract the window's mean. Returns
    ``(shifted, reference [batch, 1, columns])``; :class:`AddReference` adds it back."""

    def __init__(self, mode: str = "last", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("last", "mean"):
            raise ValueError(f"mode must be 'last' or 'mean', got {mode!r}")
        self.mode = mode

    def call(self, x: Any) -> Any:
        ops = keras.ops
        ref = x[:, -1:, :] if self.mode == "last" else ops.mean(x, axis=1, keepdims=True)
        return x - ref, ref

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="rnnzoo")
class AddReference(keras.layers.Layer):
    """``forecast [batch, H, targets] + reference[:, :, target_index]``."""

    def __init__(self, target_index: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_index = [int(i) for i in target_index]

    def call(self, forecast: Any, reference: Any) -> Any:
        ops = keras.ops
        cols = ops.take(reference, np.asarray(self.target_index, np.int32), axis=2)
        return forecast + cols

    def get_config(self) -> dict:
        return {**super().get_config(), "target_index": self.target_index}


@keras.saving.register_keras_serializable(package="rnnzoo")
class HorizonQueries(keras.layers.Layer):
    """A learned vector per step ahead, [batch, horizon, dim]: the inputs of a
    non-autoregressive decoder that attends over the encoded window."""

    def __init__(self, horizon: int, dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.horizon = int(horizon)
        self.dim = int(dim)

    def build(self, input_shape: Any) -> None:
        self.queries = self.add_weight(name="queries", shape=(self.horizon, self.dim),
                                       initializer=keras.initializers.RandomNormal(stddev=0.1))
        self.built = True

    def call(self, x: Any) -> Any:
        ops = keras.ops
        batch = ops.shape(x)[0]
        q = ops.cast(self.queries, x.dtype)[None, :, :]
        return ops.tile(q, [batch, 1, 1])

    def get_config(self) -> dict:
        return {**super().get_config(), "horizon": self.horizon, "dim": self.dim}


@keras.saving.register_keras_serializable(package="rnnzoo")
class OnesMask(keras.layers.Layer):
    """A float mask of ones [batch, time] for an unpadded sequence (attention's value mask)."""

    def call(self, x: Any) -> Any:
        return keras.ops.ones_like(x[:, :, 0])


def reservoir_matrices(units: int, inputs: int, spectral_radius: float, connectivity: float,
                       input_scaling: float, input_connectivity: float, bias_scaling: float,
                       seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W [units, units], W_in [units, inputs], b [units])`` as in reservoirpy's defaults:
    ``W`` sparse (``connectivity``) with standard-normal entries, rescaled to the given
    spectral radius (largest |eigenvalue|); ``W_in`` sparse (``input_connectivity``) with
    entries +-``input_scaling``; ``b`` uniform in +-``bias_scaling``. Seeded: one seed, one
    reservoir, on every machine."""
    rng = np.random.default_rng(seed)

    def sparse(shape: tuple[int, int], density: float, values: Any) -> np.ndarray:
        # Exactly round(density * size) non-zeros at random places (scipy.sparse.random's
        # rule, which reservoirpy's initializers use), not a Bernoulli draw per entry.
        size = shape[0] * shape[1]
        out = np.zeros(size)
        where = rng.choice(size, int(round(density * size)), replace=False)
        out[where] = values(len(where))
        return out.reshape(shape)

    w = sparse((units, units), connectivity, rng.standard_normal)
    radius = float(np.max(np.abs(np.linalg.eigvals(w)))) if units else 0.0
    if radius > 0:
        w *= spectral_radius / radius
    w_in = sparse((units, inputs), input_connectivity,
                  lambda n: np.where(rng.random(n) < 0.5, -1.0, 1.0)) * input_scaling
    # Every unit hears the input when the sparse draw left it deaf everywhere (tiny reservoirs).
    if inputs and not np.any(w_in):
        w_in[:, 0] = input_scaling
    bias = rng.uniform(-1.0, 1.0, units) * bias_scaling
    return w, w_in, bias


@keras.saving.register_keras_serializable(package="rnnzoo")
class Reservoir(keras.layers.Layer):
    """An echo-state reservoir (fixed random weights, nothing trained): states of a leaky tanh
    recurrence over the window. ``return_sequences=False`` gives the last state."""

    def __init__(self, units: int, spectral_radius: float = 1.25, leak_rate: float = 0.3,
                 input_scaling: float = 1.0, connectivity: float = 0.1,
                 input_connectivity: float = 0.1, bias_scaling: float = 0.0, seed: int = 0,
                 return_sequences: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if not 0.0 < leak_rate <= 1.0:
            raise ValueError(f"leak_rate must be in (0, 1], got {leak_rate}")
        self.units = int(units)
        self.spectral_radius = float(spectral_radius)
        self.leak_rate = float(leak_rate)
        self.input_scaling = float(input_scaling)
        self.connectivity = float(connectivity)
        self.input_connectivity = float(input_connectivity)
        self.bias_scaling = float(bias_scaling)
        self.seed = int(seed)
        self.return_sequences = bool(return_sequences)
        if self.leak_rate == 1.0:
            self.rnn = keras.layers.SimpleRNN(self.units, return_sequences=True,
                                              trainable=False, name="esn_rnn")
        else:
            self.rnn = keras.layers.GRU(self.units, return_sequences=True, reset_after=True,
                                        trainable=False, name="esn_gru")

    def matrices(self, inputs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return reservoir_matrices(self.units, inputs, self.spectral_radius, self.connectivity,
                                  self.input_scaling, self.input_connectivity,
                                  self.bias_scaling, self.seed)

    def build(self, input_shape: Any) -> None:
        inputs = int(input_shape[-1])
        self.rnn.build(tuple(input_shape))
        w, w_in, bias = self.matrices(inputs)
        n = self.units
        if self.leak_rate == 1.0:
            self.rnn.set_weights([w_in.T, w.T, bias])
        else:
            kernel = np.zeros((inputs, 3 * n))
            kernel[:, 2 * n:] = w_in.T
            recurrent = np.zeros((n, 3 * n))
            recurrent[:, 2 * n:] = w.T
            gate_bias = np.zeros((2, 3 * n))
            gate_bias[0, :n] = math.log((1.0 - self.leak_rate) / self.leak_rate)  # z = 1 - a
            gate_bias[0, n:2 * n] = _OPEN_GATE  # r = 1
            gate_bias[0, 2 * n:] = bias
            self.rnn.set_weights([kernel, recurrent, gate_bias])
        self.built = True

    def recurrent_matrix(self) -> np.ndarray:
        """The reservoir matrix ``W`` as the layer holds it (float32 weights)."""
        recurrent = np.asarray(self.rnn.get_weights()[1], np.float64)
        return recurrent[:, -self.units:].T

    def call(self, x: Any, return_sequences: bool | None = None) -> Any:
        states = self.rnn(x)
        full = self.return_sequences if return_sequences is None else return_sequences
        return states if full else states[:, -1, :]

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units,
                "spectral_radius": self.spectral_radius, "leak_rate": self.leak_rate,
                "input_scaling": self.input_scaling, "connectivity": self.connectivity,
                "input_connectivity": self.input_connectivity,
                "bias_scaling": self.bias_scaling, "seed": self.seed,
                "return_sequences": self.return_sequences}
