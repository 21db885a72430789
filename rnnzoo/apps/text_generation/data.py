"""Text generation data: the character vocabulary, the readers and the stream layout. TF-free.

A text is one stream of characters. Data layouts (``load_chars``): any UTF-8 file or folder of
files (concatenated in path order; the last ``dev_fraction`` is the dev split, as nanoGPT splits
tiny-shakespeare 90/10), and the Penn Treebank character files (``ptb.char.{train,valid,test}.txt``:
characters separated by spaces, ``_`` between words, one end-of-line symbol per line as in the
published setup). Unknown characters map to one symbol (id 0).

Training (char-rnn) lays the training text out as ``batch_size`` parallel contiguous streams, each
cut into consecutive segments of ``bptt_length`` characters (:func:`stream_batches`); batch k holds
segment k of every stream, so a carried recurrent state continues from one batch to the next.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.config import rule
from rnnzoo.data.splits import HeldOutFractions, Splits
from rnnzoo.errors import DataError, short_repr

ASSET_FILE = "charlm.json"
UNK = "\ufffd"  # id 0: every character outside the training vocabulary
EOL = "\n"  # the end-of-line symbol (PTB: one per sentence); also the start symbol
LN2 = math.log(2.0)
PTB_FILES = {"train": "ptb.char.train.txt", "dev": "ptb.char.valid.txt",
             "test": "ptb.char.test.txt"}
SHAKESPEARE_CHARS = 1115394  # tiny-shakespeare's input.txt

# Published numbers (see ../shared/data/char_lm/SOURCE.md). PTB-char test bits per character,
# Bai, Kolter & Koltun (2018), arXiv:1803.01271, Table 1 (about 3M parameters each).
PUBLISHED = {
    "ptb": {"split": "test", "unit": "bpc", "source": "Bai, Kolter & Koltun 2018, Table 1",
            "values": {"LSTM": 1.36, "GRU": 1.37, "vanilla RNN": 1.48, "TCN": 1.31}},
    "shakespeare": {"split": "dev", "unit": "nats/char",
                    "source": "nanoGPT README (char-level Transformer, last 10% as validation)",
                    "values": {"nanoGPT Transformer": 1.4697}},
}


@dataclasses.dataclass
class DataConfig(HeldOutFractions):
    # auto: PTB-char when the path is (or holds) ptb.char.*.txt, else plain UTF-8 text.
    layout: Literal["auto", "text", "ptb"] = "auto"
    # Truncated BPTT: characters per training segment (gradients flow within a segment).
    bptt_length: int = rule(100, min=2)
    # Carry the recurrent state from one segment to the next within an epoch (reset between
    # epochs), as char-rnn; false: every segment starts from a zero state (batches shuffled).
    stateful: bool = True
    # Plain text has no standard split: the last dev_fraction (after it, test_fraction) of the
    # characters is held out; 0.1/0.0 is nanoGPT's tiny-shakespeare split.
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = rule(0.0, min=0.0, max=1.0, max_exclusive=True)


@dataclasses.dataclass
class CharData(Splits):
    """One character stream per split (PTB: its symbols, end of line as ``\\n``);
    ``benchmark`` names the published table (``"ptb"``, ``"shakespeare"``)."""

    kind = "text data"

    train: str
    dev: str
    test: str
    description: str
    benchmark: str | None = None
    layout: str = "text"


class CharVocab:
    """The character vocabulary: id 0 is the unknown symbol, then the training characters.
    ``ptb``: user text is written with spaces, the model's words are joined by ``_``."""

    def __init__(self, symbols: Sequence[str] = (), ptb: bool = False) -> None:
        self.symbols = list(symbols)
        self.ptb = bool(ptb)
        self.index = {c: i for i, c in enumerate(self.symbols)}

    @property
    def is_fitted(self) -> bool:
        return len(self.symbols) > 1

    @property
    def size(self) -> int:
        return len(self.symbols)

    @classmethod
    def fit(cls, text: str, max_size: int, ptb: bool = False) -> CharVocab:
        """The ``max_size - 1`` most frequent characters of ``text`` (ties by code point),
        sorted, after the unknown symbol."""
        counts = collections.Counter(text)
        counts.pop(UNK, None)
        kept = sorted(counts, key=lambda c: (-counts[c], c))[: max_size - 1]
        return cls([UNK, *sorted(kept)], ptb)

    def from_user(self, text: str) -> str:
        """User text in the model's alphabet (PTB: spaces become ``_``)."""
        return text.replace(" ", "_") if self.ptb else text

    def to_user(self, text: str) -> str:
        return text.replace("_", " ") if self.ptb else text

    def encode(self, text: str) -> np.ndarray:
        """int32 ids (unknown characters -> 0) of a stream in the model's alphabet."""
        get = self.index.get
        return np.fromiter((get(c, 0) for c in text), dtype=np.int32, count=len(text))

    def unknown(self, text: str) -> list[str]:
        return sorted({c for c in text if c not in self.index or c == UNK})

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.symbols[i] if 0 <= i < len(self.symbols) else UNK for i in ids)

    @property
    def start_id(self) -> int:
        return self.index.get(EOL, 0)

    def to_json(self) -> str:
        return json.dumps({"symbols": self.symbols, "ptb": self.ptb, "unk": UNK,
                           "start": EOL}, ensure_ascii=False)

    @classmethod
    def from_dict(cls, raw: Any, where: str, error: type[Exception] = DataError,
                  fitted: bool = True) -> CharVocab:
        """Read :meth:`to_json`; ``fitted=False`` also accepts the empty vocabulary of a
        model saved before training."""
        symbols = raw.get("symbols") if isinstance(raw, dict) else None
        if not fitted and symbols == []:
            return cls([], bool(raw.get("ptb", False)))
        if (not isinstance(symbols, list) or len(symbols) < 2 or symbols[0] != UNK
                or not all(isinstance(s, str) and len(s) == 1 for s in symbols)
                or len(set(symbols)) != len(symbols)):
            raise error(f"{where}: expected {{\"symbols\": [\"{UNK}\", single distinct "
                        f"characters ...]}}, found {short_repr(raw)}")
        return cls(symbols, bool(raw.get("ptb", False)))


# -- readers ------------------------------------------------------------------------------------


def read_utf8(path: str | os.PathLike) -> str:
    """A UTF-8 text file (``\\r\\n`` kept as is), or a DataError for an empty or binary file."""
    path = Path(path)
    data = path.read_bytes()
    if not data:
        raise DataError(f"{path}: empty file (no characters to model)")
    nul = data.find(b"\x00", 0, 65536)
    if nul >= 0:
        raise DataError(f"{path}: a binary file (NUL byte at offset {nul}); give UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}, line {line}); convert it, "
                        f"e.g. iconv -t utf-8 {path}") from None


def read_ptb_char(path: str | os.PathLike) -> str:
    """A PTB character file as a stream of symbols: the space-separated characters of each
    line, then one end-of-line symbol (``\\n``) per line."""
    path = Path(path)
    out = []
    lines = read_utf8(path).split("\n")
    if lines and not lines[-1].strip():
        lines = lines[:-1]
    for n, line in enumerate(lines, 1):
        tokens = line.split()
        bad = next((t for t in tokens if len(t) != 1), None)
        if bad is not None:
            raise DataError(f"{path}, line {n}: {short_repr(bad)} is not one character; a "
                            "PTB character file separates characters by spaces (use "
                            "--set layout=text for plain text)")
        out.append("".join(tokens) + EOL)
    if not out:
        raise DataError(f"{path}: no lines")
    return "".join(out)


def _text_files(path: Path) -> list[Path]:
    files = sorted(p for p in path.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise DataError(f"{path}: no files in this folder")
    return files


def _ptb_dir(path: Path, layout: str) -> Path | None:
    folder = path if path.is_dir() else path.parent
    if layout == "text":
        return None
    if (folder / PTB_FILES["train"]).is_file() and (
            path.is_dir() or path.name in PTB_FILES.values()):
        return folder
    if layout == "ptb":
        raise DataError(f"{path}: layout ptb expects the folder of {', '.join(PTB_FILES.values())}"
                        f" (missing {folder / PTB_FILES['train']})")
    return None


def load_chars(path: str | os.PathLike, d: DataConfig) -> CharData:
    """Read a dataset, its layout detected from the path (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    ptb = _ptb_dir(path, d.layout)
    if ptb is not None:
        parts = {k: read_ptb_char(ptb / f) if (ptb / f).is_file() else ""
                 for k, f in PTB_FILES.items()}
        return CharData(parts["train"], parts["dev"], parts["test"],
                        f"PTB-char ({ptb}: official train/valid/test, one end-of-line symbol "
                        "per sentence)", "ptb", "ptb")
    files = _text_files(path) if path.is_dir() else [path]
    text = "".join(read_utf8(f) for f in files)
    n = len(text)
    train_end = int(n * (1 - d.dev_fraction - d.test_fraction))
    dev_end = int(n * (1 - d.test_fraction)) if d.test_fraction else n
    benchmark = "shakespeare" if path.name == "input.txt" and n == SHAKESPEARE_CHARS else None
    what = f"{path.name}: {n} characters" + (f" in {len(files)} files" if path.is_dir() else "")
    return CharData(text[:train_end], text[train_end:dev_end], text[dev_end:],
                    f"{what}, the first {train_end} for training, then dev "
                    f"{dev_end - train_end}, test {n - dev_end}", benchmark, "text")


# -- the stream layout of training --------------------------------------------------------------


def stream_batches(ids: np.ndarray, batch_size: int, bptt_length: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` int32 ``[segments, batch_size, bptt_length]``: the stream cut into
    ``batch_size`` contiguous parts (row b is characters ``[b*n, (b+1)*n)``, as char-rnn),
    each cut into consecutive segments; ``y`` is ``x`` shifted by one character. Segment k+1
    of row b continues segment k of row b, which is what the carried state relies on. The
    remainder (shorter than one segment per row) is dropped."""
    ids = np.asarray(ids, dtype=np.int32)
    per_row = (len(ids) - 1) // batch_size
    segments = per_row // bptt_length
    if segments < 1:
        raise DataError(f"{len(ids)} characters are too few for {batch_size} streams of at "
                        f"least one {bptt_length}-character segment; lower batch_size or "
                        "bptt_length (--set)")
    used = segments * bptt_length
    x = ids[: batch_size * per_row].reshape(batch_size, per_row)[:, :used]
    y = ids[1: batch_size * per_row + 1].reshape(batch_size, per_row)[:, :used]

    def cut(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(
            a.reshape(batch_size, segments, bptt_length).transpose(1, 0, 2))

    return cut(x), cut(y)
