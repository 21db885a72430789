"""rnnzoo.export: Keras -> ONNX bundles with fused recurrent operators, and the TF-free runtime.

``to_onnx`` (export time) imports TensorFlow; ``runtime`` (what apps use) imports only numpy and
onnxruntime. Both are loaded lazily so ``from rnnzoo.export import runtime`` stays TF-free.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "to_onnx": ("rnnzoo.export.exporter", "to_onnx"),
    "ExportReport": ("rnnzoo.export.exporter", "ExportReport"),
    "ExportError": ("rnnzoo.export.errors", "ExportError"),
    "ExportValidationError": ("rnnzoo.export.errors", "ExportValidationError"),
    "FusionFallbackWarning": ("rnnzoo.export.errors", "FusionFallbackWarning"),
    "runtime": ("rnnzoo.export.runtime", None),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        if module_name == "rnnzoo.export.exporter":  # the train extra: say so in one line
            _require_export_extra()
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rnnzoo.export' has no attribute {name!r}")


def _require_export_extra() -> None:
    """A one-line error naming the install command when TensorFlow, Keras, onnx or tf2onnx is
    missing. Looked up, not imported: ``help(rnnzoo.export.to_onnx)`` imports no TensorFlow
    (tf2onnx imports it at once; ``to_onnx`` imports it quietly when it runs)."""
    from rnnzoo.extras import require_installed, require_training

    require_training("ONNX export")
    for dependency in ("onnx", "tf2onnx"):
        require_installed(dependency, "ONNX export")
