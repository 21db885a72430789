"""Handwriting recognition on the command line: ``rnnzoo recognize NAME line.inkml [more.xml]
[--beam 8] [--lm lm.json]``, and the reports of ``rnnzoo evaluate`` (best path, then prefix
beam search), computed through the public ``evaluate`` of the Keras task or the runtime alike.
TF-free."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.engines.ctc import CharNgramLM, decoding_reports
from rnnzoo.errors import DataError
from rnnzoo.progress import add_progress_argument, model_label, progress_wanted, reporting

VERB = "recognize"
#: The metric ``rnnzoo evaluate`` leads with (``report_metrics`` name) and its direction.
HEADLINE = ("cer_greedy", "min")
INTENDED_USE = ("Reading one line of online handwriting (pen or mouse trajectories: InkML, "
                "IAM-OnDB XML, or stroke arrays) into English text, with best-path or prefix "
                "beam-search CTC decoding and an optional character language model.")
LIMITATIONS = (
    "Trained on IAM-OnDB whiteboard handwriting (English, 221 writers): other scripts, "
    "languages and very different writing devices raise the error rate.",
    "One text line per input: a page must be split into lines first.",
    "Research-use data: IAM-OnDB's terms allow non-commercial research only.",
)
#: int8 ships when its character error rate is at most 5% (relative) above fp32's: a line
#: recognizer's CER is tens of percent, where a fixed number of points says little.
INT8_TOLERANCE = {"relative": 0.05}


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rnnzoo recognize``."""
    parser.add_argument("files", nargs="+",
                        help="ink files: InkML (.inkml) or IAM-OnDB line XML (.xml), one line "
                        "each; an IAM-OnDB .npz/.tsv gives all its lines")
    parser.add_argument("--beam", type=int, default=0,
                        help="prefix beam search width (default 0: best path)")
    _add_lm_arguments(parser)
    parser.add_argument("--line-height", dest="line_height", type=float, default=None,
                        help="height of a text line in ink units (default: measured)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_progress_argument(parser)


def _add_lm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lm", metavar="FILE",
                        help="a character n-gram language model for the beam search (needs "
                        "--beam): a saved model (.json, CharNgramLM.to_json) or a UTF-8 text "
                        "file to train one on (one sentence a line; never the text you score)")
    parser.add_argument("--lm-order", dest="lm_order", type=int, default=6,
                        help="--lm text: the n-gram order (default 6)")
    parser.add_argument("--lm-weight", dest="lm_weight", type=float, default=0.5,
                        help="--lm: weight of its log-probability (default 0.5)")
    parser.add_argument("--lm-bonus", dest="lm_bonus", type=float, default=0.0,
                        help="--lm: score added per character (default 0)")


def load_lm(path: str | None, alphabet: str, order: int = 6) -> CharNgramLM | None:
    """The ``--lm`` model: a saved one (.json) or one trained on a text file, or None."""
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        raise DataError(f"--lm {path}: no such file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"--lm {path}: not UTF-8 text (byte {exc.start})") from None
    if p.suffix == ".json":
        return CharNgramLM.from_json(text, str(p))
    return CharNgramLM.train(text.splitlines(), alphabet, order)


def run_verb(model: Any, args: argparse.Namespace) -> int:
    """Recognize the files (every one read before any output), one line per ink line."""
    from rnnzoo.apps.handwriting_recognition.inference import read_ink

    lm = load_lm(args.lm, model.alphabet, args.lm_order)
    if lm is not None and not args.beam:
        from rnnzoo.errors import ConfigError

        raise ConfigError("--lm rescores the beam search: add --beam N (e.g. --beam 16)")
    files = list(args.files)
    with reporting(progress_wanted(args), model_label(model, "recognize"), len(files),
                   "files") as bar:
        bar.stage("reading", len(files))
        per_file = [read_ink(f) for f in bar.over(files)]  # all checked before output
        lines = [ln for group in per_file for ln in group]
        texts = model.recognize(lines, args.beam, lm, args.lm_weight, args.line_height,
                                progress=bar, lm_bonus=args.lm_bonus)
    for ln, text in zip(lines, texts):
        if args.json:
            print(json.dumps({"source": ln.source, "text": text}, ensure_ascii=False))
        else:
            print(f"{text}\t{ln.source}")
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """``--lm`` and its weights (a third report: the beam search with the language model);
    ``--beam`` is declared by the translation task type."""
    _add_lm_arguments(parser)


def evaluate_lines(model: Any, lines: Sequence[Any], beam_width: int = 0,
                   progress: bool = False, lm: CharNgramLM | None = None,
                   lm_weight: float = 0.5, lm_bonus: float = 0.0) -> dict:
    """Character and word error rates on ``lines`` (:class:`Ink` with transcripts) through
    ``model.evaluate``."""
    return model.evaluate(list(lines), [ln.text for ln in lines], beam_width=beam_width,
                          lm=lm, lm_weight=lm_weight, lm_bonus=lm_bonus, progress=progress)


def evaluate_reports(model: Any, data: Any, split: str, options: Mapping[str, Any]
                     ) -> list[dict]:
    """Best path and prefix beam search (engines/ctc.py ``decoding_reports``), and with
    ``--lm`` a third report: the beam search with the character language model."""
    progress = options.get("progress", False)
    reports, lines, beam = decoding_reports(model, data, split, options, lambda examples, width: (
        evaluate_lines(model, examples, width, progress)))
    lm = load_lm(options.get("lm"), model.alphabet, options.get("lm_order") or 6)
    if lm is not None:
        width = beam or 8
        weight = options.get("lm_weight", 0.5)
        report = evaluate_lines(model, lines, width, progress, lm,
                                weight, options.get("lm_bonus", 0.0))
        report.update(split=split, data=data.description, decoding=f"beam {width} lm",
                      lm=f"{options['lm']} (order {lm.order}, weight {weight:g})")
        reports.append(report)
    return reports


def format_report(report: dict) -> str:
    """The headline (character and word error rates, line accuracy) and a few examples."""
    lines = [f"character error rate {report['cer']:.2%}, word error rate "
             f"{report.get('wer', float('nan')):.2%}, line accuracy "
             f"{report['string_accuracy']:.2%} ({report['num_strings']} lines, "
             f"{report['reference_labels']} characters; {report['decoding']})"]
    for ex in report.get("examples", []):
        lines.append(f"  ref {ex['ref']}\n  hyp {ex['hyp']}")
    return "\n".join(lines)


def _example_strokes(kind: int) -> list[np.ndarray]:
    """Small synthetic ink (loops and bars) for the harness's example inputs."""
    t = np.linspace(0, 2 * np.pi, 24)
    out = []
    for k in range(kind + 1):
        out.append(np.stack([100 * k + 30 * np.cos(t), 100 + 40 * np.sin(t)], axis=1))
        out.append(np.array([[100 * k + 40, 40], [100 * k + 42, 160]], dtype=np.float64))
    return out


def example_inputs() -> list:
    """Synthetic lines described by their shape count and decoding."""
    return [{"shapes": 0, "beam": 0}, {"shapes": 2, "beam": 3}, {"shapes": 1, "beam": 0}]


def example_outputs(model: Any, inputs: list) -> Any:
    """Transcript, frame count and first frame's log-probabilities of each example input."""
    out = []
    for item in inputs:
        strokes = _example_strokes(item["shapes"])
        lp = model.frame_log_probs([strokes])[0]
        text = model.recognize([strokes], beam_width=item["beam"])[0]
        out.append({"text": text, "frames": len(lp), "first_frame": [float(v) for v in lp[0]]})
    return out
