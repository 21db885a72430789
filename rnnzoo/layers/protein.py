"""The loss and the training Q8 of per-residue protein secondary structure models
(``protein`` family). Targets are ``Q8 id + 1`` with 0 at padded positions (the tagger's
convention)."""

from __future__ import annotations

from typing import Any

import keras

from rnnzoo.layers.tagging import _targets

ops = keras.ops

#: Q8 ("LBEGIHST") -> Q3 ("HEC") ids: H, G, I -> H; E, B -> E; L, S, T -> C.
Q3_OF_Q8 = (2, 1, 1, 0, 0, 0, 2, 2)


@keras.saving.register_keras_serializable(package="rnnzoo")
class ResidueCrossEntropy(keras.losses.Loss):
    """Q8 softmax cross-entropy averaged over the residues of a batch. A per-chain sum (the
    tagger's loss) would make a batch of 700-residue chains weigh 50 times a batch of short
    ones in the gradient and under ``clipnorm``; a residue mean keeps one scale.

    ``q3_weight`` adds that much of the cross-entropy of the Q3 probabilities (the sums of the
    Q8 probabilities over H+G+I, E+B, L+S+T): a multi-task Q8+Q3 loss with no extra head."""

    def __init__(self, q3_weight: float = 0.0, name: str = "residue_xent",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.q3_weight = float(q3_weight)

    def call(self, y_true: Any, logits: Any) -> Any:
        tags, mask = _targets(y_true)
        logits = ops.cast(logits, "float32")
        xent = keras.losses.sparse_categorical_crossentropy(tags, logits, from_logits=True)
        if self.q3_weight:
            groups = ops.one_hot(ops.convert_to_tensor(Q3_OF_Q8), 3, dtype="float32")  # [8, 3]
            q3 = ops.matmul(ops.softmax(logits, axis=-1), groups)
            t3 = ops.take(ops.convert_to_tensor(Q3_OF_Q8, "int32"), tags)
            xent = xent + self.q3_weight * keras.losses.sparse_categorical_crossentropy(
                t3, ops.clip(q3, 1e-7, 1.0))
        rows = ops.cast(ops.shape(mask)[0], "float32")
        # Per chain: its residues' sum scaled so that Keras' mean over the batch is the mean
        # over the batch's residues.
        return ops.sum(xent * mask, axis=1) * rows / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "q3_weight": self.q3_weight}


@keras.saving.register_keras_serializable(package="rnnzoo")
class ResidueAccuracy(keras.metrics.Mean):
    """Q8 accuracy over the residues of all batches (padding ignored): exactly the evaluation's
    Q8 on the same chains. Flattened first, because ``keras.metrics.Mean`` averages a [batch,
    time] input over time per row, which weighs each batch by 1 / its padded length."""

    def __init__(self, name: str = "q8", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        tags, mask = _targets(y_true)
        hit = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), tags),
                       "float32")
        return super().update_state(ops.reshape(hit, (-1,)),
                                    sample_weight=ops.reshape(mask, (-1,)))
