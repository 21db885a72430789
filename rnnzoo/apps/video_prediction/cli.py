"""Video prediction on the command line: ``rnnzoo predict-frames NAME --input FILE --out
strip.png|strip.gif [--index I] [--steps N] [--json]`` (an input | truth | prediction strip), the
report of ``rnnzoo evaluate`` (MSE/MAE per frame, SSIM, per-step curves, the all-black and
copy-last baselines on the same frames, the published Moving MNIST numbers beside), and the
harness's example calls. TF-free; both backends go through the public ``predict_frames`` and
``evaluate``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.video_prediction.data import DataConfig, VideoData, read_sequences
from rnnzoo.errors import DataError

VERB = "predict-frames"
#: The metric ``rnnzoo evaluate`` leads with (``report_metrics`` name) and its direction.
HEADLINE = ("mse_per_frame", "min")
INTENDED_USE = ("Predicting the next frames of short greyscale videos like the ones it was "
                "trained on (Moving MNIST: two handwritten digits bouncing in a 64x64 box), "
                "from the preceding frames; a baseline and teaching model for video "
                "prediction.")
LIMITATIONS = (
    "Trained on synthetic Moving MNIST only: other videos (natural scenes, other sizes or "
    "frame rates) are outside what it has seen.",
    "Predictions blur as they go further ahead (an MSE-trained model averages over the "
    "possible futures); the per-step curve shows how fast.",
    "Frame size and channels are fixed at training (64x64x1).",
)
#: Moving MNIST, 2 digits, 10 -> 10 frames, MSE/frame (sum over 64x64 pixels in [0, 1]) on
#: each paper's own test draw of the protocol (recalled from the PredRNN and SimVP tables; see
#: the data's SOURCE.md): ranges to compare with, not exact targets.
PUBLISHED = {"FC-LSTM (Srivastava 2015)": 118.3, "ConvLSTM (Shi 2015)": 103.3,
             "PredRNN (Wang 2017)": 56.8, "SimVP (Gao 2022)": 23.8}
#: int8 ships when its MSE/frame is at most 2% (relative) above fp32's.
INT8_TOLERANCE = {"relative": 0.02}


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rnnzoo predict-frames``."""
    parser.add_argument("--input", required=True, metavar="FILE",
                        help="frames: .npy/.npz [N, T, H, W(, C)] uint8 (or mnist_test_seq's "
                        "[T, N, H, W]), or a folder of PNG frames")
    parser.add_argument("--out", metavar="PNG|GIF",
                        help="write the strip: input | truth | prediction rows (.png), or "
                        "an animation of them side by side (.gif)")
    parser.add_argument("--index", type=int, default=0, help="which sequence (default 0)")
    parser.add_argument("--steps", type=int, help="frames to predict (default: the model's)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: shapes, MSE/frame where the truth is known")


def _facts(model: Any) -> dict[str, Any]:
    return model._video_facts()


def run_verb(model: Any, args: argparse.Namespace) -> int:
    """Predict after the model's input frames of one sequence; write and describe the strip."""
    f = _facts(model)
    cfg = DataConfig(image_size=f["image_size"], channels=f["channels"],
                     input_frames=f["input_frames"], output_frames=f["output_frames"])
    seqs, layout = read_sequences(args.input, cfg, min_frames=1)
    if not 0 <= args.index < len(seqs):
        raise DataError(f"--index: {args.index} is outside the {len(seqs)} sequence(s) of "
                        f"{args.input}")
    seq = seqs[args.index]
    n_in = min(f["input_frames"], len(seq))
    steps = args.steps if args.steps is not None else f["output_frames"]
    pred = model.predict_frames(seq[None, :n_in], steps=steps)[0]
    truth = seq[n_in:n_in + steps].astype(np.float32) / 255.0
    out: dict[str, Any] = {"input": args.input, "layout": layout, "sequence": args.index,
                           "input_frames": n_in, "predicted_frames": steps,
                           "truth_frames": len(truth)}
    if len(truth):
        d = pred[:len(truth)] - truth
        out["mse_per_frame"] = float((d * d).sum(axis=(1, 2, 3)).mean())
    if args.out:
        write_strip(seq[:n_in].astype(np.float32) / 255.0, truth, pred, args.out)
        out["out"] = str(args.out)
    if args.json:
        print(json.dumps(out))
    else:
        mse = f", MSE/frame {out['mse_per_frame']:.1f}" if "mse_per_frame" in out else ""
        where = f" -> {args.out}" if args.out else ""
        print(f"sequence {args.index} of {args.input} ({layout}): {n_in} frames in, {steps} "
              f"predicted{mse}{where}")
    return 0


def _tile(frames: np.ndarray, count: int, gap: int = 2) -> np.ndarray:
    """One row image of ``count`` frame slots ``[H, W, C]`` in [0, 1] (missing ones grey)."""
    h, w, c = frames.shape[1:] if len(frames) else (0, 0, 1)
    row = np.full((h, count * (w + gap) - gap, c), 0.25, np.float32)
    for i, fr in enumerate(frames[:count]):
        row[:, i * (w + gap):i * (w + gap) + w] = fr
    return row


def write_strip(inputs: np.ndarray, truth: np.ndarray, pred: np.ndarray,
                path: str | Path) -> Path:
    """``.png``: three rows (input frames, true next frames, predicted next frames); ``.gif``:
    input | truth | prediction side by side, one GIF frame per time step (the input panel
    holds its last frame while the prediction runs). Pillow only."""
    from PIL import Image

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".gif"):
        raise DataError(f"--out: expected a .png or .gif file, found {path.name!r}")
    if not path.parent.is_dir():
        raise DataError(f"--out: no folder {path.parent}")

    def image(a: np.ndarray) -> Image.Image:
        a = np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)

    if suffix == ".png":
        count = max(len(inputs), len(pred))
        gap = 2
        rows = [_tile(r, count, gap) for r in (inputs, truth, pred)]
        rows = [r if r.size else np.full_like(rows[0], 0.25) for r in rows]
        sheet = np.concatenate([np.concatenate([r, np.full((gap, *r.shape[1:]), 1.0,
                                                           np.float32)])
                                for r in rows])[:-gap]
        image(sheet).save(path)
        return path
    h, w, c = pred.shape[1:]
    frames = []
    blank = np.full((h, w, c), 0.25, np.float32)
    for t in range(len(inputs) + len(pred)):
        if t < len(inputs):
            panels = (inputs[t], blank, blank)
        else:
            k = t - len(inputs)
            panels = (inputs[-1], truth[k] if k < len(truth) else blank, pred[k])
        sep = np.ones((h, 2, c), np.float32)
        frames.append(image(np.concatenate([panels[0], sep, panels[1], sep, panels[2]], 1)))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=200, loop=0)
    return path


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: ``--data`` is a sequence file/folder, or the MNIST folder
    (generated validation set); without ``--data`` the preset's generated validation set."""


def evaluate_reports(model: Any, data: VideoData, split: str,
                     options: Mapping[str, Any]) -> list[dict]:
    """MSE/MAE per frame, SSIM and per-step curves through ``model.evaluate`` on the first
    ``options["limit"]`` sequences of ``split``, with the all-black and copy-last baselines on
    the same frames and the published numbers beside."""
    seqs = data.split(split)[:options.get("limit")]
    if not len(seqs):
        raise DataError(f"{data.description}: no sequence in the {split} split")
    report: dict[str, Any] = model.evaluate(seqs, with_baselines=True,
                                            progress=options.get("progress", False))
    report.update(split=split, data=data.description)
    report["published"] = dict(PUBLISHED)
    return [report]


def format_report(report: dict) -> str:
    """The headline, the baselines on the same frames, the per-step curve, the anchors."""
    lines = [f"MSE/frame {report['mse_per_frame']:.2f}   MAE/frame "
             f"{report['mae_per_frame']:.2f}"
             + (f"   SSIM {report['ssim']:.4f}" if "ssim" in report else "")
             + f"   ({report['sequences']:,} sequences; sums over a frame's pixels in [0, 1])"]
    for name, b in (report.get("baselines") or {}).items():
        lines.append(f"  {name.replace('_', '-')} baseline, same frames: MSE/frame "
                     f"{b['mse_per_frame']:.2f}   MAE/frame {b['mae_per_frame']:.2f}   "
                     f"SSIM {b['ssim']:.4f}")
    lines.append("  MSE per predicted step: " + " ".join(f"{v:.1f}"
                                                         for v in report["mse_per_step"]))
    if report.get("published"):
        lines.append("  published MSE/frame (each paper's own test draw): " + " · ".join(
            f"{k} {v}" for k, v in report["published"].items()))
    return "\n".join(lines)


def example_inputs() -> list:
    """Sequences for the lifecycle harness (plain lists): a square moving right, 3 frames of
    16x16 (placed in the top-left corner of a larger model's canvas)."""
    seq = np.zeros((3, 16, 16), np.uint8)
    for t in range(3):
        seq[t, 4:8, 2 + t:6 + t] = 255
    return [{"frames": seq.tolist(), "steps": 2}, {"frames": seq[:1].tolist(), "steps": 1}]


def example_outputs(model: Any, inputs: list) -> Any:
    """Predicted frames and one stream step, rounded to 5 decimals (a rounding step of 1e-5
    stays within the bundle check's 1e-4 tolerance, where 4 decimals could flip)."""
    f = _facts(model)
    size = f["image_size"]
    out = []
    for item in inputs:
        given = np.asarray(item["frames"], np.uint8)[:, :size, :size]
        frames = np.zeros((len(given), size, size, f["channels"]), np.uint8)
        frames[:, :given.shape[1], :given.shape[2]] = given[..., None]
        out.append(np.round(model.predict_frames(frames, steps=item["steps"]), 5).tolist())
    s = model.stream()
    first = s.step(np.zeros((1, size, size, f["channels"]), np.float32))
    out.append(np.round(first, 5).tolist())
    return out
