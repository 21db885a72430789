"""The layers, training model and deployed graphs shared by the encoder / attention-decoder
families.

The translator (source tokens -> encoder states) and the captioner (image -> grid of features)
differ in what they encode, not in how they decode: both feed the previous token to a recurrent
decoder started from the encoder's states, attend over the encoder's memory (Luong style: the
decoder's output queries it), combine the two and project to the vocabulary. The deployed
graphs are cut the same way too: the encoder returns the memory, its attention keys (projected
once per input, not per step) and the decoder's initial states; the decoder step takes one
token, the states, the memory and keys (plus the family's extra inputs, e.g. the source mask)
and returns logits, new states and attention weights. Both families inherit all of it from
here; only modules not starting with ``_`` are families. (What their two task types share on
the Keras side, the token loss and the graph runner, is ``rnnzoo.apps._attention_decoder``.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def key_dim(cfg: Any) -> int:
    """Width of the projected attention keys: additive scores project to ``attention_units``,
    multiplicative ones to the decoder's query width."""
    return cfg.attention_units if cfg.attention == "additive" else cfg.decoder_units


class AttentionDecoderGraphs:
    """Mixin for a task whose ``build_model`` fills ``self.layers_`` with its encoder's layers,
    ``token_embedding``'s layer, ``emb_drop``, ``logits`` and (``_decoder_layers``) the decoder
    and the rest of its head.

    The family provides ``_encoder_input()`` (the encoder graph's input), ``_encode(x)`` ->
    ``(memory, initial_states)``, ``_step_inputs()`` -> ``(memory_input, extra_inputs)``,
    ``_attention_mask(memory, *extra)`` (the 0/1 mask over the memory) and ``state_names(model
    config)``; ``_memory_extras(x)`` when the head reads more than the memory.
    """

    token_embedding: str = "emb"
    encoder_name: str = "encoder"
    state_names: Callable[[Any], list[str]]
    key_dim = staticmethod(key_dim)

    # -- layers and the training model ----------------------------------------------------------
    def _decoder_layers(self, num_layers: int, dropout: float) -> None:
        """Add the recurrent decoder and its head to ``self.layers_``: attention (unless
        ``attention: none``), ``combine`` (Luong's attentional hidden state, ``output_units``
        wide) and output dropout. The family adds ``logits`` (creation order fixes the seeds
        of a fresh model's weights and dropout, so it stays as it was)."""
        import keras

        from rnnzoo.layers import RecurrentStack, SequenceAttention

        m = self.config.model
        lay = self.layers_
        lay["decoder"] = RecurrentStack(m.decoder_units, cell=m.cell, num_layers=num_layers,
                                        dropout=dropout, return_sequences=True,
                                        return_state=True, name="decoder")
        if m.attention != "none":
            lay["attention"] = SequenceAttention(m.attention_units, score=m.attention,
                                                 name="attention")
        out_units = m.output_units or m.decoder_units
        if m.attention != "none" or out_units != m.decoder_units:
            lay["combine"] = keras.layers.Dense(out_units, activation="tanh", name="combine")
        lay["drop"] = keras.layers.Dropout(m.dropout, name="output_dropout")

    def _teacher_forcing(self, inputs: list, encoder_input: Any, target_in: Any) -> Any:
        """The training model: encode ``encoder_input``, run the decoder over the shifted
        target ``target_in`` from the encoder's states, attend, project."""
        import keras

        lay = self.layers_
        memory, init = self._encode(encoder_input)
        x = lay["emb_drop"](lay[self.token_embedding](target_in))
        dec_out, _ = lay["decoder"](x, initial_state=init)
        logits, _ = self._head(dec_out, memory, *self._memory_extras(encoder_input))
        return keras.Model(inputs, logits, name=self.config.name)

    def _memory_extras(self, encoder_input: Any) -> list:
        """What the head reads besides the memory, from the encoder's input (none here)."""
        return []

    def _head(self, dec_out: Any, memory: Any, *extra: Any, keys: Any = None
              ) -> tuple[Any, Any]:
        """``(logits, attention weights or None)`` of decoder outputs ``dec_out``."""
        import keras

        lay = self.layers_
        weights = None
        if "attention" in lay:
            context, weights = lay["attention"](dec_out, memory,
                                                self._attention_mask(memory, *extra), keys=keys)
            dec_out = keras.layers.Concatenate()([dec_out, context])
        if "combine" in lay:
            dec_out = lay["combine"](dec_out)
        return lay["logits"](lay["drop"](dec_out)), weights

    # -- the deployed graphs ---------------------------------------------------------------------
    @property
    def encoder(self) -> Any:
        if getattr(self, "_encoder", None) is None:
            import keras

            self.model  # noqa: B018  (builds the shared layers)
            inputs = self._encoder_input()
            memory, init = self._encode(inputs)
            outputs = [memory, *init]
            if "attention" in self.layers_:
                keys = self.layers_["attention"](memory, memory, keys_only=True)
                outputs = [memory, keys, *init]
            self._encoder = keras.Model(inputs, outputs, name=self.encoder_name)
        return self._encoder

    @property
    def decoder_step(self) -> Any:
        if getattr(self, "_decoder_step", None) is None:
            import keras

            from rnnzoo.layers import ExpandTime, SqueezeTime

            self.model  # noqa: B018
            m = self.config.model
            lay = self.layers_
            token = keras.Input((), dtype="int32", name="token")
            states = [keras.Input((m.decoder_units,), name=n) for n in self.state_names(m)]
            memory, extra = self._step_inputs()
            keys = keras.Input((memory.shape[1], self.key_dim(m)), name="encoder_keys")
            x = lay[self.token_embedding](ExpandTime(name="expand_time")(token))
            dec_out, new_states = lay["decoder"](x, initial_state=states)
            logits, weights = self._head(dec_out, memory, *extra, keys=keys)
            outputs = [SqueezeTime(name="squeeze_logits")(logits), *new_states]
            inputs = [token, *states]
            if weights is not None:
                inputs += [memory, keys, *extra]
                outputs.append(SqueezeTime(name="squeeze_attention")(weights))
            self._decoder_step = keras.Model(inputs, outputs, name="decoder_step")
        return self._decoder_step

    def encoder_graph(self) -> tuple[Any, list[str]]:
        attention = ["encoder_keys"] if self.config.model.attention != "none" else []
        return self.encoder, ["encoder_outputs", *attention, *self.state_names(self.config.model)]

    def decoder_graph(self) -> tuple[Any, list[str]]:
        m = self.config.model
        attention = ["attention"] if m.attention != "none" else []
        return self.decoder_step, ["logits", *[f"new_{n}" for n in self.state_names(m)],
                                   *attention]
