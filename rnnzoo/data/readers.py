"""Readers for real text-classification formats. Pure Python (no TensorFlow).

Supported layouts, detected by ``load_text_classification``:

* MR (Pang & Lee): a directory with ``rt-polarity.pos`` and ``rt-polarity.neg`` (Latin-1).
* GLUE SST-2: a directory with ``train.tsv`` and ``dev.tsv`` (header ``sentence<TAB>label``).
* Directory per class, as in aclImdb: ``train/<class>/*.txt`` (+ ``test/<class>/*.txt``), or
  ``<class>/*.txt`` directly.
* A generic CSV/TSV file with a header that has ``text`` (or GLUE's ``sentence``) and ``label``
  columns. A file with GLUE SST-2's header (``sentence``) and labels 0/1 is read as the SST-2
  folder is (classes ``negative``, ``positive``), so a held-out GLUE file scores a model
  trained on the folder.

Malformed rows raise ``DataError`` naming the file and the line. So does any file that is not
text in the expected encoding (binary, compressed, UTF-16, invalid UTF-8: with the byte offset and
an ``iconv`` command), an empty file, or a CSV field longer than ``MAX_FIELD_CHARS`` (usually an
unclosed quote that swallowed the rest of the file): one line, never a traceback.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from rnnzoo.errors import ConfigError, DataError

# The text column of a delimited file: ``text``, or ``sentence`` as in GLUE's TSV files.
TEXT_COLUMNS = ("text", "sentence")
GLUE_TEXT_COLUMN = "sentence"
# GLUE SST-2's classes: label 0 is negative, 1 positive.
SST2_LABELS = ["negative", "positive"]


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

    def split(self, name: str) -> tuple[list[str], list[int]]:
        """``(texts, labels)`` of a split; ``"all"`` is the whole file (train and dev)."""
        if name == "dev":
            return self.dev_texts, self.dev_labels
        if name == "train":
            return self.train_texts, self.train_labels
        if name == "all":
            return self.train_texts + self.dev_texts, self.train_labels + self.dev_labels
        raise ConfigError(f"split {name!r}: text-classification data has the splits dev, "
                          "train and all (the whole file)")


# A text-classification example is at most a long document; a field beyond this is a broken file
# (Python's csv default, 128 KiB, rejects some real reviews, so the limit is raised to this cap).
MAX_FIELD_CHARS = 4 * 1024 * 1024

_MAGIC = (
    (re.compile(b"\x1f\x8b"), "a gzip archive; decompress it first (gunzip)"),
    (re.compile(b"PK\x03\x04"), "a zip archive; extract it first (unzip)"),
    (re.compile(b"BZh[1-9]1AY&SY"), "a bzip2 archive; decompress it first (bunzip2)"),
    (re.compile(b"\xfd7zXZ\x00"), "an xz archive; decompress it first (unxz)"),
    (re.compile(b"\xff\xfe|\xfe\xff"),
     "UTF-16 text; convert it: iconv -f UTF-16 -t UTF-8 {path} > {fixed}"),
)


def _read_text(path: Path, encoding: str) -> str:
    """The file's text; any unreadable, binary or wrongly encoded file is a one-line
    ``DataError`` naming the file, the line and the byte offset, with a way to fix it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    fixed = f"{path.stem}.utf8{path.suffix}"
    for magic, what in _MAGIC:
        if magic.match(data):
            raise DataError(f"{path}: this is {what.format(path=path, fixed=fixed)}")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data[:nul].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: NUL byte at byte offset {nul}: this looks like a "
                        "binary file, not text")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not valid {encoding} text (byte 0x{data[exc.start]:02x} at "
            f"byte offset {exc.start}: {exc.reason}); save the file as UTF-8, e.g. "
            f"iconv -f latin1 -t utf-8 {path} > {fixed}"
        ) from None


def _read_lines(path: Path, encoding: str) -> list[str]:
    return _read_text(path, encoding).split("\n")


@contextlib.contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    """Set csv's (process-wide) field size limit for the block."""
    old = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _csv_error(path: Path, line: int, exc: csv.Error) -> DataError:
    if "field larger than field limit" in str(exc):
        return DataError(
            f"{path}, line {line}: a field is longer than {MAX_FIELD_CHARS} characters; an "
            'unclosed quote (") usually swallows the rest of the file'
        )
    return DataError(f"{path}, line {line}: {exc}")


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
    text_column: str | Sequence[str] = TEXT_COLUMNS,
    label_column: str = "label",
    allowed_labels: Sequence[str] | None = None,
) -> tuple[list[str], list[str]]:
    """A CSV (``,``) or TSV (``.tsv``: tab) file with a header naming the text and label
    columns; ``text_column`` may list several names (the first in the header is read)."""
    texts, labels, _ = _read_delimited(Path(path), text_column, label_column, allowed_labels)
    return texts, labels


def _header_error(path: Path, header: list[str], text_columns: Sequence[str],
                  label_column: str) -> DataError:
    """The columns the header must have, and the columns it has."""
    want = " or ".join(repr(c) for c in text_columns)
    found = repr(header)
    found = found if len(found) <= 200 else found[:197] + "..."
    return DataError(
        f"{path}, line 1: expected a header with columns {want} (the text) and "
        f"{label_column!r}, found the columns {found}"
    )


def _read_delimited(
    path: Path,
    text_column: str | Sequence[str],
    label_column: str,
    allowed_labels: Sequence[str] | None,
) -> tuple[list[str], list[str], str]:
    """``read_delimited``, and the name of the text column it read."""
    text_columns = [text_column] if isinstance(text_column, str) else list(text_column)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    lines = _read_lines(path, "utf-8-sig")
    if not any(line.strip() for line in lines):
        raise DataError(f"{path}: file is empty")
    # TSV files such as GLUE's are not quoted: a lone '"' is part of the sentence.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting)
    texts, labels = [], []
    with _field_limit(MAX_FIELD_CHARS):
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: file is empty") from None
        except csv.Error as exc:
            raise _csv_error(path, 1, exc) from None
        column = next((c for c in text_columns if c in header), None)
        if column is None or label_column not in header:
            raise _header_error(path, header, text_columns, label_column)
        ti, li = header.index(column), header.index(label_column)
        while True:
            lineno = reader.line_num + 1  # where the next row starts
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise _csv_error(path, lineno, exc) from None
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line (e.g. the final newline)
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {lineno}: expected {len(header)} fields "
                    f"({delimiter!r}-separated), found {len(row)}"
                )
            text = row[ti].strip()
            if not text:
                raise DataError(f"{path}, line {lineno}: empty {column!r} field")
            texts.append(text)
            labels.append(_parse_label(row[li], path, lineno, allowed_labels))
    return texts, labels, column


def read_class_dirs(directory: str | Path) -> tuple[list[str], list[str]]:
    """``<class>/*.txt``: one example per file, the folder name is the label (``unsup`` skipped)."""
    directory = Path(directory)
    texts, labels = [], []
    try:
        classes = sorted(p for p in directory.iterdir() if p.is_dir() and p.name != "unsup")
        files = [(c, sorted(p for p in c.glob("*.txt") if p.is_file())) for c in classes]
    except OSError as exc:
        raise DataError(f"{directory}: cannot list: {exc.strerror or exc}") from None
    for cls_dir, paths in files:
        for path in paths:
            lines = _read_lines(path, "utf-8")
            text = " ".join(line.strip() for line in lines).replace("<br />", " ").strip()
            if not text:
                raise DataError(f"{path}, line 1: empty file")
            texts.append(text)
            labels.append(cls_dir.name)
    if not texts:
        raise DataError(f"{directory}: no <class>/*.txt files found")
    return texts, labels


_INT_LABEL = re.compile(r"-?[0-9]+")


def _label_names(labels: Sequence[str]) -> list[str]:
    """Sorted class names; numerically when all are (ASCII) integers, so "10" follows "9"."""
    names = sorted(set(labels))
    if names and all(_INT_LABEL.fullmatch(n) for n in names):
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
        kw = {"text_column": GLUE_TEXT_COLUMN, "allowed_labels": ("0", "1")}
        tr, ytr = read_delimited(path / "train.tsv", **kw)
        if (path / "dev.tsv").exists():
            dv, ydv = read_delimited(path / "dev.tsv", **kw)
        else:
            dv, ydv = [], []
        return TextClassificationData(
            tr, [int(y) for y in ytr], dv, [int(y) for y in ydv], list(SST2_LABELS),
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
        texts, raw, column = _read_delimited(path, TEXT_COLUMNS, "label", None)
        desc = f"{path} ({dev_fraction:.0%} dev holdout)"
        if column == GLUE_TEXT_COLUMN and set(raw) <= {"0", "1"}:
            # GLUE SST-2's file format: read as the SST-2 folder is (0 negative, 1 positive).
            tr, ytr, dv, ydv = _holdout(texts, [int(y) for y in raw], dev_fraction, seed)
            return TextClassificationData(
                tr, ytr, dv, ydv, list(SST2_LABELS),
                f"{path} (GLUE SST-2 format: 0 negative, 1 positive; "
                f"{dev_fraction:.0%} dev holdout)")
    else:
        raise DataError(
            f"{path}: unrecognised data layout; expected an MR folder (rt-polarity.pos/.neg), "
            "a GLUE folder (train.tsv, dev.tsv), class folders (train/<class>/*.txt), "
            "or a .csv/.tsv file with 'text' (or 'sentence') and 'label' columns"
        )
    names = _label_names(raw)
    index = {n: i for i, n in enumerate(names)}
    tr, ytr, dv, ydv = _holdout(texts, [index[y] for y in raw], dev_fraction, seed)
    return TextClassificationData(tr, ytr, dv, ydv, names, desc)
