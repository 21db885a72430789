"""Sentiment (text) classifier: embedding -> recurrent stack -> pooling -> softmax.

Everything a user touches (data, metrics, ``predict``, export, runtime) comes from the
``text-classification`` task type; this family only builds the Keras model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from rnnzoo.apps.text_classification.data import DataConfig
from rnnzoo.apps.text_classification.model import TextClassificationTask
from rnnzoo.config import rule

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    # Ranges are checked when a config is read (rnnzoo.config), before anything is built or
    # written: a negative width or a dropout of 1.5 would otherwise fail deep inside Keras.
    # The vocabulary holds <pad> and <unk> plus at least one word.
    vocab_size: int = rule(20000, min=3)
    embedding_dim: int = rule(128, min=1)
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(128, min=1)
    num_layers: int = rule(1, min=1)
    bidirectional: bool = True
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"
    reset_after: bool = True  # GRU only
    # "max"/"mean" pool over valid steps of the sequence output; "last" uses the final state(s).
    pooling: Literal["max", "mean", "last"] = "max"
    embedding_dropout: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)
    dropout: float = rule(0.3, min=0.0, max=1.0, max_exclusive=True)
    hidden_units: int = rule(0, min=0)  # optional dense layer before the classifier (0: none)
    num_classes: int = rule(2, min=2)


class Task(TextClassificationTask):
    """A text classifier. ``predict(texts)`` returns labels and probabilities."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import MaskedGlobalPooling1D, RecurrentStack

        m = self.config.model
        tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
        x = keras.layers.Embedding(m.vocab_size, m.embedding_dim, mask_zero=True,
                                   name="embedding")(tokens)
        x = keras.layers.Dropout(m.embedding_dropout, name="embedding_dropout")(x)
        x = RecurrentStack.from_model_config(m, return_sequences=m.pooling != "last",
                                             name="encoder")(x)
        if m.pooling != "last":
            x = MaskedGlobalPooling1D(m.pooling, name="pooling")(x)
        x = keras.layers.Dropout(m.dropout, name="dropout")(x)
        if m.hidden_units:
            x = keras.layers.Dense(m.hidden_units, activation="relu", name="hidden")(x)
            x = keras.layers.Dropout(m.dropout, name="hidden_dropout")(x)
        # float32 output even under a mixed-precision policy: softmax/loss need the range.
        probs = keras.layers.Dense(m.num_classes, activation="softmax", dtype="float32",
                                   name="probs")(x)
        return keras.Model(tokens, probs, name=self.config.name)


# -- test support: the registry-generated tests build every entry with these ---------------------
TINY_OVERRIDES = {
    "model": {"vocab_size": 64, "embedding_dim": 8, "units": 8},
    "data": {"max_length": 16},
    "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 0, "early_stopping_patience": 0},
}


def synthetic_dataset(directory: str | Path, n: int = 400, seed: int = 0) -> Path:
    """A learnable CSV dataset in the generic ``text,label`` format: the label is whether the
    sentence says 'good' or 'bad' (amid filler words), so a tiny model reaches ~100%."""
    import csv
    import random

    rng = random.Random(seed)
    filler = "the a movie film plot actors was is really quite story scene this that".split()
    path = Path(directory) / "synthetic_sentiment.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for _ in range(n):
            label = rng.choice(["pos", "neg"])
            words = rng.choices(filler, k=rng.randint(2, 10))
            words.insert(rng.randint(0, len(words)), "good" if label == "pos" else "bad")
            writer.writerow([" ".join(words), label])
    return path
