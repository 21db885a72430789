"""Token classification data: the config section, CoNLL folders and files read into splits,
the tag set, the CoNLL-style tokenizer and the preprocessor (word ids and per-word character
ids, post-padded). TF-free."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from rnnzoo.config import rule
from rnnzoo.data.batching import pad_rows
from rnnzoo.data.conll import SCHEMES, TaggedSentences, read_columns, spans
from rnnzoo.data.tokenizer import PAD, UNK, WordTokenizer
from rnnzoo.errors import ConfigError, DataError, short_repr
from rnnzoo.io import read_json


@dataclasses.dataclass
class DataConfig:
    # ner / chunk / pos column of CoNLL-2003 files (two-column files have one tag column).
    tag_column: Literal["ner", "chunk", "pos"] = "ner"
    # The scheme the model predicts chunk tags in ("none": tags as they are, as for POS).
    tag_scheme: Literal["bioes", "iob2", "iob1", "none"] = "bioes"
    # The files' scheme; auto detects IOB1 (CoNLL-2003 as distributed), IOB2 or BIOES.
    input_scheme: Literal["auto", "iob1", "iob2", "bioes"] = "auto"
    lowercase: bool = True  # word ids only: character features keep the case
    normalize_digits: bool = True  # 1996 and 2024 share the word id of 0000
    min_freq: int = rule(1, min=1)
    max_length: int = rule(128, min=1)  # tokens per training sentence (longer ones are cut)
    max_word_chars: int = rule(20, min=1)  # characters per word for the character features
    # Training only: a word seen once in training becomes <unk> with this probability, so the
    # <unk> embedding is trained on real contexts (Lample et al. 2016 use 0.5).
    singleton_unk: float = rule(0.0, min=0.0, max=1.0)
    # Training only: every word becomes <unk> with this probability (word dropout), so the
    # model learns to tag from context and characters, as it must for unseen words. The
    # dev split, evaluation and export never see it.
    word_dropout: float = rule(0.0, min=0.0, max=1.0, max_exclusive=True)
    # Held out when a dataset has a training file only; 0 trains on everything.
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)


# CoNLL-style tokens: abbreviations (U.S.), words with inner apostrophes or hyphens, numbers
# with separators (1,000.5), any other symbol on its own.
_TOKEN_RE = re.compile(r"(?:[^\W\d_]\.){2,}|\d+(?:[.,:/]\d+)*|\w+(?:['’-]\w+)*|[^\w\s]",
                       re.UNICODE)


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """``(token, start, end)`` of a raw string, split as the CoNLL-2003 text is."""
    return [(m.group(0), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


class TaggerPreprocessor:
    """Tokens -> word ids and per-word character ids; knows the tag names and their scheme."""

    def __init__(self, words: WordTokenizer, chars: WordTokenizer, tag_names: Sequence[str],
                 scheme: str | None, max_word_chars: int, lowercase: bool = True,
                 normalize_digits: bool = True) -> None:
        self.words = words
        self.chars = chars
        self.tag_names = list(tag_names)
        self.scheme = scheme
        self.max_word_chars = max_word_chars
        self.lowercase = lowercase
        self.normalize_digits = normalize_digits

    @property
    def is_fitted(self) -> bool:
        return self.words.is_fitted

    def normalize(self, word: str) -> str:
        if self.lowercase:
            word = word.lower()
        if self.normalize_digits:
            word = re.sub(r"\d", "0", word)
        return word

    def fit(self, sentences: Sequence[Sequence[str]], vocab_size: int, char_vocab_size: int,
            min_freq: int) -> None:
        """Vocabularies from training sentences: most frequent first, ties alphabetical."""
        words = Counter(self.normalize(w) for s in sentences for w in s)
        chars = Counter(c for s in sentences for w in s for c in w)
        kept = sorted((w for w, c in words.items() if c >= min_freq and w not in (PAD, UNK)),
                      key=lambda w: (-words[w], w))
        self.words = WordTokenizer([PAD, UNK, *kept[: max(0, vocab_size - 2)]],
                                   lowercase=self.lowercase)
        symbols = sorted((c for c in chars if c not in (PAD, UNK)),
                         key=lambda c: (-chars[c], c))
        self.chars = WordTokenizer([PAD, UNK, *symbols[: max(0, char_vocab_size - 2)]],
                                   lowercase=False)

    def word_ids(self, tokens: Sequence[str]) -> list[int]:
        return [self.words.index.get(self.normalize(w), 1) for w in tokens]

    def char_ids(self, sentences: Sequence[Sequence[str]], shape: tuple[int, ...]
                 ) -> np.ndarray:
        """Post-padded ``chars`` [batch, time, chars] (int32) for a ``words`` batch of
        ``shape`` [batch, time]."""
        width = max(1, min(self.max_word_chars, max(len(w) for s in sentences for w in s)))
        chars = np.zeros((*shape, width), np.int32)
        index = self.chars.index
        for i, sentence in enumerate(sentences):
            for j, word in enumerate(sentence):
                ids = [index.get(c, 1) for c in word[:width]]
                chars[i, j, : len(ids)] = ids
        return chars

    def batch(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Post-padded ``words`` [batch, time] and ``chars`` [batch, time, chars] (int32)."""
        words = pad_rows([self.word_ids(s) for s in sentences])
        return words, self.char_ids(sentences, words.shape)


def tags_json(pre: TaggerPreprocessor) -> str:
    """``assets/tags.json``: the tag names and their scheme."""
    return json.dumps({"tags": pre.tag_names, "scheme": pre.scheme}, ensure_ascii=False)


def read_tags(path: Path, error: type[Exception], hint: str) -> tuple[list[str], str | None]:
    """What :func:`tags_json` wrote; ``error`` (with ``hint``) when it is not that."""
    found = read_json(path, error, hint)
    tags = found.get("tags") if isinstance(found, dict) else None
    scheme = found.get("scheme") if isinstance(found, dict) else None
    if not isinstance(tags, list) or len(tags) < 2 or not all(isinstance(t, str) for t in tags) \
            or scheme not in (*SCHEMES, None):
        raise error(f"{path}: expected {{'tags': [at least 2 names], 'scheme': one of "
                    f"{', '.join(SCHEMES)} or null}}, found {short_repr(found)}; {hint}")
    return tags, scheme


# -- data ----------------------------------------------------------------------------------------
_SPLIT_FILES = {
    "train": ("eng.train", "train.txt", "train.conll", "train"),
    "dev": ("eng.testa", "dev.txt", "valid.txt", "dev.conll", "valid.conll", "dev", "testa"),
    "test": ("eng.testb", "test.txt", "test.conll", "test", "testb"),
}


@dataclasses.dataclass
class TaggingData:
    """Sentences per split (``train``, ``dev``, and ``test`` when a folder has one)."""

    splits: dict[str, TaggedSentences]
    description: str
    input_scheme: str | None

    @property
    def num_train(self) -> int:
        return len(self.splits["train"])

    @property
    def num_dev(self) -> int:
        return len(self.splits["dev"]) if "dev" in self.splits else 0

    def split(self, name: str) -> tuple[list[list[str]], list[list[str]]]:
        """``(tokens, tags)`` of a split; ``"all"`` is every split together."""
        if name == "all":
            parts = list(self.splits.values())
        elif name in self.splits:
            parts = [self.splits[name]]
        else:
            raise ConfigError(f"split {name!r}: {self.description} has the splits "
                              f"{', '.join(self.splits)} and all")
        return ([s for p in parts for s in p.tokens], [t for p in parts for t in p.tags])

    def limited(self, limit: int, seed: int = 0) -> TaggingData:
        """At most ``limit`` sentences per split, a seeded sample kept in file order."""
        rng = np.random.default_rng(seed)
        splits = {}
        for name, part in self.splits.items():
            if len(part) <= limit:
                splits[name] = part
                continue
            keep = np.sort(rng.choice(len(part), limit, replace=False))
            splits[name] = TaggedSentences([part.tokens[i] for i in keep],
                                           [part.tags[i] for i in keep],
                                           [part.lines[i] for i in keep], part.path, part.scheme)
        return TaggingData(splits, f"{self.description} (at most {limit} sentences per split)",
                           self.input_scheme)


def load_tagging(path: str | os.PathLike, config: DataConfig, seed: int) -> TaggingData:
    """A folder with ``eng.train``/``eng.testa`` (or ``train.txt``/``dev.txt``/``test.txt``),
    or one file (a seeded ``dev_fraction`` of its sentences is held out)."""
    path = Path(path)
    scheme = None if config.tag_scheme == "none" else config.tag_scheme
    kw = {"tag_column": config.tag_column, "scheme": scheme, "input_scheme": config.input_scheme}
    if not path.exists():
        raise DataError(f"data path not found: {path}")
    if path.is_dir():
        found = {}
        for split, names in _SPLIT_FILES.items():
            for name in names:
                if (path / name).is_file():
                    found[split] = read_columns(path / name, **kw)
                    break
        if "train" not in found:
            raise DataError(f"{path}: no training file (expected one of "
                            f"{', '.join(_SPLIT_FILES['train'])})")
        desc = f"{path} ({', '.join(f'{k}: {v.path.name}' for k, v in found.items())})"
        return TaggingData(found, desc, found["train"].scheme)
    whole = read_columns(path, **kw)
    order = list(range(len(whole)))
    random.Random(seed).shuffle(order)
    n_dev = round(len(order) * config.dev_fraction) if len(order) > 1 else 0
    dev_idx = set(order[:n_dev])

    def part(keep: bool) -> TaggedSentences:
        idx = [i for i in range(len(whole)) if (i in dev_idx) == keep]
        return TaggedSentences([whole.tokens[i] for i in idx], [whole.tags[i] for i in idx],
                               [whole.lines[i] for i in idx], whole.path, whole.scheme)

    splits = {"train": part(False)}
    if n_dev:
        splits["dev"] = part(True)
    desc = f"{path} ({config.dev_fraction:.0%} of sentences held out as dev, seed {seed})"
    return TaggingData(splits, desc, whole.scheme)


_PREFIXES = {"bioes": "BIES", "iob2": "BI", "iob1": "BI"}


def tag_names_for(tags: Sequence[Sequence[str]], scheme: str | None) -> list[str]:
    """The model's tags: ``O`` and every prefix of every entity type seen (so a type's
    ``S-`` exists even if training has no single-token entity), else the tags seen."""
    seen = sorted({t for seq in tags for t in seq})
    if scheme is None:
        return seen
    types = sorted({s.label for seq in tags for s in spans(seq)})
    return _scheme_tags(types, scheme)


def _scheme_tags(types: Sequence[str], scheme: str) -> list[str]:
    return ["O"] + [f"{p}-{t}" for t in types for p in _PREFIXES[scheme]]


def placeholder_tags(count: int, scheme: str | None) -> list[str]:
    """Names for a new head of ``count`` tags before training gives it the data's:
    ``tag_0``, ... without a scheme; under one, ``O`` and each prefix of ``type_0``, ... (a
    count the scheme cannot hold is a ``ConfigError`` asking for the names)."""
    if scheme is None:
        return [f"tag_{i}" for i in range(count)]
    per_type = len(_PREFIXES[scheme])
    if count < 1 + per_type or (count - 1) % per_type:
        raise ConfigError(f"num_tags={count}: a {scheme} tagger has O plus {per_type} tags per "
                          "entity type; give the tag names with labels=[...]")
    return _scheme_tags([f"type_{k}" for k in range((count - 1) // per_type)], scheme)
