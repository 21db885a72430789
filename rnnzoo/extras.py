"""Which optional installs are present, and the one-line error when a feature needs one.

``pip install rnnzoo`` is the slim install: numpy, onnxruntime, PyYAML, pretty_midi and filelock.
It lists models, loads presets and bundles, and runs inference and generation through
onnxruntime. Training, fine-tuning, export and Keras inference need the ``train`` extra
(TensorFlow, Keras, tf2onnx, onnx, plus matplotlib, sacrebleu and scipy for curves, BLEU and
``.mat`` files). A feature that needs what is not installed raises
:class:`MissingDependencyError` naming the install command, never a bare ``ImportError``
traceback from deep inside a library.

:func:`import_tensorflow` is the one place rnnzoo imports TensorFlow (CLI and Python API alike):
quietly, so a user of either sees no absl/oneDNN/C++ start-up lines. Nothing else here imports
it: looking a module up is cheap and TF-free.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
import tempfile
import threading
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


def require_installed(module: str, purpose: str, package: str | None = None) -> None:
    """Raise :class:`MissingDependencyError` unless ``module`` is installed (looked up, not
    imported), saying how to install it: the train extra, or the one package alone
    (``package``, default the module name)."""
    if not has_module(module.split(".")[0]):
        pkg = package or module.split(".")[0]
        raise MissingDependencyError(f"{purpose} needs {pkg}, which is not installed: "
                                     f"{TRAIN_EXTRA} (or pip install {pkg})")


def require_module(module: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` (``require_installed``)."""
    require_installed(module, purpose, package)
    return importlib.import_module(module)


# Start-up lines TensorFlow's C++ side writes while it is imported, before any log level applies.
_TF_BANNERS = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized",
    "To enable the following instructions",
    "oneDNN supports DT_BOOL only",
)
_TF_VERBOSE: list[bool] = [False]
_TF_IMPORT_LOCK = threading.Lock()


def show_tensorflow_logs(verbose: bool) -> None:
    """Show TensorFlow's start-up banners and C++ log (``TF_CPP_MIN_LOG_LEVEL=0`` unless set)
    when it is imported: the CLI's ``--verbose``. Call before TensorFlow is imported."""
    _TF_VERBOSE[0] = bool(verbose)
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")


def import_tensorflow(purpose: str = "this feature") -> ModuleType:
    """TensorFlow (and Keras), imported quietly; :class:`MissingDependencyError` naming
    ``purpose`` when the train extra is not installed.

    Its C++ log (grappler, oneDNN, allocator lines) is off (``TF_CPP_MIN_LOG_LEVEL=3``) unless
    the user set ``TF_CPP_MIN_LOG_LEVEL``, and the banners printed during the import itself,
    which no log level stops, are filtered out of stderr; any other line written then is
    passed through. Done once: later calls return the module."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return sys.modules["tensorflow"]
    require_training(purpose)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if _TF_VERBOSE[0] else "3")
    with _TF_IMPORT_LOCK, tempfile.TemporaryFile(mode="w+b") as capture:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to filter (a daemon's closed fd 2)
            saved = None
        if saved is not None:
            os.dup2(capture.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow
        finally:
            if saved is not None:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and (_TF_VERBOSE[0]
                                     or not any(b in line for b in _TF_BANNERS)):
                    print(line, file=sys.stderr)
    return tensorflow
