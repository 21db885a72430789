"""The protein secondary structure user calls (``predict_structure``, ``evaluate``), written
once over both backends, and the onnxruntime class (``RUNTIME_CLASS``). TF-free.

The graph gives Q8 scores per residue; the Q8 probabilities are their softmax, and the Q3
probabilities are the sums over each Q3 state's Q8 states (H = H+G+I, E = E+B, C = L+S+T),
so the Q3 string is the most probable Q3 state, not the reduction of the Q8 string (the two
differ where, say, G and H together outweigh L but neither alone does).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from rnnzoo.apps.protein_structure.data import (
    Q3,
    Q3_INDEX,
    Q8,
    VOCAB_SIZE,
    ProteinPreprocessor,
    clean_labels,
    clean_sequence,
    structure_report,
)
from rnnzoo.data.batching import length_sorted_batches
from rnnzoo.errors import DataError
from rnnzoo.export.bundle import BundleError, BundleRuntime, check_count, check_tokens
from rnnzoo.io.inputs import check_batch_size
from rnnzoo.progress import Progress, model_label, reporting


class Structure(NamedTuple):
    """One chain's prediction: the sequence as read (upper case, non-standard residues as X),
    the Q8 and Q3 strings (one letter per residue), and their probabilities [n, 8] (columns
    in ``Q8`` = "LBEGIHST" order) and [n, 3] ("HEC")."""

    sequence: str
    q8: str
    q3: str
    q8_probs: np.ndarray
    q3_probs: np.ndarray


def softmax(scores: np.ndarray) -> np.ndarray:
    z = np.asarray(scores, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def q3_probabilities(q8_probs: np.ndarray) -> np.ndarray:
    """[..., 8] Q8 probabilities -> [..., 3] Q3 probabilities (sums over each group)."""
    out = np.zeros((*q8_probs.shape[:-1], len(Q3)), np.float32)
    for k, j in enumerate(Q3_INDEX):
        out[..., j] += q8_probs[..., k]
    return out


def as_sequences(sequences: Any, where: str) -> list[str]:
    """A sequence string or a list of them, cleaned (``clean_sequence``: each at most
    ``max_text_chars`` residues)."""
    if isinstance(sequences, str):
        sequences = [sequences]
    if isinstance(sequences, (bytes, bytearray)) or not isinstance(sequences,
                                                                   (Sequence, np.ndarray)):
        raise DataError(f"{where}: expected a protein sequence or a list of them, found "
                        f"{type(sequences).__name__}")
    sequences = list(sequences)
    if not sequences:
        raise DataError(f"{where}: empty list of sequences")
    return [clean_sequence(s, f"{where}: sequence {i}") for i, s in enumerate(sequences)]


class _StructurePredictor(abc.ABC):
    """The user calls, written once over ``_scores_of(residues)`` (Keras or onnxruntime)."""

    preprocessor: ProteinPreprocessor

    @abc.abstractmethod
    def _scores_of(self, residues: np.ndarray) -> np.ndarray:
        """Q8 scores [batch, time, 8] for a post-padded int32 residue batch."""

    @property
    def label_names(self) -> list[str]:
        """The Q8 states, in the column order of ``q8_probs``."""
        return list(Q8)

    def predict_structure(self, sequences: Sequence[str] | str, batch_size: int = 32,
                          progress: bool | Progress = False) -> list[Structure]:
        """Per-residue Q8 and Q3 strings with their probabilities for each chain (one-letter
        amino-acid codes; any length: chains are batched with others of similar length, so
        padding costs little). ``progress=True``: a progress line on stderr."""
        seqs = as_sequences(sequences, "predict_structure")
        batch_size = check_batch_size(check_count("batch_size", batch_size))
        pre = self.preprocessor
        out: list[Structure | None] = [None] * len(seqs)
        with reporting(progress, model_label(self, "predict_structure"), len(seqs),
                       "chains") as bar:
            ids = [pre.encode(s) for s in seqs]
            for idx, batch in length_sorted_batches(ids, batch_size, progress=bar):
                probs = softmax(self._scores_of(batch))
                for row, i in enumerate(idx):
                    p8 = probs[row, : len(seqs[i])]
                    p3 = q3_probabilities(p8)
                    out[i] = Structure(seqs[i], "".join(Q8[k] for k in p8.argmax(axis=-1)),
                                       "".join(Q3[k] for k in p3.argmax(axis=-1)), p8, p3)
        return out  # type: ignore[return-value]

    def structure(self, sequences: Sequence[str] | str, batch_size: int = 32,
                  progress: bool | Progress = False) -> list[Structure]:
        """``predict_structure`` under the name of its CLI verb (``rnnzoo structure``), which
        the server and the harness call."""
        return self.predict_structure(sequences, batch_size, progress)

    def evaluate(self, sequences: Sequence[str], labels: Sequence[str], batch_size: int = 32,
                 progress: bool = False) -> dict:
        """Q8 and Q3 accuracy over residues, per-class recall/precision/F1 and macro-F1
        against DSSP Q8 strings (one per sequence, as long as it); Q3 truth is their
        reduction (H, G, I -> H; E, B -> E; rest -> C). ``progress=True``: a progress line."""
        seqs = as_sequences(sequences, "evaluate")
        if isinstance(labels, str) or not isinstance(labels, (Sequence, np.ndarray)):
            raise DataError(f"evaluate: labels must be a list of Q8 strings (one per "
                            f"sequence), found {type(labels).__name__}")
        if len(labels) != len(seqs):
            raise DataError(f"evaluate: got {len(seqs)} sequences but {len(labels)} label "
                            "strings; pass one Q8 string per sequence")
        gold = []
        for i, (s, q) in enumerate(zip(seqs, labels)):
            if not isinstance(q, str):
                raise DataError(f"evaluate: labels[{i}] must be a Q8 string, found "
                                f"{type(q).__name__}")
            q = clean_labels(q, f"evaluate: labels[{i}]")
            if len(q) != len(s):
                raise DataError(f"evaluate: sequence {i} has {len(s)} residues but "
                                f"{len(q)} labels")
            gold.append(q)
        with reporting(progress, model_label(self, "evaluate"), len(seqs), "chains") as bar:
            found = self.predict_structure(seqs, batch_size, bar)
        return structure_report(gold, [f.q8 for f in found], [f.q3 for f in found])


class ProteinStructureRuntime(_StructurePredictor, BundleRuntime):
    """``predict_structure(sequences)`` for a protein-structure bundle, with onnxruntime and
    numpy only."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.preprocessor = ProteinPreprocessor.load(self.asset("protein.json"), BundleError,
                                                     "re-export the bundle")

    def _scores_of(self, residues: np.ndarray) -> np.ndarray:
        check_tokens(residues, VOCAB_SIZE, "residues")
        return self.run("model", {"residues": residues})["logits"]


RUNTIME_CLASS = ProteinStructureRuntime
