"""Typed errors. Every user-facing failure is one of these, with a message saying how to fix it."""

from __future__ import annotations


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
