"""What the two attention-decoder task types (translation, image captioning) share on the Keras
side: a teacher-forced training model whose logits score every target token (padding ignored,
accuracy over real tokens), and user calls that decode through the task's own encoder and
one-step decoder graphs (``rnnzoo.task.KerasGraphs``). Their TF-free half (the decoding engine,
the verb, the reports) is ``rnnzoo.engines.seq2seq``; the layers and graphs their families
build are ``rnnzoo.families._attention_decoder``. TensorFlow is imported inside functions only.
"""

from __future__ import annotations

from typing import Any

from rnnzoo.engines.decoding import GraphRunner


class AttentionDecoderTask:
    """Mixin for the Task subclass of an attention-decoder task type (before ``Task`` in its
    bases): its loss, metrics and the Keras ``GraphRunner`` its user calls decode with."""

    def loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)

    def metrics(self) -> list:
        from rnnzoo.layers import MaskedAccuracy

        return [MaskedAccuracy(name="token_accuracy")]

    def _runner(self) -> GraphRunner:
        self.require_fitted()
        return self.keras_graphs()
