"""Speech recognition, the user calls: ``transcribe`` and ``evaluate``, written once over both
backends, and the onnxruntime runtime (``RUNTIME_CLASS``).

User call (Keras and runtime alike): ``transcribe(audio, beam_width=0)`` -> list of strings,
``frame_log_probs(audio)`` -> per input ``[frames, 1 + K]`` log-probabilities (blank first),
``evaluate(audio, references)`` -> label error rate and string accuracy. Decoding and scoring
come from :class:`rnnzoo.engines.ctc.CTCRecognizer`; this module adds reading audio (WAV
paths or numpy signals at any rate). TF-free.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnzoo.apps.speech_recognition.data import (
    ASSET_FILE,
    SpeechPreprocessor,
    read_wav,
    resample,
    to_float_audio,
)
from rnnzoo.engines.ctc import CTCRecognizer, check_beam_width, score_transcripts
from rnnzoo.errors import DataError, short_repr
from rnnzoo.export.bundle import BundleError, BundleRuntime
from rnnzoo.progress import Progress, model_label, reporting

UNIT = "recordings"  # what the progress line counts


def _as_audio_list(audio: Any) -> list:
    if isinstance(audio, (str, os.PathLike, np.ndarray)):
        return [audio]
    if isinstance(audio, (list, tuple)):
        if audio and all(isinstance(a, (int, float)) and not isinstance(a, bool)
                         for a in audio):
            return [np.asarray(audio, np.float32)]  # one signal given as a list of samples
        if not audio:
            raise DataError("transcribe: empty list of audio inputs")
        return list(audio)
    raise DataError(f"transcribe: expected a WAV path, a numpy signal or a list of them, found "
                    f"{type(audio).__name__}")


class _Recognizer(CTCRecognizer):
    """``transcribe`` and ``evaluate`` on audio, over ``_log_probs_of(features, mask)``."""

    preprocessor: SpeechPreprocessor

    def load_audio(self, item: Any, sample_rate: int | None = None) -> np.ndarray:
        """Mono float32 samples at the model's rate: a WAV path, or a numpy signal at
        ``sample_rate`` (default: the model's)."""
        rate = self.preprocessor.params.sample_rate
        if isinstance(item, (str, os.PathLike)):
            return read_wav(item, rate)[0]
        if isinstance(item, (list, tuple)):
            item = np.asarray(item, np.float32)
        if not isinstance(item, np.ndarray):
            raise DataError(f"transcribe: expected a WAV path or a numpy signal, found "
                            f"{type(item).__name__}")
        audio = to_float_audio(item, "audio array")
        return resample(audio, int(sample_rate or rate), rate)

    def frame_log_probs(self, audio: Any, sample_rate: int | None = None,
                        batch_size: int = 32, progress: bool | Progress = False
                        ) -> list[np.ndarray]:
        """Per input, the ``[frames, 1 + K]`` log-probabilities of its valid frames (column 0
        is the blank). ``progress=True``: a progress line on stderr (reading and features,
        then the network)."""
        items = _as_audio_list(audio)
        n = len(items)
        with reporting(progress, model_label(self, "log-probabilities"), n, UNIT) as bar:
            bar.stage("features", n)
            feats = [self.preprocessor.features(self.load_audio(a, sample_rate))
                     for a in bar.over(items)]
            bar.stage("network", n)
            return self.log_probs_of_features(feats, batch_size, progress=bar)

    def transcribe(self, audio: Any, beam_width: int = 0, sample_rate: int | None = None,
                   batch_size: int = 32, progress: bool | Progress = False) -> list[str]:
        """Transcripts of WAV files (paths) or numpy signals (at ``sample_rate``, default the
        model's), one string per input: best-path decoding, or CTC prefix beam search of
        width ``beam_width``. ``progress=True``: a progress line on stderr (features,
        network, decoding)."""
        beam_width = check_beam_width(beam_width)
        with reporting(progress, model_label(self, "transcribe"), None, UNIT) as bar:
            lps = self.frame_log_probs(audio, sample_rate, batch_size, progress=bar)
            bar.stage("decoding", len(lps))
            return [self.decode(lp, beam_width) for lp in bar.over(lps)]

    def evaluate(self, audio: Any, references: Sequence[str], beam_width: int = 0,
                 sample_rate: int | None = None, progress: bool = False) -> dict:
        """Label error rate and string accuracy of the transcripts of ``audio`` (as for
        :meth:`transcribe`) against ``references`` (one transcript per input; spaces ignored
        when the alphabet has none, as the digits). The same call on the Keras task and the
        runtime; ``rnnzoo evaluate`` scores a dataset through it. ``progress=True``: a
        progress line on stderr."""
        if isinstance(references, str):
            references = [references]
        label = f"{model_label(self, 'evaluate')} " \
                f"({f'beam {beam_width}' if beam_width else 'best path'})"
        with reporting(progress, label, None, UNIT) as bar:
            hyps = self.transcribe(audio, beam_width, sample_rate, progress=bar)
        return score_transcripts(references, hyps, self.alphabet, "audio inputs")


class SpeechRecognizerRuntime(_Recognizer, BundleRuntime):
    """``transcribe(audio)`` for a speech bundle with onnxruntime, numpy and scipy only."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.preprocessor = SpeechPreprocessor.from_file(self.asset(ASSET_FILE), BundleError)
        self.frame_stride = self.setting("frame_stride", 1)
        self.name = self.entry

    def _log_probs_of(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.run("model", {"features": features, "mask": mask})["log_probs"]

    # -- rnnzoo serve (rnnzoo.serving) ------------------------------------------------------------
    serve_options: ClassVar[dict[str, Any]] = {"beam_width": 0}
    serve_demo: ClassVar[dict[str, Any]] = {"input": "audio", "example": None}

    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One ``{"text"}`` per instance: a WAV file in base64 (the string itself, or
        ``{"wav_base64": ...}``), or ``{"samples": [floats in -1..1], "sample_rate": R}``."""
        import base64
        import binascii
        import tempfile

        audio = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, item in enumerate(instances):
                where = f"instances[{i}]"
                if isinstance(item, Mapping) and set(item) <= {"samples", "sample_rate"} \
                        and "samples" in item:
                    rate = item.get("sample_rate", self.preprocessor.params.sample_rate)
                    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
                        raise DataError(f"{where}: sample_rate must be an integer >= 1, found "
                                        f"{short_repr(rate)}")
                    try:
                        samples = np.asarray(item["samples"], np.float32)
                    except (ValueError, TypeError):
                        raise DataError(f"{where}: samples must be a list of numbers") from None
                    if samples.ndim != 1 or not samples.size:
                        raise DataError(f"{where}: samples must be a non-empty flat list")
                    audio.append(self.load_audio(samples, rate))
                    continue
                if isinstance(item, Mapping) and set(item) == {"wav_base64"}:
                    item = item["wav_base64"]
                if not isinstance(item, str):
                    raise DataError(f"{where}: expected a base64 WAV file (a string or "
                                    '{"wav_base64": ...}) or {"samples": [...], '
                                    f'"sample_rate": R}}, found {short_repr(item, 60)}')
                try:
                    data = base64.b64decode(item, validate=True)
                except (binascii.Error, ValueError):
                    raise DataError(f"{where}: not base64") from None
                path = Path(tmp) / f"{i}.wav"
                path.write_bytes(data)
                try:
                    audio.append(read_wav(path, self.preprocessor.params.sample_rate)[0])
                except DataError as exc:  # name the instance, not the temporary file
                    raise DataError(f"{where}: {str(exc).replace(str(path) + ': ', '')}") \
                        from None
        return [{"text": t} for t in self.transcribe(audio, **dict(options))]


RUNTIME_CLASS = SpeechRecognizerRuntime
