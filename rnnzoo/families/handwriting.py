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

import numpy as np

from rnnzoo.apps.handwriting_recognition.data import DataConfig
from rnnzoo.apps.handwriting_recognition.ink import write_inkml
from rnnzoo.apps.handwriting_recognition.model import HandwritingRecognitionTask
from rnnzoo.config import rule
from rnnzoo.families import ctc

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig(ctc.ModelConfig):
    """The speech recognizer's model options, with handwriting's defaults; a streaming
    recognizer has no convolution front end (a stroke's last points would wait for the
    next)."""

    num_labels: int = rule(80, min=1)  # alphabet size; the output has one more (the blank)
    input_dropout: float = rule(0.0, min=0.0, max=1.0, max_exclusive=True)

    def check(self) -> list[str]:
        problems = super().check()
        if self.streaming and self.conv_filters:
            problems.append("conv_filters: a streaming recognizer has no convolution front end "
                            "(it would read points ahead); set conv_filters: 0")
        return problems


class Task(ctc.CTCModels, HandwritingRecognitionTask):
    """A handwriting recognizer (the speech recognizer's models over point features).
    ``recognize(["line.inkml"])`` returns its text; with ``streaming: true`` also ``stream()``
    (one stroke per ``step``)."""


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
