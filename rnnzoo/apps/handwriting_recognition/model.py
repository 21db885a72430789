"""Handwriting recognition, the Keras side (``TASK_CLASS``): the task a handwriting family builds
on.

The model maps point features ``features [B, T, 5]`` and a 0/1 point ``mask [B, T]`` to
per-frame log-probabilities ``log_probs [B, T', 1 + K]`` (class 0 the CTC blank; ``T' =
ceil(T / stride)``, padded frames exact zeros), exactly the speech recognizer's contract, so the
loss, the training batches (``rnnzoo.layers.ctc``), the decoders and the scores
(``rnnzoo.engines.ctc``) are the same code. Training can early-stop on the dev lines'
character error rate (``monitor: val_cer``, best path, computed at every epoch's end).
TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.handwriting_recognition import cli
from rnnzoo.apps.handwriting_recognition.data import (
    ASSET_FILE,
    N_FEATURES,
    FeatureParams,
    HandwritingData,
    HandwritingPreprocessor,
    load_handwriting,
)
from rnnzoo.apps.handwriting_recognition.inference import _Recognizer
from rnnzoo.config import EntryConfig
from rnnzoo.engines.ctc import check_alphabet, ctc_greedy_decode
from rnnzoo.errors import DataError, RunDirError
from rnnzoo.export.bundle import MODEL_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text
from rnnzoo.metrics import label_error_rate
from rnnzoo.task import Task

STREAM_FILE = "stream_model.onnx"  # the stream graph of a streaming recognizer
FIT_LINES = 1000  # lines the feature statistics are fitted on


class HandwritingRecognitionTask(_Recognizer, Task):
    """Keras side of a handwriting recognizer; a family adds ``build_model`` (inputs
    ``features`` and ``mask``, output ``log_probs`` from
    :class:`rnnzoo.layers.ctc.MaskedLogSoftmax`)."""

    task_type = "handwriting-recognition"
    metric_directions = {"loss": "min", "cer": "min", "wer": "min", "string_accuracy": "max"}
    head_layers = ("logits",)

    def new_preprocessor(self) -> HandwritingPreprocessor:
        return HandwritingPreprocessor(FeatureParams.from_config(self.config.data),
                                       self.config.data.alphabet)

    @property
    def streaming_model(self) -> bool:
        return bool(getattr(self.config.model, "streaming", False))

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / ASSET_FILE, self.preprocessor.to_json() + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> HandwritingPreprocessor:
        pre = HandwritingPreprocessor.from_file(directory / ASSET_FILE, RunDirError)
        if pre.is_fitted and len(pre.alphabet) != config.model.num_labels:
            raise RunDirError(f"{directory / ASSET_FILE}: alphabet of {len(pre.alphabet)} "
                              f"labels, but the model has num_labels={config.model.num_labels}")
        return pre

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[Any, np.ndarray]:
        rng = np.random.default_rng(seed)
        time = 24
        x = rng.normal(0, 1, (batch_size, time, N_FEATURES)).astype(np.float32)
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
    def load_data(self, path: str | os.PathLike, seed: int) -> HandwritingData:
        return load_handwriting(path, self.config.data, seed)

    def adapt(self, data: HandwritingData) -> None:
        """Set the alphabet (checked against ``num_labels``) and fit the feature statistics
        (unless fitted, as when fine-tuning)."""
        pre = self.preprocessor
        if not data.train:
            raise DataError(f"{data.description}: no training lines")
        alphabet = pre.alphabet if pre.is_fitted else data.alphabet
        check_alphabet(data.train + data.dev, alphabet, data.description)
        n = self.config.model.num_labels
        if len(alphabet) != n:
            raise DataError(f"{data.description}: the alphabet {alphabet!r} has {len(alphabet)} "
                            f"labels, but {self.name!r} is configured for num_labels={n}; pass "
                            f"--set num_labels={len(alphabet)}")
        if not pre.is_fitted:
            pre.alphabet = alphabet
            pre.fit(data.train[:: max(1, len(data.train) // FIT_LINES)],
                    self.config.data.line_height)
        self._feature_cache = {}

    def features_of(self, lines: Sequence[Any]) -> list[np.ndarray]:
        """Standardised features of ``lines``, computed once per list (training reads the
        same lines every epoch)."""
        cache = self.__dict__.setdefault("_feature_cache", {})
        key = id(lines)
        if key not in cache or cache[key][0] is not lines:
            cache[key] = (lines, [self.preprocessor.features(ln.strokes) for ln in lines])
        return cache[key][1]

    def datasets(self, data: HandwritingData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        from rnnzoo.layers.ctc import ctc_dataset

        pre = self.preprocessor
        train, steps = ctc_dataset(self.features_of(data.train),
                                   [pre.encode(ln.text) for ln in data.train], batch_size,
                                   shuffle=True, seed=seed)
        dev = None
        self._dev_lines = data.dev
        if data.dev:
            dev = ctc_dataset(self.features_of(data.dev),
                              [pre.encode(ln.text) for ln in data.dev], batch_size,
                              shuffle=False, seed=seed)[0]
        return train, dev, steps

    def loss(self) -> Any:
        from rnnzoo.layers.ctc import CTCLoss

        return CTCLoss()

    def fit(self, train: Any, dev: Any, epochs: int, callbacks: list, verbose: Any) -> Any:
        """Keras ``fit`` with the dev lines' best-path character error rate put into each
        epoch's logs (``val_cer``) before rnnzoo's checkpoints and early stopping read them."""
        import keras

        task = self
        lines = self.__dict__.get("_dev_lines") or []

        class DevCER(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                if logs is None or not lines:
                    return
                lps = task.log_probs_of_features(task.features_of(lines), batch_size=64)
                hyps = [task.preprocessor.decode(ctc_greedy_decode(lp)) for lp in lps]
                logs["val_cer"] = label_error_rate([ln.text for ln in lines], hyps)["ler"]

        # After the weight averaging's swap (it comes first), before the history, checkpoints
        # and early stopping: val_cer is the averaged weights' when they are the saved ones.
        at = 0
        while at < len(callbacks) and isinstance(callbacks[at], keras.callbacks.SwapEMAWeights):
            at += 1
        return self.model.fit(train, validation_data=dev, epochs=epochs,
                              callbacks=[*callbacks[:at], DevCER(), *callbacks[at:]],
                              verbose=verbose, shuffle=False)

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

    def head_overrides(self, data: HandwritingData) -> dict[str, Any]:
        """Another alphabet than the model's: a fresh output layer for it."""
        if data.alphabet == self.alphabet:
            return {}
        return {"num_labels": len(data.alphabet), "reset_head": True}

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
        features = InputSpec("features", "features", ("batch", "time", N_FEATURES))
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
        return {"handwriting": f"assets/{ASSET_FILE}", "frame_stride": self.frame_stride,
                "num_labels": len(self.alphabet), "blank": 0}

    def _stream_manifest(self) -> dict:
        """What a caller outside rnnzoo needs besides the state names to stream strokes
        through the ``stream`` graph (bundle.json ``stream.graphs.stream``)."""
        if not self.streaming_model:
            return {}
        return {"stream": {
            "features": {
                "input": "features", "asset": f"assets/{ASSET_FILE}",
                "about": ("per stroke: resample to points spacing * h apart (h: the asset's "
                          "unit or the pad's line height), then per point dx, dy (move from "
                          "the previous point / h, y up, clipped to max_jump), pen_up (1 on a "
                          "stroke's first point), stroke_end (1 on its last), y (above the "
                          "line's first point / h), standardised with the asset's mean/std")},
            "decode": {"output": "log_probs", "blank": 0,
                       "about": ("per output frame, argmax; drop blanks and a label equal to "
                                 "the previous frame's (carry the last frame's argmax across "
                                 "strokes); label k is the asset's alphabet[k - 1]")}}}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes the recognizer: character error rate of both on
        ``eval_data``'s dev lines (first 200) when given, else transcript agreement and
        log-probability drift on random features."""
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            lines = (data.dev or data.test or data.train)[:200]
            a = cli.evaluate_lines(reference, lines)["cer"]
            b = cli.evaluate_lines(candidate, lines)["cer"]
            return {"lines": len(lines), "cer_fp32": a, "cer_int8": b,
                    "summary": f"character error rate fp32 {a:.4f} -> int8 {b:.4f} on "
                               f"{len(lines)} lines"}
        rng = np.random.default_rng(0)
        feats = [rng.normal(0, 1, (n, N_FEATURES)).astype(np.float32) for n in (60, 23, 1)]
        la, lb = reference.log_probs_of_features(feats), candidate.log_probs_of_features(feats)
        drift = max(float(np.abs(x - y).max()) for x, y in zip(la, lb))
        agree = float(np.mean([reference.decode(x) == candidate.decode(y)
                               for x, y in zip(la, lb)]))
        return {"transcript_agreement": agree, "max_log_prob_drift": drift,
                "summary": f"transcript agreement {agree:.0%}, max log-prob drift {drift:.4f}"}

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when its character error rate is at most 5% (relative) above fp32's
        (``cli.INT8_TOLERANCE``; without data, when every transcript of the random inputs is
        the same)."""
        if "cer_int8" in comparison:
            allowed = cli.INT8_TOLERANCE["relative"] * comparison["cer_fp32"]
            if comparison["cer_int8"] > comparison["cer_fp32"] + allowed:
                return "int8 character error rate more than 5% (relative) above fp32's"
            return None
        if comparison.get("transcript_agreement", 0.0) < 1.0:
            return "int8 transcripts differ from fp32's on random inputs"
        return None


TASK_CLASS = HandwritingRecognitionTask
