"""Losses that save with a model (registered, so ``.keras`` files load with ``safe_mode``)."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="rnnzoo")
class FrameNLL(keras.losses.Loss):
    """Polyphonic frame NLL from logits: binary cross-entropy summed over the keys of a frame,
    averaged over the real frames of the batch (targets of padded frames are -1), in nats: the
    quantity the published piano-roll tables report."""

    def __init__(self, name: str = "frame_nll", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, logits: Any) -> Any:
        ops = keras.ops
        valid = ops.cast(ops.greater_equal(y_true, 0.0), "float32")
        y = ops.maximum(ops.cast(y_true, "float32"), 0.0)
        z = ops.cast(logits, "float32")
        per_frame = ops.sum((ops.softplus(z) - y * z) * valid, axis=-1)
        frames = ops.sum(valid[..., 0])
        return ops.sum(per_frame) / ops.maximum(frames, 1.0)
