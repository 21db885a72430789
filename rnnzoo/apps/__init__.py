"""Applications: one folder per task type, the same roles in each.

``rnnzoo/apps/<application>/`` (the task type ``token-classification`` is the folder
``token_classification``) holds:

* ``data.py``: readers for the application's file formats, its data container and
  preprocessor, batching. TF-free.
* ``model.py``: the Keras side (``TASK_CLASS``): training hooks, loss, metrics, export graph
  specs. TensorFlow is imported inside functions only.
* ``inference.py``: the user calls written once over both backends, and ``RUNTIME_CLASS``, the
  object a user holds on onnxruntime. TF-free.
* ``cli.py``: the verb and its arguments, the evaluation reports (through the public
  ``evaluate``), example inputs for the harness. TF-free. Nothing else knows the verb's options.

Adding an application is adding a folder (and its entries in ``zoo_configs/``): this module
finds it by name.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from types import ModuleType
from typing import Any

from rnnzoo.config import suggest
from rnnzoo.errors import ConfigError

ROLES = ("data", "model", "inference", "cli")


@functools.lru_cache(maxsize=1)
def known_task_types() -> list[str]:
    """Every task type, e.g. ``["text-classification", "translation"]``."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if m.ispkg
             and not m.name.startswith("_")]
    return sorted(n.replace("_", "-") for n in names)


def app_module(task: str, role: str) -> ModuleType:
    """One role module of an application (``app_module("translation", "cli")``)."""
    known = known_task_types()
    if task not in known:
        raise ConfigError(f"unknown task type {task!r}.{suggest(task, known)} "
                          f"Known task types: {', '.join(known)}")
    if role not in ROLES:
        raise ValueError(f"role: expected one of {', '.join(ROLES)}, found {role!r}")
    return importlib.import_module(f"{__name__}.{task.replace('-', '_')}.{role}")


def task_class(task: str) -> Any:
    """The Keras-side base class of a task type (families subclass it)."""
    return app_module(task, "model").TASK_CLASS


def runtime_class(task: str) -> Any:
    """The onnxruntime class that runs bundles of this task type (TF-free)."""
    return app_module(task, "inference").RUNTIME_CLASS


def app_cli(task: str) -> ModuleType:
    """The CLI adapter of a task type: ``VERB``, ``add_verb_arguments(parser)``,
    ``run_verb(model, args)``, ``add_evaluate_arguments(parser)``,
    ``evaluate_reports(model, data, split, options)``, ``format_report(report)``,
    ``example_inputs()`` and ``example_outputs(model, inputs)``."""
    return app_module(task, "cli")


def verb_of(task: str) -> str:
    return app_cli(task).VERB
