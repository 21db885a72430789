"""Parallel text for translation: Anki/Tatoeba pair files, normalisation, grouped splits.

Pure Python (no TensorFlow). ``spa.txt`` style files hold one pair per line,
``English<TAB>Spanish[<TAB>attribution]``; many sentences occur with several translations, so
the split is made over connected groups of sentences: no sentence (source or target) of the test
split appears anywhere in training.
"""

from __future__ import annotations

import dataclasses
import random
import re
import unicodedata
from pathlib import Path

from rnnzoo.data.splits import Splits
from rnnzoo.errors import DataError

_PUNCT_RE = re.compile(r"\s*([?.!,¿¡;:\"])\s*")


def normalize(text: str, lowercase: bool = True, space_punctuation: bool = True) -> str:
    """Unicode NFC, optional lower-casing, spaces around punctuation, collapsed whitespace."""
    text = unicodedata.normalize("NFC", text).strip()
    if lowercase:
        text = text.lower()
    if space_punctuation:
        text = _PUNCT_RE.sub(r" \1 ", text)
    return " ".join(text.split())


def detokenize(text: str) -> str:
    """Undo punctuation spacing for scoring and display ("where is it ?" -> "where is it?")."""
    text = re.sub(r"\s+([?.!,;:])", r"\1", text)
    text = re.sub(r"([¿¡])\s+", r"\1", text)
    text = re.sub(r"\s+(['’][a-z]+)\b", r"\1", text)
    return text.strip()


@dataclasses.dataclass
class ParallelData(Splits):
    kind = "parallel text"

    train: list[tuple[str, str]]
    dev: list[tuple[str, str]]
    test: list[tuple[str, str]]
    description: str


def read_pairs(
    path: str | Path, source_column: int, target_column: int
) -> list[tuple[str, str]]:
    """Read a tab-separated pair file; columns are 0-based (``spa.txt``: 0 English, 1 Spanish).
    An optional third attribution column is ignored."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.txt"))
        candidates = [c for c in candidates if not c.name.startswith("_")]
        if len(candidates) != 1:
            raise DataError(f"{path}: expected one pair file (e.g. spa.txt) in the folder, "
                            f"found {[c.name for c in candidates]}; pass the file itself")
        path = candidates[0]
    if not path.is_file():
        raise DataError(f"data path not found: {path}")
    pairs = []
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cols = line.rstrip("\r").split("\t")
        if len(cols) < 2 or len(cols) > 3:
            raise DataError(f"{path}, line {lineno}: expected 2 or 3 tab-separated columns "
                            f"(source, target[, attribution]), found {len(cols)}")
        src, tgt = cols[source_column].strip(), cols[target_column].strip()
        if not src or not tgt:
            raise DataError(f"{path}, line {lineno}: empty sentence")
        pairs.append((src, tgt))
    if not pairs:
        raise DataError(f"{path}: no sentence pairs found")
    return pairs


def grouped_split(
    pairs: list[tuple[str, str]], dev_fraction: float, test_fraction: float, seed: int
) -> tuple[list, list, list]:
    """Split pairs so that sentences sharing a translation stay in one split.

    Pairs are linked when they share the source or the target sentence (union-find); whole
    groups go to train, dev or test, in a seeded random order.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for src, tgt in pairs:
        a, b = find("s:" + src), find("t:" + tgt)
        if a != b:
            parent[a] = b
    groups: dict[str, list[int]] = {}
    for i, (src, _) in enumerate(pairs):
        groups.setdefault(find("s:" + src), []).append(i)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n = len(pairs)
    test, dev, train = [], [], []
    for key in keys:
        idx = groups[key]
        if len(test) < test_fraction * n:
            test.extend(idx)
        elif len(dev) < dev_fraction * n:
            dev.extend(idx)
        else:
            train.extend(idx)
    pick = [pairs[i] for i in sorted(train)], [pairs[i] for i in sorted(dev)], [
        pairs[i] for i in sorted(test)]
    return pick
