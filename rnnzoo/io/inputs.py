"""Checks on what a reader or a user call is about to decode, made before the work starts.

A small input can expand without bound, so each reader measures what it is about to build from
the input's header first and refuses anything over a limit of :mod:`rnnzoo.limits` with
``LimitError`` (naming the limit and how to raise it): the length of a MIDI piece in seconds and
in piano-roll frames (a 740-byte file whose notes are held for millions of ticks would render
gigabytes), an image's pixels (Pillow opens lazily: the size is known before decoding), a WAV
file's duration (from its RIFF header), the characters of a text. Numbers must be numbers: NaN,
infinities and values a float32 model cannot hold (``1e308`` overflows to ``inf``) are a
``NonFiniteError`` naming the position of the first one. TF-free; numpy is imported by the
functions that need it, MIDI and image libraries are passed in by their callers.
"""

from __future__ import annotations

import math
import os
import re
import struct
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rnnzoo.errors import DataError
from rnnzoo.limits import LimitError, check, current

__all__ = ["NonFiniteError", "check_batch_size", "check_finite", "check_image_pixels",
           "check_text", "check_texts", "first_bad_number", "image_bomb_guard",
           "midi_within_limits", "position", "wav_seconds"]


# -- numbers ------------------------------------------------------------------------------------
class NonFiniteError(DataError):
    """A numeric input holds NaN, an infinity or a value outside the range the model computes
    in; ``index`` is the position of the first such value and ``value`` the value."""

    def __init__(self, message: str, index: tuple[int, ...], value: float) -> None:
        super().__init__(message)
        self.index, self.value = index, value


def _range_of(dtype: Any) -> float:
    import numpy as np

    return math.inf if dtype is None else float(np.finfo(dtype).max)


def first_bad_number(values: Any, dtype: Any = "float32"
                     ) -> tuple[tuple[int, ...], float] | None:
    """``(index, value)`` of the first value (in C order) of a numeric array that is NaN,
    infinite or larger in magnitude than ``dtype`` holds (None: no bound), or None when every
    value is fine. Integer and boolean arrays are always fine."""
    import numpy as np

    arr = np.asarray(values)
    if arr.dtype.kind in "biu" or arr.size == 0:
        return None
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    bound = _range_of(dtype)
    if math.isfinite(bound):
        with np.errstate(invalid="ignore"):
            bad |= np.abs(arr) > bound
    if not bad.any():
        return None
    flat = int(np.argmax(bad))
    index = tuple(int(i) for i in np.unravel_index(flat, arr.shape))
    return index, float(arr.reshape(-1)[flat])


def position(index: Sequence[int], axes: Sequence[str] | None = None,
             names: Sequence[str] | None = None) -> str:
    """An index as words: ``row 3, column 'OT'`` (``names`` name the last axis), ``index 7``,
    ``item 2, row 3, column 1``; the axis words default by rank."""
    index = list(index)
    if axes is None:
        axes = {0: (), 1: ("index",), 2: ("row", "column"),
                3: ("item", "row", "column")}.get(len(index))
    if axes is None or len(axes) != len(index):
        return f"index {tuple(index)}"
    parts = []
    for k, (axis, i) in enumerate(zip(axes, index)):
        label = repr(names[i]) if names is not None and k == len(index) - 1 \
            and 0 <= i < len(names) else str(i)
        parts.append(f"{axis} {label}")
    return ", ".join(parts) or "the value"


def check_finite(values: Any, where: str, *, dtype: Any = "float32",
                 axes: Sequence[str] | None = None, names: Sequence[str] | None = None,
                 hint: str = "") -> None:
    """Refuse an array holding NaN, an infinity or a value ``dtype`` (the model's float type,
    None: no bound) cannot hold, with a :class:`NonFiniteError` naming the first one's
    position (``axes``/``names`` as :func:`position`)."""
    found = first_bad_number(values, dtype)
    if found is None:
        return
    index, value = found
    if math.isfinite(value):
        what = (f"is {value:g}, outside the {dtype} range (magnitude at most "
                f"{_range_of(dtype):.3g}) the model computes in")
    else:
        what = f"is not a finite number ({value})"
    raise NonFiniteError(f"{where}: {position(index, axes, names)} {what}"
                         f"{'; ' + hint if hint else ''}", index, value)


# -- texts and batches --------------------------------------------------------------------------
def check_text(text: str, where: str) -> None:
    """Refuse a text longer than ``max_text_chars``."""
    check("max_text_chars", len(text), f"{where} ({len(text)} characters)")


def check_texts(texts: Sequence[Any], where: str) -> None:
    """Refuse any string of ``texts`` longer than ``max_text_chars`` (a token list counts the
    characters of its tokens), naming it by position."""
    limit = current().max_text_chars
    for i, text in enumerate(texts):
        n = len(text) if isinstance(text, str) else sum(
            len(t) for t in text if isinstance(t, str)) if isinstance(text, (list, tuple)) \
            else 0
        if n > limit:
            raise LimitError("max_text_chars", n, limit,
                             f"{where}: text {i}" if len(texts) > 1 else where)


def check_batch_size(batch_size: int, where: str = "batch_size") -> int:
    """``batch_size`` capped at ``max_batch_size``: it only splits the work into model calls
    (the results do not depend on it), so a larger one is cut rather than refused, and an
    internal default larger than a lowered limit keeps working."""
    return min(batch_size, current().max_batch_size)


# -- MIDI ----------------------------------------------------------------------------------------
_DEFAULT_TEMPO = 500_000  # microseconds per quarter note (120 bpm), MIDI's default


def _seconds_at(tick: int, resolution: int, tempos: list[tuple[int, int]]) -> float:
    """Seconds from the start to ``tick`` under the tempo map ``[(tick, us per quarter)]``."""
    seconds, last_tick, tempo = 0.0, 0, _DEFAULT_TEMPO
    for at, new in tempos:
        if at >= tick:
            break
        seconds += (at - last_tick) * tempo / 1e6 / resolution
        last_tick, tempo = at, new
    return seconds + (tick - last_tick) * tempo / 1e6 / resolution


def midi_within_limits(path: str | os.PathLike, steps_per_quarter: int) -> Any:
    """A MIDI file parsed by mido (what pretty_midi reads; pass it as ``mido_object``), once its
    length is known to be within the limits: the last event's time in seconds under the file's
    tempo map (which bounds every note's length) against ``max_midi_seconds``, and the number
    of piano-roll frames at ``steps_per_quarter`` against ``max_piano_roll_frames``. Only event
    times are read (no piano roll, no tick table), so a file whose notes are held for millions
    of ticks is refused in milliseconds. ``DataError`` when mido cannot read the file."""
    import mido

    path = Path(path)
    try:
        midi = mido.MidiFile(filename=str(path), charset="latin1")
    except Exception as exc:  # noqa: BLE001 - mido raises many types on bad bytes
        text = " ".join(str(exc).split())[:100]
        raise DataError(f"{path}: not a MIDI file pretty_midi can read ({text}); give a "
                        "Standard MIDI File (.mid)") from None
    resolution = midi.ticks_per_beat
    if not isinstance(resolution, int) or resolution <= 0:
        raise DataError(f"{path}: the MIDI header's time division ({resolution!r}) is not in "
                        "ticks per quarter note (SMPTE time is not supported)")
    last, tempos = 0, []
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "set_tempo":
                tempos.append((tick, message.tempo))
        last = max(last, tick)
    tempos.sort(key=lambda t: t[0])
    limits = current()
    frames = math.ceil(last * steps_per_quarter / resolution)
    if frames > limits.max_piano_roll_frames:
        raise LimitError("max_piano_roll_frames", frames, limits.max_piano_roll_frames,
                         f"{path}: piano-roll frames (the piece ends at tick {last}; "
                         f"{resolution} ticks and {steps_per_quarter} frames per quarter note)")
    seconds = _seconds_at(last, resolution, tempos)
    if seconds > limits.max_midi_seconds:
        raise LimitError("max_midi_seconds", round(seconds, 1), limits.max_midi_seconds,
                         f"{path}: seconds the piece (and so its longest note) lasts")
    return midi


# -- audio ---------------------------------------------------------------------------------------
def wav_seconds(path: str | os.PathLike) -> float | None:
    """The duration of a WAV file from its RIFF header (``fmt`` and ``data`` chunks; a data
    size past the end of the file counts only the bytes present), without reading the
    samples; None when the header cannot be read this way (the decoder then says why)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block = rate = None
            for _ in range(10_000):  # a hostile file of empty chunks must not loop for long
                header = f.read(8)
                if len(header) < 8:
                    return None
                chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
                if chunk == b"fmt ":
                    fmt = f.read(min(length, 64))
                    if len(fmt) < 16:
                        return None
                    _, _, rate, _, block = struct.unpack("<HHIIH", fmt[:14])
                    f.seek(length - len(fmt) + (length & 1), os.SEEK_CUR)
                elif chunk == b"data":
                    if not rate or not block:
                        return None
                    present = min(length, max(0, size - f.tell()))
                    return present / block / rate
                else:
                    f.seek(length + (length & 1), os.SEEK_CUR)
    except (OSError, struct.error, OverflowError, ValueError):
        return None
    return None


# -- images --------------------------------------------------------------------------------------
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def check_image_pixels(width: int, height: int, where: str) -> None:
    """Refuse an image of more than ``max_image_pixels`` pixels (from its header)."""
    check("max_image_pixels", int(width) * int(height), f"{where}: a {width}x{height} image")


@contextmanager
def image_bomb_guard(Image: Any, where: str) -> Iterator[None]:  # noqa: N803 - PIL.Image
    """Around ``Image.open``: Pillow's own decompression-bomb refusal becomes the
    ``max_image_pixels`` ``LimitError`` and its warning is silenced (the caller checks the size
    against the limit before decoding). Pillow's cap is raised to the configured limit when that
    is higher (never lowered), so ``--limit max_image_pixels=N`` is what decides."""
    limit = current().max_image_pixels
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except Image.DecompressionBombError as exc:
        found = _BOMB_PIXELS.search(str(exc))
        pixels = int(found.group(1)) if found else f"more than {2 * Image.MAX_IMAGE_PIXELS}"
        raise LimitError("max_image_pixels", pixels, limit, f"{where}: the image") from None
