"""The Keras side of text classification (``TASK_CLASS``): preprocessor files, training data
and hooks, export graph and the int8 gate. A family (``rnnzoo.families.sentiment``) adds
``build_model``. TensorFlow and Keras are imported inside functions only."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps._classification import (
    NamedClassesHead,
    accuracy_int8_rule,
    classifier_comparison,
)
from rnnzoo.apps.text_classification.data import (
    TextClassificationData,
    TextClassifierPreprocessor,
    load_text_classification,
)
from rnnzoo.apps.text_classification.inference import (
    STEP_FILE,
    STREAM_GRAPH,
    _Classifier,
    no_stream,
)
from rnnzoo.config import EntryConfig
from rnnzoo.data.tokenizer import WordTokenizer
from rnnzoo.engines.ctc import NotStreamableError
from rnnzoo.errors import DataError, RunDirError
from rnnzoo.export.bundle import MODEL_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec, token_batches
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task


class TextClassificationTask(NamedClassesHead, _Classifier, Task):
    """Keras side of a text classifier; a family adds ``build_model``."""

    task_type = "text-classification"
    metric_directions = {"loss": "min", "accuracy": "max"}
    head_layers = ("probs",)
    label_count_key = "num_classes"

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
        """Sparse cross-entropy; smoothed where the family's config sets ``label_smoothing``."""
        import keras

        smoothing = getattr(self.config.model, "label_smoothing", 0.0)
        if smoothing:
            from rnnzoo.layers.losses import SmoothedSparseCrossentropy

            return SmoothedSparseCrossentropy(smoothing)
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self) -> list:
        return ["accuracy"]

    # -- inference ------------------------------------------------------------------------------
    def _probs_of(self, tokens: np.ndarray) -> np.ndarray:
        self.require_fitted()
        return self.keras_graphs().run("model", {"tokens": tokens})["probs"]

    def _preprocessor_for_head(self, config: EntryConfig, labels: list[str] | None,
                               fresh: bool) -> TextClassifierPreprocessor:
        """The same tokenizer, under the copy's class names."""
        names = self.head_class_names(config.model.num_classes, labels, fresh)
        return TextClassifierPreprocessor(self.preprocessor.tokenizer, names,
                                          config.data.max_length)

    # -- streaming ------------------------------------------------------------------------------
    # Whether ``stream_graph`` gives a graph (read from the config alone: no model is built).
    streams: bool = False
    # Why not, where ``streams`` is False (the text of the NotStreamableError).
    no_stream_reason: str = ""

    def stream_graph(self) -> tuple[Any, list[str]] | None:
        """``(Keras model, output names)`` of the exported ``step`` graph (``tokens`` and
        ``state_<i>`` -> ``probs`` and ``new_state_<i>``); None (the default) where the
        probabilities read the whole text at once."""
        return None

    def _stream_graph(self) -> tuple[Any, dict[str, int]]:
        if not self.streams:
            raise NotStreamableError(no_stream(self.name, self.no_stream_reason))
        self.require_fitted()
        graphs = self.keras_graphs()
        spec = graphs.specs.get(STREAM_GRAPH)
        if spec is None:
            raise NotStreamableError(no_stream(self.name, self.no_stream_reason))
        widths = {i.name: int(i.shape[1]) for i in spec.inputs if i.kind == "state"}
        return lambda feeds: graphs.run(STREAM_GRAPH, feeds), widths

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
        tokens = InputSpec("tokens", "tokens", ("batch", "time"), "int32",
                           self.config.model.vocab_size)
        specs = [GraphSpec("model", MODEL_FILE, self.model, [tokens], ["probs"])]
        stream = self.stream_graph()
        if stream is not None:
            fn, outputs = stream
            states = [InputSpec(t.name, "state", ("batch", int(t.shape[-1])))
                      for t in fn.inputs[1:]]
            specs.append(GraphSpec(STREAM_GRAPH, STEP_FILE, fn, [tokens, *states], outputs))
        return specs

    def _export_preprocessing(self) -> dict:
        return {"tokenizer": "assets/tokenizer.json", "labels": "assets/labels.json",
                "max_length": self.config.data.max_length, "padding": "post", "pad_id": 0,
                "vocab_size": self.config.model.vocab_size}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes predictions: argmax agreement and max probability drift on
        random inputs, plus accuracy on ``eval_data``'s dev split when given."""
        vocab = self.config.model.vocab_size
        batches = [tokens for seed in (1, 2) for tokens in token_batches(vocab, seed=seed)]
        return classifier_comparison(
            self, reference, candidate,
            np.concatenate([reference.predict_tokens(t) for t in batches]),
            np.concatenate([candidate.predict_tokens(t) for t in batches]), eval_data, "examples")

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when it loses at most half a point of accuracy on the evaluation data
        (or, without data, agrees with fp32 on at least 99% of random inputs)."""
        return accuracy_int8_rule(comparison, 0.99)


TASK_CLASS = TextClassificationTask
