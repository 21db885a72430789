"""Task types: what a user does with a model (classify, translate, caption, ...), keyed by the
entry's ``task:``.

A task type owns everything a user touches: data readers, the dataset protocol, loss, metrics
with their direction, evaluation and reports, the user call, its CLI verb, the export graphs and
the ONNX runtime class. Families (``rnnzoo.families``) only build models and preprocessors.

The module of task ``text-classification`` is ``rnnzoo.tasks.text_classification``, found by
name: adding a task type is adding one module. Task-type modules are TF-free at import (the
runtime half of each lives in them), so listing them and running bundles needs no TensorFlow.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

from rnnzoo.config import suggest
from rnnzoo.errors import ConfigError


def known_task_types() -> list[str]:
    """Every task type, e.g. ``["text-classification", "translation"]``."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")
             and m.name != "base"]
    return sorted(n.replace("_", "-") for n in names)


def task_module(task: str) -> ModuleType:
    known = known_task_types()
    if task not in known:
        raise ConfigError(f"unknown task type {task!r}.{suggest(task, known)} "
                          f"Known task types: {', '.join(known)}")
    return importlib.import_module(f"{__name__}.{task.replace('-', '_')}")


def task_class(task: str) -> Any:
    """The Keras-side base class of a task type (families subclass it)."""
    return task_module(task).TASK_CLASS


def runtime_class(task: str) -> Any:
    """The onnxruntime class that runs bundles of this task type (TF-free)."""
    return task_module(task).RUNTIME_CLASS
