"""The text classifier's user calls, written once over both backends, and its onnxruntime
class (``RUNTIME_CLASS``). TF-free."""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from rnnzoo.apps._classification import gold_class_ids
from rnnzoo.apps.text_classification.data import TextClassifierPreprocessor
from rnnzoo.data.batching import cost_grouped_batches, length_sorted_batches
from rnnzoo.data.tokenizer import WordTokenizer
from rnnzoo.engines.ctc import NotStreamableError
from rnnzoo.engines.stream import Stream, state_feeds, zero_state
from rnnzoo.errors import ConfigError, DataError, short_repr
from rnnzoo.export.bundle import BundleError, BundleRuntime, as_texts, check_count, check_tokens
from rnnzoo.io import read_json
from rnnzoo.io.inputs import check_batch_size, check_texts
from rnnzoo.metrics import classification_report
from rnnzoo.progress import Progress, model_label, reporting

STREAM_GRAPH = "step"  # the graph that carries the recurrent state between calls
STEP_FILE = "step_model.onnx"


def no_stream(name: str, why: str = "") -> str:
    """Why ``name`` has no stream, and what has one."""
    why = why or ("its bundle has no step graph (a bidirectional encoder reads the whole text "
                  "before any output, or the bundle predates streaming: re-export it)")
    return (f"{name}: no stream: {why}; a unidirectional classifier (sentiment_gru) takes "
            "tokens one at a time, or classify the whole text with predict()")


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
        ids = gold_class_ids(texts, labels, self.label_names, "text")
        with reporting(progress, model_label(self, "evaluate"), len(texts), "texts") as bar:
            probs = self.predict_proba(texts, batch_size=batch_size, progress=bar)
        return classification_report(ids, probs.argmax(axis=1).tolist(), self.label_names)

    # -- streaming -----------------------------------------------------------------------------
    # The exported ``step`` graph: ``tokens`` [batch, n] and ``state_<i>`` [batch, width] ->
    # ``probs`` after the last token and ``new_state_<i>`` (the recurrent states, then any
    # running pooling state), so the class of a growing text is updated token by token.
    def _stream_graph(self) -> tuple[Callable[[dict], dict], dict[str, int]]:
        """``(run, widths)``: the ``step`` graph and the width of each state input;
        ``NotStreamableError`` where the model has none."""
        raise NotStreamableError(no_stream(getattr(self, "name", type(self).__name__)))

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """The state before the first token: zeros, as ``predict`` starts every text (a running
        max starts at the pooling's floor, which the step graph reads with the count)."""
        batch = check_count("batch", batch)
        _, widths = self._stream_graph()
        return zero_state(widths, batch)

    def _stream_tokens(self, x: Any) -> tuple[np.ndarray, bool]:
        """``(token ids [B, n], batched)`` from a text piece, one id, ids ``[n]`` or
        ``[batch, n]``."""
        if isinstance(x, str):
            ids = self.preprocessor.tokenizer.encode(x)
            if not ids:
                raise DataError(f"step: {short_repr(x, 40)} holds no token; feed text with at "
                                "least one word")
            return np.asarray([ids], np.int32), False
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError):
            arr = np.asarray(None)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise DataError(f"step: expected a text piece (str) or token ids (int, [n] or "
                            f"[batch, n]), found {short_repr(x, 60)}")
        batched = arr.ndim == 2
        arr = arr.reshape(1, -1) if arr.ndim < 2 else arr
        if arr.ndim != 2 or arr.shape[1] < 1:
            raise DataError(f"step: expected token ids [n] or [batch, n] with n >= 1, found "
                            f"shape {np.shape(x)}")
        vocab = int(self.preprocessor.tokenizer.vocab_size)
        if arr.min() < 1 or arr.max() >= vocab:
            raise DataError(f"step: token ids must be in [1, {vocab}) (0 is padding), found "
                            f"{int(arr.min())}..{int(arr.max())}")
        return arr.astype(np.int32), batched

    def step(self, x: Any, state: dict[str, np.ndarray]
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Feed tokens ``x`` (a text piece, tokenised as ``predict`` does: split pieces at word
        boundaries; or token ids, one, ``[n]`` or ``[batch, n]``) from ``state`` (from
        ``initial_state``): the class probabilities after them (``[num_classes]``, ``[batch,
        num_classes]`` for a batch) and the state after them. From ``initial_state``, the
        pieces of a text give ``predict_proba(text)`` while it holds at most ``max_length``
        tokens (``predict`` reads only the first ``max_length``; a stream reads on)."""
        run, widths = self._stream_graph()
        tokens, batched = self._stream_tokens(x)
        feeds = {"tokens": tokens, **state_feeds(state, widths, len(tokens))}
        out = run(feeds)
        probs = np.asarray(out["probs"], np.float32)
        new = {n: np.asarray(out[f"new_{n}"], np.float32) for n in widths}
        return (probs if batched else probs[0]), new

    def stream(self, batch: int = 1) -> Stream:
        """A :class:`rnnzoo.engines.stream.Stream` from ``initial_state(batch)``: ``step(x)``
        feeds tokens and returns the class probabilities of the text so far.
        ``NotStreamableError`` for a bidirectional classifier."""
        return Stream(self.step, self.initial_state(batch))


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

    def _stream_graph(self) -> tuple[Callable[[dict], dict], dict[str, int]]:
        """The bundle's ``step`` graph (none for a bidirectional classifier)."""
        if STREAM_GRAPH not in self.sessions:
            raise NotStreamableError(no_stream(self.entry))
        sess = self.sessions[STREAM_GRAPH]
        widths = {i.name: int(i.shape[1]) for i in sess.get_inputs()
                  if i.name.startswith("state_")}
        return (lambda feeds: self.run(STREAM_GRAPH, feeds)), widths

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
