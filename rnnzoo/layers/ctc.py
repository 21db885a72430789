"""Layers, the loss and the training batches of CTC models (``ctc`` family,
``speech-recognition`` task; any CTC application).

The model's output carries its own frame count: valid frames hold log-probabilities (every row
sums below 0) and padded frames hold exact zeros, so the loss reads the output lengths from the
output itself and Keras and ONNX agree on every position of a padded batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from rnnzoo.engines.ctc import ctc_training_batches


@keras.saving.register_keras_serializable(package="rnnzoo")
class FrameSubsample(keras.layers.Layer):
    """Every ``stride``-th step of a ``[B, T, ...]`` tensor from step 0: ``ceil(T / stride)``
    steps, which is the frame mask of a strided convolution whose window is centred on those
    steps (a row of ``n`` valid frames keeps ``ceil(n / stride)``)."""

    def __init__(self, stride: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stride = int(stride)

    def call(self, inputs: Any) -> Any:
        return inputs if self.stride == 1 else inputs[:, :: self.stride]

    def compute_output_shape(self, input_shape: Any) -> Any:
        time = input_shape[1]
        time = None if time is None else -(-time // self.stride)
        return (input_shape[0], time, *input_shape[2:])

    def get_config(self) -> dict:
        return {**super().get_config(), "stride": self.stride}


@keras.saving.register_keras_serializable(package="rnnzoo")
class MaskedLogSoftmax(keras.layers.Layer):
    """``log_softmax(logits)`` on valid frames, exact 0 on padded ones (``mask`` [B, T], 0/1).
    No Keras mask leaves this layer: the loss is per utterance, not per frame."""

    def call(self, logits: Any, mask: Any) -> Any:
        ops = keras.ops
        logits = ops.cast(logits, "float32")
        return ops.log_softmax(logits, axis=-1) * ops.expand_dims(ops.cast(mask, "float32"), -1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


@keras.saving.register_keras_serializable(package="rnnzoo")
class CTCLoss(keras.losses.Loss):
    """Connectionist Temporal Classification loss (Graves et al. 2006), in nats per utterance.

    ``y_true`` holds label ids 1..K post-padded with -1; ``y_pred`` is the output of
    :class:`MaskedLogSoftmax` (its zero rows are padding). Blank is class 0."""

    def __init__(self, name: str = "ctc", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        y_true = ops.cast(y_true, "int32")
        valid = ops.greater_equal(y_true, 0)
        label_length = ops.sum(ops.cast(valid, "int32"), axis=1)
        labels = ops.where(valid, y_true, 0)
        y_pred = ops.cast(y_pred, "float32")
        frames = ops.sum(ops.cast(ops.less(ops.sum(y_pred, axis=-1), 0.0), "int32"), axis=1)
        return ops.ctc_loss(labels, y_pred, label_length, frames, mask_index=0)


def ctc_dataset(feats: Sequence[np.ndarray], labels: Sequence[np.ndarray], batch_size: int,
                shuffle: bool, seed: int,
                augment: Callable[[int, np.random.Generator], np.ndarray] | None = None
                ) -> tuple[Any, int]:
    """``(tf.data of ((features [B, T, F], mask [B, T]), labels [B, L] padded with -1),
    batches per epoch)`` over :func:`rnnzoo.engines.ctc.ctc_training_batches`: inputs of
    similar length batched together (a fresh jitter and batch order every epoch when
    ``shuffle``; ``augment``: random copies of the inputs, see there)."""
    import tensorflow as tf

    n_batches = -(-len(feats) // batch_size)
    n_features = feats[0].shape[1]
    sig = ((tf.TensorSpec([None, None, n_features], tf.float32),
            tf.TensorSpec([None, None], tf.float32)), tf.TensorSpec([None, None], tf.int32))
    batches = ctc_training_batches(feats, labels, batch_size, shuffle, seed, augment)
    ds = tf.data.Dataset.from_generator(batches, output_signature=sig)
    ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    return ds.prefetch(2), n_batches
