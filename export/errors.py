"""Errors and warnings of the ONNX export path (TF-free, safe to import from the runtime)."""

from __future__ import annotations

from rnnzoo.errors import RnnzooError


class ExportError(RnnzooError, RuntimeError):
    """The model cannot be exported as asked (e.g. a non-fusable layer with ``strict=True``)."""


class ExportValidationError(ExportError):
    """An exported graph failed a check: ONNX checker, fused-op check or parity with Keras."""


class FusionFallbackWarning(UserWarning):
    """A recurrent layer could not become a fused ONNX op and was exported as a (slow) ``Loop``."""
