"""Sequence tagger (Lample et al. 2016; Ma & Hovy 2016): word embedding plus per-word character
CNN features -> bidirectional recurrent stack -> per-token tag scores, with a linear-chain CRF
output (``output: crf``) or a per-token softmax (``output: softmax``).

Everything a user touches (CoNLL data, entity F1, ``tag``, export, runtime) comes from the
``token-classification`` task type; this family only builds the Keras model.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any, Literal

from rnnzoo.apps.token_classification.data import DataConfig
from rnnzoo.apps.token_classification.model import TokenClassificationTask
from rnnzoo.config import rule

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    vocab_size: int = rule(20000, min=3)  # words, with <pad> and <unk>
    embedding_dim: int = rule(100, min=1)
    char_vocab_size: int = rule(100, min=3)  # characters, with <pad> and <unk>
    char_embedding_dim: int = rule(30, min=1)
    char_filters: int = rule(50, min=1)  # character CNN features per word (0 would be none)
    char_kernel_size: int = rule(3, min=1)
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(100, min=1)
    num_layers: int = rule(1, min=1)
    reset_after: bool = True  # GRU only
    embedding_dropout: float = rule(0.5, min=0.0, max=1.0, max_exclusive=True)
    dropout: float = rule(0.5, min=0.0, max=1.0, max_exclusive=True)
    # Dropout masks shared by all time steps of a sentence (variational / "locked" dropout,
    # Gal & Ghahramani 2016) for embedding_dropout and dropout, instead of one mask per token.
    locked_dropout: bool = False
    # > 0: an embedding of each word's case pattern (lower / UPPER / Title / mixed / digits...,
    # read from the character ids) joins the word and character features; word ids are
    # lowercased, so the word embedding alone cannot see the case. 0: none (older presets).
    case_embedding_dim: int = rule(0, min=0)
    output: Literal["crf", "softmax"] = "crf"
    num_tags: int = rule(17, min=2)  # CoNLL-2003 NER in BIOES: O + 4 types x B/I/E/S


class Task(TokenClassificationTask):
    """A sequence tagger. ``tag(sentences)`` returns tokens, tags and entities."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack
        from rnnzoo.layers.tagging import CaseFeatures, ChainCRF, CharCNN, DropMask, char_classes

        m = self.config.model
        words = keras.Input(shape=(None,), dtype="int32", name="words")
        chars = keras.Input(shape=(None, None), dtype="int32", name="chars")
        w = keras.layers.Embedding(m.vocab_size, m.embedding_dim, mask_zero=True,
                                   name="word_embedding")(words)
        c = CharCNN(m.char_vocab_size, m.char_embedding_dim, m.char_filters,
                    m.char_kernel_size, name="char_cnn")(chars)
        features = [w, c]
        if m.case_embedding_dim:
            pre = self.preprocessor
            table = char_classes(pre.chars.vocab) if pre.is_fitted else None
            features.append(CaseFeatures(m.char_vocab_size, m.case_embedding_dim, table,
                                         name="case_features")(chars))
        x = keras.layers.Concatenate(name="features")(features)
        # (None, 1, None): one mask per sentence and feature, the same at every step.
        shared = (None, 1, None) if m.locked_dropout else None
        x = keras.layers.Dropout(m.embedding_dropout, noise_shape=shared,
                                 name="embedding_dropout")(x)
        x = RecurrentStack.from_model_config(m, bidirectional=True, return_sequences=True,
                                             name="encoder")(x)
        x = keras.layers.Dropout(m.dropout, noise_shape=shared, name="dropout")(x)
        scores = keras.layers.Dense(m.num_tags, dtype="float32", name="emissions")(x)
        if m.output == "crf":
            out = ChainCRF(m.num_tags, dtype="float32", name="crf")(scores)
        else:
            out = DropMask(dtype="float32", name="logits")(scores)
        return keras.Model([words, chars], out, name=self.config.name)


# -- test support: the registry-generated tests build every entry with these ---------------------
TINY_OVERRIDES = {
    "model": {"vocab_size": 64, "embedding_dim": 8, "char_vocab_size": 40,
              "char_embedding_dim": 4, "char_filters": 6, "units": 8, "num_tags": 9},
    "data": {"max_length": 16, "max_word_chars": 8},
    "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 0, "early_stopping_patience": 0},
}

_NAMES = ["John", "Mary", "Peter", "Anna", "Smith", "Jones"]
_PLACES = ["Paris", "London", "Berlin", "York", "Madrid"]
_FILLER = "the a said on was met saw and today with by".split()


def _pos(word: str) -> str:
    return "NNP" if word[0].isupper() else "IN" if word == "in" else "NN"


def synthetic_dataset(directory: str | Path, n: int = 400, seed: int = 0) -> Path:
    """A learnable CoNLL-2003 folder (``train.txt``, ``dev.txt``; 4 columns, IOB1 NER as in
    the real files): capitalised names are PER, a capitalised word after ``in`` is LOC (one
    or two tokens). Read with the BIOES default this gives 9 tags; the POS column has NNP, IN
    and NN."""
    rng = random.Random(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def sentence() -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for _ in range(rng.randint(1, 4)):
            roll = rng.random()
            if roll < 0.35:
                out += [(w, "I-PER") for w in rng.sample(_NAMES, rng.randint(1, 2))]
            elif roll < 0.6:
                out.append(("in", "O"))
                out += [(w, "I-LOC") for w in rng.sample(_PLACES, rng.randint(1, 2))]
            else:
                out.append((rng.choice(_FILLER), "O"))
        return out

    for name, count in (("train.txt", n), ("dev.txt", max(20, n // 5))):
        lines = ["-DOCSTART- -X- O O", ""]
        for _ in range(count):
            lines += [f"{w} {_pos(w)} I-NP {t}" for w, t in sentence()] + [""]
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory
