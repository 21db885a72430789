"""Sentiment (text) classifier: embedding -> recurrent stack -> pooling -> softmax.

Class names are stored with the model (``assets/labels.json``) so predictions come back as
labels, not indices.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from rnnzoo.config import EntryConfig
from rnnzoo.data.readers import TextClassificationData, load_text_classification
from rnnzoo.data.tokenizer import WordTokenizer
from rnnzoo.errors import DataError, RunDirError
from rnnzoo.io import atomic_write_text
from rnnzoo.metrics import classification_report
from rnnzoo.task import Task as BaseTask

TASK = "text-classification"


@dataclasses.dataclass
class ModelConfig:
    vocab_size: int = 20000
    embedding_dim: int = 128
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"
    reset_after: bool = True  # GRU only
    # "max"/"mean" pool over valid steps of the sequence output; "last" uses the final state(s).
    pooling: Literal["max", "mean", "last"] = "max"
    embedding_dropout: float = 0.2
    dropout: float = 0.3
    hidden_units: int = 0  # optional dense layer before the classifier
    num_classes: int = 2


@dataclasses.dataclass
class DataConfig:
    max_length: int = 100  # tokens; longer texts are truncated at the end
    lowercase: bool = True
    min_freq: int = 1
    dev_fraction: float = 0.1  # held out when a dataset has no dev split (MR, a CSV file)


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
        return [self.tokenizer.encode(t)[: self.max_length] for t in texts]


class Task(BaseTask):
    """A text classifier. ``predict(texts)`` returns labels and probabilities."""

    config: EntryConfig

    def new_preprocessor(self) -> TextClassifierPreprocessor:
        n = self.config.model.num_classes
        return TextClassifierPreprocessor(
            WordTokenizer(lowercase=self.config.data.lowercase),
            [str(i) for i in range(n)],
            self.config.data.max_length,
        )

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import MaskedGlobalPooling1D, RecurrentStack

        m = self.config.model
        tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
        x = keras.layers.Embedding(m.vocab_size, m.embedding_dim, mask_zero=True,
                                   name="embedding")(tokens)
        x = keras.layers.Dropout(m.embedding_dropout, name="embedding_dropout")(x)
        x = RecurrentStack(
            m.units,
            cell=m.cell,
            num_layers=m.num_layers,
            bidirectional=m.bidirectional,
            merge_mode=m.merge_mode,
            dropout=m.dropout,
            reset_after=m.reset_after,
            return_sequences=m.pooling != "last",
            name="encoder",
        )(x)
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

    # -- artifacts ----------------------------------------------------------------------------
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
            raise RunDirError(
                f"{labels_path}: expected a list of {config.model.num_classes} class names, "
                f"found {labels!r}"
            )
        tokenizer = WordTokenizer.load(directory / "tokenizer.json")
        return TextClassifierPreprocessor(tokenizer, labels, config.data.max_length)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        from rnnzoo.task import random_tokens

        rng = np.random.default_rng(seed)
        m = self.config.model
        return (random_tokens(rng, batch_size, 9, m.vocab_size),
                rng.integers(0, m.num_classes, size=batch_size))

    # -- training hooks (used by rnnzoo.training) ----------------------------------------------
    def load_data(self, path: str | Path, seed: int) -> TextClassificationData:
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

    def datasets(
        self, data: TextClassificationData, batch_size: int, seed: int, bucketing: bool,
        fixed_length: bool,
    ) -> tuple[Any, Any, int]:
        """(train dataset, dev dataset or None, train steps per epoch)."""
        from rnnzoo.data.pipeline import count_batches, sequence_dataset

        pre = self.preprocessor
        max_len = self.config.data.max_length
        train_seqs = pre.encode(data.train_texts)
        kw = {"batch_size": batch_size, "max_length": max_len, "bucketing": bucketing,
              "fixed_length": fixed_length}
        train = sequence_dataset(train_seqs, np.asarray(data.train_labels, np.int32),
                                 shuffle=True, seed=seed, **kw)
        dev = None
        if data.dev_texts:
            dev = sequence_dataset(pre.encode(data.dev_texts),
                                   np.asarray(data.dev_labels, np.int32), **kw)
        steps = count_batches([len(s) for s in train_seqs], **kw)
        return train, dev, steps

    def loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self) -> list:
        return ["accuracy"]

    # -- inference ----------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities [n, num_classes]; batches are grouped by length for speed."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not self.preprocessor.is_fitted:
            raise RunDirError(
                f"{self.name!r} has no vocabulary yet: train it (rnnzoo.train) or load a trained "
                "run/preset (rnnzoo.load)"
            )
        seqs = self.preprocessor.encode(texts)
        order = np.argsort([len(s) for s in seqs], kind="stable")
        out = np.zeros((len(texts), self.config.model.num_classes), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            width = max(1, max(len(seqs[i]) for i in idx))
            batch = np.zeros((len(idx), width), dtype=np.int32)
            for row, i in enumerate(idx):
                batch[row, : len(seqs[i])] = seqs[i] or [1]
            out[idx] = np.asarray(self._infer(batch), dtype=np.float32)
        return out

    def _infer(self, batch: np.ndarray) -> Any:
        fn = getattr(self, "_infer_fn", None)
        if fn is None:
            import tensorflow as tf

            model = self.model
            fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
            self._infer_fn = fn
        return fn(batch)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> Prediction:
        """Labels and probabilities for raw strings."""
        probs = self.predict_proba(texts, batch_size=batch_size)
        names = self.preprocessor.label_names
        return Prediction([names[i] for i in probs.argmax(axis=1)], probs)

    def evaluate(self, texts: Sequence[str], labels: Sequence[int], batch_size: int = 64) -> dict:
        """Accuracy, macro-F1 and the confusion matrix on labelled texts."""
        if len(texts) != len(labels):
            raise DataError(f"got {len(texts)} texts but {len(labels)} labels")
        if not texts:
            raise DataError("nothing to evaluate: the evaluation split is empty")
        probs = self.predict_proba(texts, batch_size=batch_size)
        return classification_report(labels, probs.argmax(axis=1).tolist(),
                                     self.preprocessor.label_names)

    def format_report(self, report: dict) -> str:
        from rnnzoo.metrics import format_report

        return format_report(report)

    def evaluate_data(self, data: TextClassificationData, split: str = "dev") -> dict:
        texts, labels = ((data.dev_texts, data.dev_labels) if split == "dev"
                         else (data.train_texts, data.train_labels))
        if list(data.label_names) != list(self.preprocessor.label_names):
            raise DataError(
                f"{data.description}: classes {data.label_names} differ from the model's "
                f"{self.preprocessor.label_names}"
            )
        report = self.evaluate(texts, labels)
        report["split"] = split
        report["data"] = data.description
        return report

    # -- export hooks (used by rnnzoo.export.to_onnx) -----------------------------------------
    def export_graphs(self) -> list[dict]:
        """One graph: post-padded int32 ``tokens`` [batch, time] -> ``probs`` [batch, classes]."""
        import tensorflow as tf

        from rnnzoo.export.exporter import random_sample_feeds
        from rnnzoo.export.runtime import MODEL_FILE

        model = self.model
        return [{
            "name": "model",
            "file": MODEL_FILE,
            "fn": model,
            "input_signature": [tf.TensorSpec([None, None], tf.int32, name="tokens")],
            "input_names": ["tokens"],
            "output_names": ["probs"],
            "dynamic_axes": {"tokens": {0: "batch", 1: "time"}, "probs": {0: "batch"}},
            "sample_feeds": random_sample_feeds(self.config.model.vocab_size),
            "keras_numpy_fn": lambda feeds: {"probs": model(feeds["tokens"], training=False)},
            "expect_recurrent": True,
        }]

    def export_preprocessing(self) -> dict:
        return {"tokenizer": "assets/tokenizer.json", "labels": "assets/labels.json",
                "max_length": self.config.data.max_length, "padding": "post", "pad_id": 0,
                "vocab_size": self.config.model.vocab_size}

    def compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes predictions: argmax agreement and max probability drift on
        random inputs, plus accuracy on ``eval_data``'s dev split when given."""
        from rnnzoo.export.exporter import random_sample_feeds

        feeds = random_sample_feeds(self.config.model.vocab_size, seed=1)
        feeds += random_sample_feeds(self.config.model.vocab_size, seed=2)
        agree, total, drift = 0, 0, 0.0
        for f in feeds:
            a = reference.predict_tokens(f["tokens"])
            b = candidate.predict_tokens(f["tokens"])
            agree += int((a.argmax(1) == b.argmax(1)).sum())
            total += len(a)
            drift = max(drift, float(np.abs(a - b).max()))
        out: dict[str, Any] = {"random_inputs": total, "argmax_agreement": agree / total,
                               "max_prob_drift": drift}
        summary = f"argmax agreement {agree / total:.1%}, max prob drift {drift:.3f}"
        if eval_data is not None:
            data = self.load_data(eval_data, seed=self.config.training.seed)
            texts = data.dev_texts or data.train_texts
            labels = data.dev_labels if data.dev_texts else data.train_labels
            acc_ref = reference.evaluate(texts, labels)["accuracy"]
            acc_new = candidate.evaluate(texts, labels)["accuracy"]
            out.update({"eval_data": data.description, "eval_examples": len(texts),
                        "accuracy_fp32": acc_ref, "accuracy_int8": acc_new,
                        "accuracy_difference": acc_new - acc_ref})
            summary += (f"; accuracy fp32 {acc_ref:.4f} -> int8 {acc_new:.4f} "
                        f"({acc_new - acc_ref:+.4f}) on {len(texts)} examples")
        out["summary"] = summary
        return out


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
