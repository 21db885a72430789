"""Ink readers and writers: one text line as a list of strokes (pen-down traces), each an
``[n, 2]`` array of ``(x, y)`` screen coordinates (y grows downward, as on a whiteboard or a
canvas) or ``[n, 3]`` with a time column (ignored). Every reader gives :class:`Ink`; malformed
input a ``DataError`` naming the file and what is wrong:

* the IAM-OnDB npz/tsv form (``iamondb_{train,val1,val2}.npz`` and their ``.tsv`` labels;
  ``../shared/data/handwriting_ctc/SOURCE.md``): :func:`read_npz`, :func:`read_tsv`;
* IAM-OnDB's own line XML (``<StrokeSet><Stroke><Point x= y= time=/>``): :func:`read_iam_xml`;
* W3C InkML (``<ink><trace>x y, x y, ...</trace>``, with ``traceFormat`` channels and the
  ``!``/``'``/``"`` explicit/difference qualifiers; the transcript from an
  ``<annotation type="truth">``): :func:`read_inkml`, written by :func:`write_inkml`.
"""
from __future__ import annotations

import dataclasses
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo import limits
from rnnzoo.errors import DataError, short_repr

INK_SUFFIXES = (".inkml", ".xml")
INKML_NS = "http://www.w3.org/2003/InkML"

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


