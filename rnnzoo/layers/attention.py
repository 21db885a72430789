"""Attention over encoder outputs, masked by source padding (additive and multiplicative)."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="rnnzoo")
class SequenceAttention(keras.layers.Layer):
    """Scores decoder queries [B, T, Dq] against encoder values [B, S, Dv].

    ``score="additive"`` (Bahdanau et al. 2015): ``v . tanh(Wq q + Wk k)``.
    ``score="multiplicative"`` (Luong et al. 2015, "general"): ``q . (W k)``.
    Padded source positions (``value_mask`` 0) get no weight. Returns ``(context [B, T, Dv],
    weights [B, T, S])``. The source mask is an explicit float input (not a Keras mask) so that
    a one-step decoder exported to ONNX takes it as a plain tensor.
    """

    def __init__(self, units: int, score: str = "additive", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if score not in ("additive", "multiplicative"):
            raise ValueError(f"score must be 'additive' or 'multiplicative', got {score!r}")
        self.units = units
        self.score = score
        self.supports_masking = True

    def build(self, query_shape: Any, value_shape: Any = None,
              value_mask_shape: Any = None) -> None:
        dq, dv = int(query_shape[-1]), int(value_shape[-1])
        if self.score == "additive":
            self.wq = self.add_weight(name="wq", shape=(dq, self.units),
                                      initializer="glorot_uniform")
            self.wk = self.add_weight(name="wk", shape=(dv, self.units),
                                      initializer="glorot_uniform")
            self.v = self.add_weight(name="v", shape=(self.units,), initializer="random_normal")
        else:
            self.wk = self.add_weight(name="wk", shape=(dv, dq), initializer="glorot_uniform")
        self.built = True

    def call(self, query: Any, value: Any, value_mask: Any = None, keys: Any = None,
             keys_only: bool = False) -> Any:
        """``keys_only=True`` returns the projected keys ``W_k value`` alone: a decoder computes
        them once per source sentence and passes them back as ``keys`` at every step."""
        ops = keras.ops
        if keys is None:
            keys = ops.matmul(value, ops.cast(self.wk, value.dtype))  # B S U (or B S Dq)
        if keys_only:
            return keys
        if self.score == "additive":
            q = ops.matmul(query, ops.cast(self.wq, query.dtype))[:, :, None, :]   # B T 1 U
            scores = ops.sum(ops.tanh(q + keys[:, None, :, :]) * ops.cast(self.v, query.dtype),
                             axis=-1)                                              # B T S
        else:
            scores = ops.matmul(query, ops.transpose(keys, (0, 2, 1)))             # B T S
        mask = ops.cast(value_mask, scores.dtype)[:, None, :]
        scores = scores + (1.0 - mask) * ops.cast(-1e4, scores.dtype)
        scores = scores - ops.max(scores, axis=-1, keepdims=True)
        weights = ops.exp(scores) * mask
        weights = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True),
                                        ops.cast(1e-9, weights.dtype))
        context = ops.matmul(weights, value)
        return context, weights

    def compute_mask(self, query: Any, value: Any = None, value_mask: Any = None,
                     keys: Any = None, keys_only: bool = False, mask: Any = None) -> Any:
        if keys_only:
            return None
        query_mask = mask[0] if isinstance(mask, (list, tuple)) else mask
        return [query_mask, query_mask]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(units=self.units, score=self.score)
        return config
