"""Speech recognition on the command line: ``rnnzoo transcribe NAME a.wav b.wav [--beam 8]
[--plot out.png] [--stream]``, and the reports of ``rnnzoo evaluate`` (best path, then prefix
beam search), computed through the public ``evaluate`` of the Keras task or the runtime
alike. TF-free."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.speech_recognition.data import log_mel, read_wav, tone_bursts
from rnnzoo.engines.ctc import decoding_reports
from rnnzoo.progress import add_progress_argument, model_label, progress_wanted, reporting

VERB = "transcribe"
#: The metric ``rnnzoo evaluate`` leads with (``report_metrics`` name) and its direction.
HEADLINE = ("ler_greedy", "min")
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Transcribing short recordings into the label alphabet it was trained on "
                "(e.g. spoken digits), with best-path or prefix beam-search CTC decoding.")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Recognises only its training alphabet and vocabulary; other words come out as the "
    "nearest labels it knows.",
    "Audio is resampled to the model's rate; noise, other microphones and speakers unlike "
    "the training ones raise the error rate.",
)
#: int8 ships when its label error rate is at most 0.5 points above fp32's.
INT8_TOLERANCE = {"absolute": 0.005}


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rnnzoo transcribe``."""
    parser.add_argument("files", nargs="+", help="WAV files to transcribe")
    parser.add_argument("--beam", type=int, default=0,
                        help="prefix beam search width (default 0: best path)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--plot", metavar="PNG", help="write the spectrogram with the "
                        "per-frame label probabilities (one file: PNG; several: "
                        "PNG stem + _<n>)")
    parser.add_argument("--stream", action="store_true",
                        help="a streaming model (ctc_lstm_stream): feed each file in chunks "
                        "and print the transcript each time it grows, with the audio time")
    parser.add_argument("--chunk-ms", dest="chunk_ms", type=float, default=100.0,
                        help="--stream: milliseconds of audio per chunk (default 100)")
    add_progress_argument(parser)


def run_stream(model: Any, args: argparse.Namespace) -> int:
    """``--stream``: per file, one line per change of the transcript (the audio time it was
    heard by), then the final line as without ``--stream``."""
    from rnnzoo.errors import ConfigError

    if args.beam:
        raise ConfigError("--stream decodes by best path; drop --beam")
    if args.plot:
        raise ConfigError("--stream prints transcripts as they grow; drop --plot")
    if not args.chunk_ms > 0:
        raise ConfigError(f"--chunk-ms: expected milliseconds > 0, found {args.chunk_ms:g}")
    files = list(args.files)
    rate = model.preprocessor.params.sample_rate
    audio = [read_wav(f, rate)[0] for f in files]  # all checked before output
    chunk = max(1, int(round(args.chunk_ms * rate / 1000)))
    for f, a in zip(files, audio):
        s = model.stream()
        shown = ""
        for start in range(0, len(a), chunk):
            text = s.step(a[start:start + chunk])
            if text != shown:
                shown = text
                seconds = min(start + chunk, len(a)) / rate
                if args.json:
                    print(json.dumps({"file": f, "seconds": round(seconds, 3), "partial": text},
                                     ensure_ascii=False), flush=True)
                else:
                    print(f"{seconds:7.2f}s  {text}", flush=True)
        if args.json:
            print(json.dumps({"file": f, "text": shown}, ensure_ascii=False))
        else:
            print(f"{shown}\t{f}")
    return 0


def run_verb(model: Any, args: argparse.Namespace) -> int:
    """Transcribe the files (every one read before any output), one line each."""
    if getattr(args, "stream", False):
        return run_stream(model, args)
    files = list(args.files)
    rate = model.preprocessor.params.sample_rate
    with reporting(progress_wanted(args), model_label(model, "transcribe"), len(files),
                   "recordings") as bar:
        bar.stage("reading", len(files))
        audio = [read_wav(f, rate)[0] for f in bar.over(files)]  # all checked before output
        lps = model.frame_log_probs(audio, progress=bar)
        bar.stage("decoding", len(files))
        texts = [model.decode(lp, args.beam) for lp in bar.over(lps)]
    labels = ["blank", *model.alphabet]
    for k, (f, a, lp, text) in enumerate(zip(files, audio, lps, texts)):
        if args.json:
            print(json.dumps({"file": f, "text": text}, ensure_ascii=False))
        else:
            print(f"{text}\t{f}")
        if args.plot:
            plot = Path(args.plot)
            if len(files) > 1:
                plot = plot.with_name(f"{plot.stem}_{k}{plot.suffix or '.png'}")
            plot_transcription(log_mel(a, model.preprocessor.params), lp, labels, plot,
                               title=f"{Path(f).name}: {text!r}",
                               stride=model.frame_stride)
            print(f"plot: {plot}", file=sys.stderr)
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """None of its own: ``--beam`` is declared by the translation task type."""
    return None


def evaluate_examples(model: Any, examples: Sequence[Any], beam_width: int = 0,
                      isolated: Sequence[Any] = (), progress: bool = False) -> dict:
    """Label error rate and string accuracy on ``examples`` (``text`` and ``audio(rate)``),
    and the accuracy on the ``isolated`` recordings when given, through ``model.evaluate``
    (``progress``: its progress line)."""
    rate = model.preprocessor.params.sample_rate
    report = model.evaluate([ex.audio(rate) for ex in examples], [ex.text for ex in examples],
                            beam_width=beam_width, progress=progress)
    shown = report.pop("examples")
    if isolated:
        single = model.evaluate([ex.audio(rate) for ex in isolated],
                                [ex.text for ex in isolated], beam_width=beam_width,
                                progress=progress)
        report["isolated_accuracy"] = single["string_accuracy"]
        report["isolated_recordings"] = len(isolated)
    report["examples"] = shown
    return report


def evaluate_reports(model: Any, data: Any, split: str, options: Mapping[str, Any]
                     ) -> list[dict]:
    """Best path and prefix beam search (engines/ctc.py ``decoding_reports``), with the
    isolated-recordings accuracy on the test split."""
    isolated = data.isolated[:options.get("limit")] if split == "test" else []
    progress = options.get("progress", False)
    return decoding_reports(model, data, split, options, lambda examples, width: (
        evaluate_examples(model, examples, width, isolated, progress)))[0]


def format_report(report: dict) -> str:
    """The headline (label error rate, string accuracy), isolated accuracy, a few examples."""
    lines = [f"label error rate {report['ler']:.2%}, string accuracy "
             f"{report['string_accuracy']:.2%} ({report['num_strings']} strings, "
             f"{report['reference_labels']} labels; {report['decoding']})"]
    if "isolated_accuracy" in report:
        lines.append(f"isolated recordings: accuracy {report['isolated_accuracy']:.2%} "
                     f"({report['isolated_recordings']})")
    for ex in report.get("examples", []):
        lines.append(f"  ref {ex['ref']:<10} hyp {ex['hyp']}")
    return "\n".join(lines)


def example_inputs() -> list:
    """Tone-burst signals described by their pitches (one at 16 kHz, resampled), built by
    :func:`tone_bursts` in ``example_outputs``."""
    return [{"tones": [500, 1500], "sample_rate": 8000, "beam": 0},
            {"tones": [1000], "sample_rate": 8000, "beam": 3},
            {"tones": [700, 2100, 700], "sample_rate": 16000, "beam": 0}]


def example_outputs(model: Any, inputs: list) -> Any:
    """Transcript, frame count and first frame's log-probabilities of each example input."""
    out = []
    for item in inputs:
        rate = item["sample_rate"]
        audio = tone_bursts(item["tones"], rate)
        lp = model.frame_log_probs([audio], sample_rate=rate)[0]
        text = model.transcribe([audio], beam_width=item["beam"], sample_rate=rate)[0]
        out.append({"text": text, "frames": len(lp),
                    "first_frame": [float(v) for v in lp[0]]})
    return out


def plot_transcription(features: np.ndarray, log_probs: np.ndarray, labels: Sequence[str],
                       path: str | os.PathLike, title: str = "", stride: int = 1) -> Path:
    """The log-mel spectrogram over the per-frame label probabilities (blank first), one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnnzoo.io import save_figure

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    top.imshow(features.T, origin="lower", aspect="auto", cmap="magma",
               extent=(0, len(features), 0, features.shape[1]))
    top.set_ylabel("mel band")
    top.set_title(title)
    probs = np.exp(log_probs).T
    bottom.imshow(probs, origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1,
                  interpolation="nearest", extent=(0, len(log_probs) * stride, -0.5,
                                                   len(labels) - 0.5))
    bottom.set_yticks(range(len(labels)), labels)
    bottom.set_ylabel("label")
    bottom.set_xlabel("input frame (10 ms)")
    fig.tight_layout()
    return save_figure(fig, path)

