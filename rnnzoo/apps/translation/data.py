"""Translation data: the entry's data options, pair files read into grouped splits, the
source/target preprocessor and the token batches training reads. TF-free."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from rnnzoo.config import rule
from rnnzoo.data.parallel import ParallelData, detokenize, grouped_split, normalize, read_pairs
from rnnzoo.data.tokenizer import EOS, WordTokenizer
from rnnzoo.errors import ConfigError

__all__ = ["DataConfig", "ParallelData", "TranslatorPreprocessor", "encode_pairs",
           "read_parallel", "split_pairs"]


@dataclasses.dataclass
class DataConfig:
    # spa.txt is "English<TAB>Spanish": Spanish -> English reads column 1, writes column 0.
    # A line has 2 or 3 tab-separated columns (the third is Tatoeba's attribution).
    source_column: int = rule(1, min=0, max=1)
    target_column: int = rule(0, min=0, max=1)
    lowercase: bool = True
    max_length: int = rule(30, min=1)  # tokens; longer training pairs are dropped (dev/test kept)
    min_freq: int = rule(1, min=1)
    dev_fraction: float = rule(0.02, min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = rule(0.03, min=0.0, max=1.0, max_exclusive=True)

    def check(self) -> list[str]:
        """Cross-field rules: two different columns, and something left to train on."""
        problems = []
        if self.source_column == self.target_column:
            problems.append(f"target_column: expected a column other than source_column "
                            f"({self.source_column}), found {self.target_column}")
        if self.dev_fraction + self.test_fraction >= 1:
            problems.append(f"test_fraction: dev_fraction + test_fraction must be < 1 (the rest "
                            f"is the training split), found {self.dev_fraction:g} + "
                            f"{self.test_fraction:g}")
        return problems


class TranslatorPreprocessor:
    """Normalises and tokenizes both sides; the target tokenizer has ``<s>``/``</s>``."""

    def __init__(self, source: WordTokenizer, target: WordTokenizer, lowercase: bool,
                 max_length: int):
        self.source = source
        self.target = target
        self.lowercase = lowercase
        self.max_length = max_length

    @property
    def is_fitted(self) -> bool:
        return self.source.is_fitted and self.target.is_fitted

    def encode_source(self, text: str) -> list[int]:
        return self.source.encode(normalize(text, self.lowercase)) or [1]

    def encode_target(self, text: str) -> list[int]:
        return self.target.encode(normalize(text, self.lowercase), add_bos_eos=True)

    def decode_target(self, ids: Sequence[int]) -> str:
        eos = self.target.index[EOS]
        out = []
        for i in ids:
            if int(i) in (eos, 0):
                break
            out.append(int(i))
        return detokenize(self.target.decode(out))


def read_parallel(path: str | os.PathLike, d: DataConfig, seed: int) -> ParallelData:
    """A pair file (or a folder holding one) split so that no test/dev sentence is in train."""
    pairs = read_pairs(path, d.source_column, d.target_column)
    train, dev, test = grouped_split(pairs, d.dev_fraction, d.test_fraction, seed)
    return ParallelData(train, dev, test, (
        f"{Path(path).name}: columns {d.source_column} -> {d.target_column}, split grouped "
        f"by sentence (no test/dev sentence in train), seed {seed}"))


def split_pairs(data: ParallelData, split: str) -> list[tuple[str, str]]:
    """The pairs of a split; ``"all"`` is the whole file."""
    splits = {"dev": data.dev, "test": data.test, "train": data.train,
              "all": data.train + data.dev + data.test}
    if split not in splits:
        raise ConfigError(f"split {split!r}: translation data has the splits "
                          f"{', '.join(splits)}")
    return splits[split]


def encode_pairs(pre: TranslatorPreprocessor, pairs: Sequence[tuple[str, str]], limit: int,
                 filter_long: bool) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of both sides (the target with ``<s>``/``</s>``). Pairs over ``limit`` tokens
    are dropped (``filter_long``: training) or cut, keeping ``</s>`` (dev: every pair scores)."""
    src, tgt = [], []
    for s, t in pairs:
        a, b = pre.encode_source(s), pre.encode_target(t)
        if len(a) > limit or len(b) > limit + 2:
            if filter_long:
                continue
            a, b = a[:limit], b[: limit + 1] + [b[-1]]
        src.append(a)
        tgt.append(b)
    return src, tgt
