"""Handwriting recognition data: ink readers, Graves-style point features, the dataset layouts,
the preprocessor.

Ink is one text line as a list of strokes (pen-down traces), each an ``[n, 2]`` array of
``(x, y)`` screen coordinates (y grows downward, as on a whiteboard or a canvas) or ``[n, 3]``
with a time column (ignored). Readers (all give :class:`Ink`, malformed input a ``DataError``
naming the file and what is wrong):

* the IAM-OnDB npz/tsv form (``iamondb_{train,val1,val2}.npz`` and their ``.tsv`` labels;
  ``rnnzoo/../shared/data/handwriting_ctc/SOURCE.md``): :func:`read_npz`, :func:`read_tsv`;
* IAM-OnDB's own line XML (``<StrokeSet><Stroke><Point x= y= time=/>``): :func:`read_iam_xml`;
* W3C InkML (``<ink><trace>x y, x y, ...</trace>``, with ``traceFormat`` channels and the
  ``!``/``'``/``"`` explicit/difference qualifiers; the transcript from an
  ``<annotation type="truth">``): :func:`read_inkml`, written by :func:`write_inkml`.

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
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from rnnzoo import limits
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
INK_SUFFIXES = (".inkml", ".xml")
INKML_NS = "http://www.w3.org/2003/InkML"


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


# -- ink -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ink:
    """One text line of online handwriting: its strokes (``[n, 2]`` float64 ``x, y`` each, y
    down), its transcript (``""`` when unknown) and where it came from."""

    strokes: tuple
    text: str = ""
    source: str = "<strokes>"

    @property
    def num_points(self) -> int:
        return sum(len(s) for s in self.strokes)


def as_strokes(strokes: Any, where: str = "strokes") -> tuple:
    """A user's strokes as a tuple of float64 ``[n, 2]`` arrays: a list of ``[n, 2]`` or
    ``[n, 3]`` arrays (``x, y[, t]``; y grows downward). One ``[n, 2]`` array alone is one
    stroke. Anything else is a DataError saying what was expected."""
    expected = ("expected a list of strokes, each an [n, 2] (x, y) or [n, 3] (x, y, t) array "
                "of numbers")
    if isinstance(strokes, np.ndarray) and strokes.ndim == 2:
        strokes = [strokes]
    if not isinstance(strokes, (list, tuple)) or not strokes:
        raise DataError(f"{where}: {expected}, found {short_repr(strokes, 80)}")
    out, total = [], 0
    for k, s in enumerate(strokes):
        try:
            a = np.asarray(s, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{where}[{k}]: {expected}, found {short_repr(s, 60)}") from None
        if a.ndim != 2 or a.shape[1] not in (2, 3) or not len(a):
            raise DataError(f"{where}[{k}]: {expected}, found shape {a.shape}")
        if not np.isfinite(a[:, :2]).all():
            raise DataError(f"{where}[{k}]: coordinates must be finite numbers (found NaN or "
                            "infinity)")
        total += len(a)
        out.append(np.ascontiguousarray(a[:, :2]))
    limits.check("max_ink_points", total, f"{where}: points of ink")
    return tuple(out)


def _xml_root(path: Path) -> ET.Element:
    if not path.is_file():
        raise DataError(f"{path}: no such ink file")
    size = path.stat().st_size
    # A point takes more than 8 bytes in any XML form: refuse before parsing a huge file.
    limits.check("max_ink_points", size // 8, f"{path}: points of ink (upper bound by size)")
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(f"{path}: not well-formed XML ({exc}); expected an InkML or IAM-OnDB "
                        "line XML file") from None


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def read_iam_xml(path: str | os.PathLike) -> Ink:
    """One line of IAM-OnDB's XML (``lineStrokes``): every ``<Stroke>``'s ``<Point x= y=>`` in
    file order; the transcript from a ``<TextLine text=...>`` or ``<Text>`` when present."""
    path = Path(path)
    root = _xml_root(path)
    strokes = []
    for k, stroke in enumerate(e for e in root.iter() if _local(e.tag) == "Stroke"):
        pts = []
        for p in stroke:
            if _local(p.tag) != "Point":
                continue
            try:
                pts.append((float(p.attrib["x"]), float(p.attrib["y"])))
            except (KeyError, ValueError):
                raise DataError(f"{path}: stroke {k + 1}: a <Point> needs numeric x and y "
                                f"attributes, found {short_repr(dict(p.attrib), 80)}") from None
        if pts:
            strokes.append(np.array(pts))
    if not strokes:
        raise DataError(f"{path}: no <Stroke> with <Point x= y=> elements; expected an "
                        "IAM-OnDB line XML (StrokeSet/Stroke/Point) or an InkML file")
    text = ""
    for e in root.iter():
        if _local(e.tag) == "TextLine" and e.get("text"):
            text = e.get("text", "")
            break
        if _local(e.tag) == "Text" and (e.text or "").strip():
            text = (e.text or "").strip()
            break
    return Ink(as_strokes(strokes, str(path)), text, str(path))


def _inkml_channels(root: ET.Element) -> tuple[int, int, int]:
    """``(x index, y index, channel count)`` of the document's (first) ``traceFormat``; the
    InkML default is ``X Y``."""
    for e in root.iter():
        if _local(e.tag) == "traceFormat":
            names = [c.get("name", "").upper() for c in e if _local(c.tag) == "channel"]
            if names:
                if "X" not in names or "Y" not in names:
                    raise DataError(f"traceFormat has channels {names}; InkML ink needs X "
                                    "and Y")
                return names.index("X"), names.index("Y"), len(names)
    return 0, 1, 0


# A value of a trace: a qualifier, a signed decimal (signs also separate values: "3-5"), or any
# other character (an error).
_TOKEN = re.compile(r"[!'\"]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[^\s!'\"]+")


def _parse_trace(text: str, width: int, where: str) -> np.ndarray:
    """The points of an InkML ``<trace>``: comma-separated points of space-separated values,
    each value explicit, ``!`` explicit, ``'`` a first difference or ``"`` a second difference
    (a channel keeps its last qualifier until another one; signs also separate values)."""
    rows: list[list[float]] = []
    mode: list[str] = []
    prev: list[float] = []
    vel: list[float] = []
    for n, point in enumerate(p for p in text.replace("\n", " ").split(",") if p.strip()):
        vals, qual = [], []
        pending = None
        for tok in _TOKEN.findall(point):
            if tok in ("!", "'", '"'):
                pending = tok
                continue
            try:
                vals.append(float(tok))
            except ValueError:
                raise DataError(f"{where}: point {n + 1}: {tok!r} is not a number") from None
            qual.append(pending)
            pending = None
        if not vals:
            continue
        if width and len(vals) != width:
            raise DataError(f"{where}: point {n + 1} has {len(vals)} values, the traceFormat "
                            f"has {width} channels")
        if not width and rows and len(vals) != len(rows[0]):
            raise DataError(f"{where}: point {n + 1} has {len(vals)} values, point 1 has "
                            f"{len(rows[0])}")
        if not mode:
            mode, prev, vel = ["!"] * len(vals), [0.0] * len(vals), [0.0] * len(vals)
        out = []
        for c, (v, q) in enumerate(zip(vals, qual)):
            if q is not None:
                mode[c] = q
            if mode[c] == "'" and rows:
                vel[c] = v
                v = prev[c] + v
            elif mode[c] == '"' and rows:
                vel[c] = vel[c] + v
                v = prev[c] + vel[c]
            else:
                vel[c] = v - prev[c] if rows else 0.0
            out.append(v)
        prev = out
        rows.append(out)
    return np.array(rows, dtype=np.float64)


def read_inkml(path: str | os.PathLike) -> Ink:
    """One line of W3C InkML: every ``<trace>`` in document order (``traceGroup``s included)
    as a stroke, the X and Y channels of the ``traceFormat``; the transcript from the first
    ``<annotation type="truth">`` (or ``"transcription"``) of the document."""
    path = Path(path)
    root = _xml_root(path)
    if _local(root.tag) != "ink":
        raise DataError(f"{path}: the root element is <{_local(root.tag)}>, not <ink>; expected "
                        "a W3C InkML file")
    try:
        xi, yi, width = _inkml_channels(root)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    strokes = []
    for k, trace in enumerate(e for e in root.iter() if _local(e.tag) == "trace"):
        pts = _parse_trace(trace.text or "", width, f"{path}: trace {k + 1}")
        if len(pts):
            if pts.shape[1] <= max(xi, yi):
                raise DataError(f"{path}: trace {k + 1} has {pts.shape[1]} channel(s); X and Y "
                                "are needed")
            strokes.append(pts[:, [xi, yi]])
    if not strokes:
        raise DataError(f"{path}: no <trace> with points; an InkML line needs at least one "
                        "trace of 'x y, x y, ...'")
    text = ""
    for e in root.iter():
        if _local(e.tag) == "annotation" and e.get("type") in ("truth", "transcription"):
            text = (e.text or "").strip()
            break
    return Ink(as_strokes(strokes, str(path)), text, str(path))


def write_inkml(path: str | os.PathLike, strokes: Sequence[np.ndarray], text: str = "") -> Path:
    """An InkML file of ``strokes`` (X Y channels, integers when they are), with the transcript
    as ``<annotation type="truth">`` when given."""
    path = Path(path)
    root = ET.Element("ink", xmlns=INKML_NS)
    if text:
        ET.SubElement(root, "annotation", type="truth").text = text
    fmt = ET.SubElement(root, "traceFormat")
    ET.SubElement(fmt, "channel", name="X", type="decimal")
    ET.SubElement(fmt, "channel", name="Y", type="decimal")
    for s in as_strokes(list(strokes)):
        ET.SubElement(root, "trace").text = ", ".join(f"{x:g} {y:g}" for x, y in s)
    ET.indent(root)
    path.write_text(ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")
    return path


def read_ink_file(path: str | os.PathLike) -> Ink:
    """One ink file, its format from its content: InkML (root ``<ink>``) or IAM-OnDB line XML."""
    path = Path(path)
    if path.suffix.lower() not in INK_SUFFIXES:
        raise DataError(f"{path}: unknown ink file type {path.suffix or '(no suffix)'!r}; "
                        "expected an InkML (.inkml) or IAM-OnDB line XML (.xml) file")
    root = _xml_root(path)
    return read_inkml(path) if _local(root.tag) == "ink" else read_iam_xml(path)


_NPZ_KEYS = ("ids", "texts", "offsets", "xy", "stroke_end")


def read_npz(path: str | os.PathLike) -> list[Ink]:
    """Every line of an IAM-OnDB npz (``ids``, ``texts``, ``offsets``, ``xy``, ``stroke_end``;
    SOURCE.md's format), in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _NPZ_KEYS if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)}; expected the "
                                f"IAM-OnDB npz form ({', '.join(_NPZ_KEYS)})")
            ids, texts = z["ids"], z["texts"]
            offsets, xy, ends = z["offsets"], z["xy"], z["stroke_end"]
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile, pickle refusal, corrupt arrays
        raise DataError(f"{path}: not a readable npz file ({short_repr(exc, 80)})") from None
    n = len(ids)
    if len(texts) != n or offsets.shape != (n + 1,) or xy.ndim != 2 or xy.shape[1] != 2 \
            or len(ends) != len(xy) or (n and (offsets[0] != 0 or offsets[-1] != len(xy)
                                              or (np.diff(offsets) < 1).any())):
        raise DataError(f"{path}: inconsistent arrays (ids {len(ids)}, texts {len(texts)}, "
                        f"offsets {offsets.shape}, xy {xy.shape}, stroke_end {ends.shape}); "
                        "offsets must run from 0 to len(xy), one more than the lines")
    xy = xy.astype(np.float64)
    out = []
    for i in range(n):
        a, b = int(offsets[i]), int(offsets[i + 1])
        cut = np.flatnonzero(ends[a:b]) + 1
        pieces = [s for s in np.split(xy[a:b], cut) if len(s)]
        out.append(Ink(tuple(pieces), str(texts[i]), f"{path.name}:{ids[i]}"))
    return out


def read_tsv(path: str | os.PathLike) -> list[Ink]:
    """The lines of an IAM-OnDB ``.tsv`` (``line_id form_id n_points text``, a header) with
    their ink from the ``.npz`` beside it: the tsv's text, checked line by line against the
    npz (ids and point counts)."""
    path = Path(path)
    npz = path.with_suffix(".npz")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not npz.is_file():
        raise DataError(f"{path}: the ink of these labels is read from {npz.name}, which is "
                        "not beside it")
    inks = read_npz(npz)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    rows = [ln for ln in lines[1:] if ln.strip()]
    if not lines or lines[0].split("\t")[:2] != ["line_id", "form_id"]:
        raise DataError(f"{path}, line 1: expected the header 'line_id<TAB>form_id<TAB>"
                        "n_points<TAB>text'")
    if len(rows) != len(inks):
        raise DataError(f"{path}: {len(rows)} label lines but {npz.name} has {len(inks)} lines")
    out = []
    for n, (row, ink) in enumerate(zip(rows, inks), 2):
        parts = row.split("\t")
        if len(parts) != 4 or not parts[2].isdigit():
            raise DataError(f"{path}, line {n}: expected 'line_id<TAB>form_id<TAB>n_points"
                            f"<TAB>text', found {short_repr(row, 60)}")
        if not ink.source.endswith(":" + parts[0]) or int(parts[2]) != ink.num_points:
            raise DataError(f"{path}, line {n}: line {parts[0]} ({parts[2]} points) does not "
                            f"match {npz.name}'s line {n - 1} ({ink.source}, {ink.num_points} "
                            "points); the two files must be in the same order")
        out.append(dataclasses.replace(ink, text=parts[3]))
    return out


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
