"""Column files for sequence tagging (CoNLL-2003 and ``token tag`` files) and tag schemes.

Pure Python, no TensorFlow: the runtime converts and scores tags with the same code.

Layouts read by :func:`read_columns`:

* CoNLL-2003: ``word POS chunk NER`` per line, blank lines between sentences, ``-DOCSTART-``
  lines between documents (dropped). ``tag_column`` picks ``ner``, ``pos`` or ``chunk``.
* Two columns, ``token tag``: the simple format for users' own data.

Chunk tags (NER, chunk) are read in any of IOB1, IOB2 (BIO) or BIOES and converted to the
model's scheme on read. Conversion goes through spans, with conlleval's reading of ill-formed
input (an ``I-X`` after ``O`` or after another type starts a new chunk), so a scheme round trip
keeps every entity. Malformed lines raise ``DataError`` naming the file and line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from rnnzoo.data.readers import _read_text
from rnnzoo.errors import DataError, short_repr

Scheme = Literal["iob1", "iob2", "bioes"]
SCHEMES: tuple[str, ...] = ("iob1", "iob2", "bioes")
CONLL_COLUMNS = {"pos": 1, "chunk": 2, "ner": 3}
DOCSTART = "-DOCSTART-"


class TagSchemeError(DataError):
    """A tag that its scheme cannot hold (``X-PER``, ``E-LOC`` in an IOB2 file)."""


@dataclasses.dataclass(frozen=True)
class Span:
    """One chunk: tokens ``[start, end)`` of type ``label``."""

    start: int
    end: int
    label: str


def check_scheme(scheme: str, where: str = "tag scheme") -> str:
    if scheme not in SCHEMES:
        raise DataError(f"{where}: unknown tag scheme {short_repr(scheme)}; expected one of "
                        f"{', '.join(SCHEMES)}")
    return scheme


def _split_tag(tag: str) -> tuple[str, str]:
    """``("B", "PER")`` for ``B-PER``, ``("O", "")`` for ``O``; anything else raises."""
    if tag == "O":
        return "O", ""
    prefix, dash, label = tag.partition("-")
    if not dash or prefix not in ("B", "I", "E", "S") or not label:
        raise TagSchemeError(f"tag {short_repr(tag)} is not a chunk tag (expected O or "
                             "B-/I-/E-/S- followed by a type, e.g. B-PER)")
    return prefix, label


def spans(tags: Sequence[str]) -> list[Span]:
    """The chunks of a tag sequence in any scheme, read as conlleval does: a chunk starts at
    ``B``/``S``, or at ``I``/``E`` when the previous token is ``O``, another type, or ended a
    chunk (``E``/``S``); it ends before a ``B``/``S``/``O``/other type, or after ``E``/``S``."""
    out: list[Span] = []
    start, label = -1, ""
    prev = "O"
    for i, tag in enumerate(tags):
        prefix, typ = _split_tag(tag)
        begins = prefix in ("B", "S") or (prefix in ("I", "E") and (
            start < 0 or typ != label or prev in ("E", "S")))
        if start >= 0 and (prefix == "O" or begins):
            out.append(Span(start, i, label))
            start = -1
        if prefix != "O" and begins:
            start, label = i, typ
        if start >= 0 and prefix in ("E", "S"):
            out.append(Span(start, i + 1, label))
            start = -1
        prev = prefix
    if start >= 0:
        out.append(Span(start, len(tags), label))
    return out


def render(chunks: Sequence[Span], length: int, scheme: str) -> list[str]:
    """Tags of ``length`` tokens holding ``chunks`` in ``scheme``."""
    check_scheme(scheme)
    tags = ["O"] * length
    prev_end, prev_label = -1, ""
    for span in chunks:
        n = span.end - span.start
        if scheme == "bioes":
            if n == 1:
                tags[span.start] = f"S-{span.label}"
            else:
                tags[span.start] = f"B-{span.label}"
                tags[span.start + 1: span.end - 1] = [f"I-{span.label}"] * (n - 2)
                tags[span.end - 1] = f"E-{span.label}"
        else:
            tags[span.start: span.end] = [f"I-{span.label}"] * n
            # IOB1 writes B only where a chunk directly follows one of the same type.
            if scheme == "iob2" or (prev_end == span.start and prev_label == span.label):
                tags[span.start] = f"B-{span.label}"
        prev_end, prev_label = span.end, span.label
    return tags


def convert(tags: Sequence[str], scheme: str) -> list[str]:
    """``tags`` (any scheme) rewritten in ``scheme``."""
    return render(spans(tags), len(tags), scheme)


def detect_scheme(sentences: Sequence[Sequence[str]]) -> str:
    """The scheme a file uses: ``E-``/``S-`` tags mean BIOES; an ``I-`` that opens a chunk
    (after ``O``, at a sentence start, or after another type) means IOB1; else IOB2."""
    iob1 = False
    for tags in sentences:
        prev = "O"
        for tag in tags:
            prefix, typ = _split_tag(tag)
            if prefix in ("E", "S"):
                return "bioes"
            if prefix == "I" and (prev == "O" or _split_tag(prev)[1] != typ):
                iob1 = True
            prev = tag
    return "iob1" if iob1 else "iob2"


@dataclasses.dataclass
class TaggedSentences:
    """Sentences of one file: ``tokens[i]`` and ``tags[i]`` have the same length; ``lines[i]``
    is the file line of the sentence's first token (for error messages)."""

    tokens: list[list[str]]
    tags: list[list[str]]
    lines: list[int]
    path: Path
    scheme: str | None  # the scheme the file was written in (None: plain tags such as POS)

    def __len__(self) -> int:
        return len(self.tokens)


def read_columns(path: str | Path, tag_column: str = "ner", scheme: str | None = "bioes",
                 input_scheme: str = "auto", encoding: str = "utf-8") -> TaggedSentences:
    """Read a CoNLL-2003 (4 columns) or ``token tag`` (2 columns) file.

    ``tag_column``: ``ner``, ``chunk`` or ``pos`` for 4-column files (2-column files have one
    tag column). ``scheme``: the scheme chunk tags are converted to (``None`` keeps tags as
    they are, as for POS). ``input_scheme``: the file's scheme, or ``auto`` to detect it.
    """
    path = Path(path)
    if tag_column not in CONLL_COLUMNS:
        raise DataError(f"tag_column: expected one of {', '.join(CONLL_COLUMNS)}, found "
                        f"{short_repr(tag_column)}")
    if scheme is not None:
        check_scheme(scheme, "tag_scheme")
    if input_scheme != "auto":
        check_scheme(input_scheme, "input_scheme")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = _read_text(path, encoding)
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    lines: list[int] = []
    width = 0
    current: list[tuple[str, str]] = []
    first_line = 0

    def flush() -> None:
        if current:
            sentences.append([t for t, _ in current])
            tags.append([g for _, g in current])
            lines.append(first_line)
            current.clear()

    for lineno, raw in enumerate(text.splitlines(), 1):
        fields = raw.split()
        if not fields:
            flush()
            continue
        if fields[0] == DOCSTART:
            flush()
            continue
        if not width:
            if len(fields) not in (2, 4):
                raise DataError(f"{path}:{lineno}: expected 4 columns (word POS chunk NER, as "
                                f"in CoNLL-2003) or 2 (token tag), found {len(fields)}: "
                                f"{short_repr(raw)}")
            width = len(fields)
        elif len(fields) != width:
            what = "word POS chunk NER" if width == 4 else "token tag"
            raise DataError(f"{path}:{lineno}: expected {width} columns ({what}) like the "
                            f"lines above, found {len(fields)}: {short_repr(raw)}")
        if not current:
            first_line = lineno
        column = CONLL_COLUMNS[tag_column] if width == 4 else 1
        current.append((fields[0], fields[column]))
    flush()
    if not sentences:
        raise DataError(f"{path}: no sentences found (expected lines of 'word POS chunk NER' "
                        "or 'token tag', sentences separated by blank lines)")
    chunked = scheme is not None and not (width == 4 and tag_column == "pos")
    if not chunked:
        return TaggedSentences(sentences, tags, lines, path, None)
    found = input_scheme
    try:
        if found == "auto":
            found = detect_scheme(tags)
    except TagSchemeError as exc:
        raise _locate(exc, path, tags, lines, width) from None
    converted = []
    for i, seq in enumerate(tags):
        try:
            _check_in_scheme(seq, found)
            converted.append(convert(seq, scheme))
        except TagSchemeError as exc:
            raise _locate(exc, path, [seq], [lines[i]], width) from None
    return TaggedSentences(sentences, converted, lines, path, found)


def _check_in_scheme(tags: Sequence[str], scheme: str) -> None:
    for i, tag in enumerate(tags):
        prefix, _ = _split_tag(tag)
        if scheme != "bioes" and prefix in ("E", "S"):
            raise TagSchemeError(f"tag {tag!r} does not exist in {scheme.upper()} (only O, B-, "
                                 "I-); set input_scheme: bioes, or auto", i)


def _locate(exc: TagSchemeError, path: Path, tags: Sequence[Sequence[str]], lines: Sequence[int],
            width: int) -> DataError:
    """The error with the file line of the offending tag (first bad tag of the sentences)."""
    message = exc.args[0]
    for seq, line in zip(tags, lines):
        for i, tag in enumerate(seq):
            try:
                _split_tag(tag)
            except TagSchemeError:
                return DataError(f"{path}:{line + i}: {message}")
        if len(exc.args) > 1:
            return DataError(f"{path}:{line + exc.args[1]}: {message}")
    return DataError(f"{path}: {message}")
