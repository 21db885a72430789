"""The encoder and one-step decoder graphs of the encoder / attention-decoder families.

The translator (source tokens -> encoder states) and the captioner (image -> grid of features)
differ in what they encode, not in how the deployed graphs are cut: the encoder returns the
memory, its attention keys (projected once per input, not per step) and the decoder's initial
states; the decoder step takes one token, the states, the memory and keys (plus the family's
extra inputs, e.g. the source mask) and returns logits, new states and attention weights. Both
families inherit the graphs from here; only modules not starting with ``_`` are families.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class AttentionDecoderGraphs:
    """Mixin for a task whose ``build_model`` fills ``self.layers_`` with ``decoder`` (a recurrent
    layer returning its states), ``token_embedding``'s layer and optionally ``attention``.

    The family provides ``_encoder_input()`` (the encoder graph's input), ``_encode(x)`` ->
    ``(memory, initial_states)``, ``_step_inputs()`` -> ``(memory_input, extra_inputs)`` and
    ``_head(dec_out, memory, *extra, keys=None)`` -> ``(logits, attention weights or None)``,
    plus ``state_names(model_config)`` and ``key_dim(model_config)``.
    """

    token_embedding: str = "emb"
    encoder_name: str = "encoder"
    state_names: Callable[[Any], list[str]]
    key_dim: Callable[[Any], int]

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
