"""Speech recognition, the user calls: ``transcribe`` and ``evaluate``, written once over both
backends, and the onnxruntime runtime (``RUNTIME_CLASS``).

User call (Keras and runtime alike): ``transcribe(audio, beam_width=0)`` -> list of strings,
``frame_log_probs(audio)`` -> per input ``[frames, 1 + K]`` log-probabilities (blank first),
``evaluate(audio, references)`` -> label error rate and string accuracy. Decoding and scoring
come from :class:`rnnzoo.engines.ctc.CTCRecognizer`; this module adds reading audio (WAV
paths or numpy signals at any rate). TF-free.

Streaming (a ``streaming: true`` entry, ``ctc_lstm_stream``): ``s = model.stream()``;
``s.step(chunk)`` feeds float32 samples at the model's rate and returns the transcript of the
audio so far, which is exactly ``transcribe`` of that audio (greedy): causal features, the
convolution's left context, the recurrent states and the best-path decoder's last label are
carried in ``s.state``; a frame group the audio has only begun (the convolution's stride) is
decoded on a copy and fed for good when it is complete. ``transcribe(audio, stream=True)``
yields the transcript each time it changes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnzoo.apps.speech_recognition.data import (
    ASSET_FILE,
    CausalLogMel,
    SpeechPreprocessor,
    read_wav,
    resample,
    to_float_audio,
)
from rnnzoo.engines.ctc import (
    CTCBundleMixin,
    CTCRecognizer,
    check_beam_width,
    ctc_greedy_continue,
    score_transcripts,
)
from rnnzoo.engines.stream import Stream
from rnnzoo.errors import ConfigError, DataError, short_repr
from rnnzoo.export.bundle import BundleRuntime, check_count
from rnnzoo.limits import LimitError
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
                   batch_size: int = 32, progress: bool | Progress = False,
                   stream: bool = False, chunk_seconds: float = 0.1
                   ) -> list[str] | Iterator[str]:
        """Transcripts of WAV files (paths) or numpy signals (at ``sample_rate``, default the
        model's), one string per input: best-path decoding, or CTC prefix beam search of
        width ``beam_width``. ``progress=True``: a progress line on stderr (features,
        network, decoding).

        ``stream=True`` (a streaming model, one input, best path): an iterator over the
        transcript so far, fed ``chunk_seconds`` of audio at a time through :meth:`stream`,
        yielded each time it changes; the last one is ``transcribe(audio)[0]`` (an empty
        transcript is yielded once at the end)."""
        if stream:
            return self._transcribe_stream(audio, beam_width, sample_rate, chunk_seconds)
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


    # -- streaming ------------------------------------------------------------------------------
    stream_hint = ("its bidirectional recurrent layers (and centred features and convolution) "
                   "read the whole utterance before any frame's output; use the streaming entry "
                   "ctc_lstm_stream (preset ctc_lstm_stream.fsdd), or transcribe the whole audio")

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """The state of ``batch`` streams before any audio: ``audio_tail`` (the last window of
        samples, for the next causal frame) and ``samples`` (how many were fed), ``pending``
        (frames of a convolution stride group not yet complete), the stream graph's
        ``state_<i>`` (the convolution's left context, then the recurrent states), and the
        best-path decoder's ``last_label`` and ``text`` (the transcript so far)."""
        self._require_stream()
        batch = check_count("batch", batch)
        p = self.preprocessor.params
        state = {
            "audio_tail": np.zeros((batch, p.win_length), np.float32),
            "samples": np.zeros((batch,), np.int64),
            "pending": np.zeros((batch, self.frame_stride - 1, p.n_mels), np.float32),
        }
        return {**state, **self._stream_zero_state(batch)}

    def stream(self, batch: int = 1) -> Stream:
        """A :class:`rnnzoo.engines.stream.Stream` over :meth:`step`: ``s.step(chunk)`` feeds
        float32 samples at the model's rate (``[n]``, or ``[batch, n]`` for several streams
        at once) and returns the transcript so far (a list for ``[batch, n]``). A
        bidirectional recognizer raises ``NotStreamableError``."""
        return Stream(self.step, self.initial_state(batch))

    def _chunk(self, x: Any, batch: int) -> np.ndarray:
        if isinstance(x, (list, tuple)):
            x = np.asarray(x, np.float32)
        if not isinstance(x, np.ndarray) or x.ndim not in (1, 2):
            raise DataError(f"step: expected audio samples [n] or [batch, n] (float32 at "
                            f"{self.preprocessor.params.sample_rate} Hz), found "
                            f"{short_repr(x, 80)}")
        rows = x[None] if x.ndim == 1 else x
        if rows.shape[0] != batch:
            raise DataError(f"step: the stream has batch {batch}, the chunk has "
                            f"{rows.shape[0]} row(s) (shape {x.shape}); feed [n] for one "
                            "stream or [batch, n]")
        if not rows.shape[1]:
            return np.zeros(rows.shape, np.float32)
        return np.stack([to_float_audio(r, "step: audio chunk") for r in rows])

    def step(self, x: Any, state: Mapping[str, np.ndarray]
             ) -> tuple[str | list[str], dict[str, np.ndarray]]:
        """Feed an audio chunk ``x`` (float32 samples at the model's rate, ``[n]`` or
        ``[batch, n]``) from ``state``: the transcript of all the audio so far (str, or one per
        row) and the state after the chunk. Any split of a signal into chunks gives after each
        the greedy ``transcribe`` of the audio so far."""
        self._require_stream()
        state = {n: np.asarray(v) for n, v in state.items()}
        batch = len(state["samples"])
        audio = self._chunk(x, batch)
        pre = self.preprocessor
        hop, stride = pre.params.hop_length, self.frame_stride
        seen = int(state["samples"][0])
        feats, tails = [], []
        extractor = CausalLogMel(pre.params)
        for row, tail in zip(audio, state["audio_tail"]):
            frames, new_tail = extractor.advance(row, tail, seen)
            feats.append(pre.normalise(frames))
            tails.append(new_tail)
        waiting = (seen // hop) % stride  # frames of the group begun before this chunk
        frames = np.concatenate([state["pending"][:, :waiting], np.stack(feats)], axis=1)
        whole = frames.shape[1] // stride * stride
        carried = {n: state[n] for n in self._stream_state_shapes()}
        last = state["last_label"].astype(np.int32).copy()
        texts = [str(t) for t in state["text"]]
        if whole:
            out = self._stream_run({"features": frames[:, :whole], **carried})
            carried = {n: out[f"new_{n}"] for n in carried}
            for b in range(batch):
                ids, last[b] = ctc_greedy_continue(out["log_probs"][b], int(last[b]))
                texts[b] += pre.decode(ids)
        shown = list(texts)
        rest = frames[:, whole:]
        if rest.shape[1]:  # a group begun: its first frame is an output frame already
            out = self._stream_run({"features": rest, **carried})
            for b in range(batch):
                shown[b] += pre.decode(ctc_greedy_continue(out["log_probs"][b],
                                                           int(last[b]))[0])
        pending = np.zeros_like(state["pending"])
        pending[:, : rest.shape[1]] = rest
        new = {"audio_tail": np.stack(tails).astype(np.float32),
               "samples": state["samples"] + audio.shape[1], "pending": pending, **carried,
               "last_label": last, "text": np.array(texts, dtype=object)}
        return (shown[0] if np.ndim(x) == 1 else shown), new

    def _transcribe_stream(self, audio: Any, beam_width: int, sample_rate: int | None,
                           chunk_seconds: float) -> Iterator[str]:
        """Checks first (so a bad call fails where it is made), then the generator."""
        self._require_stream()
        if check_beam_width(beam_width):
            raise ConfigError("transcribe(stream=True) decodes by best path; beam search needs "
                              "the whole audio: pass beam_width=0 or stream=False")
        if isinstance(chunk_seconds, bool) or not isinstance(chunk_seconds, (int, float)) \
                or not math.isfinite(chunk_seconds) or chunk_seconds <= 0:
            raise ConfigError(f"chunk_seconds: expected a number of seconds > 0, found "
                              f"{short_repr(chunk_seconds)}")
        items = _as_audio_list(audio)
        if len(items) != 1:
            raise DataError(f"transcribe(stream=True) streams one input, found {len(items)}; "
                            "call it once per input")
        signal = self.load_audio(items[0], sample_rate)
        chunk = max(1, int(round(chunk_seconds * self.preprocessor.params.sample_rate)))
        stream = self.stream()

        def transcripts() -> Iterator[str]:
            shown = None
            for start in range(0, len(signal), chunk):
                text = stream.step(signal[start:start + chunk])
                if text != (shown or ""):
                    shown = text
                    yield text
            if shown is None:
                yield ""

        return transcripts()


class SpeechRecognizerRuntime(CTCBundleMixin, _Recognizer, BundleRuntime):
    """``transcribe(audio)`` for a speech bundle with onnxruntime, numpy and scipy only."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._init_ctc(SpeechPreprocessor, ASSET_FILE)

    # -- rnnzoo serve (rnnzoo.serving) ------------------------------------------------------------
    serve_options: ClassVar[dict[str, Any]] = {"beam_width": 0}
    serve_demo: ClassVar[dict[str, Any]] = {"input": "audio", "example": None}

    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One ``{"text"}`` per instance: a WAV file in base64 (the string itself, or
        ``{"wav_base64": ...}``), or ``{"samples": [floats in -1..1], "sample_rate": R}``."""
        return [{"text": t} for t in self.transcribe(self.serve_audio(instances),
                                                     **dict(options))]

    def serve_audio(self, instances: list) -> list[np.ndarray]:
        """The signals of request instances (as :meth:`serve_predict` reads them), at the
        model's rate: what a streaming endpoint feeds ``transcribe(audio, stream=True)``."""
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
                except LimitError as exc:  # the same error (413), naming the instance
                    exc.args = (str(exc).replace(str(path), where),)
                    raise
                except DataError as exc:  # name the instance, not the temporary file
                    raise DataError(f"{where}: {str(exc).replace(str(path) + ': ', '')}") \
                        from None
        return audio


RUNTIME_CLASS = SpeechRecognizerRuntime
