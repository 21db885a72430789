"""``POST /v1/models/{name}:stream``: one instance's output as server-sent events while the model
produces it, through each task's Python streaming API (``generate(..., stream=True)``,
``translate``, ``caption``, ``transcribe``).

The request body is the one ``:predict`` takes, with one instance. The answer is
``text/event-stream``: one ``data: {json}`` event per piece (``{"delta": text}`` for a
generator, translator or captioner, ``{"frame": [pitches]}`` for a music generator,
``{"partial": transcript so far}`` for a streaming recognizer), then ``event: result`` whose
data is what ``:predict`` answers for the same request (``{"predictions": [...]}``); a failure
after the first event ends the stream with ``event: error`` (``{"error", "code", "status"}``).
A failure before it (bad input, a limit, the deadline while queued) is an ordinary JSON error
with its status. The work runs in the model's worker threads like a predict call, under the
same limits and deadline, and stops when the client disconnects (the generator is closed).

A task type streams when its user call takes ``stream=True`` and it is listed in ``_KINDS``
below, or when its runtime class has a ``serve_stream(instance, options, emit)`` hook (which
calls ``emit(event)`` per event and returns the final prediction).
"""

from __future__ import annotations

import base64
import binascii
import inspect
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo import limits
from rnnzoo.errors import ConfigError, DataError, short_repr

Emit = Callable[[Any], None]

# The user calls that stream, by task type, and what their events carry.
_KINDS = {"text-generation": "text", "translation": "text", "image-captioning": "text",
          "music-generation": "frames", "speech-recognition": "transcript"}


class Final:
    """The last event a producer emits: the instance's prediction (as ``:predict`` gives it)."""

    __slots__ = ("prediction",)

    def __init__(self, prediction: Any) -> None:
        self.prediction = prediction


def stream_kind(runtime: Any, verb: str) -> str | None:
    """What a model's ``:stream`` events carry (``text``, ``frames``, ``transcript``,
    ``custom``), or None when it does not stream (``verb``: its task's user call)."""
    if callable(getattr(runtime, "serve_stream", None)):
        return "custom"
    task = runtime.manifest.get("task")
    kind = _KINDS.get(task)
    if kind is None:
        return None
    try:
        params = inspect.signature(getattr(runtime, verb)).parameters
    except (AttributeError, TypeError, ValueError):
        return None
    if "stream" not in params:
        return None
    if kind == "transcript" and not getattr(runtime, "can_stream", True):
        return None  # a bidirectional recognizer reads the whole utterance first
    return kind


def producer(model: Any, instance: Any, options: dict) -> Callable[[Emit], None]:
    """``produce(emit)`` for one instance, run in a worker thread: checks the instance, runs the
    task's stream and emits its events, then ``Final``. Closes the stream however it ends."""
    runtime = model.runtime
    kind = model.stream_kind
    if kind == "custom":
        def custom(emit: Emit) -> None:
            emit(Final(runtime.serve_stream(instance, dict(options), emit)))
        return custom
    make = {"text-generation": _text_generation, "translation": _translation,
            "image-captioning": _captioning, "music-generation": _music,
            "speech-recognition": _speech}[model.task]

    def produce(emit: Emit) -> None:
        make(runtime, instance, dict(options), emit)
    return produce


def _drain(pieces: Iterator[Any], emit: Emit, event: Callable[[Any], Any]) -> list:
    """Emit ``event(piece)`` for every piece (closing the iterator however it ends); the
    pieces."""
    out = []
    try:
        for piece in pieces:
            out.append(piece)
            emit(event(piece))
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
    return out


def _where(exc: DataError) -> DataError:
    return DataError(f"instances[0]: {exc}")


# -- per task ------------------------------------------------------------------------------------


def _text_generation(runtime: Any, instance: Any, options: dict, emit: Emit) -> None:
    from rnnzoo.apps.text_generation.inference import DEFAULT_STEPS
    from rnnzoo.engines.primed import generation_request

    item = generation_request({"prompt": instance} if isinstance(instance, str) else instance,
                              "instances[0]", {"prompt", "steps", "temperature", "top_k",
                                               "top_p", "seed"},
                              '{"prompt": "ROMEO:", "steps": 200}', DEFAULT_STEPS,
                              getattr(runtime, "SERVE_MAX_STEPS", DEFAULT_STEPS))
    try:
        pieces = runtime.generate(stream=True, **dict(item))
        text = "".join(_drain(pieces, emit, lambda p: {"delta": p}))
    except DataError as exc:
        raise _where(exc) from None
    emit(Final({"text": text}))


def _refuse_attention(options: dict) -> None:
    attention = options.pop("attention", False)
    if not isinstance(attention, bool):
        raise ConfigError(f"attention: expected true or false, found {attention!r}")
    if attention:
        raise ConfigError("attention: the attention matrix is not streamed; ask "
                          ":predict for it")


def _translation(runtime: Any, instance: Any, options: dict, emit: Emit) -> None:
    from rnnzoo.data.parallel import normalize

    _refuse_attention(options)
    truncate = options.pop("truncate", False)
    if not isinstance(truncate, bool):
        raise ConfigError(f"truncate: expected true or false, found {truncate!r}")
    if not isinstance(instance, str):
        raise DataError(f"instances[0]: expected a text, found {short_repr(instance, 60)}")
    pre = runtime.preprocessor
    words = pre.source.split(normalize(instance, pre.lowercase))
    if not truncate and len(words) > pre.max_length * 2:  # as :predict refuses it
        raise DataError(f"instances[0]: {len(words)} tokens, more than this model reads "
                        f"({pre.max_length * 2}); shorten the text, or send "
                        '"truncate": true to translate its first tokens')
    pieces = runtime.translate(instance, stream=True, **options)
    emit(Final({"translation": "".join(_drain(pieces, emit, lambda p: {"delta": p}))}))


def _image(instance: Any) -> Any:
    """A served image, as ``:predict`` reads it: ``{"b64": <image file>}`` (its size checked
    against ``max_image_pixels`` from the header, before decoding) or a nested list of
    pixels."""
    if isinstance(instance, Mapping) and isinstance(instance.get("b64"), str):
        from rnnzoo.data.captions import decode_image

        try:
            raw = base64.b64decode(instance["b64"], validate=True)
        except (ValueError, binascii.Error):
            raise DataError("instances[0]: b64 is not base64") from None
        return decode_image(raw, "instances[0]")
    if isinstance(instance, list):
        try:
            pixels = np.asarray(instance)
        except (ValueError, TypeError):
            pixels = None
        if pixels is None or pixels.dtype.kind not in "biuf":
            raise DataError("instances[0]: expected a nested list of pixels [height, width, "
                            "3] (numbers)")
        return pixels
    raise DataError(f"instances[0]: expected {{\"b64\": <base64 image file>}} or a nested "
                    f"list of pixels, found {type(instance).__name__}")


def _captioning(runtime: Any, instance: Any, options: dict, emit: Emit) -> None:
    _refuse_attention(options)
    pieces = runtime.caption(_image(instance), stream=True, **options)
    emit(Final({"caption": "".join(_drain(pieces, emit, lambda p: {"delta": p}))}))


def _music(runtime: Any, instance: Any, options: dict, emit: Emit) -> None:
    from rnnzoo.apps.music_generation.data import roll_to_pitches, wav_bytes, write_midi
    from rnnzoo.apps.music_generation.inference import DEFAULT_STEPS
    from rnnzoo.engines.primed import generation_request

    audio = options.get("audio", False)
    if not isinstance(audio, bool):
        raise ConfigError(f"audio: expected true or false, found {audio!r}")
    item = generation_request(instance, "instances[0]",
                              {"steps", "temperature", "seed", "primer", "primer_midi_base64"},
                              '{"steps": 32, "seed": 0}', DEFAULT_STEPS,
                              getattr(runtime, "SERVE_MAX_STEPS", DEFAULT_STEPS))
    args = {k: item[k] for k in ("steps", "temperature", "seed") if k in item}
    spq = runtime.preprocessor.steps_per_quarter
    with tempfile.TemporaryDirectory() as tmp:
        primer = item.get("primer")
        if item.get("primer_midi_base64") is not None:
            try:
                data = base64.b64decode(item["primer_midi_base64"], validate=True)
            except (ValueError, TypeError, binascii.Error):
                raise DataError("instances[0]: primer_midi_base64 is not base64") from None
            primer = Path(tmp) / "primer.mid"
            primer.write_bytes(data)
        try:
            frames = _drain(runtime.generate(primer=primer, stream=True, **args), emit,
                            lambda f: {"frame": roll_to_pitches(np.asarray(f)[None])[0]})
        except DataError as exc:
            if not isinstance(primer, Path):
                raise _where(exc) from None
            raise DataError(f"instances[0]: primer_midi_base64: "
                            f"{str(exc).replace(str(primer), 'the file')}") from None
        roll = np.stack(frames)
        midi = write_midi(roll, Path(tmp) / "out.mid", steps_per_quarter=spq)
        piece = {"pitches": roll_to_pitches(roll), "steps_per_quarter": spq,
                 "midi_base64": base64.b64encode(midi.read_bytes()).decode("ascii")}
    if audio:
        wav = wav_bytes(roll, steps_per_quarter=spq, sample_rate=11025)
        piece["wav_base64"] = base64.b64encode(wav).decode("ascii")
    emit(Final(piece))


def _audio(runtime: Any, instance: Any) -> np.ndarray:
    """A served recording: a base64 WAV file (the string, or ``{"wav_base64": ...}``) or
    ``{"samples": [...], "sample_rate": R}``, as ``:predict`` reads it."""
    from rnnzoo.apps.speech_recognition.data import read_wav

    where = "instances[0]"
    rate0 = runtime.preprocessor.params.sample_rate
    if isinstance(instance, Mapping) and "samples" in instance \
            and set(instance) <= {"samples", "sample_rate"}:
        rate = instance.get("sample_rate", rate0)
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
            raise DataError(f"{where}: sample_rate must be an integer >= 1, found "
                            f"{short_repr(rate)}")
        try:
            samples = np.asarray(instance["samples"], np.float32)
        except (ValueError, TypeError):
            raise DataError(f"{where}: samples must be a list of numbers") from None
        if samples.ndim != 1 or not samples.size:
            raise DataError(f"{where}: samples must be a non-empty flat list")
        limits.check("max_audio_seconds", samples.size / rate, f"{where} (seconds)")
        return runtime.load_audio(samples, rate)
    if isinstance(instance, Mapping) and set(instance) == {"wav_base64"}:
        instance = instance["wav_base64"]
    if not isinstance(instance, str):
        raise DataError(f"{where}: expected a base64 WAV file (a string or "
                        '{"wav_base64": ...}) or {"samples": [...], "sample_rate": R}, '
                        f"found {short_repr(instance, 60)}")
    try:
        data = base64.b64decode(instance, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"{where}: not base64") from None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audio.wav"
        path.write_bytes(data)
        try:
            return read_wav(path, rate0)[0]
        except DataError as exc:  # name the instance, not the temporary file
            raise DataError(f"{where}: {str(exc).replace(str(path) + ': ', '')}") from None


def _speech(runtime: Any, instance: Any, options: dict, emit: Emit) -> None:
    partials = _drain(runtime.transcribe(_audio(runtime, instance), stream=True, **options),
                      emit, lambda t: {"partial": t})
    emit(Final({"text": partials[-1] if partials else ""}))
