"""Regularisers for word-level text models that have no pretrained embeddings."""

from __future__ import annotations

from typing import Any

import keras

ops = keras.ops


@keras.saving.register_keras_serializable(package="rnnzoo")
class WordDropout(keras.layers.Layer):
    """During training, replace each real token id by ``unk_id`` with probability ``rate``
    (padding, id 0, is kept); at inference the ids pass unchanged.

    Why: a vocabulary fitted on the training text covers every training word, so the
    ``<unk>`` embedding is never trained and every unseen word at test time reads as noise.
    Dropping words to ``<unk>`` trains that embedding and keeps the encoder from leaning on
    a single word (Iyyer et al. 2015; Lample et al. 2016). The layer holds no weights, so
    adding it changes no checkpoint; the seed state is a variable, as in Keras' Dropout."""

    def __init__(self, rate: float, unk_id: int = 1, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.unk_id = int(unk_id)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, tokens: Any, training: bool | None = None) -> Any:
        if not training or self.rate == 0.0:
            return tokens
        draw = keras.random.uniform(ops.shape(tokens), seed=self.seed_generator)
        drop = ops.logical_and(draw < self.rate, ops.not_equal(tokens, 0))
        return ops.where(drop, ops.cast(self.unk_id, tokens.dtype), tokens)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "unk_id": self.unk_id,
                "seed": self.seed}
