"""A recurrent stack that can carry its state from one batch to the next (truncated BPTT).

char-rnn trains a language model on one long text cut into consecutive segments: the state at
the end of segment k is the initial state of segment k+1 (gradients stop at the boundary). Keras'
own ``stateful=True`` fixes the batch size in the model's input, which the exported graphs must
not have; here the carried states live in variables held *outside* the layer's weights (they are
not saved, not exported, not in checkpoints), attached only while the training loop runs
(``rnnzoo.apps.text_generation.model.TextGenerationTask.fit``). Without them the layer is
exactly a ``RecurrentStack`` with ``return_state=True``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras

from rnnzoo.layers.recurrent import RecurrentStack


@keras.saving.register_keras_serializable(package="rnnzoo")
class CarriedRecurrentStack(RecurrentStack):
    """``RecurrentStack`` whose initial state, when none is passed, is read from the carried
    variables for the batch size of the call, and whose final state is written back to them."""

    def attach_carry(self, carry: Mapping[int, Sequence[Any]] | None) -> None:
        """Carried state variables per static batch size (``None`` detaches them). Set with
        ``object.__setattr__`` so neither Keras nor TensorFlow tracks them as weights."""
        object.__setattr__(self, "_carry", dict(carry) if carry else None)

    def call(self, inputs: Any, mask: Any = None, initial_state: list | None = None,
             training: bool | None = None) -> Any:
        carry = self.__dict__.get("_carry")
        batch = inputs.shape[0]
        if initial_state is None and carry and batch in carry and self.return_state:
            variables = carry[batch]
            state = [keras.ops.cast(v, self.compute_dtype) for v in variables]
            x, states = super().call(inputs, mask=mask, initial_state=state, training=training)
            for v, s in zip(variables, states):
                v.assign(keras.ops.cast(keras.ops.stop_gradient(s), v.dtype))
            return x, states
        return super().call(inputs, mask=mask, initial_state=initial_state, training=training)
