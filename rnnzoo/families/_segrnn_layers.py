"""The SegRNN layer (Lin et al. 2023, "SegRNN: Segment Recurrent Neural Network for Long-Term
Time Series Forecasting"), imported by ``rnnzoo.families.segrnn`` when it builds a model (this
module imports Keras; the family module stays TF-free).

Channel-independent: every column of the window is its own sequence. A window of ``L`` rows is
cut into ``L / w`` segments of ``w`` rows, each embedded by ``Dense(d) + ReLU``; one GRU runs
over the segments (``L / w`` steps instead of ``L``). Parallel multi-step forecasting (PMF):
each of the ``m = ceil(H / w)`` output segments starts one step of the *same* GRU from the
encoder's final state, with a learned position embedding (and a channel embedding) as input,
and a ``Dense(w)`` reads ``w`` values off the new state. No step waits for another.

PMF computed without repeating the state: a GRU step is ``x W + b_x`` and ``h U + b_h`` mixed
elementwise; the inputs (position, channel) do not depend on the batch and the state does not
depend on the output segment, so ``x W`` is computed once per (channel, segment) and ``h U``
once per (window, channel), and only the elementwise gate arithmetic runs over window x
channel x segment. That is exactly the reference implementation's GRU step (which repeats the
state ``m`` times and runs the whole cell on each copy), at the cost of one encoder step, so
720-step horizons train on a CPU. The encoder is a stock ``keras.layers.GRU`` (``reset_after``,
PyTorch's formulation): the export fuses it into one ONNX ``GRU`` operator.
"""

from __future__ import annotations

import math
from typing import Any

import keras


@keras.saving.register_keras_serializable(package="rnnzoo")
class SegmentRecurrence(keras.layers.Layer):
    """``[batch, L, channels]`` (each column already shifted by its last value) ->
    ``[batch, H, channels]``: segment embedding, GRU over segments, PMF decoding."""

    def __init__(self, seg_len: int, units: int, horizon: int, dropout: float = 0.0,
                 channel_embedding: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seg_len = int(seg_len)
        self.units = int(units)
        self.horizon = int(horizon)
        self.dropout = float(dropout)
        self.channel_embedding = bool(channel_embedding)
        self.out_segments = math.ceil(self.horizon / self.seg_len)
        self.embed = keras.layers.Dense(self.units, activation="relu", name="segment_embedding")
        self.gru = keras.layers.GRU(self.units, reset_after=True, name="segment_gru")
        self.drop = keras.layers.Dropout(self.dropout, name="segment_dropout")
        self.head = keras.layers.Dense(self.seg_len, name="segment_head")

    def build(self, input_shape: Any) -> None:
        lookback, channels = int(input_shape[1]), int(input_shape[2])
        if lookback % self.seg_len:
            raise ValueError(f"look-back {lookback} is not a multiple of seg_len "
                             f"{self.seg_len}")
        self.channels = channels
        self.in_segments = lookback // self.seg_len
        d = self.units
        self.embed.build((None, self.in_segments, self.seg_len))
        self.gru.build((None, self.in_segments, d))
        self.head.build((None, d))
        half = d // 2 if self.channel_embedding else d
        normal = keras.initializers.RandomNormal(stddev=1.0)  # torch.randn, as the reference
        self.position = self.add_weight(name="position_embedding",
                                        shape=(self.out_segments, half), initializer=normal)
        if self.channel_embedding:
            self.channel = self.add_weight(name="channel_embedding", shape=(channels, d - half),
                                           initializer=normal)
        self.built = True

    def call(self, x: Any, training: Any = None) -> Any:
        ops = keras.ops
        c, m, d, w = self.channels, self.out_segments, self.units, self.seg_len
        # [B, L, C] -> [B, C, L] -> [B*C, n, w]: one sequence of segments per column
        seg = ops.reshape(ops.transpose(x, (0, 2, 1)), (-1, self.in_segments, w))
        h = self.gru(self.embed(seg))  # [B*C, d], the state after the last segment
        # PMF: one GRU step per output segment from h, input = [position | channel]
        pos = ops.tile(ops.expand_dims(self.position, 0), (c, 1, 1))  # [C, m, d/2]
        if self.channel_embedding:
            chan = ops.tile(ops.expand_dims(self.channel, 1), (1, m, 1))  # [C, m, d/2]
            queries = ops.concatenate([pos, chan], axis=-1)  # [C, m, d]
        else:
            queries = pos
        cell = self.gru.cell
        bias = ops.reshape(cell.bias, (2, 3 * d))
        xw = ops.expand_dims(ops.matmul(queries, cell.kernel) + bias[0], 0)  # [1, C, m, 3d]
        hu = ops.reshape(ops.matmul(h, cell.recurrent_kernel) + bias[1], (-1, c, 1, 3 * d))
        z = ops.sigmoid(xw[..., :d] + hu[..., :d])
        r = ops.sigmoid(xw[..., d:2 * d] + hu[..., d:2 * d])
        candidate = ops.tanh(xw[..., 2 * d:] + r * hu[..., 2 * d:])
        state = ops.reshape(h, (-1, c, 1, d))
        hy = z * state + (1.0 - z) * candidate  # [B, C, m, d]
        y = self.head(self.drop(hy, training=training))  # [B, C, m, w]
        y = ops.reshape(y, (-1, c, m * w))[:, :, :self.horizon]
        return ops.transpose(y, (0, 2, 1))  # [B, H, C]

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.horizon, input_shape[2])

    def get_config(self) -> dict:
        return {**super().get_config(), "seg_len": self.seg_len, "units": self.units,
                "horizon": self.horizon, "dropout": self.dropout,
                "channel_embedding": self.channel_embedding}


@keras.saving.register_keras_serializable(package="rnnzoo")
class TakeColumns(keras.layers.Layer):
    """``x[:, :, index]``: the target columns of a forecast of every column."""

    def __init__(self, index: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = [int(i) for i in index]

    def call(self, x: Any) -> Any:
        import numpy as np

        return keras.ops.take(x, np.asarray(self.index, np.int32), axis=2)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], input_shape[1], len(self.index))

    def get_config(self) -> dict:
        return {**super().get_config(), "index": self.index}
