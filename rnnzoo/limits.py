"""Limits on the cost of one input or request, checked before any work starts.

A small input can expand without bound (a 740-byte MIDI file whose notes are held for millions
of ticks, a 164 KB PNG of 13000x13000 pixels, ``max_length: 1000000``), so every reader, user
call and server request checks what it is about to do against one table of limits first and
refuses with :class:`LimitError`, which names the limit and how to raise it. The defaults are
generous for real use; raise one with ``rnnzoo.limits.configure(name=value)`` in Python or
``--limit name=value`` on the command line (``rnnzoo serve`` included). Numpy-free and cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from rnnzoo.errors import RnnzooError

__all__ = ["LimitError", "Limits", "check", "configure", "current", "describe", "parse_limit"]


@dataclasses.dataclass(frozen=True)
class Limits:
    """Each field is one limit; its metadata holds the one-line description for docs and errors."""

    max_decode_length: int = dataclasses.field(default=1024, metadata={
        "doc": "tokens one translation or caption may decode (max_length)"})
    max_beam_width: int = dataclasses.field(default=64, metadata={
        "doc": "beams of a beam search (beam_width)"})
    max_generation_steps: int = dataclasses.field(default=100_000, metadata={
        "doc": "characters or frames one generate call may sample (steps)"})
    max_text_chars: int = dataclasses.field(default=100_000, metadata={
        "doc": "characters of one text input (sentence, primer, document)"})
    max_batch_size: int = dataclasses.field(default=4096, metadata={
        "doc": "rows in one model call (a larger batch_size is cut to it), samples one generate "
        "call draws, instances in one server request"})
    max_image_pixels: int = dataclasses.field(default=50_000_000, metadata={
        "doc": "pixels of one image, read from its header before decoding"})
    max_audio_seconds: float = dataclasses.field(default=600.0, metadata={
        "doc": "seconds of one audio input, read from its header before decoding"})
    max_midi_seconds: float = dataclasses.field(default=3600.0, metadata={
        "doc": "length of a MIDI piece and of any one note, before a piano roll is rendered"})
    max_piano_roll_frames: int = dataclasses.field(default=200_000, metadata={
        "doc": "time steps of a piano roll read from MIDI, counted before it is rendered"})
    max_ink_points: int = dataclasses.field(default=200_000, metadata={
        "doc": "points of one handwriting input (all its strokes), read before features"})
    max_series_length: int = dataclasses.field(default=1_000_000, metadata={
        "doc": "observations of one time-series input"})
    max_history_items: int = dataclasses.field(default=100_000, metadata={
        "doc": "interactions of one user's history (recommend)"})
    max_skeleton_frames: int = dataclasses.field(default=100_000, metadata={
        "doc": "frames of one skeleton sequence (classify), counted before it is parsed"})
    max_video_frames: int = dataclasses.field(default=1_000_000, metadata={
        "doc": "frames of one frame-sequence input (all its sequences), counted before they "
        "are converted, and frames one predict_frames call may predict"})
    max_archive_bytes: int = dataclasses.field(default=4 * 1024 ** 3, metadata={
        "doc": "bytes a preset archive may extract, counted while extracting"})
    max_archive_members: int = dataclasses.field(default=10_000, metadata={
        "doc": "files a preset archive may hold"})
    request_timeout_s: float = dataclasses.field(default=60.0, metadata={
        "doc": "seconds one server request may run before it is cancelled (HTTP 504)"})


_current = Limits()


class LimitError(RnnzooError, ValueError):
    """An input or request over one of the limits: ``limit`` is its name, ``value`` what was
    asked, ``maximum`` the limit; the message says how to raise it."""

    def __init__(self, limit: str, value: Any, maximum: Any, what: str = "") -> None:
        self.limit, self.value, self.maximum = limit, value, maximum
        subject = f"{what}: " if what else ""
        super().__init__(
            f"{subject}{value} is over the limit {limit}={maximum} "
            f"({_doc(limit)}); raise it with --limit {limit}=N or "
            f"rnnzoo.limits.configure({limit}=N)")


def _doc(name: str) -> str:
    for f in dataclasses.fields(Limits):
        if f.name == name:
            return f.metadata.get("doc", "")
    raise KeyError(name)


def current() -> Limits:
    """The limits in force in this process."""
    return _current


def configure(**values: Any) -> Limits:
    """Change some limits for this process (``configure(max_decode_length=4096)``); returns the
    previous limits so a caller can put them back with ``configure(**dataclasses.asdict(old))``.
    """
    global _current
    names = {f.name: f for f in dataclasses.fields(Limits)}
    checked = {}
    for name, value in values.items():
        if name not in names:
            raise RnnzooError(
                f"unknown limit {name!r}; known: {', '.join(sorted(names))}")
        kind = float if isinstance(names[name].default, float) else int
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 \
                or (kind is int and value != int(value)):
            raise RnnzooError(f"limit {name}: expected a positive {kind.__name__}, "
                              f"found {value!r}")
        checked[name] = kind(value)
    old = _current
    _current = dataclasses.replace(_current, **checked)
    return old


def parse_limit(text: str) -> tuple[str, float]:
    """``"max_decode_length=4096"`` -> ``("max_decode_length", 4096)``, for ``--limit``."""
    name, sep, raw = text.partition("=")
    names = [f.name for f in dataclasses.fields(Limits)]
    if not sep or name.strip() not in names:
        raise RnnzooError(f"--limit {text!r}: expected NAME=VALUE with NAME one of "
                          f"{', '.join(names)}")
    try:
        value = float(raw)
    except ValueError:
        raise RnnzooError(f"--limit {text!r}: {raw!r} is not a number") from None
    return name.strip(), value


def check(limit: str, value: float, what: str = "") -> None:
    """Refuse ``value`` over the limit named ``limit`` with :class:`LimitError`."""
    maximum = getattr(_current, limit)
    if value > maximum:
        raise LimitError(limit, value, maximum, what)


def describe() -> Iterable[tuple[str, Any, str]]:
    """(name, default, description) of every limit, for the docs table and ``--help``."""
    for f in dataclasses.fields(Limits):
        yield f.name, f.default, f.metadata.get("doc", "")
