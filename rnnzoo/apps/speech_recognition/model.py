"""Speech recognition, the Keras side (``TASK_CLASS``): the task a CTC family builds on.

The model maps ``features [B, T, n_mels]`` and a 0/1 frame ``mask [B, T]`` (the frame count of
each row, so a padded batch gives every row exactly what it gives alone) to per-frame
log-probabilities ``log_probs [B, T', 1 + K]`` (class 0 is the CTC blank, 1..K the alphabet;
``T' = ceil(T / stride)``, padded frames exact zeros). Training reads length-grouped batches
(``rnnzoo.layers.ctc.ctc_dataset``) under the CTC loss; transcribing and scoring are the
TF-free calls of ``inference.py``, run here over the Keras graphs. TensorFlow is imported
inside functions only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.speech_recognition import cli
from rnnzoo.apps.speech_recognition.data import (
    ASSET_FILE,
    FeatureParams,
    SpeechData,
    SpeechPreprocessor,
    load_speech,
    log_mel,
)
from rnnzoo.apps.speech_recognition.inference import _Recognizer
from rnnzoo.config import EntryConfig
from rnnzoo.engines.ctc import check_alphabet
from rnnzoo.errors import DataError, RunDirError
from rnnzoo.export.bundle import MODEL_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task

STREAM_FILE = "stream_model.onnx"  # the stream graph of a streaming recognizer


class SpeechRecognitionTask(_Recognizer, Task):
    """Keras side of a CTC recognizer; a family adds ``build_model`` (inputs ``features`` and
    ``mask``, output ``log_probs`` from :class:`rnnzoo.layers.ctc.MaskedLogSoftmax`) and
    ``frame_stride``."""

    task_type = "speech-recognition"
    metric_directions = {"loss": "min", "ler": "min", "string_accuracy": "max",
                         "isolated_accuracy": "max"}
    head_layers = ("logits",)

    def new_preprocessor(self) -> SpeechPreprocessor:
        # A streaming model reads causal frames: none of them looks past the audio so far.
        return SpeechPreprocessor(FeatureParams.from_config(self.config.data,
                                                            causal=self.streaming_model),
                                  self.config.data.alphabet)

    @property
    def streaming_model(self) -> bool:
        """Whether the family builds a streaming model (``model.streaming``)."""
        return bool(getattr(self.config.model, "streaming", False))

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / ASSET_FILE, self.preprocessor.to_json() + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> SpeechPreprocessor:
        pre = SpeechPreprocessor.from_file(directory / ASSET_FILE, RunDirError)
        if pre.is_fitted and len(pre.alphabet) != config.model.num_labels:
            raise RunDirError(f"{directory / ASSET_FILE}: alphabet of {len(pre.alphabet)} "
                              f"labels, but the model has num_labels={config.model.num_labels}")
        return pre

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[Any, np.ndarray]:
        rng = np.random.default_rng(seed)
        time = 24
        x = rng.normal(0, 1, (batch_size, time, self.config.data.n_mels)).astype(np.float32)
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
    def load_data(self, path: str | os.PathLike, seed: int) -> SpeechData:
        return load_speech(path, self.config.data, seed)

    def adapt(self, data: SpeechData) -> None:
        """Set the alphabet (checked against ``num_labels``) and fit the normalisation (unless
        fitted, as when fine-tuning)."""
        pre = self.preprocessor
        if not data.train:
            raise DataError(f"{data.description}: no training examples")
        alphabet = pre.alphabet if pre.is_fitted else data.alphabet
        check_alphabet(data.train + data.dev, alphabet, data.description)
        n = self.config.model.num_labels
        if len(alphabet) != n:
            raise DataError(f"{data.description}: the alphabet {alphabet!r} has {len(alphabet)} "
                            f"labels, but {self.name!r} is configured for num_labels={n}; pass "
                            f"--set num_labels={len(alphabet)}")
        if not pre.is_fitted:
            pre.alphabet = alphabet
            rate = pre.params.sample_rate
            sample = data.train[:: max(1, len(data.train) // 500)]
            pre.fit([log_mel(ex.audio(rate), pre.params) for ex in sample])
        self._feature_cache = {}

    def features_of(self, examples: Sequence[Any]) -> list[np.ndarray]:
        """Normalised features of ``examples``, computed once per list (training reads the
        same strings every epoch)."""
        cache = self.__dict__.setdefault("_feature_cache", {})
        key = id(examples)
        if key not in cache or cache[key][0] is not examples:
            rate = self.preprocessor.params.sample_rate
            cache[key] = (examples, [self.preprocessor.features(ex.audio(rate))
                                     for ex in examples])
        return cache[key][1]

    def datasets(self, data: SpeechData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        from rnnzoo.layers.ctc import ctc_dataset

        pre = self.preprocessor
        feats = self.features_of(data.train)
        train, steps = ctc_dataset(feats, [pre.encode(ex.text) for ex in data.train],
                                   batch_size, shuffle=True, seed=seed)
        dev = None
        if data.dev:
            dev = ctc_dataset(self.features_of(data.dev),
                              [pre.encode(ex.text) for ex in data.dev], batch_size,
                              shuffle=False, seed=seed)[0]
        return train, dev, steps

    def loss(self) -> Any:
        from rnnzoo.layers.ctc import CTCLoss

        return CTCLoss()

    # -- inference and evaluation ---------------------------------------------------------------
    @property
    def frame_stride(self) -> int:
        return int(getattr(self.config.model, "conv_stride", 1) or 1)

    def _log_probs_of(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.require_fitted()
        return self.keras_graphs().run("model", {"features": features,
                                                 "mask": mask})["log_probs"]

    # -- streaming (the calls are in inference.py) ----------------------------------------------
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

    def head_overrides(self, data: SpeechData) -> dict[str, Any]:
        """Another alphabet than the model's: a fresh output layer for it."""
        if data.alphabet == self.alphabet:
            return {}
        return {"num_labels": len(data.alphabet), "reset_head": True}

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
        features = InputSpec("features", "features", ("batch", "time", self.config.data.n_mels))
        mask = InputSpec("mask", "mask", ("batch", "time"))
        specs = [GraphSpec("model", MODEL_FILE, self.model, [features, mask], ["log_probs"])]
        if self.streaming_model:
            graph, outputs = self.stream_graph()
            states = [InputSpec(t.name, "state", ("batch", *(int(d) for d in t.shape[1:])))
                      for t in graph.inputs[1:]]
            specs.append(GraphSpec("stream", STREAM_FILE, graph, [features, *states], outputs))
        return specs

    def stream_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)`` of the ``stream`` graph (streaming families)."""
        raise NotImplementedError(f"{type(self).__name__} builds no stream graph")

    def _export_preprocessing(self) -> dict:
        return {"speech": f"assets/{ASSET_FILE}", "frame_stride": self.frame_stride,
                "sample_rate": self.preprocessor.params.sample_rate,
                "num_labels": len(self.alphabet), "blank": 0}

    def _stream_manifest(self) -> dict:
        """What a caller outside rnnzoo needs besides the state names to stream audio through
        the ``stream`` graph (bundle.json ``stream.graphs.stream``)."""
        if not self.streaming_model:
            return {}
        p = self.preprocessor.params
        return {"stream": {
            "features": {
                "input": "features", "asset": f"assets/{ASSET_FILE}",
                "about": (f"causal log-mel frames: frame t is the {p.win_length}-sample Hann "
                          f"window ending at sample (t + 1) * {p.hop_length} (zeros before the "
                          f"start), |rfft(n={p.n_fft})|^2, the asset's mel filters "
                          "(Slaney, fmin/fmax there), log(x + 1e-6), then (x - mean) / std "
                          "with the asset's training-set statistics")},
            "frames_per_call": {"multiple_of": self.frame_stride,
                                "about": ("feed whole groups of frame_stride frames; a partial "
                                          "group only at the end of the audio")},
            "decode": {"output": "log_probs", "blank": 0,
                       "about": ("per output frame, argmax; drop blanks and a label equal to "
                                 "the previous frame's (carry the last frame's argmax across "
                                 "calls; blank at the start); label k is the asset's "
                                 "alphabet[k - 1]")}}}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes the recognizer: label error rate of both on ``eval_data``'s
        test strings (first 200) when given, else transcript agreement and log-probability
        drift on random features."""
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            examples = (data.test or data.dev or data.train)[:200]
            a = cli.evaluate_examples(reference, examples)["ler"]
            b = cli.evaluate_examples(candidate, examples)["ler"]
            return {"strings": len(examples), "ler_fp32": a, "ler_int8": b,
                    "summary": f"label error rate fp32 {a:.4f} -> int8 {b:.4f} on "
                               f"{len(examples)} strings"}
        rng = np.random.default_rng(0)
        feats = [rng.normal(0, 1, (n, self.config.data.n_mels)).astype(np.float32)
                 for n in (60, 23, 1)]
        la, lb = reference.log_probs_of_features(feats), candidate.log_probs_of_features(feats)
        drift = max(float(np.abs(x - y).max()) for x, y in zip(la, lb))
        agree = float(np.mean([reference.decode(x) == candidate.decode(y)
                               for x, y in zip(la, lb)]))
        return {"transcript_agreement": agree, "max_log_prob_drift": drift,
                "summary": f"transcript agreement {agree:.0%}, max log-prob drift {drift:.4f}"}

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when its label error rate is at most 0.5 points above fp32's (or, without
        data, every transcript of the random inputs is the same)."""
        if "ler_int8" in comparison:
            if comparison["ler_int8"] > comparison["ler_fp32"] + cli.INT8_TOLERANCE["absolute"]:
                return "int8 label error rate more than 0.5 points above fp32's"
            return None
        if comparison.get("transcript_agreement", 0.0) < 1.0:
            return "int8 transcripts differ from fp32's on random inputs"
        return None


TASK_CLASS = SpeechRecognitionTask
