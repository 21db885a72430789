"""Word tokenizer with a JSON vocabulary, TF-free.

The same class runs inside training (Python, before tf.data) and inside the ONNX runtime of a
deployed app (numpy only), so a model and its bundle can never disagree on token ids.
Sequences are always **post-padded** (id 0 at the end): ONNX ``sequence_lens`` assumes the first
``len`` steps are valid, and pre-padding silently breaks fused recurrent operators.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from rnnzoo.data.batching import pad_rows
from rnnzoo.errors import DataError, short_repr
from rnnzoo.io import atomic_write_text

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
FORMAT = "rnnzoo.word_tokenizer.v1"

# Words keep inner apostrophes/hyphens ("don't", "co-writer"); a leading apostrophe clitic is its
# own token ("'s", as in the pre-tokenised SST/MR text); any other symbol is one token.
_TOKEN_RE = re.compile(r"\w+(?:['’-]\w+)*|['’]\w+|[^\w\s]", re.UNICODE)


class WordTokenizer:
    """Lower-cases (optionally), NFC-normalises and splits text into word and symbol tokens.

    Id 0 is padding, id 1 is unknown; ``<s>``/``</s>`` are reserved when ``special_bos_eos``.
    """

    def __init__(
        self,
        vocab: Sequence[str] | None = None,
        lowercase: bool = True,
        special_bos_eos: bool = False,
    ) -> None:
        self.lowercase = lowercase
        self.special_bos_eos = special_bos_eos
        self._set_vocab(list(vocab) if vocab is not None else self.specials())

    def specials(self) -> list[str]:
        return [PAD, UNK] + ([BOS, EOS] if self.special_bos_eos else [])

    def _set_vocab(self, vocab: list[str]) -> None:
        want = self.specials()
        if vocab[: len(want)] != want:
            raise DataError(f"tokenizer vocabulary must start with {want}, found "
                            f"{_short(vocab[:4])}")
        if len(set(vocab)) != len(vocab):
            dup = next(w for w, c in Counter(vocab).items() if c > 1)
            raise DataError(f"tokenizer vocabulary has duplicate token {_short(dup)}")
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def is_fitted(self) -> bool:
        return len(self.vocab) > len(self.specials())

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def split(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFC", text)
        if self.lowercase:
            text = text.lower()
        return _TOKEN_RE.findall(text)

    def fit(self, texts: Iterable[str], max_size: int, min_freq: int = 1) -> WordTokenizer:
        """Build the vocabulary from training texts: most frequent first, ties alphabetical
        (deterministic, so the same data always gives the same ids)."""
        counts = Counter()
        for text in texts:
            counts.update(self.split(text))
        specials = self.specials()
        words = [w for w, c in counts.items() if c >= min_freq and w not in specials]
        words.sort(key=lambda w: (-counts[w], w))
        self._set_vocab(specials + words[: max(0, max_size - len(specials))])
        return self

    def encode(self, text: str, add_bos_eos: bool = False) -> list[int]:
        ids = [self.index.get(w, 1) for w in self.split(text)]
        if add_bos_eos:
            if not self.special_bos_eos:
                raise DataError("this tokenizer has no <s>/</s> tokens (special_bos_eos=False)")
            ids = [self.index[BOS]] + ids + [self.index[EOS]]
        return ids

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        specials = set(range(len(self.specials()))) - {1} if skip_special else set()
        words = []
        for i in ids:
            i = int(i)
            if i == 0 and skip_special:
                break
            if i in specials:
                continue
            words.append(self.vocab[i] if 0 <= i < len(self.vocab) else UNK)
        return " ".join(words)

    def encode_batch(
        self, texts: Sequence[str], max_length: int | None = None, min_length: int = 1
    ) -> np.ndarray:
        """Encode and **post-pad** to the longest row (capped at ``max_length``), int32.

        Rows longer than ``max_length`` are truncated at the end. Empty rows are allowed.
        """
        seqs = [self.encode(t) for t in texts]
        if max_length is not None:
            seqs = [s[:max_length] for s in seqs]
        if not seqs:
            return np.zeros((0, min_length), dtype=np.int32)
        return pad_rows(seqs, min_length=min_length)

    # -- serialisation -------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "lowercase": self.lowercase,
                "special_bos_eos": self.special_bos_eos,
                "vocab": self.vocab,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str, where: str = "tokenizer JSON") -> WordTokenizer:
        """Parse ``to_json`` output; anything else (malformed JSON, wrong types, a broken
        vocabulary) is a ``DataError`` naming ``where``."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        except RecursionError:
            raise DataError(f"{where}: invalid JSON: nested too deeply") from None
        except ValueError as exc:  # e.g. an integer with more digits than Python parses
            raise DataError(f"{where}: invalid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DataError(f"{where}: expected format {FORMAT!r}, found {_short(found)}")
        vocab = data.get("vocab")
        if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab):
            raise DataError(f"{where}: 'vocab' must be a list of strings")
        flags = {}
        for key, default in (("lowercase", True), ("special_bos_eos", False)):
            value = data.get(key, default)
            if not isinstance(value, bool):
                raise DataError(f"{where}: {key!r} must be true or false, found {_short(value)}")
            flags[key] = value
        try:
            return cls(vocab, **flags)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordTokenizer:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"tokenizer file not found: {path}")
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text (byte offset {exc.start}); expected a "
                            "tokenizer JSON file written by rnnzoo") from None
        return cls.from_json(text, where=str(path))


def _short(value: object, limit: int = 60) -> str:
    return short_repr(value, limit)


def check_post_padded(tokens: np.ndarray, where: str = "tokens") -> np.ndarray:
    """Return the valid length of each row; raise if any row has a non-pad after a pad."""
    if tokens.ndim != 2:
        raise DataError(f"{where}: expected a 2-D array [batch, time], found shape {tokens.shape}")
    nonpad = tokens != 0
    lengths = nonpad.sum(axis=1)
    width = tokens.shape[1]
    expected = np.arange(width)[None, :] < lengths[:, None]
    bad = np.nonzero((nonpad != expected).any(axis=1))[0]
    if bad.size:
        raise DataError(
            f"{where}: row {int(bad[0])} is not post-padded (a non-zero token follows a 0); "
            "put padding (id 0) at the end of each row"
        )
    return lengths.astype(np.int32)
