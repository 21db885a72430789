"""Errors and warnings of the ONNX export path (TF-free, safe to import from the runtime)."""

from __future__ import annotations

from rnnzoo.errors import RnnzooError


class ExportError(RnnzooError, RuntimeError):
    """The model cannot be exported as asked (e.g. a non-fusable layer with ``strict=True``)."""


class ExportValidationError(ExportError):
    """An exported graph failed a check: ONNX checker, fused-op check or parity with Keras."""


class FusionFallbackWarning(UserWarning):
    """A recurrent layer could not become a fused ONNX op and was exported as a (slow) ``Loop``."""


class BundleError(RnnzooError, ValueError):
    """A bundle directory is missing, malformed or was modified after export."""


class BundleDigestError(BundleError):
    """A bundle whose whole-bundle digest is not the one the caller pinned: every file may match
    its listed sha256 and the bundle still be another one (a graph replaced together with its
    listed hash), so only the pin catches it."""

    def __init__(self, message: str, expected: str = "", found: str = "") -> None:
        super().__init__(message)
        self.expected, self.found = expected, found
