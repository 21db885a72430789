"""Task type ``text-classification``: raw strings -> a label and class probabilities.

User call (Keras and runtime alike): ``predict(texts) -> Prediction(labels, probs)``; CLI verb
``rnnzoo predict``. One exported graph: post-padded int32 ``tokens`` -> ``probs``. Class names are
stored with the model (``assets/labels.json``) so predictions come back as labels.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from rnnzoo.config import EntryConfig, rule
from rnnzoo.data.batching import cost_grouped_batches, length_sorted_batches
from rnnzoo.data.readers import TextClassificationData, load_text_classification
from rnnzoo.data.tokenizer import WordTokenizer
from rnnzoo.errors import ConfigError, DataError, RunDirError
from rnnzoo.export.bundle import (
    MODEL_FILE,
    BundleError,
    BundleRuntime,
    as_texts,
    check_count,
    check_tokens,
)
from rnnzoo.export.specs import GraphSpec, InputSpec, token_batches
from rnnzoo.io import atomic_write_text, read_json
from rnnzoo.metrics import classification_report, format_report
from rnnzoo.task import Task


@dataclasses.dataclass
class DataConfig:
    max_length: int = rule(100, min=1)  # tokens; longer texts are truncated at the end
    lowercase: bool = True
    min_freq: int = rule(1, min=1)
    # Held out when a dataset has no dev split (MR, a CSV file); 0 trains on everything.
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)


class Prediction(NamedTuple):
    labels: list[str]
    probs: np.ndarray  # [n, num_classes], float32


class TextClassifierPreprocessor:
    """Raw strings -> post-padded int32 token ids; knows the class names."""

    def __init__(self, tokenizer: WordTokenizer, label_names: Sequence[str], max_length: int):
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.max_length = max_length

    @property
    def is_fitted(self) -> bool:
        return self.tokenizer.is_fitted

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.tokenizer.encode_batch(list(texts), max_length=self.max_length)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated; an empty text becomes one ``<unk>``."""
        return [self.tokenizer.encode(t)[: self.max_length] or [1] for t in texts]


def split_texts(data: TextClassificationData, split: str) -> tuple[list[str], list[int]]:
    """``(texts, labels)`` of a split; ``"all"`` is the whole file (train and dev)."""
    if split == "dev":
        return data.dev_texts, data.dev_labels
    if split == "train":
        return data.train_texts, data.train_labels
    if split == "all":
        return data.train_texts + data.dev_texts, data.train_labels + data.dev_labels
    raise ConfigError(f"split {split!r}: text-classification data has the splits dev, train "
                      "and all (the whole file)")


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

    def predict_proba(self, texts: Sequence[str] | str, batch_size: int = 64) -> np.ndarray:
        """Class probabilities [n, num_classes]; batches are grouped by length for speed (the
        fused recurrent operators do not skip padded steps)."""
        texts = _as_texts(texts)
        batch_size = check_count("batch_size", batch_size)
        seqs = self.preprocessor.encode(texts)
        out = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
        for idx, batch in length_sorted_batches(seqs, batch_size):
            out[idx] = np.asarray(self._probs_of(batch), dtype=np.float32)
        return out

    def predict(self, texts: Sequence[str] | str, batch_size: int = 64) -> Prediction:
        """Labels and probabilities for raw strings."""
        probs = self.predict_proba(texts, batch_size=batch_size)
        return Prediction([self.label_names[i] for i in probs.argmax(axis=1)], probs)

    def evaluate(self, texts: Sequence[str], labels: Sequence[int | str],
                 batch_size: int = 64) -> dict:
        """Accuracy, macro-F1 and the confusion matrix; labels are names or indices."""
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
                    raise DataError(f"label {y!r} is not a class of this model "
                                    f"({', '.join(self.label_names)})")
                ids.append(index[y])
            elif (isinstance(y, (int, np.integer)) and not isinstance(y, bool)
                  and 0 <= int(y) < len(index)):
                ids.append(int(y))
            else:
                raise DataError(f"label {y!r}: expected a class name or an index in "
                                f"[0, {len(index)})")
        probs = self.predict_proba(texts, batch_size=batch_size)
        return classification_report(ids, probs.argmax(axis=1).tolist(), self.label_names)


class TextClassificationTask(_Classifier, Task):
    """Keras side of a text classifier; a family adds ``build_model``."""

    task_type = "text-classification"
    verb = "predict"
    metric_directions = {"loss": "min", "accuracy": "max"}
    head_layers = ("probs",)

    def new_preprocessor(self) -> TextClassifierPreprocessor:
        n = self.config.model.num_classes
        return TextClassifierPreprocessor(WordTokenizer(lowercase=self.config.data.lowercase),
                                          [str(i) for i in range(n)], self.config.data.max_length)

    def save_assets(self, directory: Path) -> None:
        self.preprocessor.tokenizer.save(directory / "tokenizer.json")
        atomic_write_text(directory / "labels.json",
                          json.dumps(self.preprocessor.label_names, ensure_ascii=False))

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> TextClassifierPreprocessor:
        labels_path = directory / "labels.json"
        if not labels_path.is_file():
            raise RunDirError(f"missing {labels_path}")
        labels = json.loads(labels_path.read_text(encoding="utf-8"))
        if not isinstance(labels, list) or len(labels) != config.model.num_classes:
            raise RunDirError(f"{labels_path}: expected a list of {config.model.num_classes} "
                              f"class names, found {labels!r}")
        tokenizer = WordTokenizer.load(directory / "tokenizer.json")
        return TextClassifierPreprocessor(tokenizer, labels, config.data.max_length)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        tokens = token_batches(self.config.model.vocab_size, ((batch_size, 9),), seed=seed)[0]
        return tokens, rng.integers(0, self.config.model.num_classes, size=batch_size)

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> TextClassificationData:
        return load_text_classification(path, dev_fraction=self.config.data.dev_fraction,
                                        seed=seed)

    def adapt(self, data: TextClassificationData) -> None:
        """Fit the tokenizer (unless already fitted, as when fine-tuning) and set the labels."""
        pre = self.preprocessor
        n = self.config.model.num_classes
        if len(data.label_names) != n:
            raise DataError(
                f"{data.description}: found {len(data.label_names)} classes "
                f"{data.label_names}, but {self.name!r} is configured for num_classes={n}; "
                f"pass --set num_classes={len(data.label_names)}"
            )
        if not pre.tokenizer.is_fitted:
            pre.tokenizer.fit(data.train_texts, max_size=self.config.model.vocab_size,
                              min_freq=self.config.data.min_freq)
        pre.label_names = list(data.label_names)

    def datasets(self, data: TextClassificationData, batch_size: int, seed: int,
                 bucketing: bool, fixed_length: bool) -> tuple[Any, Any, int]:
        from rnnzoo.data.pipeline import count_batches, sequence_dataset

        pre = self.preprocessor
        train_seqs = pre.encode(data.train_texts)
        kw = {"batch_size": batch_size, "max_length": self.config.data.max_length,
              "bucketing": bucketing, "fixed_length": fixed_length}
        train = sequence_dataset(train_seqs, np.asarray(data.train_labels, np.int32),
                                 shuffle=True, seed=seed, **kw)
        dev = None
        if data.dev_texts:
            dev = sequence_dataset(pre.encode(data.dev_texts),
                                   np.asarray(data.dev_labels, np.int32), **kw)
        return train, dev, count_batches([len(s) for s in train_seqs], **kw)

    def loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self) -> list:
        return ["accuracy"]

    # -- inference and evaluation ---------------------------------------------------------------
    def _probs_of(self, tokens: np.ndarray) -> np.ndarray:
        self.require_fitted()
        return self.keras_graphs().run("model", {"tokens": tokens})["probs"]

    def head_overrides(self, data: TextClassificationData) -> dict[str, Any]:
        """Other labels than the model's: a fresh classifier for them (never a silent remap)."""
        if list(data.label_names) == list(self.label_names):
            return {}
        return {"num_classes": len(data.label_names), "reset_head": True}

    def evaluate_data(self, data: TextClassificationData, split: str = "dev",
                      limit: int | None = None, **options: Any) -> dict:
        texts, labels = split_texts(data, split)
        texts, labels = texts[:limit], labels[:limit]
        if not texts:
            raise DataError(f"{data.description}: the {split} split is empty")
        if list(data.label_names) != list(self.label_names):
            raise DataError(f"{data.description}: classes {data.label_names} differ from the "
                            f"model's {self.label_names}")
        report = self.evaluate(texts, labels)
        report.update(split=split, data=data.description)
        return report

    def format_report(self, report: dict) -> str:
        return format_report(report)

    # -- export ---------------------------------------------------------------------------------
    def graph_specs(self) -> list[GraphSpec]:
        tokens = InputSpec("tokens", "tokens", ("batch", "time"), "int32",
                           self.config.model.vocab_size)
        return [GraphSpec("model", MODEL_FILE, self.model, [tokens], ["probs"])]

    def export_preprocessing(self) -> dict:
        return {"tokenizer": "assets/tokenizer.json", "labels": "assets/labels.json",
                "max_length": self.config.data.max_length, "padding": "post", "pad_id": 0,
                "vocab_size": self.config.model.vocab_size}

    def compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes predictions: argmax agreement and max probability drift on
        random inputs, plus accuracy on ``eval_data``'s dev split when given."""
        vocab = self.config.model.vocab_size
        agree, total, drift = 0, 0, 0.0
        for seed in (1, 2):
            for tokens in token_batches(vocab, seed=seed):
                a, b = reference.predict_tokens(tokens), candidate.predict_tokens(tokens)
                agree += int((a.argmax(1) == b.argmax(1)).sum())
                total += len(a)
                drift = max(drift, float(np.abs(a - b).max()))
        out: dict[str, Any] = {"random_inputs": total, "argmax_agreement": agree / total,
                               "max_prob_drift": drift}
        summary = f"argmax agreement {agree / total:.1%}, max prob drift {drift:.3f}"
        if eval_data is not None:
            data = self.load_data(eval_data, seed=self.config.training.seed)
            texts, labels = split_texts(data, "dev" if data.dev_texts else "train")
            acc_ref = reference.evaluate(texts, labels)["accuracy"]
            acc_new = candidate.evaluate(texts, labels)["accuracy"]
            out.update({"eval_data": data.description, "eval_examples": len(texts),
                        "accuracy_fp32": acc_ref, "accuracy_int8": acc_new,
                        "accuracy_difference": acc_new - acc_ref})
            summary += (f"; accuracy fp32 {acc_ref:.4f} -> int8 {acc_new:.4f} "
                        f"({acc_new - acc_ref:+.4f}) on {len(texts)} examples")
        out["summary"] = summary
        return out

    def int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when it loses at most half a point of accuracy on the evaluation data
        (or, without data, agrees with fp32 on at least 99% of random inputs)."""
        if "accuracy_difference" in comparison:
            if comparison["accuracy_difference"] < -0.005:
                return "int8 loses more than 0.5 points of accuracy"
            return None
        if comparison.get("argmax_agreement", 0.0) < 0.99:
            return "int8 disagrees with fp32 on more than 1% of random inputs"
        return None

    @classmethod
    def example_inputs(cls) -> list:
        return ["the movie was good", "a really bad plot", "a", ""]

    @classmethod
    def example_outputs(cls, model: Any, inputs: list) -> Any:
        pred = model.predict(inputs)
        return {"labels": pred.labels, "probs": pred.probs.tolist()}

    # -- command line ---------------------------------------------------------------------------
    @classmethod
    def add_verb_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("texts", nargs="*", help="texts to classify")
        parser.add_argument("--file", help="a UTF-8 text file, one input per line")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    @classmethod
    def run_verb(cls, model: Any, args: argparse.Namespace) -> int:
        texts = list(args.texts)
        if args.file:
            texts += read_input_lines(args.file)
        if not texts:
            raise ConfigError('nothing to predict: pass texts ("a great film") or --file FILE')
        pred = model.predict(texts)
        names = model.label_names
        for text, label, probs in zip(texts, pred.labels, pred.probs):
            if args.json:
                print(json.dumps({"text": text, "label": label,
                                  "probs": {n: round(float(p), 6) for n, p in zip(names, probs)}},
                                 ensure_ascii=False))
            else:
                print(f"{label:<10} {float(probs.max()):.3f}  {text}")
        return 0


def read_input_lines(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a UTF-8 file given to a CLI verb (``--file``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--file {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"--file {path}: not UTF-8 text (byte {exc.start}); convert it, e.g. "
                        f"iconv -t utf-8 {path}") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


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


TASK_CLASS = TextClassificationTask
RUNTIME_CLASS = TextClassifierRuntime
