"""Long-dependency problems on the command line: ``rnnzoo solve NAME [--count N] [--length T]
[--file X.npy] [--json]``, and the report of ``rnnzoo evaluate`` (the problem's loss against its
memoryless baseline, Bai et al.'s numbers beside it), computed through the public ``evaluate``
of the Keras task or the runtime alike. TF-free."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnzoo.apps.long_dependency.data import (
    COPY_DIGITS,
    GENERATORS,
    PUBLISHED_SOURCE,
    check_problem,
    published_numbers,
)
from rnnzoo.errors import DataError, short_repr
from rnnzoo.export.bundle import check_count

VERB = "solve"
#: The metric ``rnnzoo evaluate`` leads with (``report_metrics`` name) and its direction.
HEADLINE = ("loss", "min")
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Solving the synthetic long-memory problem it was trained on (adding, copy "
                "memory): a benchmark of recurrent memory, not a model for real data.")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Solves only its synthetic problem, at lengths near the trained one.",
)


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rnnzoo solve``: generated sequences, or an ``.npy`` file."""
    parser.add_argument("--count", type=int, default=5,
                        help="generated sequences to solve (default 5)")
    parser.add_argument("--length", type=int, default=None, metavar="T",
                        help="their length T (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file", help="an .npy file of inputs instead (adding: float "
                        "[n, T, 2]; copy: int digits [n, T+20])")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")

def run_verb(model: Any, args: argparse.Namespace) -> int:
    """One line per sequence (prediction and target), then the score of generated ones."""
    length = args.length if args.length is not None else 200
    count = check_count("--count", args.count)
    check_count("--length", length)
    if args.file:
        try:
            x = np.load(args.file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"--file {args.file}: not a readable .npy array "
                            f"({short_repr(exc, 120)})") from None
        y = None
    else:
        x, y = GENERATORS[model.problem](count, length, args.seed)
    pred = model.predict(x)
    for i, p in enumerate(pred):
        target = None if y is None else y[i]
        if model.problem == "adding":
            row = {"prediction": round(float(p), 5)}
            if target is not None:
                row["target"] = round(float(target[0]), 5)
        else:
            row = {"recalled": p[-COPY_DIGITS:].tolist()}
            if target is not None:
                row["target"] = target[-COPY_DIGITS:].tolist()
        print(json.dumps(row) if args.json else
              "  ".join(f"{k} {v}" for k, v in row.items()))
    if y is not None and not args.json:
        print(format_score(model.score(x, y)))
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """None: a split is scored whole."""
    return None


def evaluate_reports(model: Any, data: Any, split: str, options: Mapping[str, Any]
                     ) -> list[dict]:
    """The problem's loss (and recall, for copy) on the first ``options["limit"]`` sequences
    of ``split``, through ``model.evaluate(x, y)``, with the published numbers for its ``T``."""
    name = getattr(model, "name", None) or getattr(model, "entry", "")
    check_problem(data, model.problem, name)
    x, y = data.split(split)
    limit = options.get("limit")
    x, y = x[:limit], y[:limit]
    if not len(x):
        raise DataError(f"{data.description}: the {split} split is empty")
    report = model.evaluate(x, y, progress=options.get("progress", False))
    report.update(split=split, data=data.description, published=published_numbers(report))
    return [report]


def format_report(report: dict) -> str:
    """One headline line (and the published numbers when T matches Bai et al.'s)."""
    return format_score(report)


def format_score(report: dict) -> str:
    """One headline line (and the published numbers when T matches Bai et al.'s)."""
    if report["problem"] == "adding":
        line = (f"adding T={report['T']}: MSE {report['mse']:.4g} (predict-1 baseline "
                f"{report['baseline']:.4f}; {report['examples']} sequences)")
    else:
        line = (f"copy T={report['T']}: loss {report['loss']:.4g} per step (memoryless "
                f"baseline {report['baseline']:.4g}), digits recalled "
                f"{report['recall_accuracy']:.1%} ({report['examples']} sequences)")
    published = published_numbers(report)
    if published:
        table = " · ".join(f"{k} {v:g}" for k, v in published.items())
        line += f"\n  published ({PUBLISHED_SOURCE}): {table}"
    return line


def example_inputs() -> list:
    """Generated batches (count, T, seed) of the model's problem."""
    return [{"count": 3, "T": 12, "seed": 0}, {"count": 2, "T": 5, "seed": 1}]


def example_outputs(model: Any, inputs: list) -> Any:
    """``predict`` and the first raw outputs of each generated batch."""
    out = []
    for item in inputs:
        x, _ = GENERATORS[model.problem](item["count"], item["T"], item["seed"])
        raw = model.predict_raw(x)
        out.append({"predict": model.predict(x).tolist(),
                    "raw": np.round(raw, 5).reshape(len(raw), -1)[:, :12].tolist()})
    return out
