"""RNN-NADE polyphonic music generator (Boulanger-Lewandowski, Bengio & Vincent, ICML 2012).

The independent-sigmoid ``music`` family predicts the 88 keys of a frame independently given
the past, but the notes of a chord depend on each other. Here the recurrent state emits, per
frame, the two biases of a NADE (``b_v``, 88, and ``b_h``, ``nade_units``) whose weights
``W``, ``V`` (``[88, nade_units]``) are shared by every frame; the NADE models the frame key by
key, lowest first (``rnnzoo.apps.music_generation.nade``), so the frame likelihood is exact.

* ``model`` (training and scoring): ``frames [B, T, 88]`` (start frame, then the piece shifted by
  one) and ``targets`` (int32 ``[B, T, 88]``, the piece) -> ``logits [B, T, 88]``, the
  conditional logit of each key given the past frames and the keys below it in its target
  frame. The frame NLL loss on these logits is the exact NADE negative log-likelihood,
  computed in one pass.
* ``step``: ``(frame, state_0, ...) -> (logits [B, 88 + nade_units] = [b_v | b_h],
  new_state_0, ...)``; the key-by-key sampling from it runs in numpy on both backends, with
  ``W`` and ``V`` read once from the ``nade`` graph (``keys [n] -> W, V`` rows).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from rnnzoo.apps.music_generation.data import NUM_KEYS, DataConfig
from rnnzoo.apps.music_generation.model import MusicGenerationTask
from rnnzoo.config import rule
from rnnzoo.engines.stream import state_names as stream_state_names
from rnnzoo.families.music import pattern_piece, synthetic_dataset  # noqa: F401 (family API)

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(256, min=1)
    num_layers: int = rule(1, min=1)
    reset_after: bool = True  # GRU only
    # Hidden units of the NADE (150 in the paper).
    nade_units: int = rule(150, min=1)
    # Dropout on the input frames, between recurrent layers and on the state the biases are
    # read from (as the independent-sigmoid family).
    input_dropout: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    dropout: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)
    # Initial visible bias: about log(4 / 84), as ~4 of 88 keys sound per frame.
    output_bias_init: float = -3.0


def state_names(cfg: ModelConfig) -> list[str]:
    return stream_state_names(cfg.cell, cfg.num_layers)


_NADE_LAYER: list = []  # the layer class, defined (and registered with Keras) on first use


def _nade_layer_class() -> Any:
    """The Keras layer class, made on first use so importing this module needs no Keras."""
    if _NADE_LAYER:
        return _NADE_LAYER[0]
    import keras

    ops = keras.ops

    @keras.saving.register_keras_serializable(package="rnnzoo")
    class NadeConditionals(keras.layers.Layer):
        """The NADE's shared weights ``W``, ``V`` and its teacher-forced conditionals: for
        biases ``b_v [..., 88]``, ``b_h [..., H]`` and the frame's keys ``[..., 88]`` (0/1;
        -1 padding counts as 0), the logit of each key given the keys below it, for every
        key of every frame in one pass."""

        def __init__(self, num_keys: int, units: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.num_keys, self.units = num_keys, units

        def get_config(self) -> dict:
            return {**super().get_config(), "num_keys": self.num_keys, "units": self.units}

        def build(self, input_shape: Any) -> None:
            init = keras.initializers.GlorotUniform(seed=None)
            self.w = self.add_weight(shape=(self.num_keys, self.units), initializer=init,
                                     name="W")
            self.v = self.add_weight(shape=(self.num_keys, self.units), initializer=init,
                                     name="V")
            self.built = True

        def call(self, b_v: Any, b_h: Any, keys: Any) -> Any:
            # The hidden pre-activation of key k sums W over the sounding keys below k, so it
            # changes only at sounding keys: with c_k = how many keys below k sound, it takes
            # one of max(c) + 1 values per frame (a chord has a few notes), not 88. Those few
            # hidden vectors are computed, each key reads the one of its segment c_k. Exact,
            # and about 88 / (polyphony + 1) times cheaper than a cumulative sum over keys.
            f = self.compute_dtype
            keys = ops.maximum(ops.cast(keys, f), 0.0)
            below = ops.cumsum(keys, axis=-1) - keys  # c_k: [..., K]
            segments = ops.arange(ops.max(ops.sum(keys, axis=-1)) + 1.0, dtype=f)  # [S]
            below = ops.expand_dims(below, -2)  # [..., 1, K]
            segments = ops.expand_dims(segments, -1)  # [S, 1]
            # Segment s sums W over the sounding keys j with c_j < s: [..., S, K] @ [K, H].
            chosen = ops.expand_dims(keys, -2) * ops.cast(ops.less(below, segments), f)
            hidden = ops.sigmoid(ops.matmul(chosen, self.w) + ops.expand_dims(b_h, -2))
            per_segment = ops.matmul(hidden, ops.transpose(self.v))  # [..., S, K]
            mine = ops.cast(ops.equal(below, segments), f)  # key k reads segment c_k
            return b_v + ops.sum(mine * per_segment, axis=-2)

    _NADE_LAYER.append(NadeConditionals)
    return NadeConditionals


class Task(MusicGenerationTask):
    """An RNN-NADE music generator: ``generate(64, temperature=1.0, top_p=None, seed=0)``
    samples each frame key by key; ``nll(pieces)`` is the exact frame NLL."""

    frame_distribution = "nade"

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack

        m = self.config.model
        L = keras.layers
        self.layers_ = {
            "input_dropout": L.Dropout(m.input_dropout, name="input_dropout"),
            "rnn": RecurrentStack.from_model_config(m, return_sequences=True, return_state=True,
                                                    name="rnn"),
            "output_dropout": L.Dropout(m.dropout, name="output_dropout"),
            # float32 even under a mixed-precision policy: the likelihood needs the range.
            "visible_bias": L.Dense(NUM_KEYS, name="visible_bias", dtype="float32",
                                    bias_initializer=keras.initializers.Constant(
                                        m.output_bias_init)),
            "hidden_bias": L.Dense(m.nade_units, name="hidden_bias", dtype="float32"),
            "nade": _nade_layer_class()(NUM_KEYS, m.nade_units, name="nade", dtype="float32"),
        }
        self._step = None
        frames = keras.Input((None, NUM_KEYS), name="frames")
        targets = keras.Input((None, NUM_KEYS), dtype="int32", name="targets")
        x, _ = self.layers_["rnn"](self.layers_["input_dropout"](frames))
        x = self.layers_["output_dropout"](x)
        logits = self.layers_["nade"](self.layers_["visible_bias"](x),
                                      self.layers_["hidden_bias"](x), targets)
        return keras.Model([frames, targets], logits, name=self.config.name)

    def step_graph(self) -> tuple[Any, list[str]]:
        if getattr(self, "_step", None) is None or self._step[0] is not self.model:
            import keras

            ops = keras.ops
            m = self.config.model
            lay = self.layers_
            frame = keras.Input((NUM_KEYS,), dtype="int32", name="frame")
            states = [keras.Input((m.units,), name=n) for n in state_names(m)]
            x = ops.expand_dims(ops.cast(frame, "float32"), 1)
            out, new_states = lay["rnn"](lay["input_dropout"](x), initial_state=states)
            out = ops.squeeze(lay["output_dropout"](out), 1)
            biases = ops.concatenate([lay["visible_bias"](out), lay["hidden_bias"](out)], -1)
            step = keras.Model([frame, *states], [biases, *new_states], name="music_nade_step")
            self._step = (self.model, step)
        return self._step[1], ["logits", *[f"new_{n}" for n in state_names(self.config.model)]]

    def _nade_weights(self) -> tuple[np.ndarray, np.ndarray]:
        layer = self.model.get_layer("nade")
        return (np.asarray(layer.w.numpy(), np.float32),
                np.asarray(layer.v.numpy(), np.float32))

    def nade_graph(self) -> Any:
        """``keys`` (int32 ``[n]``, key indices) -> rows ``W``, ``V`` (``[n, nade_units]``) of
        the NADE weights: the bundle's ``nade`` graph, which the runtime runs once (all 88
        keys) to sample key by key in numpy."""
        if getattr(self, "_nade_graph", None) is None or self._nade_graph[0] is not self.model:
            import keras

            layer = self.layers_["nade"]
            keys = keras.Input((), dtype="int32", name="keys")
            rows = [keras.ops.take(layer.w, keys, axis=0), keras.ops.take(layer.v, keys, axis=0)]
            self._nade_graph = (self.model, keras.Model(keys, rows, name="music_nade_weights"))
        return self._nade_graph[1]


# -- test support -------------------------------------------------------------------------------
TINY_OVERRIDES = {
    "model": {"units": 8, "num_layers": 1, "nade_units": 8, "input_dropout": 0.0,
              "dropout": 0.0},
    "data": {"max_length": 32},
    "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 0, "early_stopping_patience": 0},
}
