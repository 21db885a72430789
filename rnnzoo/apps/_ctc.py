"""What the CTC recognizers (speech, handwriting) share on the Keras side: one task base.

Both map ``features [B, T, F]`` and a 0/1 frame ``mask [B, T]`` to per-frame log-probabilities
``log_probs [B, T', 1 + K]`` (class 0 the CTC blank, ``T' = ceil(T / stride)``) and train
under the same CTC loss on length-grouped batches, so the assets, the alphabet check, the
datasets, the export specs, the streaming hooks and the int8 comparison are written here once;
an application adds its reader (``load_data``), its features (``_features``, fitting in
``_fit_features``) and its manifest text. The user calls and the runtime are in
:class:`rnnzoo.engines.ctc.CTCRecognizer`. TensorFlow is imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnzoo.config import EntryConfig
from rnnzoo.engines.ctc import check_alphabet
from rnnzoo.errors import DataError, RunDirError
from rnnzoo.export.bundle import MODEL_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task

STREAM_FILE = "stream_model.onnx"  # the stream graph of a streaming recognizer


class CTCTask(Task):
    """Keras side of a CTC recognizer; a family adds ``build_model`` (inputs ``features`` and
    ``mask``, output ``log_probs`` from :class:`rnnzoo.layers.ctc.MaskedLogSoftmax`) and, when
    ``streaming: true``, ``stream_graph``."""

    head_layers = ("logits",)
    #: The preprocessor's JSON asset and class (``from_file``, ``to_json``, ``alphabet``).
    asset_file: ClassVar[str]
    preprocessor_class: ClassVar[type]
    #: The int8 gate's metric on held-out data: (key, words, splits in order of preference,
    #: how a runtime is scored on a list of examples).
    int8_metric: ClassVar[tuple[str, str, tuple[str, ...]]]
    examples_noun: ClassVar[str] = "examples"

    # -- what an application adds -----------------------------------------------------------------
    @property
    def num_features(self) -> int:
        """The width F of a feature frame."""
        raise NotImplementedError

    def _features(self, example: Any) -> np.ndarray:
        """The normalised ``[T, F]`` features of one training example."""
        raise NotImplementedError

    def _fit_features(self, data: Any) -> None:
        """Fit the feature statistics on the training examples (not when fine-tuning)."""
        raise NotImplementedError

    def _score(self, runtime: Any, examples: Sequence[Any]) -> float:
        """The int8 metric (``int8_metric[0]``) of a backend on examples."""
        raise NotImplementedError

    def augmenter(self, examples: Sequence[Any]
                  ) -> Callable[[int, np.random.Generator], np.ndarray] | None:
        """``f(i, rng)``: the normalised features of a random training copy of
        ``examples[i]``, or None (the default) where the application does not augment; used
        by training batches only, never at evaluation or export."""
        return None

    def stream_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)`` of the ``stream`` graph (streaming families)."""
        raise NotImplementedError(f"{type(self).__name__} builds no stream graph")

    # -- assets -------------------------------------------------------------------------------
    @property
    def streaming_model(self) -> bool:
        """Whether the family builds a streaming model (``model.streaming``)."""
        return bool(getattr(self.config.model, "streaming", False))

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / self.asset_file, self.preprocessor.to_json() + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> Any:
        pre = cls.preprocessor_class.from_file(directory / cls.asset_file, RunDirError)
        if pre.is_fitted and len(pre.alphabet) != config.model.num_labels:
            raise RunDirError(f"{directory / cls.asset_file}: alphabet of {len(pre.alphabet)} "
                              f"labels, but the model has num_labels={config.model.num_labels}")
        return pre

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[Any, np.ndarray]:
        rng = np.random.default_rng(seed)
        time = 24
        x = rng.normal(0, 1, (batch_size, time, self.num_features)).astype(np.float32)
        lengths = rng.integers(1, time + 1, size=batch_size)
        lengths[0] = time
        if batch_size > 1:
            lengths[1] = 1
        mask = (np.arange(time)[None, :] < lengths[:, None]).astype(np.float32)
        x *= mask[..., None]
        y = np.full((batch_size, 2), -1, np.int32)
        y[:, 0] = rng.integers(1, self.config.model.num_labels + 1, size=batch_size)
        return (x, mask), y

    # -- training -------------------------------------------------------------------------------
    def adapt(self, data: Any) -> None:
        """Set the alphabet (checked against ``num_labels``) and fit the feature statistics
        (unless fitted, as when fine-tuning)."""
        pre = self.preprocessor
        if not data.train:
            raise DataError(f"{data.description}: no training {self.examples_noun}")
        alphabet = pre.alphabet if pre.is_fitted else data.alphabet
        check_alphabet(data.train + data.dev, alphabet, data.description)
        n = self.config.model.num_labels
        if len(alphabet) != n:
            raise DataError(f"{data.description}: the alphabet {alphabet!r} has {len(alphabet)} "
                            f"labels, but {self.name!r} is configured for num_labels={n}; pass "
                            f"--set num_labels={len(alphabet)}")
        if not pre.is_fitted:
            pre.alphabet = alphabet
            self._fit_features(data)
        self._feature_cache = {}

    def features_of(self, examples: Sequence[Any]) -> list[np.ndarray]:
        """Normalised features of ``examples``, computed once per list (training reads the
        same examples every epoch)."""
        cache = self.__dict__.setdefault("_feature_cache", {})
        key = id(examples)
        if key not in cache or cache[key][0] is not examples:
            cache[key] = (examples, [self._features(ex) for ex in examples])
        return cache[key][1]

    def datasets(self, data: Any, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        from rnnzoo.layers.ctc import ctc_dataset

        pre = self.preprocessor
        examples = data.train
        train, steps = ctc_dataset(self.features_of(examples),
                                   [pre.encode(ex.text) for ex in examples], batch_size,
                                   shuffle=True, seed=seed, augment=self.augmenter(examples))
        dev = None
        self._dev_examples = data.dev
        if data.dev:
            dev = ctc_dataset(self.features_of(data.dev),
                              [pre.encode(ex.text) for ex in data.dev], batch_size,
                              shuffle=False, seed=seed)[0]
        return train, dev, steps

    def loss(self) -> Any:
        from rnnzoo.layers.ctc import CTCLoss

        return CTCLoss()

    def head_overrides(self, data: Any) -> dict[str, Any]:
        """Another alphabet than the model's: a fresh output layer for it."""
        if data.alphabet == self.alphabet:
            return {}
        return {"num_labels": len(data.alphabet), "reset_head": True}

    # -- inference (the calls are in the application's inference.py) -------------------------
    @property
    def frame_stride(self) -> int:
        return int(getattr(self.config.model, "conv_stride", 1) or 1)

    def _log_probs_of(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.require_fitted()
        return self.keras_graphs().run("model", {"features": features,
                                                 "mask": mask})["log_probs"]

    @property
    def can_stream(self) -> bool:
        return self.streaming_model

    def _stream_state_shapes(self) -> dict[str, tuple[int, ...]]:
        self.require_fitted()
        spec = {s.name: s for s in self._graph_specs()}["stream"]
        return {i.name: tuple(int(d) for d in i.shape[1:]) for i in spec.inputs
                if i.kind == "state"}

    def _stream_run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.require_fitted()
        return self.keras_graphs().run("stream", feeds)

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
        features = InputSpec("features", "features", ("batch", "time", self.num_features))
        mask = InputSpec("mask", "mask", ("batch", "time"))
        specs = [GraphSpec("model", MODEL_FILE, self.model, [features, mask], ["log_probs"])]
        if self.streaming_model:
            graph, outputs = self.stream_graph()
            states = [InputSpec(t.name, "state", ("batch", *(int(d) for d in t.shape[1:])))
                      for t in graph.inputs[1:]]
            specs.append(GraphSpec("stream", STREAM_FILE, graph, [features, *states], outputs))
        return specs

    def _export_preprocessing(self) -> dict:
        return {"frame_stride": self.frame_stride, "num_labels": len(self.alphabet), "blank": 0}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes the recognizer: the ``int8_metric`` of both on ``eval_data``'s
        held-out examples (first 200) when given, else transcript agreement and log-probability
        drift on random features."""
        key, words, splits = self.int8_metric
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            pick: Callable[[str], list] = lambda s: getattr(data, s)  # noqa: E731
            examples = next((pick(s) for s in splits if pick(s)), data.train)[:200]
            a, b = self._score(reference, examples), self._score(candidate, examples)
            return {self.examples_noun: len(examples), f"{key}_fp32": a, f"{key}_int8": b,
                    "summary": f"{words} fp32 {a:.4f} -> int8 {b:.4f} on {len(examples)} "
                               f"{self.examples_noun}"}
        rng = np.random.default_rng(0)
        feats = [rng.normal(0, 1, (n, self.num_features)).astype(np.float32)
                 for n in (60, 23, 1)]
        la, lb = reference.log_probs_of_features(feats), candidate.log_probs_of_features(feats)
        drift = max(float(np.abs(x - y).max()) for x, y in zip(la, lb))
        agree = float(np.mean([reference.decode(x) == candidate.decode(y)
                               for x, y in zip(la, lb)]))
        return {"transcript_agreement": agree, "max_log_prob_drift": drift,
                "summary": f"transcript agreement {agree:.0%}, max log-prob drift {drift:.4f}"}

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """Without data, int8 ships when every transcript of the random inputs is the same; an
        application adds its rule for the metric on data (``_int8_metric_rejection``)."""
        if f"{self.int8_metric[0]}_int8" in comparison:
            return self._int8_metric_rejection(comparison)
        if comparison.get("transcript_agreement", 0.0) < 1.0:
            return "int8 transcripts differ from fp32's on random inputs"
        return None

    def _int8_metric_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        raise NotImplementedError
