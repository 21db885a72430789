"""Small layers that let encoder-decoder models be written as functional Keras graphs (and so
be saved with ``safe_mode=True`` and exported to ONNX without Lambda layers)."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="rnnzoo")
class TokenMask(keras.layers.Layer):
    """1.0 for real tokens, 0.0 for padding (id 0), as float32 [B, S]."""

    def call(self, tokens: Any) -> Any:
        return keras.ops.cast(keras.ops.not_equal(tokens, 0), "float32")

    def compute_output_shape(self, shape: Any) -> Any:
        return shape


@keras.saving.register_keras_serializable(package="rnnzoo")
class ExpandTime(keras.layers.Layer):
    """[B] token -> [B, 1]: a length-1 sequence for a one-step decoder."""

    def call(self, x: Any) -> Any:
        return keras.ops.expand_dims(x, 1)

    def compute_output_shape(self, shape: Any) -> Any:
        return (shape[0], 1)


@keras.saving.register_keras_serializable(package="rnnzoo")
class SqueezeTime(keras.layers.Layer):
    """[B, 1, ...] -> [B, ...]; drops the Keras mask (one-step outputs need none)."""

    def call(self, x: Any, mask: Any = None) -> Any:
        return keras.ops.squeeze(x, 1)

    def compute_mask(self, x: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, shape: Any) -> Any:
        return (shape[0], *shape[2:])


@keras.saving.register_keras_serializable(package="rnnzoo")
class MaskedAccuracy(keras.metrics.Mean):
    """Token accuracy over non-padding target positions (id 0 ignored)."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        ops = keras.ops
        y_true = ops.cast(y_true, "int32")
        valid = ops.cast(ops.not_equal(y_true, 0), "float32")
        hit = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true),
                       "float32")
        return super().update_state(hit, sample_weight=valid)
