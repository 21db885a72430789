"""One evaluation path for every caller and backend.

``rnnzoo evaluate``, a preset's recorded metrics, the export's int8 gate and the test harness all
read data with the entry's own readers and score the object a user holds (the Keras task or the
onnxruntime model) through the application's ``evaluate_reports``, which calls the model's
public ``evaluate``. A second path per backend is how a deployment check once printed a metric
1.7 F1 below the Python API's: there is none. TF-free.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rnnzoo.apps import app_cli
from rnnzoo.progress import check_progress


def reader_task(directory: str | os.PathLike) -> Any:
    """The task object of a saved model, preset or run (config and preprocessor, no weights,
    no Keras model built): what reads a dataset exactly as the model was trained to."""
    from rnnzoo.apps import task_class
    from rnnzoo.registry import read_config, task_from_config
    from rnnzoo.saving import ASSETS_DIR

    directory = Path(directory)
    config = read_config(directory)
    preprocessor = task_class(config.task).load_preprocessor(config, directory / ASSETS_DIR)
    return task_from_config(config, preprocessor)


def task_type_of(model: Any) -> str:
    """The task type of a Keras task or an onnxruntime model."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "task", None):
        return config.task
    return model.manifest["task"]


def evaluate_reports(model: Any, data: Any, split: str,
                     options: Mapping[str, Any] | None = None) -> list[dict]:
    """The reports ``rnnzoo evaluate`` prints for ``model`` on ``split`` of loaded ``data``
    (``options["limit"]``: the first N examples; ``options["progress"]``: True draws a
    progress line on stderr, passed on to the model's ``evaluate``), the same on both
    backends."""
    options = dict(options or {})
    options["progress"] = check_progress(options.get("progress"))
    return app_cli(task_type_of(model)).evaluate_reports(model, data, split, options)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def report_metrics(reports: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The numbers of a list of reports: one report as is; several (greedy, beam 5) with the
    report's ``decoding`` as a suffix (``bleu_greedy``, ``bleu_beam_5``)."""
    out: dict[str, float] = {}
    for report in reports:
        suffix = ""
        if len(reports) > 1:
            suffix = "_" + re.sub(r"\W+", "_", str(report.get("decoding", len(out)))).strip("_")
        out.update({f"{k}{suffix}": float(v) for k, v in report.items() if _is_number(v)})
    return out
