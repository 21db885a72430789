"""CTC recognizer: log-mel frames -> optional strided convolution -> recurrent stack -> per-frame
softmax over the alphabet plus blank (Graves et al. 2006).

Data, features, ``transcribe``, decoding, metrics, export and the runtime come from the
``speech-recognition`` task type; this family only builds the Keras models. The convolution
(``conv_filters > 0``) shortens the sequence by ``conv_stride`` before the recurrent layers,
which is most of the training time. Two layouts:

* ``streaming: false`` (``ctc_bilstm``, ``ctc_bigru``): centred log-mel frames, a convolution
  window centred on every ``conv_stride``-th frame with explicit zero padding, a bidirectional
  stack: every output frame reads the whole utterance;
* ``streaming: true`` (``ctc_lstm_stream``): causal log-mel frames, a convolution window that
  *ends* on every ``conv_stride``-th frame (``conv_kernel - 1`` zero frames on the left only),
  a unidirectional stack: no output reads ahead, so audio can be transcribed as it arrives.
  Besides the training ``model`` it builds the ``stream`` graph: new frames, the convolution's
  left context and the recurrent states in, log-probabilities and the new states out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.apps.speech_recognition.data import DataConfig, write_wav
from rnnzoo.apps.speech_recognition.model import SpeechRecognitionTask
from rnnzoo.config import rule

__all__ = ["CTCModels", "DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    num_labels: int = rule(10, min=1)  # alphabet size; the output has one more (the blank)
    conv_filters: int = rule(0, min=0)  # 0: no convolution front end
    conv_kernel: int = rule(5, min=1)  # odd: centred on the kept frames
    conv_stride: int = rule(1, min=1, max=8)
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(128, min=1)
    num_layers: int = rule(2, min=1)
    reset_after: bool = True  # GRU only
    input_dropout: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    dropout: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)
    # Causal features, convolution and a unidirectional stack: model.stream() transcribes
    # audio chunk by chunk (false: bidirectional, every frame reads the whole utterance).
    streaming: bool = False

    def check(self) -> list[str]:
        problems = []
        if self.conv_kernel % 2 == 0 and not self.streaming:
            problems.append(f"conv_kernel: must be odd (centred on the kept frames), found "
                            f"{self.conv_kernel}")
        if self.conv_stride > 1 and not self.conv_filters:
            problems.append("conv_stride: striding needs the convolution front end; set "
                            "conv_filters > 0 or conv_stride: 1")
        return problems


class CTCModels:
    """The Keras models of a CTC recognizer over ``num_features``-wide frames, for any CTC task
    (:class:`rnnzoo.apps._ctc.CTCTask`): speech here, handwriting in
    :mod:`rnnzoo.families.handwriting`."""

    config: Any
    name: str
    num_features: int

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack
        from rnnzoo.layers.ctc import FrameSubsample, MaskedLogSoftmax

        m = self.config.model
        L = keras.layers
        if m.streaming:
            return self._build_streaming()
        features = keras.Input((None, self.num_features), name="features")
        mask = keras.Input((None,), name="mask")
        # Padded frames are zeroed, so the convolution sees what a lone row's padding gives.
        x = L.Multiply(name="masked_features")([features, L.Reshape((-1, 1))(mask)])
        frames = mask
        if m.conv_filters:
            pad = m.conv_kernel // 2
            x = L.ZeroPadding1D((pad, pad), name="conv_pad")(x)
            x = L.Conv1D(m.conv_filters, m.conv_kernel, strides=m.conv_stride,
                         activation="relu", name="conv")(x)
            frames = FrameSubsample(m.conv_stride, name="frame_mask")(mask)
        x = L.Dropout(m.input_dropout, name="input_dropout")(x)
        x = RecurrentStack.from_model_config(m, bidirectional=True, return_sequences=True,
                                             name="encoder")(x, mask=keras.ops.cast(frames, "bool"))
        x = L.Dropout(m.dropout, name="dropout")(x)
        logits = L.Dense(m.num_labels + 1, dtype="float32", name="logits")(x)
        log_probs = MaskedLogSoftmax(name="log_probs")(logits, frames)
        return keras.Model([features, mask], log_probs, name=self.config.name)

    # -- streaming ----------------------------------------------------------------------------
    def _build_streaming(self) -> Any:
        """The training/whole-utterance model of a streaming recognizer, its layers kept for
        the ``stream`` graph (which shares them)."""
        import keras

        from rnnzoo.layers import RecurrentStack
        from rnnzoo.layers.ctc import FrameSubsample, MaskedLogSoftmax

        m = self.config.model
        L = keras.layers
        lay = self.__dict__["stream_layers_"] = {
            "conv": L.Conv1D(m.conv_filters, m.conv_kernel, strides=m.conv_stride,
                             activation="relu", name="conv") if m.conv_filters else None,
            "encoder": RecurrentStack.from_model_config(m, bidirectional=False,
                                                        return_sequences=True,
                                                        return_state=True, name="encoder"),
            "logits": L.Dense(m.num_labels + 1, dtype="float32", name="logits"),
        }
        self.__dict__["_stream_graph"] = None
        features = keras.Input((None, self.num_features), name="features")
        mask = keras.Input((None,), name="mask")
        x = L.Multiply(name="masked_features")([features, L.Reshape((-1, 1))(mask)])
        frames = mask
        if lay["conv"] is not None:
            # Left padding only: output j reads frames j*stride - (kernel - 1) .. j*stride.
            x = L.ZeroPadding1D((m.conv_kernel - 1, 0), name="conv_pad")(x)
            x = lay["conv"](x)
            frames = FrameSubsample(m.conv_stride, name="frame_mask")(mask)
        x = L.Dropout(m.input_dropout, name="input_dropout")(x)
        x, _ = lay["encoder"](x, mask=keras.ops.cast(frames, "bool"))
        x = L.Dropout(m.dropout, name="dropout")(x)
        log_probs = MaskedLogSoftmax(name="log_probs")(lay["logits"](x), frames)
        return keras.Model([features, mask], log_probs, name=self.config.name)

    def stream_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)`` of the ``stream`` graph: ``features [B, t, F]``
        (the next frames, ``t`` a multiple of ``conv_stride`` except at a stream's end),
        ``state_0`` the last ``conv_kernel - 1`` frames before them (with a convolution) and
        the recurrent states -> ``log_probs [B, ceil(t / stride), 1 + K]`` and
        ``new_state_<i>``. Run over a signal's frames in pieces it gives the ``model``
        graph's log-probabilities of the whole signal."""
        from rnnzoo.errors import ConfigError

        m = self.config.model
        if not m.streaming:
            raise ConfigError(f"{self.name}: the stream graph needs streaming: true")
        model = self.model
        cached = self.__dict__.get("_stream_graph")
        if cached is None or cached[0] is not model:
            import keras

            lay = self.__dict__["stream_layers_"]
            n = self.num_features
            features = keras.Input((None, n), name="features")
            inputs, new = [features], []
            x = features
            if lay["conv"] is not None:
                if m.conv_kernel > 1:
                    context = keras.Input((m.conv_kernel - 1, n), name="state_0")
                    inputs.append(context)
                    x = keras.layers.Concatenate(axis=1, name="with_context")([context, x])
                    # (a fixed shape, so the exported new_state_0 says it is state_0's)
                    new.append(keras.layers.Reshape((m.conv_kernel - 1, n), name="new_context")(
                        x[:, -(m.conv_kernel - 1):]))
                x = lay["conv"](x)
            first = len(inputs) - 1
            states = [keras.Input((m.units,), name=f"state_{first + i}")
                      for i in range(lay["encoder"].states_per_layer * m.num_layers)]
            x, rnn_states = lay["encoder"](x, initial_state=states)
            log_probs = keras.ops.log_softmax(lay["logits"](x), axis=-1)
            outputs = [log_probs, *new, *rnn_states]
            names = ["log_probs", *[f"new_state_{i}" for i in range(len(outputs) - 1)]]
            graph = keras.Model([*inputs, *states], outputs, name=f"{self.config.name}_stream")
            cached = (model, graph, names)
            self.__dict__["_stream_graph"] = cached
        return cached[1], cached[2]


class Task(CTCModels, SpeechRecognitionTask):
    """A CTC recognizer. ``transcribe(["a.wav", "b.wav"])`` returns their transcripts; with
    ``streaming: true`` also ``stream()`` and ``transcribe(audio, stream=True)``."""


# -- test support -------------------------------------------------------------------------------
TINY_OVERRIDES = {
    "model": {"num_labels": 3, "conv_filters": 8, "conv_kernel": 3, "conv_stride": 2,
              "units": 8, "num_layers": 1, "input_dropout": 0.0, "dropout": 0.0},
    "data": {"n_mels": 16, "beam_width": 2},
    "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 0, "early_stopping_patience": 0,
                 "intra_op_threads": 1},
}

# Synthetic "speech": each symbol is a tone burst of its own pitch.
TONES = {"a": 500.0, "b": 1200.0, "c": 2200.0}


def tone_string(text: str, rng: np.random.Generator, rate: int = 8000) -> np.ndarray:
    """Tone bursts (0.08-0.16 s) for the symbols of ``text``, separated by short silences,
    with random amplitude and a faint noise floor."""
    parts = [np.zeros(int(rng.integers(0, int(0.05 * rate))), np.float32)]
    for ch in text:
        n = int(rng.uniform(0.08, 0.16) * rate)
        t = np.arange(n) / rate
        env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
        amp = rng.uniform(0.2, 0.6)
        parts.append((amp * env * np.sin(2 * np.pi * TONES[ch] * t)).astype(np.float32))
        parts.append(np.zeros(int(rng.uniform(0.03, 0.08) * rate), np.float32))
    audio = np.concatenate(parts)
    return audio + rng.normal(0, 1e-3, audio.shape).astype(np.float32)


def synthetic_dataset(directory: str | Path, n: int = 300, seed: int = 0) -> Path:
    """A learnable folder in the user layout: ``n`` WAV files (8 kHz) of 1-4 tone bursts from
    three pitches, and ``transcripts.tsv`` with their symbols (``a``, ``b``, ``c``)."""
    rng = np.random.default_rng(seed)
    folder = Path(directory) / "synthetic_speech"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        text = "".join(rng.choice(list(TONES), size=int(rng.integers(1, 5))))
        write_wav(folder / f"utt{i:04d}.wav", tone_string(text, rng), 8000)
        lines.append(f"utt{i:04d}.wav\t{text}")
    (folder / "transcripts.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
