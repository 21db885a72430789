"""Music generation on the command line: ``rnnzoo generate`` (shared with text generation: one
verb, the options of both; MIDI out, optional piano-roll PNG and WAV), ``rnnzoo evaluate``
reports and the harness's example calls. TF-free.

The functions take the Keras task or the onnxruntime runtime alike and go through their public
calls (``generate``, ``evaluate``, ``frame_probabilities``), so both backends print the same.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.music_generation.data import (
    DEFAULT_QPM,
    NUM_KEYS,
    PUBLISHED,
    PUBLISHED_SOURCE,
    MusicData,
    note_segments,
    plot_roll,
    read_json_rolls,
    read_mat,
    roll_to_pitches,
    write_midi,
    write_wav,
)
from rnnzoo.apps.music_generation.inference import DEFAULT_STEPS, _check_int
from rnnzoo.engines.primed import add_generation_arguments, steps_and_temperature
from rnnzoo.errors import DataError

VERB = "generate"
#: The metric ``rnnzoo evaluate`` leads with (``report_metrics`` name) and its direction.
HEADLINE = ("nll", "min")
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Generating or continuing polyphonic piano-roll music (88 keys) in the style "
                "of its training pieces, and scoring pieces by frame likelihood.")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Frames are quantised in time and carry no dynamics; the output is a piano roll, "
    "rendered to MIDI at a fixed tempo.",
    "Imitates one corpus; long pieces drift without the large-scale structure of real music.",
)
#: int8 ships when its frame NLL is at most 0.5% above fp32's.
INT8_TOLERANCE = {"relative": 0.005}


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rnnzoo generate`` for music."""
    # Defaults are applied in run_verb: options shared with other generate tasks (--steps,
    # --temperature, --seed, --primer, --out) keep no task-specific default in the parser.
    add_generation_arguments(parser, f"frames/tokens to generate (music: default {DEFAULT_STEPS})",
                             "sampling temperature (default 1; music: 0 = most likely frame)")
    parser.add_argument("--primer", metavar="FILE",
                        help="music: start from this MIDI file, or from a test piece of a "
                        ".mat/.json dataset (see --primer-piece)")
    parser.add_argument("--primer-piece", dest="primer_piece", type=int, default=0,
                        metavar="N", help="music: which test piece of a dataset primer")
    parser.add_argument("--primer-steps", dest="primer_steps", type=int, metavar="K",
                        help="music: use only the first K frames of the primer")
    parser.add_argument("--include-primer", dest="include_primer", action="store_true",
                        help="music: write the primer before the generated frames")
    parser.add_argument("--out", metavar="FILE",
                        help="music: the MIDI file to write (default: print the frames)")
    parser.add_argument("--qpm", type=float, help=f"music: tempo in quarter notes per "
                        f"minute (default {DEFAULT_QPM:g})")
    parser.add_argument("--program", type=int,
                        help="music: General MIDI program of the output (default 0, piano)")
    parser.add_argument("--plot", metavar="PNG", help="music: also save a piano-roll image")
    parser.add_argument("--wav", metavar="WAV",
                        help="music: also render audio with the built-in synthesizer")


def run_verb(model: Any, args: argparse.Namespace) -> int:
    """Generate a piece: a MIDI file with ``--out`` (else the frames as pitch lists), and the
    optional piano-roll image and audio."""
    primer = _primer_from_args(model, args)
    steps, temperature = steps_and_temperature(args, DEFAULT_STEPS)
    qpm = args.qpm if args.qpm is not None else DEFAULT_QPM
    program = args.program if args.program is not None else 0
    # --top-p (declared by the text generators on the shared verb): per key for music.
    roll = model.generate(steps=steps, primer=primer, temperature=temperature,
                          seed=args.seed, include_primer=args.include_primer,
                          top_p=getattr(args, "top_p", None))
    spq = model.preprocessor.steps_per_quarter
    primer_len = len(primer) if primer is not None and args.include_primer else 0
    if args.out:
        write_midi(roll, args.out, qpm=qpm, program=program, steps_per_quarter=spq)
        notes = len(note_segments(roll))
        print(f"wrote {args.out}: {len(roll)} frames, {notes} notes, "
              f"{len(roll) * 60 / qpm / spq:.1f} s at {qpm:g} qpm", file=sys.stderr)
    else:
        for pitches in roll_to_pitches(roll):
            print(" ".join(map(str, pitches)))
    if args.plot:
        plot_roll(roll, args.plot, title=f"{model.name} (temperature {temperature:g}, "
                  f"seed {args.seed})",
                  primer_steps=primer_len)
        print(f"piano roll: {args.plot}", file=sys.stderr)
    if args.wav:
        write_wav(roll, args.wav, qpm=qpm, steps_per_quarter=spq)
        print(f"audio: {args.wav}", file=sys.stderr)
    return 0


def _primer_from_args(model: Any, args: argparse.Namespace) -> np.ndarray | None:
    """The CLI primer: a MIDI file, or test piece ``--primer-piece`` of a .mat/.json dataset,
    cut to ``--primer-steps``."""
    if not args.primer:
        return None
    path = Path(args.primer)
    if path.suffix.lower() in (".mat", ".json"):
        if not path.is_file():
            raise DataError(f"--primer {path}: no such file")
        train, dev, test = read_mat(path) if path.suffix.lower() == ".mat" \
            else read_json_rolls(path)
        pieces = test or dev or train
        index = args.primer_piece
        if not 0 <= index < len(pieces):
            raise DataError(f"--primer-piece {index}: {path} has {len(pieces)} test pieces "
                            f"(0-{len(pieces) - 1})")
        roll = pieces[index]
    else:
        if not path.is_file():
            raise DataError(f"--primer {path}: no such file")
        roll = model.as_roll(str(path))
    if args.primer_steps is not None:
        roll = roll[: _check_int("--primer-steps", args.primer_steps, 1)]
    return roll


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of ``rnnzoo evaluate`` of its own."""


def evaluate_reports(model: Any, data: MusicData, split: str,
                     options: Mapping[str, Any]) -> list[dict]:
    """Frame NLL of the pieces of ``split`` through ``model.evaluate``; ``options["limit"]``
    keeps the first N pieces."""
    pieces = data.split(split)[:options.get("limit")]
    if not pieces:
        raise DataError(f"{data.description}: the {split} split is empty")
    report = dict(model.evaluate(pieces, progress=options.get("progress", False)))
    report.update(split=split, data=data.description,
                  published=PUBLISHED.get(data.benchmark or "", {}) if split == "test"
                  else {}, benchmark=_benchmark_line(data, split))
    return [report]


def format_report(report: dict) -> str:
    """The frame NLL headline, and the published test numbers of a benchmark file."""
    lines = [f"frame NLL {report['nll']:.4f} nats ({report['frames']} predicted frames in "
             f"{report['pieces']} pieces; BCE summed over {NUM_KEYS} keys, lower is better)"]
    if report.get("benchmark"):
        lines.append(report["benchmark"])
    return "\n".join(lines)


def _benchmark_line(data: MusicData, split: str) -> str:
    if data.benchmark is None or split != "test":
        return ""
    table = " · ".join(f"{k} {v:.2f}" for k, v in PUBLISHED[data.benchmark].items())
    return f"  published test NLL ({PUBLISHED_SOURCE}): {table}"


def example_inputs() -> list:
    """Lengths, seeds, temperatures and primers for the lifecycle harness."""
    return [{"steps": 6, "seed": 0},
            {"steps": 5, "seed": 3, "temperature": 0.7, "primer": [[60, 64, 67], [], [62]]},
            {"steps": 4, "temperature": 0.0, "primer": [[48], [52, 55]]}]


def example_outputs(model: Any, inputs: list) -> Any:
    """Each generated piece as pitch lists, and the frame probabilities of its primer."""
    out = []
    for item in inputs:
        roll = model.generate(**item)
        primer = item.get("primer") or [[60]]
        out.append({"frames": roll_to_pitches(roll),
                    "probs": model.frame_probabilities(primer).tolist()})
    return out
