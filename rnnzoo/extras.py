"""Which optional installs are present, and the one-line error when a feature needs one.

``pip install rnnzoo`` is the slim install: numpy, onnxruntime, PyYAML, pretty_midi and filelock.
It lists models, loads presets and bundles, and runs inference and generation through
onnxruntime. Training, fine-tuning, export and Keras inference need the ``train`` extra
(TensorFlow, Keras, tf2onnx, onnx, plus matplotlib, sacrebleu and scipy for curves, BLEU and
``.mat`` files). A feature that needs what is not installed raises
:class:`MissingDependencyError` naming the install command, never a bare ``ImportError``
traceback from deep inside a library. TF-free: this module only looks modules up.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from types import ModuleType

from rnnzoo.errors import RnnzooError

TRAIN_EXTRA = 'pip install "rnnzoo[train]"'
# What the train extra brings that Keras-side code imports (module -> pip package).
TRAIN_MODULES = {"tensorflow": "tensorflow-cpu", "keras": "keras"}


class MissingDependencyError(RnnzooError, ImportError):
    """A feature needs an optional dependency that is not installed (the message gives the
    install command)."""


@functools.cache
def has_module(name: str) -> bool:
    """Whether ``name`` can be imported (looked up, not imported: cheap and TF-free)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def has_training() -> bool:
    """Whether the ``train`` extra (TensorFlow and Keras) is installed."""
    return all(has_module(m) for m in TRAIN_MODULES)


def require_training(purpose: str) -> None:
    """Raise :class:`MissingDependencyError` unless TensorFlow and Keras are installed.

    ``purpose`` completes "... needs TensorFlow and Keras", e.g. ``"rnnzoo train"``."""
    missing = [pkg for mod, pkg in TRAIN_MODULES.items() if not has_module(mod)]
    if missing:
        raise MissingDependencyError(
            f"{purpose} needs TensorFlow and Keras (the train extra; missing: "
            f"{', '.join(missing)}): {TRAIN_EXTRA}")


def require_module(module: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying how to install it:
    the train extra, or the one package alone (``package``, default the module name)."""
    if has_module(module.split(".")[0]):
        return importlib.import_module(module)
    pkg = package or module.split(".")[0]
    raise MissingDependencyError(f"{purpose} needs {pkg}, which is not installed: "
                                 f"{TRAIN_EXTRA} (or pip install {pkg})")
