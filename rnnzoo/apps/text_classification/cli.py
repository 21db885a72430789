"""``rnnzoo predict`` and ``rnnzoo evaluate`` for text classifiers: the verb's arguments and
output, the evaluation report (through the model's public ``evaluate``, so Keras and ONNX
take one path), example inputs for the harness. TF-free."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rnnzoo.apps._classification import INT8_TOLERANCE as INT8_TOLERANCE  # the int8 rule
from rnnzoo.apps._classification import add_input_arguments, split_report, verb_inputs
from rnnzoo.apps.text_classification.data import TextClassificationData
from rnnzoo.errors import DataError
from rnnzoo.metrics import format_report as _format_classification
from rnnzoo.progress import progress_wanted

VERB = "predict"
#: The metric a preset of this application is known by (``rnnzoo list``, cards, the harness),
#: and whether higher is better.
HEADLINE = ("accuracy", "max")
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Labelling short texts (sentences, reviews) with the classes it was trained on, "
                "and a starting point for fine-tuning on your own labels (rnnzoo finetune).")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Word vocabulary fixed at training: unseen words become <unk>; inputs longer than the "
    "model's max_length tokens are truncated (the server refuses them unless asked to truncate).",
    "Scored on one dataset's split: expect lower accuracy on text unlike the training data.",
    "The class probabilities are not calibrated.",
)


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser, "texts to classify", "a UTF-8 text file, one input per line")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run_verb(model: Any, args: argparse.Namespace) -> int:
    """Print the label and its probability per text (``--json``: every class's)."""
    texts = verb_inputs(args, 'nothing to predict: pass texts ("a great film") or --file FILE')
    pred = model.predict(texts, progress=progress_wanted(args))
    names = model.label_names
    for text, label, probs in zip(texts, pred.labels, pred.probs):
        if args.json:
            print(json.dumps({"text": text, "label": label,
                              "probs": {n: round(float(p), 6) for n, p in zip(names, probs)}},
                             ensure_ascii=False))
        else:
            print(f"{label:<10} {float(probs.max()):.3f}  {text}")
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """No options beyond the common ones."""
    return None


def evaluate_reports(model: Any, data: TextClassificationData, split: str,
                     options: dict[str, Any]) -> list[dict]:
    """Accuracy, macro-F1 and the confusion matrix on a split; the data's labels are matched
    to the model's classes by name (never by position), and a label the model does not have
    is refused."""
    def same_classes() -> None:
        unknown = [n for n in data.label_names if n not in model.label_names]
        if unknown:
            raise DataError(f"{data.description}: label(s) {', '.join(map(repr, unknown))} are "
                            f"not classes of this model (classes: "
                            f"{', '.join(model.label_names)}); labels are matched by name: "
                            "relabel the data, or fine-tune the model on its classes")

    return [split_report(model, data, split, options.get("limit"), check=same_classes,
                         progress=options.get("progress", False))]


def format_report(report: dict) -> str:
    return _format_classification(report)


def example_inputs() -> list:
    return ["the movie was good", "a really bad plot", "a", ""]


def example_outputs(model: Any, inputs: list) -> Any:
    pred = model.predict(inputs)
    return {"labels": pred.labels, "probs": pred.probs.tolist()}
