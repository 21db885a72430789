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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rnnzoo.apps._ctc import CTCTask
from rnnzoo.apps.handwriting_recognition import cli
from rnnzoo.apps.handwriting_recognition.data import (
    ASSET_FILE,
    N_FEATURES,
    Augmentation,
    FeatureParams,
    HandwritingData,
    HandwritingPreprocessor,
    augment_ink,
    load_handwriting,
)
from rnnzoo.apps.handwriting_recognition.inference import _Recognizer
from rnnzoo.engines.ctc import ctc_greedy_decode
from rnnzoo.metrics import label_error_rate

FIT_LINES = 1000  # lines the feature statistics are fitted on
CALIBRATION_LINES = 32  # lines the fp32 bundle runs on to calibrate static int8


class HandwritingRecognitionTask(CTCTask, _Recognizer):
    """Keras side of a handwriting recognizer (the shared part is :class:`CTCTask`); a family
    adds ``build_model`` and, streaming, ``stream_graph``."""

    task_type = "handwriting-recognition"
    metric_directions = {"loss": "min", "cer": "min", "wer": "min", "string_accuracy": "max"}
    asset_file = ASSET_FILE
    preprocessor_class = HandwritingPreprocessor
    int8_metric = ("cer", "character error rate", ("dev", "test"))
    examples_noun = "lines"

    def new_preprocessor(self) -> HandwritingPreprocessor:
        return HandwritingPreprocessor(FeatureParams.from_config(self.config.data),
                                       self.config.data.alphabet)

    @property
    def num_features(self) -> int:
        return N_FEATURES

    def load_data(self, path: str | os.PathLike, seed: int) -> HandwritingData:
        return load_handwriting(path, self.config.data, seed)

    def _fit_features(self, data: HandwritingData) -> None:
        self.preprocessor.fit(data.train[:: max(1, len(data.train) // FIT_LINES)],
                              self.config.data.line_height)

    def _features(self, line: Any) -> np.ndarray:
        return self.preprocessor.features(line.strokes)

    def augmenter(self, examples: Sequence[Any]
                  ) -> Callable[[int, np.random.Generator], np.ndarray] | None:
        """Features of random copies of training lines (``augment_*``, :func:`augment_ink`);
        None when every amount is 0."""
        aug = Augmentation.from_config(self.config.data)
        if not aug.active:
            return None
        return lambda i, rng: self.preprocessor.features(
            augment_ink(examples[i].strokes, rng, aug))

    def fit(self, train: Any, dev: Any, epochs: int, callbacks: list, verbose: Any) -> Any:
        """Keras ``fit`` with the dev lines' best-path character error rate put into each
        epoch's logs (``val_cer``) before rnnzoo's checkpoints and early stopping read them."""
        import keras

        task = self
        lines = self.__dict__.get("_dev_examples") or []

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

    def _score(self, runtime: Any, lines: Sequence[Any]) -> float:
        return cli.evaluate_lines(runtime, lines)["cer"]

    def _calibration_run(self, runtime: Any, eval_data: Any = None) -> bool:
        """Recognize eval lines the int8 comparison does not score (it scores the first 200
        held-out ones): the convolution front end then becomes static int8 (QLinearConv).
        Dynamic int8 (ConvInteger) cost the three-layer preset 5.7% (relative) CER; the LSTMs
        stay float32 either way."""
        if eval_data is None or not self.config.model.conv_filters:
            return False
        data = self.load_data(eval_data, self.config.training.seed)
        held = [line for s in self.int8_metric[2] for line in getattr(data, s)]
        pool = data.train if held else data.train[200:]
        lines = list(pool[:CALIBRATION_LINES]) or held[:CALIBRATION_LINES]
        cli.evaluate_lines(runtime, lines)
        return True

    def _int8_metric_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when its character error rate is at most 5% (relative) above fp32's
        (``cli.INT8_TOLERANCE``)."""
        allowed = cli.INT8_TOLERANCE["relative"] * comparison["cer_fp32"]
        if comparison["cer_int8"] > comparison["cer_fp32"] + allowed:
            return "int8 character error rate more than 5% (relative) above fp32's"
        return None

    # -- export ---------------------------------------------------------------------------------
    def _export_preprocessing(self) -> dict:
        return {"handwriting": f"assets/{ASSET_FILE}", **super()._export_preprocessing()}

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


TASK_CLASS = HandwritingRecognitionTask
