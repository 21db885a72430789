"""Protein secondary structure tagger: residue embedding -> convolutions of several widths over
it (local motifs, the "conv + BiGRU" shape of DCRNN, Li & Yu 2016, and cu-ssp, Drori et al.
2018) -> bidirectional recurrent stack -> per-residue Q8 scores.

Everything a user touches (CB6133/FASTA data, Q8/Q3 scores, ``predict_structure``, export,
runtime) comes from the ``protein-structure`` task type; this family only builds the Keras
model. Padding (id 0) is zeroed before every convolution and masked in the recurrent layers,
so a chain's states do not depend on how long its batch is padded.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any, Literal

from rnnzoo.apps.protein_structure.data import ALPHABET, Q8, VOCAB_SIZE, DataConfig
from rnnzoo.apps.protein_structure.model import ProteinStructureTask
from rnnzoo.config import rule

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    embedding_dim: int = rule(32, min=1)
    # One convolution per kernel width, their outputs concatenated with the embedding (an
    # empty list: no convolution front end).
    conv_kernels: list[int] = dataclasses.field(default_factory=lambda: [3, 7, 11],
                                                metadata={"min": 1})
    conv_filters: int = rule(64, min=1)  # per kernel width
    cell: Literal["simple", "lstm", "gru"] = "gru"
    units: int = rule(128, min=1)
    num_layers: int = rule(2, min=1)
    reset_after: bool = True  # GRU only
    input_dropout: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)
    dropout: float = rule(0.3, min=0.0, max=1.0, max_exclusive=True)  # also between layers
    head_units: int = rule(0, min=0)  # a ReLU layer before the Q8 scores (0: none)
    # Weight of the Q3 cross-entropy (of the summed Q8 probabilities) added to the Q8 loss.
    q3_weight: float = rule(0.0, min=0.0)


class Task(ProteinStructureTask):
    """A residue tagger. ``predict_structure(["MKTAYIAK..."])`` returns Q8 and Q3 strings with
    their probabilities."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack, TokenMask
        from rnnzoo.layers.tagging import DropMask

        m = self.config.model
        L = keras.layers
        residues = keras.Input(shape=(None,), dtype="int32", name="residues")
        valid = TokenMask(name="valid")(residues)  # [B, T] 1.0 / 0.0
        column = L.Reshape((-1, 1), name="valid_column")(valid)
        x = L.Embedding(VOCAB_SIZE, m.embedding_dim, name="residue_embedding")(residues)
        x = L.Multiply(name="masked_embedding")([x, column])
        if m.conv_kernels:
            convs = [L.Conv1D(m.conv_filters, k, padding="same", activation="relu",
                              name=f"conv_{i}_k{k}")(x) for i, k in enumerate(m.conv_kernels)]
            x = L.Concatenate(name="features")([x, *convs])
            x = L.Multiply(name="masked_features")([x, column])
        x = L.Dropout(m.input_dropout, name="input_dropout")(x)
        x = RecurrentStack(m.units, cell=m.cell, num_layers=m.num_layers, bidirectional=True,
                           dropout=m.dropout, reset_after=m.reset_after, name="encoder")(
            x, mask=keras.ops.cast(valid, "bool"))
        x = L.Dropout(m.dropout, name="dropout")(x)
        if m.head_units:
            x = L.Dense(m.head_units, activation="relu", name="head")(x)
        logits = L.Dense(len(Q8), dtype="float32", name="logits")(x)
        return keras.Model(residues, DropMask(dtype="float32", name="scores")(logits),
                           name=self.config.name)


# -- test support: the registry-generated tests build every entry with these ---------------------
TINY_OVERRIDES = {
    "model": {"embedding_dim": 8, "conv_kernels": [3, 5], "conv_filters": 8, "units": 8,
              "num_layers": 1, "input_dropout": 0.0, "dropout": 0.0},
    "data": {"max_length": 64},
    "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 0, "early_stopping_patience": 0,
                 "learning_rate": 0.01},
}

# A learnable toy rule: a residue's state follows its own class and its left neighbour's.
_HELIX, _STRAND = set("AELMQKRH"), set("VIYFWTC")


def _state(prev: str, cur: str) -> str:
    if cur in _HELIX:
        return "H" if prev in _HELIX else "G"
    if cur in _STRAND:
        return "E" if prev in _STRAND else "B"
    return {"G": "T", "P": "S", "N": "T", "D": "S", "S": "L", "X": "I"}.get(cur, "L")


def synthetic_dataset(directory: str | Path, n: int = 300, seed: int = 0) -> Path:
    """A learnable folder in the CB6133 layout: ``toy.csv`` (``id,len,input,expected``) and
    ``toy.split.tsv`` (a fifth of the chains ``valid``, one exact duplicate dropped)."""
    rng = random.Random(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows, split = ["id,len,input,expected"], ["id\tsplit\tduplicate_of"]
    chains = []
    for i in range(1, n + 1):
        seq = "".join(rng.choice(ALPHABET[:-1]) for _ in range(rng.randint(3, 40)))
        if i == n and chains:  # one duplicate, as in the real set
            seq = chains[0]
        chains.append(seq)
        q8 = "".join(_state(seq[k - 1] if k else "S", c) for k, c in enumerate(seq))
        rows.append(f"{i},{len(seq)},{seq},{q8}")
        kind = "drop_duplicate\t1" if i == n else ("valid\t" if i % 5 == 0 else "train\t")
        split.append(f"{i}\t{kind}")
    (directory / "toy.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (directory / "toy.split.tsv").write_text("\n".join(split) + "\n", encoding="utf-8")
    return directory
