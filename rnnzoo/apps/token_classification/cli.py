"""``rnnzoo tag`` and ``rnnzoo evaluate`` for taggers: the verb's arguments and output, the
evaluation report (through the model's public ``evaluate``, so Keras and ONNX take one path:
a CRF runtime decodes with its bundle's transitions, never a freshly built model's), example
inputs for the harness. TF-free."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rnnzoo.apps._classification import INT8_TOLERANCE as INT8_TOLERANCE  # the int8 rule
from rnnzoo.apps._classification import add_input_arguments, split_report, verb_inputs
from rnnzoo.apps.token_classification.data import TaggingData
from rnnzoo.progress import progress_wanted

VERB = "tag"
#: The metric a preset of this application is known by: entity F1 (chunk tags; a tagger of
#: tags without a chunk scheme, such as POS, reports token_accuracy instead).
HEADLINE = ("f1", "max")
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Tagging the tokens of whitespace-tokenised sentences (named entities with a "
                "chunk scheme such as BIO, or one tag per token) in the tag set it was trained on.")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Expects text tokenised as in its training data (whitespace-separated tokens); other "
    "tokenisation changes the entities found.",
    "Tag set and vocabulary fixed at training; entity types outside the tag set are never "
    "found, and rare or unseen words are tagged less reliably.",
    "Scored on one dataset's split: entity F1 drops on other domains and time periods.",
)


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser, "sentences to tag", "a UTF-8 text file, one sentence per line")
    parser.add_argument("--tags", action="store_true",
                        help="print every token with its tag (default: the entities)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per sentence: tokens, tags and entities "
                             "with character offsets")


def run_verb(model: Any, args: argparse.Namespace) -> int:
    """Print the entities of each sentence (``--tags``: token/tag pairs; ``--json``: all)."""
    texts = verb_inputs(args, 'nothing to tag: pass sentences ("John lives in New York .") or '
                              "--file FILE")
    chunked = model.preprocessor.scheme is not None
    for text, result in zip(texts, model.tag(texts, progress=progress_wanted(args))):
        if args.json:
            print(json.dumps({"text": text, "tokens": result.tokens, "tags": result.tags,
                              "entities": [e._asdict() for e in result.entities]},
                             ensure_ascii=False))
        elif args.tags or not chunked:
            print(" ".join(f"{t}/{g}" for t, g in zip(result.tokens, result.tags)))
        else:
            for e in result.entities:
                print(f"{e.text}\t{e.type}")
            if len(texts) > 1:
                print()
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """No options beyond the common ones."""
    return None


def evaluate_reports(model: Any, data: TaggingData, split: str,
                     options: dict[str, Any]) -> list[dict]:
    """Entity P/R/F1 (chunk tags) and token accuracy on a split."""
    return [split_report(model, data, split, options.get("limit"),
                         progress=options.get("progress", False))]


def format_report(report: dict) -> str:
    where = f"{report.get('sentences', 0)} sentences, {report.get('tokens', 0)} tokens"
    if "f1" not in report:
        return f"token accuracy {100 * report['token_accuracy']:.2f}% ({where})"
    lines = [f"entity F1 {100 * report['f1']:.2f} (precision {100 * report['precision']:.2f}, "
             f"recall {100 * report['recall']:.2f}; {report.get('entities', 0)} entities, "
             f"{where}); token accuracy {100 * report['token_accuracy']:.2f}%",
             f"  {'type':<8} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for name, row in report.get("per_type", {}).items():
        lines.append(f"  {name:<8} {100 * row['precision']:9.2f} {100 * row['recall']:7.2f} "
                     f"{100 * row['f1']:7.2f} {row['support']:8d}")
    return "\n".join(lines)


def example_inputs() -> list:
    return ["John lives in New York .", "EU rejects German call to boycott British lamb .",
            "Peter Blackburn", "a", ["Jacques", "Chirac", "met", "Gerhard", "Schroeder"]]


def example_outputs(model: Any, inputs: list) -> Any:
    return [{"tokens": t.tokens, "tags": t.tags,
             "entities": [e._asdict() for e in t.entities]} for t in model.tag(inputs)]
