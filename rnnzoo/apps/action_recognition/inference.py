"""Action recognition, the user calls: ``classify`` and ``evaluate``, written once over both
backends, and the onnxruntime runtime (``RUNTIME_CLASS``).

User call (Keras and runtime alike): ``classify(sequences)`` -> ``Classification(labels,
probs)``, where ``sequences`` is a skeleton file (MSR Action3D ``.txt``, ``.npy``, ``.npz``), a
sequence ``[frames, 20, 3]``, a batch ``[N, frames, 20, 3]``, or a list of those;
``evaluate(sequences, labels)`` -> accuracy, macro-F1 and the confusion matrix. One exported
graph: ``features [B, T, F]`` and ``mask [B, T]`` -> ``probs [B, num_classes]``; the features
are computed here, in numpy (``data.skeleton_features``). TF-free.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from rnnzoo.apps._classification import gold_class_ids
from rnnzoo.apps.action_recognition.data import (
    ASSET_FILE,
    SkeletonPreprocessor,
    as_sequences,
    check_sequence,
)
from rnnzoo.errors import DataError
from rnnzoo.export.bundle import BundleRuntime, check_count
from rnnzoo.io.inputs import check_batch_size
from rnnzoo.metrics import classification_report
from rnnzoo.progress import Progress, model_label, reporting

UNIT = "sequences"  # what the progress line counts


class Classification(NamedTuple):
    labels: list[str]
    probs: np.ndarray  # [n, num_classes], float32


class _ActionClassifier(abc.ABC):
    """``classify`` and ``evaluate`` over ``_probs_of(features, mask) -> probs``."""

    preprocessor: SkeletonPreprocessor

    @abc.abstractmethod
    def _probs_of(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Class probabilities of a post-padded feature batch and its 0/1 frame mask."""

    @property
    def label_names(self) -> list[str]:
        return self.preprocessor.label_names

    def probs_of_sequences(self, sequences: Sequence[np.ndarray], batch_size: int = 32,
                           progress: bool | Progress = False) -> np.ndarray:
        """Probabilities ``[n, num_classes]`` of checked ``[T, 20, 3]`` sequences, in batches of
        similar length (the recurrent operators compute padded frames too)."""
        batch_size = check_batch_size(check_count("batch_size", batch_size))
        pre = self.preprocessor
        feats = [pre.features(s) for s in sequences]
        out = np.zeros((len(feats), len(self.label_names)), np.float32)
        order = np.argsort([len(f) for f in feats], kind="stable")
        with reporting(progress, model_label(self, "classify"), len(feats), UNIT) as bar:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                x, mask = pre.batch([feats[i] for i in idx])
                out[idx] = np.asarray(self._probs_of(x, mask), np.float32)
                bar.update(len(idx))
        return out

    def predict_proba(self, sequences: Any, batch_size: int = 32,
                      progress: bool | Progress = False) -> np.ndarray:
        """Class probabilities ``[n, num_classes]`` of a user's sequences (see ``classify``)."""
        return self.probs_of_sequences(as_sequences(sequences), batch_size, progress)

    def classify(self, sequences: Any, batch_size: int = 32,
                 progress: bool | Progress = False) -> Classification:
        """The action of each skeleton sequence, and every class's probability: ``sequences``
        is a skeleton file (``.txt``, ``.npy``, ``.npz``), one sequence ``[frames, 20, 3]``, a
        batch ``[N, frames, 20, 3]`` or a list of those. ``progress=True``: a progress line
        on stderr."""
        probs = self.predict_proba(sequences, batch_size, progress)
        return Classification([self.label_names[i] for i in probs.argmax(axis=1)], probs)

    def evaluate(self, sequences: Any, labels: Sequence[int | str], batch_size: int = 32,
                 progress: bool = False) -> dict:
        """Accuracy, macro-F1 and the confusion matrix (rows: true action) against ``labels``
        (action names, or indices 0-19), one per sequence. ``progress=True``: a progress line
        on stderr."""
        seqs = as_sequences(sequences, "evaluate")
        ids = gold_class_ids(seqs, labels, self.label_names, "sequence")
        with reporting(progress, model_label(self, "evaluate"), len(seqs), UNIT) as bar:
            probs = self.probs_of_sequences(seqs, batch_size, progress=bar)
        return classification_report(ids, probs.argmax(axis=1).tolist(), self.label_names)


class ActionClassifierRuntime(_ActionClassifier, BundleRuntime):
    """``classify(sequences)`` for an action-recognition bundle, with onnxruntime and numpy
    only."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        from rnnzoo.export.bundle import BundleError

        super().__init__(path, **kwargs)
        self.preprocessor = SkeletonPreprocessor.from_file(self.asset(ASSET_FILE), BundleError)
        self.name = self.entry

    def _probs_of(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.run("model", {"features": features, "mask": mask})["probs"]

    # -- rnnzoo serve (rnnzoo.serving) ------------------------------------------------------------
    serve_options: ClassVar[dict[str, Any]] = {}
    # Two frames of a standing skeleton (x y z per joint, metres), to show the input's shape.
    serve_demo: ClassVar[dict[str, Any]] = {"input": "json", "example": {"joints": [
        [[0.1 * (j % 5), 1.0 - 0.1 * j, 2.7] for j in range(20)],
        [[0.1 * (j % 5), 1.0 - 0.1 * j + 0.01, 2.7] for j in range(20)]]}}

    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One ``{"label", "probs": {action: p}}`` per instance: ``{"joints": [[[x, y, z],
        ...20 joints], ...frames]}`` or the frames list itself."""
        seqs = []
        for i, item in enumerate(instances):
            if isinstance(item, Mapping):
                if set(item) != {"joints"}:
                    raise DataError(f"instances[{i}]: expected {{\"joints\": [frames][20][3]}} "
                                    f"or the frames list, found keys {sorted(item)}")
                item = item["joints"]
            seqs.append(check_sequence(item, f"instances[{i}]"))
        probs = self.probs_of_sequences(seqs)
        names = self.label_names
        return [{"label": names[k], "probs": dict(zip(names, row))}
                for k, row in zip(probs.argmax(axis=1).tolist(), probs.tolist())]


RUNTIME_CLASS = ActionClassifierRuntime
