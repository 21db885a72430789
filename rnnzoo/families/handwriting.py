"""Online handwriting recognizer (Graves et al. 2009): point features -> optional strided 1-D
convolution -> recurrent stack -> per-frame softmax over the alphabet plus blank, trained with
CTC.

Data, features, ``recognize``, decoding, metrics, export and the runtime come from the
``handwriting-recognition`` task type (the decoders, scores and loss are the speech
recognizer's); this family only builds the Keras models. Two layouts:

* ``streaming: false`` (``handwriting_bilstm_ctc``): a convolution window centred on every
  ``conv_stride``-th point (``conv_filters > 0``; it halves the recurrent steps, most of the
  training time) and a bidirectional LSTM or GRU stack: every output reads the whole line;
* ``streaming: true`` (``handwriting_lstm_stream``): no convolution, a unidirectional stack:
  no output reads ahead, so a line is recognised stroke by stroke as it is written. Besides the
  training ``model`` it builds the ``stream`` graph: a stroke's features and the recurrent
  states in, log-probabilities and the new states out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.apps.handwriting_recognition.data import N_FEATURES, DataConfig, write_inkml
from rnnzoo.apps.handwriting_recognition.model import HandwritingRecognitionTask
from rnnzoo.config import rule

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    num_labels: int = rule(80, min=1)  # alphabet size; the output has one more (the blank)
    conv_filters: int = rule(0, min=0)  # 0: no convolution front end
    conv_kernel: int = rule(5, min=1)  # odd: centred on the kept points
    conv_stride: int = rule(1, min=1, max=8)
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(128, min=1)
    num_layers: int = rule(2, min=1)
    reset_after: bool = True  # GRU only
    input_dropout: float = rule(0.0, min=0.0, max=1.0, max_exclusive=True)
    dropout: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)
    # A unidirectional stack without convolution: model.stream() recognises stroke by stroke.
    streaming: bool = False

    def check(self) -> list[str]:
        problems = []
        if self.conv_kernel % 2 == 0:
            problems.append(f"conv_kernel: must be odd (centred on the kept points), found "
                            f"{self.conv_kernel}")
        if self.conv_stride > 1 and not self.conv_filters:
            problems.append("conv_stride: striding needs the convolution front end; set "
                            "conv_filters > 0 or conv_stride: 1")
        if self.streaming and self.conv_filters:
            problems.append("conv_filters: a streaming recognizer has no convolution front end "
                            "(it would read points ahead); set conv_filters: 0")
        return problems


class Task(HandwritingRecognitionTask):
    """A handwriting recognizer. ``recognize(["line.inkml"])`` returns its text; with
    ``streaming: true`` also ``stream()`` (one stroke per ``step``)."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack
        from rnnzoo.layers.ctc import FrameSubsample, MaskedLogSoftmax

        m = self.config.model
        L = keras.layers
        lay = self.__dict__["stream_layers_"] = {
            "encoder": RecurrentStack.from_model_config(
                m, bidirectional=not m.streaming, return_sequences=True,
                return_state=m.streaming, name="encoder"),
            "logits": L.Dense(m.num_labels + 1, dtype="float32", name="logits"),
        }
        self.__dict__["_stream_graph"] = None
        features = keras.Input((None, N_FEATURES), name="features")
        mask = keras.Input((None,), name="mask")
        # Padded points are zeroed, so the convolution sees what a lone row's padding gives.
        x = L.Multiply(name="masked_features")([features, L.Reshape((-1, 1))(mask)])
        frames = mask
        if m.conv_filters:
            pad = m.conv_kernel // 2
            x = L.ZeroPadding1D((pad, pad), name="conv_pad")(x)
            x = L.Conv1D(m.conv_filters, m.conv_kernel, strides=m.conv_stride,
                         activation="relu", name="conv")(x)
            frames = FrameSubsample(m.conv_stride, name="frame_mask")(mask)
        x = L.Dropout(m.input_dropout, name="input_dropout")(x)
        x = lay["encoder"](x, mask=keras.ops.cast(frames, "bool"))
        if m.streaming:
            x = x[0]
        x = L.Dropout(m.dropout, name="dropout")(x)
        log_probs = MaskedLogSoftmax(name="log_probs")(lay["logits"](x), frames)
        return keras.Model([features, mask], log_probs, name=self.config.name)

    def stream_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)`` of the ``stream`` graph: ``features [B, t, 5]``
        (the next points) and the recurrent states ``state_<i>`` -> ``log_probs [B, t, 1 +
        K]`` and ``new_state_<i>``. Run over a line's points in pieces it gives the ``model``
        graph's log-probabilities of the whole line."""
        from rnnzoo.errors import ConfigError

        m = self.config.model
        if not m.streaming:
            raise ConfigError(f"{self.name}: the stream graph needs streaming: true")
        model = self.model
        cached = self.__dict__.get("_stream_graph")
        if cached is None or cached[0] is not model:
            import keras

            lay = self.__dict__["stream_layers_"]
            features = keras.Input((None, N_FEATURES), name="features")
            states = [keras.Input((m.units,), name=f"state_{i}")
                      for i in range(lay["encoder"].states_per_layer * m.num_layers)]
            x, rnn_states = lay["encoder"](features, initial_state=states)
            log_probs = keras.ops.log_softmax(lay["logits"](x), axis=-1)
            outputs = [log_probs, *rnn_states]
            names = ["log_probs", *[f"new_state_{i}" for i in range(len(rnn_states))]]
            graph = keras.Model([features, *states], outputs, name=f"{self.config.name}_stream")
            cached = (model, graph, names)
            self.__dict__["_stream_graph"] = cached
        return cached[1], cached[2]


# -- test support -------------------------------------------------------------------------------
TINY_OVERRIDES = {
    "model": {"num_labels": 3, "units": 8, "num_layers": 1, "input_dropout": 0.0,
              "dropout": 0.0},
    "data": {"beam_width": 2, "spacing": 0.25, "alphabet": ""},
    "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 0, "early_stopping_patience": 0,
                 "intra_op_threads": 1, "monitor": "val_loss"},
}

# Synthetic "handwriting": each symbol is a shape of its own (a circle, a bar, a zigzag).
SHAPES = "abc"


def symbol_strokes(ch: str, x0: float, rng: np.random.Generator) -> list[np.ndarray]:
    """The strokes of one synthetic symbol at ``x0`` (jittered), y down, height ~100."""
    j = lambda n: rng.normal(0, 2.0, (n, 2))  # noqa: E731
    if ch == "a":
        t = np.linspace(0, 2 * np.pi, 20)
        return [np.stack([x0 + 30 + 30 * np.cos(t), 50 + 40 * np.sin(t)], axis=1) + j(20)]
    if ch == "b":
        return [np.stack([np.full(12, x0 + 20.0), np.linspace(0, 100, 12)], axis=1) + j(12)]
    return [np.stack([x0 + np.linspace(0, 60, 5), np.array([20, 80, 20, 80, 20.0])], axis=1)
            + j(5)]


def synthetic_dataset(directory: str | Path, n: int = 300, seed: int = 0) -> Path:
    """A learnable folder in the user layout: ``n`` InkML lines of 1-4 symbols from three
    shapes, and ``transcripts.tsv`` with their symbols (``a``, ``b``, ``c``)."""
    rng = np.random.default_rng(seed)
    folder = Path(directory) / "synthetic_ink"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        text = "".join(rng.choice(list(SHAPES), size=int(rng.integers(1, 5))))
        strokes: list[np.ndarray] = []
        x = 0.0
        for ch in text:
            strokes += symbol_strokes(ch, x, rng)
            x += float(rng.uniform(80, 110))
        write_inkml(folder / f"line{i:04d}.inkml", [np.round(s, 1) for s in strokes])
        lines.append(f"line{i:04d}.inkml\t{text}")
    (folder / "transcripts.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
