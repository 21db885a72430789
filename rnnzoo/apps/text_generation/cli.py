"""Text generation on the command line: ``rnnzoo generate`` (shared with music generation: one
verb, the options of both), ``rnnzoo evaluate`` reports and the harness's example calls. TF-free.

The functions take the Keras task or the onnxruntime runtime alike and go through their public
calls (``generate``, ``evaluate``), so both backends print the same thing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from rnnzoo.apps.text_generation.data import PUBLISHED, UNK, CharData
from rnnzoo.apps.text_generation.inference import DEFAULT_STEPS
from rnnzoo.engines.primed import add_generation_arguments, steps_and_temperature
from rnnzoo.errors import DataError

VERB = "generate"
#: The metric ``rnnzoo evaluate`` leads with (``report_metrics`` name) and its direction.
HEADLINE = ("bpc", "min")
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Generating or continuing text character by character in the style of its "
                "training text, and scoring text in bits per character.")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Character vocabulary fixed at training: other characters are mapped to the unknown one.",
    "Imitates the surface of its training text; the output is not factual and can repeat or "
    "lose coherence over long spans.",
)
#: int8 ships when its bits per character is at most 0.5% above fp32's.
INT8_TOLERANCE = {"relative": 0.005}


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rnnzoo generate`` for text."""
    # Shared with music-generation (one `generate` verb): the common options are declared
    # again with both tasks' defaults in the help (the parser keeps the last declaration).
    add_generation_arguments(
        parser, f"frames/characters to generate (music: default 64; text: default {DEFAULT_STEPS})",
        "sampling temperature (default 1; 0 = the most likely frame/character)")
    parser.add_argument("--prompt", default="",
                        help="text: the text to continue (default: start of a line)")
    parser.add_argument("--top-k", dest="top_k", type=int,
                        help="text: sample among the k most likely characters")
    parser.add_argument("--top-p", dest="top_p", type=float,
                        help="text: nucleus sampling with mass p")


def run_verb(model: Any, args: argparse.Namespace) -> int:
    """Print the prompt, then each character as it is generated (streaming)."""
    steps, temperature = steps_and_temperature(args, DEFAULT_STEPS)
    prompt = getattr(args, "prompt", "") or ""

    def show(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    show(prompt)
    model.generate(prompt, steps=steps, temperature=temperature,
                   top_k=getattr(args, "top_k", None), top_p=getattr(args, "top_p", None),
                   seed=args.seed, on_text=show)
    show("\n")
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of ``rnnzoo evaluate`` of its own."""


def evaluate_reports(model: Any, data: CharData, split: str,
                     options: Mapping[str, Any]) -> list[dict]:
    """Bits per character of ``split`` through ``model.evaluate``: the split is one stream,
    scored with the state carried across it; ``options["limit"]`` keeps its first N
    characters."""
    text = data.split(split)[:options.get("limit")]
    if len(text) < 1:
        raise DataError(f"{data.description}: the {split} split is empty")
    scores = model.evaluate([text], progress=options.get("progress", False))
    bench = PUBLISHED.get(data.benchmark or "")
    report = {k: scores[k] for k in ("bpc", "nats_per_char", "chars", "unknown")}
    report.update(split=split, data=data.description, benchmark=data.benchmark,
                  published=bench["values"] if bench and bench["split"] == split else {})
    return [report]


def format_report(report: dict) -> str:
    """The bpc headline, and the published numbers of the benchmark's split."""
    lines = [f"{report['bpc']:.4f} bits per character ({report['nats_per_char']:.4f} "
             f"nats/char) over {report['chars']} characters, state carried across the "
             f"split; {report.get('unknown', 0)} unknown; lower is better"]
    return "\n".join(lines + _benchmark_lines(report))


def _benchmark_lines(report: Mapping[str, Any]) -> list[str]:
    bench = PUBLISHED.get(report.get("benchmark") or "")
    if not bench or report.get("split") != bench["split"]:
        return []
    table = " · ".join(f"{k} {v:.4f}" for k, v in bench["values"].items())
    return [f"  published {report['split']} {bench['unit']} ({bench['source']}): {table}"]


def example_inputs() -> list:
    """Prompts and sampling options for the lifecycle harness."""
    return [{"prompt": "", "steps": 12, "seed": 0},
            {"prompt": "ab", "steps": 8, "temperature": 0.0},
            {"prompt": "a", "steps": 10, "temperature": 0.8, "top_k": 3, "seed": 5}]


def example_outputs(model: Any, inputs: list) -> Any:
    """Each generated text and its bpc (vocabulary characters of the prompt only)."""
    out = []
    for item in inputs:
        prompt = "".join(c for c in item["prompt"]
                         if c in model.preprocessor.index and c != UNK)
        text = model.generate(**{**item, "prompt": prompt})
        out.append({"text": text, "bpc": model.evaluate([prompt + text])["bpc"]})
    return out
