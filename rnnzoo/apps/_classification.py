"""What the classifying applications share (text, token, skeleton-action and protein-state
classification): reading the verb's inputs, gold labels as class indices, one evaluation report
per split through the model's public ``evaluate``, a head named by class names, and the int8
comparison and acceptance rule.

Each scores a label per input (a text, a token, a sequence) against gold labels; their reports,
int8 gates and verbs had the same code written twice, which is how two copies drift. TF-free.
"""

from __future__ import annotations

import argparse
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.errors import ConfigError, DataError, short_repr
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


# -- gold labels -----------------------------------------------------------------------------
def gold_class_ids(inputs: Sequence[Any], labels: Any, label_names: Sequence[str],
                   unit: str) -> list[int]:
    """The class index of each gold label of ``evaluate(inputs, labels)``: a class name of
    the model, or an index into ``label_names``; one label per input (``unit`` names an input
    in the errors). A name the model does not know is refused, never renumbered: the position
    of a class in a file says nothing about the model's class with that number."""
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (Sequence, np.ndarray)):
        raise DataError(f"evaluate: labels must be a list (one per {unit}), found "
                        f"{type(labels).__name__}")
    if len(inputs) != len(labels):
        raise DataError(f"evaluate: got {len(inputs)} {unit}s but {len(labels)} labels; pass "
                        f"one label per {unit}")
    index = {n: i for i, n in enumerate(label_names)}
    ids = []
    for y in labels:
        if isinstance(y, str):
            if y not in index:
                shown = ", ".join(label_names[:6]) + (", ..." if len(label_names) > 6 else "")
                raise DataError(f"label {short_repr(y)} is not a class of this model "
                                f"(classes: {shown}); labels are matched by name: relabel the "
                                "data, or fine-tune the model on its classes")
            ids.append(index[y])
        elif (isinstance(y, (int, np.integer)) and not isinstance(y, bool)
              and 0 <= int(y) < len(index)):
            ids.append(int(y))
        else:
            raise DataError(f"label {short_repr(y)}: expected a class name or an index in "
                            f"[0, {len(index)})")
    return ids


# -- a head named by class names (Keras side) -------------------------------------------------
class NamedClassesHead:
    """``Task`` hooks of a classifier whose head outputs are its ``label_names``: data with
    other classes gets a fresh head (never a silent remap), and a copy's class names are the
    given ones, else this model's when the head keeps them, else placeholders."""

    label_names: list[str]

    def head_overrides(self, data: Any) -> dict[str, Any]:
        """Other classes than the model's: a fresh classifier for them."""
        if list(data.label_names) == list(self.label_names):
            return {}
        return {"labels": list(data.label_names)}

    def head_labels(self) -> list[str]:
        return list(self.label_names)

    def head_class_names(self, count: int, labels: list[str] | None,
                         fresh: bool) -> list[str]:
        """The class names of a ``with_new_head`` copy with ``count`` classes: ``labels``,
        else this model's when the head keeps them, else ``class_0``, ``class_1``, ...
        (training on data replaces them)."""
        from rnnzoo.task import placeholder_labels

        if labels is None:
            labels = placeholder_labels(count) if fresh or count != len(self.label_names) \
                else self.label_names
        if len(labels) != count:
            raise ConfigError(f"labels: {len(labels)} names for num_classes={count}")
        return list(labels)


# -- evaluation ------------------------------------------------------------------------------
def split_report(model: Any, data: Any, split: str, limit: int | None,
                 check: Callable[[], None] | None = None, progress: bool = False) -> dict:
    """``model.evaluate`` (Keras task or runtime alike) on the first ``limit`` examples of a
    split of ``data`` (its ``split(name)`` gives ``(inputs, targets)``), with the split and the
    data's description in the report. ``check`` runs once the split is known not to be empty
    (e.g. the classes agree with the model's); ``progress``: the call's progress line."""
    inputs, targets = data.split(split)
    inputs, targets = inputs[:limit], by_name(data, targets[:limit])
    if not inputs:
        raise DataError(f"{data.description}: the {split} split is empty")
    if check is not None:
        check()
    report = _evaluate(model, data, inputs, targets, progress=progress)
    report.update(split=split, data=data.description)
    return report


def by_name(data: Any, targets: Sequence[Any]) -> list[Any]:
    """A file's gold labels as class names, for the model to map by name (and refuse a name it
    does not know): a reader gives integer labels numbered by the file's own class list
    (``data.label_names``), which need not be the model's order nor its classes; the position
    of a label in the file says nothing about the model's class with that number. Token
    taggers' tags are names already."""
    names = getattr(data, "label_names", None)
    if names is None:
        return list(targets)
    return [names[y] if isinstance(y, numbers.Integral) and not isinstance(y, bool) else y
            for y in targets]


def _evaluate(model: Any, data: Any, inputs: Sequence[Any], targets: Sequence[Any],
              progress: bool = False) -> dict:
    """``model.evaluate`` whose refusal of a label names the data it came from."""
    try:
        return model.evaluate(inputs, targets, progress=progress)
    except DataError as exc:
        raise DataError(f"{data.description}: {exc}") from None


def compare_on_data(task: Any, reference: Any, candidate: Any, eval_data: Any,
                    keys: Sequence[str]) -> dict[str, Any]:
    """Both runtimes' ``evaluate`` on the dev split of ``eval_data`` (read with the task's
    readers; the training split when there is no dev split): ``key`` (the first of ``keys`` in
    the report), its ``fp32`` and ``int8`` values, the data's ``description`` and
    ``examples``."""
    data = task.load_data(eval_data, seed=task.config.training.seed)
    inputs, targets = data.split("dev" if data.num_dev else "train")
    targets = by_name(data, targets)  # labels by name: an unknown one is refused, not renumbered
    ref = _evaluate(reference, data, inputs, targets)
    new = _evaluate(candidate, data, inputs, targets)
    key = next(k for k in keys if k in ref)
    return {"key": key, "fp32": ref[key], "int8": new[key], "description": data.description,
            "examples": len(inputs)}


def classifier_comparison(task: Any, reference: Any, candidate: Any, fp32: np.ndarray,
                          int8: np.ndarray, eval_data: Any, unit: str) -> dict[str, Any]:
    """A classifier's int8 comparison (the dict a preset's metadata records): argmax agreement
    and the largest probability drift between the two runtimes' probabilities ``fp32`` and
    ``int8`` ``[n, classes]`` on the same random inputs, and, with ``eval_data``, both
    runtimes' accuracy on its dev split (``unit`` names its examples in the summary)."""
    agree = float((fp32.argmax(1) == int8.argmax(1)).mean())
    drift = float(np.abs(fp32 - int8).max())
    out: dict[str, Any] = {"random_inputs": len(fp32), "argmax_agreement": agree,
                           "max_prob_drift": drift}
    summary = f"argmax agreement {agree:.1%}, max prob drift {drift:.3f}"
    if eval_data is not None:
        found = compare_on_data(task, reference, candidate, eval_data, ["accuracy"])
        ref, new, n = found["fp32"], found["int8"], found["examples"]
        out.update({"eval_data": found["description"], "eval_examples": n,
                    "accuracy_fp32": ref, "accuracy_int8": new, "accuracy_difference": new - ref})
        summary += f"; accuracy fp32 {ref:.4f} -> int8 {new:.4f} ({new - ref:+.4f}) on {n} {unit}"
    out["summary"] = summary
    return out


def accuracy_int8_rule(comparison: Mapping[str, Any], min_agreement: float) -> str | None:
    """A classifier's int8 rule: at most ``INT8_MAX_LOSS`` of accuracy lost on evaluation
    data, or, without data, argmax agreement with fp32 on at least ``min_agreement`` of the
    random inputs."""
    return int8_rule(comparison, "accuracy_difference",
                     "int8 loses more than 0.5 points of accuracy", "argmax_agreement",
                     min_agreement, f"int8 agrees with fp32 on fewer than {min_agreement:.0%} "
                     "of random inputs")


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
