"""Readers for real text-classification formats. Pure Python (no TensorFlow).

Supported layouts, detected by ``load_text_classification``:

* MR (Pang & Lee): a directory with ``rt-polarity.pos`` and ``rt-polarity.neg`` (Latin-1).
* GLUE SST-2: a directory with ``train.tsv`` and ``dev.tsv`` (header ``sentence<TAB>label``).
* Directory per class, as in aclImdb: ``train/<class>/*.txt`` (+ ``test/<class>/*.txt``), or
  ``<class>/*.txt`` directly.
* A generic CSV/TSV file with a header that has ``text`` and ``label`` columns.

Malformed rows raise ``DataError`` naming the file and the line.
"""

from __future__ import annotations

import csv
import dataclasses
import random
from collections.abc import Sequence
from pathlib import Path

from rnnzoo.errors import DataError


@dataclasses.dataclass
class TextClassificationData:
    """Texts with integer labels; ``label_names[i]`` names class ``i``."""

    train_texts: list[str]
    train_labels: list[int]
    dev_texts: list[str]
    dev_labels: list[int]
    label_names: list[str]
    description: str

    def __post_init__(self) -> None:
        if not self.train_texts:
            raise DataError(f"{self.description}: no training examples found")

    @property
    def num_train(self) -> int:
        return len(self.train_texts)

    @property
    def num_dev(self) -> int:
        return len(self.dev_texts)


def _read_lines(path: Path, encoding: str) -> list[str]:
    try:
        return path.read_text(encoding=encoding).split("\n")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not valid {encoding} text ({exc.reason}); "
            "save the file as UTF-8"
        ) from None


def read_mr(directory: str | Path) -> tuple[list[str], list[int]]:
    """MR polarity snippets: label 1 for ``rt-polarity.pos``, 0 for ``.neg``."""
    directory = Path(directory)
    texts, labels = [], []
    for label, name in ((0, "rt-polarity.neg"), (1, "rt-polarity.pos")):
        path = directory / name
        if not path.is_file():
            raise DataError(f"MR dataset: missing file {path}")
        # The original files are Latin-1/cp1252 bytes, not UTF-8.
        lines = _read_lines(path, "latin-1")
        if lines and lines[-1] == "":
            lines.pop()
        for lineno, line in enumerate(lines, start=1):
            text = line.strip()
            if not text:
                raise DataError(f"{path}, line {lineno}: empty snippet; remove the blank line")
            texts.append(text)
            labels.append(label)
    return texts, labels


def _parse_label(value: str, path: Path, lineno: int, allowed: Sequence[str] | None) -> str:
    value = value.strip()
    if not value or (allowed is not None and value not in allowed):
        want = " or ".join(repr(a) for a in allowed) if allowed else "a non-empty label"
        raise DataError(f"{path}, line {lineno}: expected label {want}, found {value!r}")
    return value


def read_delimited(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    allowed_labels: Sequence[str] | None = None,
) -> tuple[list[str], list[str]]:
    """A CSV (``,``) or TSV (``.tsv``: tab) file with a header naming the text and label columns."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    lines = _read_lines(path, "utf-8-sig")
    # TSV files such as GLUE's are not quoted: a lone '"' is part of the sentence.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{path}: file is empty") from None
    if text_column not in header or label_column not in header:
        raise DataError(
            f"{path}, line 1: expected a header with columns {text_column!r} and "
            f"{label_column!r}, found {header}"
        )
    ti, li = header.index(text_column), header.index(label_column)
    texts, labels = [], []
    try:
        for lineno, row in enumerate(reader, start=2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line (e.g. the final newline)
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {lineno}: expected {len(header)} fields "
                    f"({delimiter!r}-separated), found {len(row)}"
                )
            text = row[ti].strip()
            if not text:
                raise DataError(f"{path}, line {lineno}: empty {text_column!r} field")
            texts.append(text)
            labels.append(_parse_label(row[li], path, lineno, allowed_labels))
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: {exc}") from None
    return texts, labels


def read_class_dirs(directory: str | Path) -> tuple[list[str], list[str]]:
    """``<class>/*.txt``: one example per file, the folder name is the label (``unsup`` skipped)."""
    directory = Path(directory)
    texts, labels = [], []
    classes = sorted(p for p in directory.iterdir() if p.is_dir() and p.name != "unsup")
    for cls_dir in classes:
        for path in sorted(cls_dir.glob("*.txt")):
            lines = _read_lines(path, "utf-8")
            text = " ".join(line.strip() for line in lines).replace("<br />", " ").strip()
            if not text:
                raise DataError(f"{path}, line 1: empty file")
            texts.append(text)
            labels.append(cls_dir.name)
    if not texts:
        raise DataError(f"{directory}: no <class>/*.txt files found")
    return texts, labels


def _label_names(labels: Sequence[str]) -> list[str]:
    names = sorted(set(labels))
    if all(n.lstrip("-").isdigit() for n in names):
        names.sort(key=int)
    return names


def _holdout(
    texts: list[str], labels: list[int], fraction: float, seed: int
) -> tuple[list[str], list[int], list[str], list[int]]:
    """A deterministic, stratified dev split for datasets without one."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    dev_idx: set[int] = set()
    for idx in by_class.values():
        rng.shuffle(idx)
        dev_idx.update(idx[: max(1, round(len(idx) * fraction))] if len(idx) > 1 else [])
    tr = [i for i in range(len(texts)) if i not in dev_idx]
    dv = sorted(dev_idx)
    return (
        [texts[i] for i in tr],
        [labels[i] for i in tr],
        [texts[i] for i in dv],
        [labels[i] for i in dv],
    )


def load_text_classification(
    path: str | Path, dev_fraction: float = 0.1, seed: int = 1234
) -> TextClassificationData:
    """Detect the layout at ``path`` and return train/dev texts with integer labels."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path not found: {path}")
    if path.is_dir() and (path / "rt-polarity.pos").exists():
        texts, labels = read_mr(path)
        tr, ytr, dv, ydv = _holdout(texts, labels, dev_fraction, seed)
        return TextClassificationData(
            tr, ytr, dv, ydv, ["negative", "positive"],
            f"MR at {path} (stratified {dev_fraction:.0%} dev holdout, seed {seed})",
        )
    if path.is_dir() and (path / "train.tsv").exists():
        kw = {"text_column": "sentence", "allowed_labels": ("0", "1")}
        tr, ytr = read_delimited(path / "train.tsv", **kw)
        if (path / "dev.tsv").exists():
            dv, ydv = read_delimited(path / "dev.tsv", **kw)
        else:
            dv, ydv = [], []
        return TextClassificationData(
            tr, [int(y) for y in ytr], dv, [int(y) for y in ydv], ["negative", "positive"],
            f"GLUE SST-2 at {path} (train.tsv / dev.tsv)",
        )
    if path.is_dir() and (path / "train").is_dir():
        tr, ytr = read_class_dirs(path / "train")
        names = _label_names(ytr)
        dev_dir = path / "dev" if (path / "dev").is_dir() else path / "test"
        dv, ydv = read_class_dirs(dev_dir) if dev_dir.is_dir() else ([], [])
        unknown = sorted(set(ydv) - set(names))
        if unknown:
            raise DataError(f"{dev_dir}: classes {unknown} do not exist in {path / 'train'}")
        index = {n: i for i, n in enumerate(names)}
        return TextClassificationData(
            tr, [index[y] for y in ytr], dv, [index[y] for y in ydv], names,
            f"class folders at {path} (train/ and {dev_dir.name}/)",
        )
    if path.is_dir():
        texts, raw = read_class_dirs(path)
        desc = f"class folders at {path} ({dev_fraction:.0%} dev holdout)"
    elif path.suffix.lower() in (".csv", ".tsv"):
        texts, raw = read_delimited(path)
        desc = f"{path} ({dev_fraction:.0%} dev holdout)"
    else:
        raise DataError(
            f"{path}: unrecognised data layout; expected an MR folder (rt-polarity.pos/.neg), "
            "a GLUE folder (train.tsv, dev.tsv), class folders (train/<class>/*.txt), "
            "or a .csv/.tsv file with 'text' and 'label' columns"
        )
    names = _label_names(raw)
    index = {n: i for i, n in enumerate(names)}
    tr, ytr, dv, ydv = _holdout(texts, [index[y] for y in raw], dev_fraction, seed)
    return TextClassificationData(tr, ytr, dv, ydv, names, desc)
