"""One progress line on stderr for the calls that run long: evaluation, export, transcription.

Scoring a dev split of a few thousand sentences, exporting a model or transcribing a folder of
recordings takes minutes, and ``rnnzoo evaluate`` used to print nothing for up to 110 s: a user
could not tell a slow run from a hung one. :class:`Progress` keeps one line up to date (on a
terminal it is redrawn in place at most 4 times a second; in a log file or a pipe a line is
written every 10 s), with the count, the share done, the time spent and an estimate of the time
left, and ends it with a newline. Disabled, it writes nothing and starts no thread: the Python
calls take ``progress=False`` by default, the command line turns it on when stderr is a
terminal (``--progress``/``--no-progress`` force it).

A long call passes its ``Progress`` down to the loops that do the work (the batching helpers
and the engines), so the line counts what is done wherever that is. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

from rnnzoo.errors import ConfigError

__all__ = ["Progress", "add_progress_argument", "check_progress", "model_label",
           "progress_wanted", "reporting"]

#: Seconds between redraws on a terminal (at most 4 a second).
TERMINAL_INTERVAL = 0.25
#: Seconds between lines when the stream is a file or a pipe (a CI log stays short).
LOG_INTERVAL = 10.0

T = TypeVar("T")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or not a real stream
        return False


def _duration(seconds: float) -> str:
    """``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """A progress line: ``label: [stage] count/total unit pct% elapsed, ~left``.

    ``update(n)`` counts work done; ``stage(name, total)`` starts a new step of the same call
    (an export's tracing, converting, ... or a transcription's features, network, decoding)
    and redraws at once; ``close()`` (or leaving the ``with`` block) writes the final line and
    a newline. A background thread redraws every ``interval`` seconds, so the elapsed time
    moves during a long step with no count. ``enabled=False``: no output, no thread."""

    def __init__(self, label: str, total: int | None = None, unit: str = "items", *,
                 enabled: bool = True, stream: IO[str] | None = None,
                 interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.enabled = bool(enabled)
        self.stream = stream if stream is not None else sys.stderr
        self._tty = _isatty(self.stream)
        self.interval = interval if interval is not None else (
            TERMINAL_INTERVAL if self._tty else LOG_INTERVAL)
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._drawn = 0  # characters of the line on screen (terminal redraws pad over it)
        self._last = ""  # the line last written
        self._start = clock()
        self._stage_name = ""
        self._stage_start = self._start
        self.total = total
        self.unit = unit
        self.count = 0
        if self.enabled:
            self._thread = threading.Thread(target=self._tick, name="rnnzoo-progress",
                                            daemon=True)
            self._thread.start()

    # -- counting ---------------------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        with self._lock:
            self.count += int(n)

    def stage(self, name: str, total: int | None = None, unit: str | None = None) -> Progress:
        """Start a step of the call: its name, how many ``unit`` it counts (None: no count),
        and the count back at 0; drawn at once (a step may run long with no update)."""
        with self._lock:
            self._stage_name = name
            self._stage_start = self._clock()
            self.total, self.count = total, 0
            if unit is not None:
                self.unit = unit
            if self.enabled and not self._closed:
                self._draw(final=False)
        return self

    def over(self, items: Iterable[T], size: Callable[[T], int] | None = None) -> Iterator[T]:
        """``items`` as they come, each counted (``size(item)`` units, else 1) once the
        caller has finished with it and asks for the next."""
        for item in items:
            yield item
            self.update(1 if size is None else size(item))

    # -- the line ---------------------------------------------------------------------------
    def text(self) -> str:
        """The line as it reads now."""
        now = self._clock()
        parts = [f"{self.label}:"]
        if self._stage_name:
            parts.append(self._stage_name)
        left = None
        if self.total is not None:
            parts.append(f"{self.count:,}/{self.total:,} {self.unit}")
            done = self.count / self.total if self.total else 1.0
            parts.append(f"{100 * min(done, 1.0):.0f}%")
            spent = now - self._stage_start
            if 0 < self.count < self.total and spent > 0:
                left = spent * (self.total - self.count) / self.count
        elif self.count:
            parts.append(f"{self.count:,} {self.unit}")
        clock = _duration(now - self._start)
        parts.append(clock if left is None else f"{clock}, ~{_duration(max(1.0, left))} left")
        return " ".join(parts)

    def _draw(self, final: bool) -> None:
        """Write the line (the caller holds the lock): on a terminal over the previous one
        (cut to the terminal's width, so it never wraps), elsewhere as a line of its own when
        it differs from the last."""
        text = self.text()
        try:
            if self._tty:
                width = shutil.get_terminal_size((100, 20)).columns - 1
                text = text[:max(20, width)]
                pad = " " * max(0, self._drawn - len(text))
                self.stream.write("\r" + text + pad + ("\n" if final else ""))
                self._drawn = 0 if final else len(text)
            elif text != self._last:  # a log gets no line that says nothing new
                self.stream.write(text + "\n")
            self._last = text
            self.stream.flush()
        except (OSError, ValueError):  # a closed stream never stops the work
            pass

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._closed:
                    return
                self._draw(final=False)

    def close(self) -> None:
        """The final line and a newline (once; nothing when disabled)."""
        if self._closed:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._closed = True
            if self.enabled:
                self._draw(final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check_progress(value: Any) -> bool:
    """A user's ``progress``: True or False (None: False); anything else is a ConfigError."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError(f"progress: expected True or False, found {value!r}")
    return value


@contextlib.contextmanager
def reporting(progress: bool | Progress | None, label: str, total: int | None = None,
              unit: str = "items") -> Iterator[Progress]:
    """The ``Progress`` a long call reports to: the one an outer call passed down (e.g.
    ``evaluate`` to ``predict_proba``; the outer call owns and closes it, and this call's
    ``total`` and ``unit`` fill it in when it has no total yet), a new line on stderr for
    ``True``, a silent one for ``False``/None."""
    if isinstance(progress, Progress):
        if progress.total is None and total is not None:
            with progress._lock:
                progress.total, progress.unit = total, unit
        yield progress
        return
    with Progress(label, total, unit, enabled=check_progress(progress)) as bar:
        yield bar


def model_label(model: Any, call: str) -> str:
    """``call`` and the model's name for the line: a preset's full name (entry.tag), else the
    entry of a Keras task or a bundle."""
    name = None
    meta = getattr(model, "preset_metadata", None)
    if isinstance(meta, dict):
        name = meta.get("name")
    name = name or getattr(model, "name", None) or getattr(model, "entry", None)
    return f"{call} {name}" if isinstance(name, str) and name else call


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """``--progress``/``--no-progress`` of a command whose work grows with its input."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress line on stderr (default: when stderr is a terminal)")


def progress_wanted(args: argparse.Namespace) -> bool:
    """``--progress``/``--no-progress``, else whether stderr is a terminal."""
    value = getattr(args, "progress", None)
    return _isatty(sys.stderr) if value is None else bool(value)
