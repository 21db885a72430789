"""Handwriting recognition data: Graves-style point features, the dataset layouts,
the preprocessor.

Ink (one text line as a list of strokes) and its readers are in
:mod:`rnnzoo.apps.handwriting_recognition.ink`.

Features (:func:`ink_features`, the same function for training, Keras and the runtime): the
line's height ``h`` (``height: line``: the 5-95 percentile range of y; ``height: fixed``: a
given unit, so nothing depends on points not yet written, for streaming), every stroke
resampled to points ``spacing * h`` apart along its trace, and per point ``dx, dy`` (the move
from the previous point, in heights, y up, pen-up jumps clipped), ``pen_up`` (the move was in
the air: a new stroke), ``stroke_end`` (the pen lifts after it) and ``y`` (height above the
line's median, or above the first point with ``fixed``), standardised with the training set's
statistics. Every stroke's features depend on that stroke and the previous point only, so a
line written stroke by stroke gives the same features as the whole line (``fixed``). TF-free.

Decoding, label ids, the alphabet check and the scores are ``rnnzoo.engines.ctc``'s, shared
with speech recognition.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from rnnzoo.apps.handwriting_recognition.ink import Ink, read_ink_file, read_npz, read_tsv
from rnnzoo.config import rule
from rnnzoo.data.splits import HeldOutFractions, Splits
from rnnzoo.engines.ctc import check_alphabet, decode_labels, encode_labels, read_transcript_lines
from rnnzoo.errors import DataError, short_repr
from rnnzoo.io import read_json

ASSET_FILE = "handwriting.json"
ASSET_FORMAT = "rnnzoo.handwriting_preprocessor.v1"
TRANSCRIPTS = "transcripts.tsv"
IAM_FILES = {"train": "iamondb_train.npz", "val1": "iamondb_val1.npz",
             "val2": "iamondb_val2.npz"}
FEATURES = ("dx", "dy", "pen_up", "stroke_end", "y")
N_FEATURES = len(FEATURES)


@dataclasses.dataclass
class DataConfig(HeldOutFractions):
    # Resampling step along each stroke, in line heights (0.1: ~12 points per character).
    spacing: float = rule(0.1, gt=0)
    # line: h = the 5-95 percentile range of the line's y (whole-line models); fixed: h is a
    # given unit (line_height, or the median of the training lines), so features never read
    # ahead (streaming).
    height: Literal["line", "fixed"] = "line"
    line_height: float = rule(0.0, min=0)  # fixed: raw units per height; 0: fitted
    # Pen-up jumps longer than this many heights are clipped (a jump back over the line).
    max_jump: float = rule(4.0, gt=0)
    # The IAM-OnDB folder: which validation set early-stops training (the other is the test
    # split). The official test set (testset_f) is not in the folder.
    dev_set: Literal["val1", "val2"] = "val1"
    # Label alphabet; empty: learned from the training transcripts.
    alphabet: str = ""
    # A single file or a transcripts.tsv folder: held-out fractions of the lines (seeded).
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    # Decoding used by evaluate (0: best path only; N: also prefix beam search of width N).
    beam_width: int = rule(8, min=0)
    # Training augmentation (0: off), drawn afresh for every training line every epoch and
    # applied to its raw points before the features; never at evaluation, export or
    # recognize. Writers differ in slant, width and baseline angle, which the features keep:
    # x stretched by a factor in [1 - a, 1 + a] (``augment_stretch``); slanted by
    # x += t * (y above the line's middle), t in [-s, s] (``augment_shear``); turned about the
    # line's centre by up to this many degrees (``augment_rotate``); scaled as a whole (only
    # ``height: fixed`` sees it; ``line`` measures in the line's height); every point moved by
    # Gaussian noise of this many line heights (``augment_jitter``).
    augment_stretch: float = rule(0.0, min=0.0, max=0.5)
    augment_shear: float = rule(0.0, min=0.0, max=1.0)
    augment_rotate: float = rule(0.0, min=0.0, max=30.0)
    augment_scale: float = rule(0.0, min=0.0, max=0.5)
    augment_jitter: float = rule(0.0, min=0.0, max=0.2)

    def check(self) -> list[str]:
        problems = HeldOutFractions.check(self)
        if len(set(self.alphabet)) != len(self.alphabet):
            problems.append(f"alphabet: repeated characters in {self.alphabet!r}")
        return problems


class FeatureParams(NamedTuple):
    spacing: float
    height: str
    max_jump: float

    @classmethod
    def from_config(cls, d: DataConfig) -> FeatureParams:
        return cls(float(d.spacing), str(d.height), float(d.max_jump))


class Augmentation(NamedTuple):
    """How much training copies of a line are distorted (``DataConfig``'s ``augment_*``)."""

    stretch: float = 0.0
    shear: float = 0.0
    rotate: float = 0.0
    scale: float = 0.0
    jitter: float = 0.0

    @classmethod
    def from_config(cls, d: DataConfig) -> Augmentation:
        return cls(float(d.augment_stretch), float(d.augment_shear), float(d.augment_rotate),
                   float(d.augment_scale), float(d.augment_jitter))

    @property
    def active(self) -> bool:
        return any(v > 0 for v in self)


def augment_ink(strokes: Sequence[np.ndarray], rng: np.random.Generator, aug: Augmentation
                ) -> tuple:
    """A random training copy of a line's strokes (``[n, 2]`` each, y down; same shapes): x
    stretched, slanted about the line's middle, turned about its centre, scaled and jittered
    as ``aug`` allows, so the model meets other writers' slant, width and baseline angle.
    With every amount 0 the strokes come back unchanged and ``rng`` is not drawn from."""
    if not aug.active:
        return tuple(strokes)
    pts = np.concatenate(strokes).astype(np.float64)
    centre = np.median(pts, axis=0)
    h = line_height(strokes)
    m = np.eye(2)
    if aug.stretch:
        m = np.diag([rng.uniform(1.0 - aug.stretch, 1.0 + aug.stretch), 1.0]) @ m
    if aug.shear:
        # y grows downward: a positive t leans the letters' tops to the right.
        m = np.array([[1.0, -rng.uniform(-aug.shear, aug.shear)], [0.0, 1.0]]) @ m
    if aug.rotate:
        a = np.deg2rad(rng.uniform(-aug.rotate, aug.rotate))
        m = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ m
    if aug.scale:
        m = m * rng.uniform(1.0 - aug.scale, 1.0 + aug.scale)
    out = []
    for s in strokes:
        p = (np.asarray(s, np.float64) - centre) @ m.T + centre
        if aug.jitter:
            p = p + rng.normal(0.0, aug.jitter * h, p.shape)
        out.append(p)
    return tuple(out)


# -- features ------------------------------------------------------------------------------------


def line_height(strokes: Sequence[np.ndarray]) -> float:
    """The line's height unit: the 5-95 percentile range of its y (robust to a stray
    descender or accent); a line with no height (one dot, a dash) falls back to its extent
    or 1."""
    pts = np.concatenate(strokes)
    h = float(np.percentile(pts[:, 1], 95) - np.percentile(pts[:, 1], 5))
    if h <= 1e-9:
        h = float(max(np.ptp(pts[:, 1]), np.ptp(pts[:, 0]) / 4, 0.0)) or 1.0
    return h


def resample_stroke(points: np.ndarray, step: float) -> np.ndarray:
    """Points ``step`` apart along the stroke's trace, from its first point (and its last point
    when more than half a step is left); a stroke shorter than a step keeps its two ends."""
    p = np.asarray(points, np.float64)
    if len(p) == 1:
        return p
    seg = np.sqrt((np.diff(p, axis=0) ** 2).sum(axis=1))
    keep = np.concatenate([[True], seg > 0])
    p, seg = p[keep], seg[seg > 0]
    if not len(seg):
        return p[:1]
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    s = np.arange(0.0, total, step)
    if total - s[-1] > step / 2:
        s = np.append(s, total)
    return np.stack([np.interp(s, cum, p[:, 0]), np.interp(s, cum, p[:, 1])], axis=1)


class StrokeFeaturizer:
    """Raw features of strokes arriving one at a time (a line being written): each stroke's
    rows need only the previous point, so :meth:`add` over a line's strokes gives exactly
    :func:`ink_features` of the whole line with the same height unit and reference."""

    def __init__(self, params: FeatureParams, height: float, y_ref: float | None = None
                 ) -> None:
        self.params = params
        self.h = float(height)
        self.y_ref = y_ref
        self.last: np.ndarray | None = None

    def add(self, stroke: np.ndarray) -> np.ndarray:
        """Raw features ``[m, 5]`` of the next stroke (float64)."""
        p = resample_stroke(stroke, self.params.spacing * self.h)
        if self.y_ref is None:
            self.y_ref = float(p[0, 1])  # causal: above the line's first point
        prev = p[0] if self.last is None else self.last
        moves = np.diff(np.concatenate([prev[None], p]), axis=0) / self.h
        j = self.params.max_jump
        f = np.zeros((len(p), N_FEATURES))
        f[:, 0] = np.clip(moves[:, 0], -j, j)
        f[:, 1] = np.clip(-moves[:, 1], -j, j)
        f[0, 2] = 1.0
        f[-1, 3] = 1.0
        f[:, 4] = -(p[:, 1] - self.y_ref) / self.h
        self.last = p[-1]
        return f


def ink_features(strokes: Sequence[np.ndarray], params: FeatureParams,
                 height: float | None = None) -> np.ndarray:
    """Raw (unstandardised) features ``[T, 5]`` of a line: ``dx, dy, pen_up, stroke_end, y``
    at its resampled points (see the module docstring). ``height``: the unit (``fixed``);
    None with ``height: line`` measures the line."""
    if params.height == "line" or height is None:
        h = line_height(strokes) if height is None else float(height)
        y_ref = float(np.median(np.concatenate(strokes)[:, 1]))
    else:
        h, y_ref = float(height), None
    fz = StrokeFeaturizer(params, h, y_ref)
    return np.concatenate([fz.add(s) for s in strokes])


# -- data ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class HandwritingData(Splits):
    """Lines (:class:`Ink`) per split and the alphabet of the training transcripts."""

    kind = "handwriting data"

    train: list
    dev: list
    test: list
    description: str
    alphabet: str


def _fractions(lines: list[Ink], d: DataConfig, seed: int, what: str) -> HandwritingData:
    train, dev, test = d.hold_out(lines, seed)
    alphabet = d.alphabet or "".join(sorted({c for ink in train for c in ink.text}))
    return HandwritingData(train, dev, test,
                           f"{what}: {len(lines)} lines, split by line (seed {seed})", alphabet)


def read_transcripts(path: Path) -> list[Ink]:
    """The lines of ``transcripts.tsv``: ``file<TAB>text``, ink files relative to its folder."""
    return [dataclasses.replace(read_ink_file(file), text=text)
            for _, file, text in read_transcript_lines(path)]


def load_handwriting(path: str | os.PathLike, d: DataConfig, seed: int) -> HandwritingData:
    """Read a dataset, its layout detected: the IAM-OnDB folder (train / the ``dev_set``
    validation set / the other validation set as test), one npz or tsv of it (seeded
    fractions; ``--split all`` is the whole file), or a folder of InkML / IAM XML files with
    ``transcripts.tsv``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir() and (path / IAM_FILES["train"]).is_file():
        other = "val2" if d.dev_set == "val1" else "val1"
        train = read_npz(path / IAM_FILES["train"])
        dev = read_npz(path / IAM_FILES[d.dev_set]) if (path / IAM_FILES[d.dev_set]).is_file() \
            else []
        test = read_npz(path / IAM_FILES[other]) if (path / IAM_FILES[other]).is_file() else []
        alphabet = d.alphabet or "".join(sorted({c for ink in train for c in ink.text}))
        data = HandwritingData(train, dev, test, f"IAM-OnDB {path} (train; dev {d.dev_set}; "
                               f"test {other})", alphabet)
    elif path.is_file() and path.suffix == ".npz":
        data = _fractions(read_npz(path), d, seed, str(path))
    elif path.is_file() and path.suffix == ".tsv" and path.name != TRANSCRIPTS:
        data = _fractions(read_tsv(path), d, seed, str(path))
    elif path.name == TRANSCRIPTS or (path.is_dir() and (path / TRANSCRIPTS).is_file()):
        tsv = path / TRANSCRIPTS if path.is_dir() else path
        data = _fractions(read_transcripts(tsv), d, seed, str(tsv))
    else:
        raise DataError(f"{path}: unknown handwriting data layout; expected the IAM-OnDB "
                        f"folder ({IAM_FILES['train']}, ...), one of its .npz/.tsv files, or a "
                        f"folder of .inkml/.xml files with {TRANSCRIPTS} (file<TAB>text)")
    check_alphabet(data.train + data.dev + data.test, data.alphabet, data.description)
    return data


# -- preprocessor --------------------------------------------------------------------------------


class HandwritingPreprocessor:
    """Ink -> standardised features, and label ids <-> text. Fitted on the training data: the
    alphabet, per-feature mean/std and the median line height (the unit of ``fixed``)."""

    def __init__(self, params: FeatureParams, alphabet: str = "",
                 mean: np.ndarray | None = None, std: np.ndarray | None = None,
                 unit: float = 0.0) -> None:
        self.params = params
        self.alphabet = alphabet
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.std = None if std is None else np.asarray(std, np.float32)
        self.unit = float(unit)

    @property
    def is_fitted(self) -> bool:
        return bool(self.alphabet) and self.mean is not None

    def fit(self, lines: Sequence[Ink], unit: float = 0.0) -> None:
        """Statistics of the features of ``lines``; the ``fixed`` unit is ``unit`` or the
        lines' median height."""
        self.unit = float(unit) or float(np.median([line_height(ln.strokes) for ln in lines]))
        raw = np.concatenate([self.raw_features(ln.strokes) for ln in lines])
        self.mean = raw.mean(axis=0).astype(np.float32)
        self.std = np.maximum(raw.std(axis=0), 1e-3).astype(np.float32)
        self.mean[2:4] = 0.0  # the pen flags stay 0/1
        self.std[2:4] = 1.0

    def height_of(self, height: float | None) -> float | None:
        """The height unit a call uses: ``height`` given, else (``fixed``) the fitted unit."""
        if height is not None:
            if isinstance(height, bool) or not isinstance(height, (int, float)) \
                    or not np.isfinite(height) or height <= 0:
                raise DataError(f"line_height: expected a positive number of ink units, found "
                                f"{short_repr(height)}")
            return float(height)
        return self.unit if self.params.height == "fixed" else None

    def raw_features(self, strokes: Sequence[np.ndarray], height: float | None = None
                     ) -> np.ndarray:
        return ink_features(strokes, self.params, self.height_of(height))

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        return ((raw - self.mean) / self.std).astype(np.float32)

    def features(self, strokes: Sequence[np.ndarray], height: float | None = None
                 ) -> np.ndarray:
        """Standardised features ``[T, 5]`` of one line's strokes."""
        return self.normalise(self.raw_features(strokes, height))

    def encode(self, text: str) -> np.ndarray:
        return encode_labels(text, self.alphabet)

    def decode(self, ids: Sequence[int]) -> str:
        return decode_labels(ids, self.alphabet)

    def to_json(self) -> str:
        return json.dumps({"format": ASSET_FORMAT, "alphabet": self.alphabet,
                           "features": self.params._asdict(), "names": list(FEATURES),
                           "unit": self.unit,
                           "mean": None if self.mean is None else self.mean.tolist(),
                           "std": None if self.std is None else self.std.tolist()})

    @classmethod
    def from_file(cls, path: Path, error: type[Exception]) -> HandwritingPreprocessor:
        raw = read_json(path, error, "save or export the model again")
        try:
            if raw.get("format") != ASSET_FORMAT:
                raise ValueError(f"format {raw.get('format')!r}")
            params = FeatureParams(**raw["features"])
            if raw["mean"] is None and not raw["alphabet"]:
                return cls(params)  # saved before training
            mean = np.asarray(raw["mean"], np.float32)
            std = np.asarray(raw["std"], np.float32)
            if mean.shape != (N_FEATURES,) or std.shape != (N_FEATURES,) or \
                    not isinstance(raw["alphabet"], str) or not raw["alphabet"]:
                raise ValueError("statistics or alphabet of the wrong shape")
            unit = float(raw["unit"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise error(f"{path}: not a handwriting preprocessor file ({short_repr(exc, 80)}); "
                        "save or export the model again") from None
        return cls(params, raw["alphabet"], mean, std, unit)
