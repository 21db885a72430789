"""rnnzoo: a model zoo of recurrent networks on Keras 3, with fused-operator ONNX export.

The public API is imported lazily: ``import rnnzoo`` does not import TensorFlow, so listing models
and running exported bundles stay cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "list_models": "rnnzoo.registry",
    "create_model": "rnnzoo.registry",
    "model_info": "rnnzoo.registry",
    "train": "rnnzoo.training",
    "diagnose": "rnnzoo.diagnostics",
    "load": "rnnzoo.registry",
    "from_preset": "rnnzoo.presets",
    "list_presets": "rnnzoo.presets",
    "preset_info": "rnnzoo.presets",
    "save_preset": "rnnzoo.presets",
    "finetune": "rnnzoo.presets",
    "PresetError": "rnnzoo.presets",
    "RnnzooError": "rnnzoo.errors",
    "MissingDependencyError": "rnnzoo.extras",
    "ConfigError": "rnnzoo.errors",
    "DataError": "rnnzoo.errors",
    "UnknownModelError": "rnnzoo.errors",
    "DuplicateModelError": "rnnzoo.errors",
    "RunDirError": "rnnzoo.errors",
    "StorageError": "rnnzoo.io",
    "LockError": "rnnzoo.io",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rnnzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
