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


@keras.saving.register_keras_serializable(package="rnnzoo")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of class probabilities against integer labels smoothed towards uniform:
    the target is ``1 - s + s/K`` for the gold class and ``s/K`` for the others. Keras'
    sparse loss has no ``label_smoothing``; this one-hot encodes the labels for the dense one.
    Why: a classifier trained from scratch on short phrases grows confident fast and
    overfits within a few epochs; smoothing caps the logits it is rewarded for."""

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_crossentropy",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        labels = ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred)[:-1])
        target = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(target, y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
