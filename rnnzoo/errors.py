"""Typed errors. Every user-facing failure is one of these, with a message saying how to fix it."""

from __future__ import annotations

from typing import Any


class RnnzooError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class ConfigError(RnnzooError, ValueError):
    """A zoo config (YAML) or an override is malformed."""


class UnknownModelError(RnnzooError, KeyError):
    """A model name is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateModelError(RnnzooError, ValueError):
    """Two zoo configs declare the same name."""


class DataError(RnnzooError, ValueError):
    """A dataset file is malformed (the message names file and line)."""


class RunDirError(RnnzooError, FileNotFoundError):
    """A run or preset directory is missing files or is inconsistent."""


class DistributedError(RnnzooError, RuntimeError):
    """Multi-worker training cannot proceed (Keras internals moved, workers disagree, ...)."""


def short_repr(value: Any, limit: int = 80) -> str:
    """A value as one short line for an error message: ``repr`` cut at ``limit`` characters
    (an exception as its message; a broken ``__repr__`` must not hide the real problem)."""
    try:
        text = " ".join(str(value).split()) if isinstance(value, BaseException) else repr(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
