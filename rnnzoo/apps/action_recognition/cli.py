"""``rnnzoo classify NAME FILE ...`` and ``rnnzoo evaluate`` for skeleton action classifiers:
the verb's arguments and output, the evaluation report (through the model's public
``evaluate``, so Keras and ONNX take one path; ``--confusion-plot PNG`` draws its confusion
matrix), example inputs for the harness. TF-free.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps._classification import INT8_TOLERANCE as INT8_TOLERANCE  # the int8 rule
from rnnzoo.apps._classification import split_report
from rnnzoo.apps.action_recognition.data import ActionData, read_sequences
from rnnzoo.errors import ConfigError, DataError
from rnnzoo.progress import add_progress_argument, progress_wanted

VERB = "classify"
#: The metric a preset of this application is known by, and whether higher is better.
HEADLINE = ("accuracy", "max")
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Recognising which of the 20 MSR Action3D actions (arm waves, punches, kicks, "
                "tennis and golf swings, ...) a person performs in a 3-D skeleton sequence of "
                "20 Kinect joints, and a starting point for fine-tuning on other skeleton "
                "actions.")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Trained on 4 subjects of one small dataset (MSR Action3D, research use only), each action "
    "performed facing the camera: expect lower accuracy for other people, viewpoints and "
    "trackers.",
    "Needs the 20-joint Kinect v1 skeleton in the MSR Action3D joint order; other skeletons "
    "(25-joint Kinect v2, OpenPose) must be mapped to it first.",
    "Validated on one held-out subject (a few dozen sequences): the accuracy is a rough "
    "estimate, and the class probabilities are not calibrated.",
)
#: Cross-subject accuracy on all 20 actions (test subjects 2, 4, 6, 8, 10), as published.
PUBLISHED = {"actionlet_ensemble_wang2012": 0.882, "lie_group_vemulapalli2014": 0.8948}


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="skeleton sequences: MSR Action3D .txt files, .npy ([frames, 20, "
                             "3] or [N, frames, 20, 3]) or .npz (x, lengths)")
    parser.add_argument("--top", type=int, default=1, metavar="K",
                        help="also print the K most likely actions (default 1)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per sequence: file, label, every probability")
    add_progress_argument(parser)


def run_verb(model: Any, args: argparse.Namespace) -> int:
    """Print each sequence's action and probability (``--top K``: the K best); every file is
    read before any output."""
    if args.top < 1:
        raise ConfigError(f"--top: expected an integer >= 1, found {args.top}")
    names, seqs = [], []
    for f in args.files:
        found = read_sequences(f)
        seqs += found
        names += [f if len(found) == 1 else f"{f}[{i}]" for i in range(len(found))]
    pred = model.classify(seqs, progress=progress_wanted(args))
    labels = model.label_names
    for name, label, probs in zip(names, pred.labels, pred.probs):
        if args.json:
            print(json.dumps({"file": name, "label": label,
                              "probs": {n: round(float(p), 6) for n, p in zip(labels, probs)}}))
            continue
        best = np.argsort(-probs)[:args.top]
        others = "  ".join(f"{labels[k]} {probs[k]:.3f}" for k in best[1:])
        print(f"{label:<20} {float(probs.max()):.3f}  {name}" + (f"  ({others})" if others
                                                                 else ""))
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--confusion-plot", dest="confusion_plot", metavar="PNG",
                        help="action recognition: also draw the confusion matrix (needs "
                             "matplotlib: the plot extra)")


def evaluate_reports(model: Any, data: ActionData, split: str,
                     options: dict[str, Any]) -> list[dict]:
    """Accuracy, macro-F1 and the confusion matrix on a split (``dev``: the held-out subjects;
    ``all``: every sequence of the data, e.g. a folder of other subjects), with the published
    cross-subject numbers beside; classes are matched by name."""
    def same_classes() -> None:
        unknown = [n for n in data.label_names if n not in model.label_names]
        if unknown:
            raise DataError(f"{data.description}: action(s) {', '.join(map(repr, unknown))} "
                            f"are not classes of this model; fine-tune it on them")

    report = split_report(model, data, split, options.get("limit"), check=same_classes,
                          progress=options.get("progress", False))
    report["published"] = {"protocol": "cross-subject, all 20 actions, test subjects 2, 4, 6, "
                           "8, 10 (not this split)", "accuracy": PUBLISHED}
    plot = options.get("confusion_plot")
    if plot:
        plot_confusion(report, plot, title=f"{getattr(model, 'name', '')} on {split} "
                       f"({report['num_examples']} sequences)")
        print(f"wrote {plot}", file=sys.stderr)
    return [report]


def format_report(report: dict) -> str:
    """Accuracy, then the confusion matrix by action number (a legend names them)."""
    names = report["label_names"]
    lines = [f"accuracy  {report['accuracy']:.4f}   macro-F1  {report['macro_f1']:.4f}   "
             f"(n={report['num_examples']} sequences)",
             "confusion matrix (rows: true action, columns: predicted; numbers as below)",
             "     " + "".join(f"{k + 1:>4}" for k in range(len(names)))]
    for k, row in enumerate(report["confusion_matrix"]):
        lines.append(f"{k + 1:>4} " + "".join(f"{v:>4}" if v else "   ." for v in row))
    lines.append("  " + ", ".join(f"{k + 1} {n}" for k, n in enumerate(names)))
    published = report.get("published")
    if published:
        values = ", ".join(f"{k} {v:.3f}" for k, v in published["accuracy"].items())
        lines.append(f"  published ({published['protocol']}): {values}")
    return "\n".join(lines)


def plot_confusion(report: dict, path: str | os.PathLike, title: str = "") -> Path:
    """The confusion matrix as a PNG (rows: true action), counts written in the cells."""
    from rnnzoo.extras import require_module
    from rnnzoo.io.storage import save_figure

    matplotlib = require_module("matplotlib", "the confusion-matrix plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(report["confusion_matrix"])
    names = report["label_names"]
    fig, ax = plt.subplots(figsize=(9, 8))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {report['accuracy']:.3f}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def _example(frames: int, phase: float) -> list:
    """A standing skeleton whose right hand moves, as nested lists (JSON-able)."""
    t = np.arange(frames)[:, None]
    j = np.arange(20)[None, :]
    x = 0.1 * (j % 5) - 0.2 + 0.0 * t
    y = 0.7 - 0.09 * j + 0.0 * t
    y = np.where(j == 12, y + 0.3 * np.sin(0.5 * t + phase), y)
    z = 2.7 + 0.01 * np.cos(0.3 * t + j)
    return np.round(np.stack([x, y, z], axis=-1), 4).tolist()


def example_inputs() -> list:
    """Skeleton sequences of 1, 6 and 23 frames, as nested lists."""
    return [_example(1, 0.0), _example(6, 1.0), _example(23, 2.0)]


def example_outputs(model: Any, inputs: list) -> Any:
    pred = model.classify(inputs)
    return {"labels": pred.labels, "probs": pred.probs.tolist()}
