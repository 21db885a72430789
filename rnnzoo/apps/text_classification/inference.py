"""The text classifier's user calls, written once over both backends, and its onnxruntime
class (``RUNTIME_CLASS``). TF-free."""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from rnnzoo.apps.text_classification.data import TextClassifierPreprocessor
from rnnzoo.data.batching import cost_grouped_batches, length_sorted_batches
from rnnzoo.data.tokenizer import WordTokenizer
from rnnzoo.errors import ConfigError, DataError
from rnnzoo.export.bundle import BundleError, BundleRuntime, as_texts, check_count, check_tokens
from rnnzoo.io import read_json
from rnnzoo.io.inputs import check_batch_size, check_texts
from rnnzoo.metrics import classification_report
from rnnzoo.progress import Progress, model_label, reporting


class Prediction(NamedTuple):
    labels: list[str]
    probs: np.ndarray  # [n, num_classes], float32


def _as_texts(texts: Sequence[str] | str) -> list[str]:
    return as_texts(texts, "predict")


class _Classifier(abc.ABC):
    """The user calls, written once over ``_probs_of(tokens) -> probs`` (Keras or onnxruntime)."""

    preprocessor: TextClassifierPreprocessor

    @abc.abstractmethod
    def _probs_of(self, tokens: np.ndarray) -> np.ndarray:
        """Probabilities for a post-padded int32 token batch."""

    @property
    def label_names(self) -> list[str]:
        return self.preprocessor.label_names

    def predict_proba(self, texts: Sequence[str] | str, batch_size: int = 64,
                      progress: bool | Progress = False) -> np.ndarray:
        """Class probabilities [n, num_classes]; batches are grouped by length for speed (the
        fused recurrent operators do not skip padded steps). ``progress=True``: a progress
        line on stderr."""
        texts = _as_texts(texts)
        check_texts(texts, "predict")
        batch_size = check_count("batch_size", batch_size)
        batch_size = check_batch_size(batch_size)
        with reporting(progress, model_label(self, "predict"), len(texts), "texts") as bar:
            seqs = self.preprocessor.encode(texts)
            out = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
            for idx, batch in length_sorted_batches(seqs, batch_size, progress=bar):
                out[idx] = np.asarray(self._probs_of(batch), dtype=np.float32)
        return out

    def predict(self, texts: Sequence[str] | str, batch_size: int = 64,
                progress: bool = False) -> Prediction:
        """Labels and probabilities for raw strings (``progress=True``: a progress line on
        stderr)."""
        probs = self.predict_proba(texts, batch_size=batch_size, progress=progress)
        return Prediction([self.label_names[i] for i in probs.argmax(axis=1)], probs)

    def evaluate(self, texts: Sequence[str], labels: Sequence[int | str],
                 batch_size: int = 64, progress: bool = False) -> dict:
        """Accuracy, macro-F1 and the confusion matrix; labels are names or indices.
        ``progress=True``: a progress line on stderr."""
        texts = as_texts(texts, "evaluate")
        if isinstance(labels, (str, bytes)) or not isinstance(labels, (Sequence, np.ndarray)):
            raise DataError(f"evaluate: labels must be a list (one per text), found "
                            f"{type(labels).__name__}")
        if len(texts) != len(labels):
            raise DataError(f"evaluate: got {len(texts)} texts but {len(labels)} labels; pass "
                            "one label per text")
        index = {n: i for i, n in enumerate(self.label_names)}
        ids = []
        for y in labels:
            if isinstance(y, str):
                if y not in index:
                    raise DataError(f"label {y!r} is not a class of this model (classes: "
                                    f"{', '.join(self.label_names)}); labels are matched by "
                                    "name: relabel the data, or fine-tune the model on its "
                                    "classes")
                ids.append(index[y])
            elif (isinstance(y, (int, np.integer)) and not isinstance(y, bool)
                  and 0 <= int(y) < len(index)):
                ids.append(int(y))
            else:
                raise DataError(f"label {y!r}: expected a class name or an index in "
                                f"[0, {len(index)})")
        with reporting(progress, model_label(self, "evaluate"), len(texts), "texts") as bar:
            probs = self.predict_proba(texts, batch_size=batch_size, progress=bar)
        return classification_report(ids, probs.argmax(axis=1).tolist(), self.label_names)


class TextClassifierRuntime(_Classifier, BundleRuntime):
    """``predict(texts)`` for a text-classification bundle, with onnxruntime and numpy only."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        labels_path = self.asset("labels.json")
        labels = read_json(labels_path, BundleError, "re-export the bundle")
        if not isinstance(labels, list) or len(labels) < 2 or not all(
                isinstance(label, str) for label in labels):
            raise BundleError(f"{labels_path}: expected a list of at least 2 class names, found "
                              f"{str(labels)[:60]}; re-export the bundle")
        tokenizer = WordTokenizer.load(self.asset("tokenizer.json"))
        self.preprocessor = TextClassifierPreprocessor(tokenizer, labels,
                                                       self.setting("max_length", 100))
        self.vocab_size = self.setting("vocab_size", tokenizer.vocab_size)

    @property
    def tokenizer(self) -> WordTokenizer:
        return self.preprocessor.tokenizer

    @property
    def max_length(self) -> int:
        return self.preprocessor.max_length

    def predict_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Probabilities for a post-padded int32 token batch [batch, time]."""
        check_tokens(tokens, self.vocab_size)
        return self.run("model", {"tokens": tokens})["probs"]

    _probs_of = predict_tokens

    # -- rnnzoo serve (rnnzoo.serving) ------------------------------------------------------------
    serve_options: ClassVar[dict[str, Any]] = {"truncate": False}
    serve_demo: ClassVar[dict[str, Any]] = {"input": "text",
                                            "example": "a gorgeous , witty , seductive movie ."}
    # Requests merged by the server run in groups of similar length chosen by estimated cost
    # (rnnzoo.data.batching.cost_grouped_batches): the fused LSTM/GRU operators compute padded
    # steps, and a call has a fixed cost. In units of one row-step of a large batch, measured
    # on sentiment_bilstm.sst2 with onnxruntime on one thread: a call ~8, a step ~1 (a batch
    # of 1 runs a step about 2x slower per row than a batch of 64).
    SERVE_CALL_COST: ClassVar[tuple[float, float]] = (8.0, 1.0)

    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One ``{"label", "probs": {class: p}}`` per text. A text of more than ``max_length``
        tokens is refused (its prediction would silently read only the start) unless the
        request says ``"truncate": true``. Same results as ``predict``; each text is
        tokenised once."""
        texts = as_texts(instances, "instances")
        check_texts(texts, "instances")
        truncate = options.get("truncate", False)
        if not isinstance(truncate, bool):
            raise ConfigError(f"truncate: expected true or false, found {truncate!r}")
        encode, limit = self.tokenizer.encode, self.max_length
        seqs = []
        for i, text in enumerate(texts):
            ids = encode(text)
            if len(ids) > limit:
                if not truncate:
                    raise DataError(f"instances[{i}]: {len(ids)} tokens, more than this "
                                    f"model's max_length {limit}; shorten the text, or send "
                                    '"truncate": true to classify its first tokens')
                ids = ids[:limit]
            seqs.append(ids or [1])  # as predict: an empty text is one <unk>
        names = self.label_names
        if len(seqs) == 1:
            probs = np.asarray(self._probs_of(np.asarray(seqs, dtype=np.int32)),
                               dtype=np.float32)
        else:
            probs = np.empty((len(seqs), len(names)), dtype=np.float32)
            call, step = self.SERVE_CALL_COST
            for idx, batch in cost_grouped_batches(seqs, call, step):
                probs[idx] = self._probs_of(batch)
        return [{"label": names[k], "probs": dict(zip(names, row))}
                for k, row in zip(probs.argmax(axis=1).tolist(), probs.tolist())]


RUNTIME_CLASS = TextClassifierRuntime
