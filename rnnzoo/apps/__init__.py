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
from collections.abc import Mapping
from types import ModuleType
from typing import Any, NamedTuple

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


class Headline(NamedTuple):
    """The one metric a preset is known by: its name as recorded (``report_metrics``), its
    value (None when the preset's metadata does not record it) and ``"max"`` or ``"min"``."""

    key: str
    value: float | None
    direction: str

    def text(self, digits: int = 4) -> str:
        """``"f1 0.8966"``, or ``"f1 not recorded"``."""
        if self.value is None:
            return f"{self.key} not recorded"
        return f"{self.key} {self.value:.{digits}g}"


def headline_metric(task: str, family: str | None = None) -> tuple[str, str]:
    """``(metric, "max"|"min")`` for a task type: the application's ``HEADLINE``, unless it
    declares another for this family in ``HEADLINE_BY_FAMILY`` (forecasting: the echo-state
    network is known by NRMSE, as in the reservoir-computing literature; the LSTM forecaster
    by MSE, as in the Informer tables)."""
    cli = app_cli(task)
    by_family: Mapping[str, tuple[str, str]] = getattr(cli, "HEADLINE_BY_FAMILY", {})
    key, direction = by_family.get(family or "", cli.HEADLINE)
    return key, direction


def headline(task: str, metrics: Mapping[str, float], family: str | None = None) -> Headline:
    """The headline of a preset's recorded ``metrics`` (``rnnzoo list``, model cards, tables):
    declared once per task type (``headline_metric``), never guessed from what happens to be
    recorded; a missing one is reported as missing (``value`` None)."""
    key, direction = headline_metric(task, family)
    value = metrics.get(key)
    return Headline(key, None if value is None else float(value), direction)
