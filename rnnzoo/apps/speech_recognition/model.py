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
from typing import Any

import numpy as np

from rnnzoo.apps._ctc import CTCTask
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


class SpeechRecognitionTask(CTCTask, _Recognizer):
    """Keras side of a CTC recognizer of audio (the shared part is :class:`CTCTask`); a family
    adds ``build_model`` and, streaming, ``stream_graph``."""

    task_type = "speech-recognition"
    metric_directions = {"loss": "min", "ler": "min", "string_accuracy": "max",
                         "isolated_accuracy": "max"}
    asset_file = ASSET_FILE
    preprocessor_class = SpeechPreprocessor
    int8_metric = ("ler", "label error rate", ("test", "dev"))
    examples_noun = "strings"

    def new_preprocessor(self) -> SpeechPreprocessor:
        # A streaming model reads causal frames: none of them looks past the audio so far.
        return SpeechPreprocessor(FeatureParams.from_config(self.config.data,
                                                            causal=self.streaming_model),
                                  self.config.data.alphabet)

    @property
    def num_features(self) -> int:
        return int(self.config.data.n_mels)

    def load_data(self, path: str | os.PathLike, seed: int) -> SpeechData:
        return load_speech(path, self.config.data, seed)

    def _fit_features(self, data: SpeechData) -> None:
        """The normalisation, on up to 500 training recordings."""
        pre = self.preprocessor
        rate = pre.params.sample_rate
        sample = data.train[:: max(1, len(data.train) // 500)]
        pre.fit([log_mel(ex.audio(rate), pre.params) for ex in sample])

    def _features(self, example: Any) -> np.ndarray:
        return self.preprocessor.features(example.audio(self.preprocessor.params.sample_rate))

    def _score(self, runtime: Any, examples: Sequence[Any]) -> float:
        return cli.evaluate_examples(runtime, examples)["ler"]

    def _int8_metric_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when its label error rate is at most 0.5 points above fp32's."""
        if comparison["ler_int8"] > comparison["ler_fp32"] + cli.INT8_TOLERANCE["absolute"]:
            return "int8 label error rate more than 0.5 points above fp32's"
        return None

    # -- export ---------------------------------------------------------------------------------
    def _export_preprocessing(self) -> dict:
        return {"speech": f"assets/{ASSET_FILE}", **super()._export_preprocessing(),
                "sample_rate": self.preprocessor.params.sample_rate}

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


TASK_CLASS = SpeechRecognitionTask
