"""What text and token classification share: reading the verb's inputs, one evaluation report
per split through the model's public ``evaluate``, and the int8 comparison and acceptance rule.

Both applications score a label per input (a text, a token) against gold labels; their reports,
int8 gates and verbs had the same code written twice, which is how two copies drift. TF-free.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rnnzoo.errors import ConfigError, DataError
from rnnzoo.progress import add_progress_argument

# An int8 bundle ships when it loses at most this much of the task's metric on evaluation data
# (the applications' INT8_TOLERANCE says the same to the preset harness).
INT8_MAX_LOSS = 0.005
#: Both applications' ``INT8_TOLERANCE`` (their ``cli`` re-exports it): how much of the
#: headline an int8 bundle may lose against fp32 (the int8 acceptance rule).
INT8_TOLERANCE = {"absolute": INT8_MAX_LOSS}


# -- the verb's inputs -----------------------------------------------------------------------
def read_input_lines(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a UTF-8 file given to a CLI verb (``--file``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--file {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"--file {path}: not UTF-8 text (byte {exc.start}); convert it, e.g. "
                        f"iconv -t utf-8 {path}") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def add_input_arguments(parser: argparse.ArgumentParser, inputs_help: str,
                        file_help: str) -> None:
    """The verb's inputs: positional texts and ``--file`` (one input per line), and
    ``--progress`` over them (a long file)."""
    parser.add_argument("texts", nargs="*", help=inputs_help)
    parser.add_argument("--file", help=file_help)
    add_progress_argument(parser)


def verb_inputs(args: argparse.Namespace, nothing: str) -> list[str]:
    """The texts given on the command line, then the lines of ``--file``; ``nothing`` is the
    error when there are none."""
    texts = list(args.texts)
    if args.file:
        texts += read_input_lines(args.file)
    if not texts:
        raise ConfigError(nothing)
    return texts


# -- evaluation ------------------------------------------------------------------------------
def split_report(model: Any, data: Any, split: str, limit: int | None,
                 check: Callable[[], None] | None = None, progress: bool = False) -> dict:
    """``model.evaluate`` (Keras task or runtime alike) on the first ``limit`` examples of a
    split of ``data`` (its ``split(name)`` gives ``(inputs, targets)``), with the split and the
    data's description in the report. ``check`` runs once the split is known not to be empty
    (e.g. the classes agree with the model's); ``progress``: the call's progress line."""
    inputs, targets = data.split(split)
    inputs, targets = inputs[:limit], targets[:limit]
    if not inputs:
        raise DataError(f"{data.description}: the {split} split is empty")
    if check is not None:
        check()
    report = model.evaluate(inputs, targets, progress=progress)
    report.update(split=split, data=data.description)
    return report


def compare_on_data(task: Any, reference: Any, candidate: Any, eval_data: Any,
                    keys: Sequence[str]) -> dict[str, Any]:
    """Both runtimes' ``evaluate`` on the dev split of ``eval_data`` (read with the task's
    readers; the training split when there is no dev split): ``key`` (the first of ``keys`` in
    the report), its ``fp32`` and ``int8`` values, the data's ``description`` and
    ``examples``."""
    data = task.load_data(eval_data, seed=task.config.training.seed)
    inputs, targets = data.split("dev" if data.num_dev else "train")
    ref, new = reference.evaluate(inputs, targets), candidate.evaluate(inputs, targets)
    key = next(k for k in keys if k in ref)
    return {"key": key, "fp32": ref[key], "int8": new[key], "description": data.description,
            "examples": len(inputs)}


def int8_rule(comparison: Mapping[str, Any], difference: str, loss_reason: str,
              agreement: str, min_agreement: float, disagreement_reason: str) -> str | None:
    """Why an int8 bundle is rejected (None: ship it): it loses more than ``INT8_MAX_LOSS``
    of the metric (``comparison[difference]``) on evaluation data, or, without data, agrees
    with fp32 on less than ``min_agreement`` (``comparison[agreement]``)."""
    if difference in comparison:
        return loss_reason if comparison[difference] < -INT8_MAX_LOSS else None
    if comparison.get(agreement, 0.0) < min_agreement:
        return disagreement_reason
    return None
