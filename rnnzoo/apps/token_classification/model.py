"""Task type ``token-classification``: a tag per token (named entities, part of speech, chunks).

User call (Keras and runtime alike): ``tag(sentences) -> [Tagged(tokens, tags, entities)]``;
CLI verb ``rnnzoo tag``. A sentence is a string (split into tokens, entities get character
offsets) or a list of tokens. One exported graph: post-padded int32 ``words`` [batch, time] and
``chars`` [batch, time, chars] -> ``emissions`` [batch, time, tags]. A CRF model's transition
scores are stored in the bundle and decoded with :func:`viterbi` (numpy) on both sides, so
Keras and the runtime give the same tags from the same scores.

Scores: entity-level micro precision/recall/F1 with conlleval semantics (seqeval's default
mode, on IOB2 tags), per entity type, and token accuracy (the POS metric).
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import json
import os
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from rnnzoo.config import EntryConfig, rule
from rnnzoo.data.batching import pad_rows
from rnnzoo.data.conll import SCHEMES, TaggedSentences, convert, read_columns, spans
from rnnzoo.data.tokenizer import PAD, UNK, WordTokenizer
from rnnzoo.errors import ConfigError, DataError, RunDirError, short_repr
from rnnzoo.export.bundle import BundleError, BundleRuntime, check_count
from rnnzoo.export.specs import GraphSpec, InputSpec, random_tokens
from rnnzoo.io import atomic_write_text, read_json
from rnnzoo.task import Task


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
    # Held out when a dataset has a training file only; 0 trains on everything.
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)


class Entity(NamedTuple):
    text: str
    type: str
    token_start: int
    token_end: int  # exclusive
    start: int | None  # character offsets in the input string (None for token lists)
    end: int | None


class Tagged(NamedTuple):
    tokens: list[str]
    tags: list[str]
    entities: list[Entity]


# CoNLL-style tokens: abbreviations (U.S.), words with inner apostrophes or hyphens, numbers
# with separators (1,000.5), any other symbol on its own.
_TOKEN_RE = re.compile(r"(?:[^\W\d_]\.){2,}|\d+(?:[.,:/]\d+)*|\w+(?:['’-]\w+)*|[^\w\s]",
                       re.UNICODE)


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """``(token, start, end)`` of a raw string, split as the CoNLL-2003 text is."""
    return [(m.group(0), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def viterbi(emissions: np.ndarray, lengths: Sequence[int], transitions: np.ndarray,
            start: np.ndarray, end: np.ndarray) -> list[list[int]]:
    """Best tag paths of a linear-chain CRF in numpy (the runtime's decoder; the Keras ops
    version is ``rnnzoo.layers.tagging.crf_decode``). ``emissions`` [batch, time, K]."""
    out = []
    for row, n in zip(np.asarray(emissions, np.float32), lengths):
        delta = start + row[0]
        backs = []
        for t in range(1, n):
            scores = delta[:, None] + transitions
            backs.append(scores.argmax(axis=0))
            delta = scores.max(axis=0) + row[t]
        best = int((delta + end).argmax())
        path = [best]
        for back in reversed(backs):
            best = int(back[best])
            path.append(best)
        out.append(path[::-1])
    return out


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

    def batch(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Post-padded ``words`` [batch, time] and ``chars`` [batch, time, chars] (int32)."""
        words = pad_rows([self.word_ids(s) for s in sentences])
        width = max(1, min(self.max_word_chars, max(len(w) for s in sentences for w in s)))
        chars = np.zeros((*words.shape, width), np.int32)
        index = self.chars.index
        for i, sentence in enumerate(sentences):
            for j, word in enumerate(sentence):
                ids = [index.get(c, 1) for c in word[:width]]
                chars[i, j, : len(ids)] = ids
        return words, chars


def _tags_json(pre: TaggerPreprocessor) -> str:
    return json.dumps({"tags": pre.tag_names, "scheme": pre.scheme}, ensure_ascii=False)


def _read_tags(path: Path, error: type[Exception], hint: str) -> tuple[list[str], str | None]:
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


def tag_names_for(tags: Sequence[Sequence[str]], scheme: str | None) -> list[str]:
    """The model's tags: ``O`` and every prefix of every entity type seen (so a type's
    ``S-`` exists even if training has no single-token entity), else the tags seen."""
    seen = sorted({t for seq in tags for t in seq})
    if scheme is None:
        return seen
    types = sorted({s.label for seq in tags for s in spans(seq)})
    prefixes = {"bioes": "BIES", "iob2": "BI", "iob1": "BI"}[scheme]
    return ["O"] + [f"{p}-{t}" for t in types for p in prefixes]


# -- scores --------------------------------------------------------------------------------------
def tagging_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                   scheme: str | None) -> dict[str, Any]:
    """Token accuracy, and for chunk tags entity micro P/R/F1 and per type, computed by
    seqeval in its default (conlleval-compatible) mode on IOB2 renderings of both sides."""
    tokens = sum(len(s) for s in gold)
    hits = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
    report: dict[str, Any] = {"token_accuracy": hits / max(tokens, 1), "sentences": len(gold),
                              "tokens": tokens}
    if scheme is None:
        return report
    from rnnzoo.extras import require_module

    metrics = require_module("seqeval.metrics", "entity F1 (conlleval semantics)", "seqeval")
    classification_report, f1_score = metrics.classification_report, metrics.f1_score
    precision_score, recall_score = metrics.precision_score, metrics.recall_score
    g2 = [convert(s, "iob2") for s in gold]
    p2 = [convert(s, "iob2") for s in pred]
    report.update(precision=float(precision_score(g2, p2, zero_division=0)),
                  recall=float(recall_score(g2, p2, zero_division=0)),
                  f1=float(f1_score(g2, p2, zero_division=0)))
    table = classification_report(g2, p2, output_dict=True, zero_division=0)
    report["per_type"] = {
        name: {"precision": float(v["precision"]), "recall": float(v["recall"]),
               "f1": float(v["f1-score"]), "support": int(v["support"])}
        for name, v in sorted(table.items()) if not name.endswith(" avg")}
    report["entities"] = sum(v["support"] for v in report["per_type"].values())
    return report


def format_tagging_report(report: dict) -> str:
    where = f"{report.get('sentences', 0)} sentences, {report.get('tokens', 0)} tokens"
    if "f1" not in report:
        return f"token accuracy {100 * report['token_accuracy']:.2f}% ({where})"
    lines = [f"entity F1 {100 * report['f1']:.2f} (precision {100 * report['precision']:.2f}, "
             f"recall {100 * report['recall']:.2f}; {report.get('entities', 0)} entities, "
             f"{where}); token accuracy {100 * report['token_accuracy']:.2f}%",
             f"  {'type':<8} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for name, row in report.get("per_type", {}).items():
        lines.append(f"  {name:<8} {100 * row['precision']:9.2f} {100 * row['recall']:7.2f} "
                     f"{100 * row['f1']:7.2f} {row['support']:8d}")
    return "\n".join(lines)


def _as_sentences(sentences: Any, where: str = "tag") -> list[str | list[str]]:
    """A string, a list of strings, or a list of token lists."""
    if isinstance(sentences, str):
        return [sentences]
    if isinstance(sentences, (bytes, bytearray)) or not isinstance(sentences, (Sequence,
                                                                              np.ndarray)):
        raise DataError(f"{where}: expected a string, a list of strings or a list of token "
                        f"lists, found {type(sentences).__name__}")
    out = list(sentences)
    if not out:
        raise DataError(f"{where}: empty list of sentences")
    for i, s in enumerate(out):
        if isinstance(s, str):
            continue
        if isinstance(s, (list, tuple)) and all(isinstance(t, str) and t and not t.isspace()
                                                 for t in s):
            out[i] = list(s)
            continue
        raise DataError(f"{where}: sentence {i} must be a string or a list of non-empty token "
                        f"strings, found {short_repr(s)}")
    return out


class _Tagger(abc.ABC):
    """The user calls, written once over ``_emissions_of(words, chars)`` (Keras or
    onnxruntime) and ``crf_parameters`` (None for a softmax tagger)."""

    preprocessor: TaggerPreprocessor

    @abc.abstractmethod
    def _emissions_of(self, words: np.ndarray, chars: np.ndarray) -> np.ndarray:
        """Per-token tag scores [batch, time, tags] for post-padded id batches."""

    @property
    @abc.abstractmethod
    def crf_parameters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(transitions, start, end)`` float32, or None (per-token argmax)."""

    @property
    def tag_names(self) -> list[str]:
        return self.preprocessor.tag_names

    def tag_tokens(self, sentences: Sequence[Sequence[str]], batch_size: int = 64
                   ) -> list[list[str]]:
        """Tags of pre-tokenised sentences (each at least one token)."""
        batch_size = check_count("batch_size", batch_size)
        for i, s in enumerate(sentences):
            if not len(s):
                raise DataError(f"sentence {i} is empty: pass at least one token")
        crf = self.crf_parameters
        names = self.tag_names
        out: list[list[str]] = [[] for _ in sentences]
        order = np.argsort([len(s) for s in sentences], kind="stable")
        for begin in range(0, len(order), batch_size):
            idx = order[begin: begin + batch_size]
            batch = [sentences[i] for i in idx]
            words, chars = self.preprocessor.batch(batch)
            scores = np.asarray(self._emissions_of(words, chars), np.float32)
            lengths = [len(s) for s in batch]
            if crf is None:
                paths = [row[:n].argmax(axis=-1).tolist() for row, n in zip(scores, lengths)]
            else:
                paths = viterbi(scores, lengths, *crf)
            for i, path in zip(idx, paths):
                out[i] = [names[k] for k in path]
        return out

    def tag(self, sentences: Any, batch_size: int = 64) -> list[Tagged]:
        """Tags and entities of each sentence (a string, split as CoNLL text is, or a list of
        tokens). Entities of a string carry character offsets; an empty string gives an
        empty result."""
        items = _as_sentences(sentences)
        split: list[list[tuple[str, int | None, int | None]]] = []
        for s in items:
            split.append(tokenize(s) if isinstance(s, str) else [(t, None, None) for t in s])
        nonempty = [i for i, toks in enumerate(split) if toks]
        tags = self.tag_tokens([[t for t, _, _ in split[i]] for i in nonempty], batch_size) \
            if nonempty else []
        results = [Tagged([], [], []) for _ in items]
        for i, seq in zip(nonempty, tags):
            toks = split[i]
            entities = []
            if self.preprocessor.scheme is not None:
                for span in spans(seq):
                    first, last = toks[span.start], toks[span.end - 1]
                    text = (items[i][first[1]: last[2]] if first[1] is not None
                            else " ".join(t for t, _, _ in toks[span.start: span.end]))
                    entities.append(Entity(text, span.label, span.start, span.end, first[1],
                                           last[2]))
            results[i] = Tagged([t for t, _, _ in toks], seq, entities)
        return results

    def evaluate(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]],
                 batch_size: int = 64) -> dict:
        """Entity P/R/F1 (chunk tags) and token accuracy against gold tags (chunk tags in any
        scheme: they are converted to the model's)."""
        if len(sentences) != len(tags):
            raise DataError(f"evaluate: got {len(sentences)} sentences but {len(tags)} tag "
                            "sequences")
        known = set(self.tag_names)
        for i, (s, t) in enumerate(zip(sentences, tags)):
            if len(s) != len(t):
                raise DataError(f"evaluate: sentence {i} has {len(s)} tokens but {len(t)} tags")
            unknown = sorted(set(t) - known)
            if unknown and self.preprocessor.scheme is None:
                raise DataError(f"evaluate: sentence {i} has tag(s) {unknown} that the model "
                                f"does not know ({', '.join(self.tag_names)})")
        scheme = self.preprocessor.scheme
        try:  # gold chunk tags in any scheme are read as the model's
            gold = [convert(t, scheme) for t in tags] if scheme is not None else tags
        except DataError as exc:
            raise DataError(f"evaluate: {exc}") from None
        pred = self.tag_tokens(sentences, batch_size)
        return tagging_report(gold, pred, scheme)


class TokenClassificationTask(_Tagger, Task):
    """Keras side of a tagger; a family adds ``build_model`` (inputs ``words`` and ``chars``,
    output ``emissions``; a CRF model has a ``ChainCRF`` layer named ``crf``)."""

    task_type = "token-classification"
    verb = "tag"
    metric_directions = {"loss": "min", "accuracy": "max", "f1": "max",
                         "token_accuracy": "max"}
    head_layers = ("emissions", "crf")

    def new_preprocessor(self) -> TaggerPreprocessor:
        d = self.config.data
        n = self.config.model.num_tags
        return TaggerPreprocessor(WordTokenizer(lowercase=d.lowercase),
                                  WordTokenizer(lowercase=False), [str(i) for i in range(n)],
                                  None if d.tag_scheme == "none" else d.tag_scheme,
                                  d.max_word_chars, d.lowercase, d.normalize_digits)

    def save_assets(self, directory: Path) -> None:
        self.preprocessor.words.save(directory / "tokenizer.json")
        self.preprocessor.chars.save(directory / "chars.json")
        atomic_write_text(directory / "tags.json", _tags_json(self.preprocessor))

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> TaggerPreprocessor:
        hint = "the run or preset is incomplete; train or save it again"
        tags, scheme = _read_tags(directory / "tags.json", RunDirError, hint)
        if len(tags) != config.model.num_tags:
            raise RunDirError(f"{directory / 'tags.json'}: {len(tags)} tags, but the config "
                              f"says num_tags={config.model.num_tags}; {hint}")
        d = config.data
        return TaggerPreprocessor(WordTokenizer.load(directory / "tokenizer.json"),
                                  WordTokenizer.load(directory / "chars.json"), tags, scheme,
                                  d.max_word_chars, d.lowercase, d.normalize_digits)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
        m = self.config.model
        rng = np.random.default_rng(seed)
        lengths = np.full(batch_size, 9)
        lengths[1 if batch_size > 1 else 0] = 1
        words = random_tokens(rng, lengths, 9, m.vocab_size)
        chars = _random_chars(rng, words, 5, m.char_vocab_size)
        targets = rng.integers(1, m.num_tags + 1, size=words.shape).astype(np.int32)
        targets[words == 0] = 0
        return [words, chars], targets

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> TaggingData:
        return load_tagging(path, self.config.data, seed)

    def limit_data(self, data: TaggingData, limit: int, seed: int = 0) -> TaggingData:
        """At most ``limit`` sentences per split, a seeded sample kept in file order."""
        rng = np.random.default_rng(seed)
        splits = {}
        for name, part in data.splits.items():
            if len(part) <= limit:
                splits[name] = part
                continue
            keep = np.sort(rng.choice(len(part), limit, replace=False))
            splits[name] = TaggedSentences([part.tokens[i] for i in keep],
                                           [part.tags[i] for i in keep],
                                           [part.lines[i] for i in keep], part.path, part.scheme)
        return TaggingData(splits, f"{data.description} (at most {limit} sentences per split)",
                           data.input_scheme)

    def adapt(self, data: TaggingData) -> None:
        """Fit the vocabularies (unless fitted, as when fine-tuning) and set the tags."""
        pre = self.preprocessor
        m = self.config.model
        tokens, tags = data.split("train")
        names = tag_names_for(tags, pre.scheme)
        if len(names) != m.num_tags:
            raise DataError(f"{data.description}: the training tags give {len(names)} classes "
                            f"({', '.join(names[:12])}{' ...' if len(names) > 12 else ''}), "
                            f"but {self.name!r} is configured for num_tags={m.num_tags}; pass "
                            f"--set num_tags={len(names)}")
        if not pre.is_fitted:
            pre.fit(tokens, m.vocab_size, m.char_vocab_size, self.config.data.min_freq)
        pre.tag_names = names

    def _encode_split(self, data: TaggingData, split: str) -> tuple[list, list, list]:
        tokens, tags = data.split(split)
        index = {t: i for i, t in enumerate(self.tag_names)}
        cut = self.config.data.max_length
        y = []
        for i, seq in enumerate(tags):
            missing = [t for t in seq if t not in index]
            if missing:
                raise DataError(f"{data.description}: {split} sentence {i} has tag "
                                f"{missing[0]!r}, which the training split does not have "
                                f"(tags: {', '.join(self.tag_names)})")
            y.append([index[t] + 1 for t in seq[:cut]])
        return [s[:cut] for s in tokens], y, tokens

    def datasets(self, data: TaggingData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        train_tok, train_y, _ = self._encode_split(data, "train")
        dev = None
        self._dev_sentences = None
        if data.num_dev:
            dev_tok, dev_y, _ = self._encode_split(data, "dev")
            dev = self._dataset(dev_tok, dev_y, batch_size, None, bucketing)
            self._dev_sentences = data.split("dev")
        rate = self.config.data.singleton_unk
        singles = None
        if rate > 0:
            pre = self.preprocessor
            counts = Counter(i for s in train_tok for i in pre.word_ids(s))
            singles = np.zeros(pre.words.vocab_size, bool)
            singles[[i for i, c in counts.items() if c == 1 and i > 1]] = True
        train = self._dataset(train_tok, train_y, batch_size, seed, bucketing, (rate, singles))
        return train, dev, -(-len(train_tok) // batch_size)

    def _dataset(self, tokens: list, targets: list, batch_size: int, seed: int | None,
                 bucketing: bool, unk: tuple[float, Any] = (0.0, None)) -> Any:
        """Batches of ``((words, chars), targets)``; with a seed, reshuffled every epoch with
        sentences of similar length batched together (a fixed number of batches), and
        singleton words replaced by <unk> at rate ``unk[0]`` (``unk[1]``: singleton ids)."""
        import tensorflow as tf

        pre = self.preprocessor
        state = {"epoch": 0}

        def batches() -> Any:
            n = len(tokens)
            if seed is None:
                order = np.arange(n)
            else:
                rng = np.random.default_rng([seed, state["epoch"]])
                state["epoch"] += 1
                order = rng.permutation(n)
                if bucketing:  # sort chunks of 50 batches by length, then shuffle batches
                    pool = 50 * batch_size
                    order = np.concatenate([
                        sorted(order[i: i + pool], key=lambda k: len(tokens[k]))
                        for i in range(0, n, pool)]).astype(np.int64)
            groups = [order[i: i + batch_size] for i in range(0, n, batch_size)]
            if seed is not None:
                rng.shuffle(groups)
            for idx in groups:
                words, chars = pre.batch([tokens[i] for i in idx])
                if seed is not None and unk[0] > 0:
                    words[unk[1][words] & (rng.random(words.shape) < unk[0])] = 1
                yield (words, chars), pad_rows([targets[i] for i in idx])

        spec = ((tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None, None],
                                                                      tf.int32)),
                tf.TensorSpec([None, None], tf.int32))
        ds = tf.data.Dataset.from_generator(batches, output_signature=spec)
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-len(tokens) // batch_size)))
        return ds.prefetch(2)

    def loss(self) -> Any:
        from rnnzoo.layers.tagging import CRFLoss, TagCrossEntropy

        crf = self._crf_layer()
        return TagCrossEntropy() if crf is None else CRFLoss(crf)

    def metrics(self) -> list:
        from rnnzoo.layers.tagging import TagAccuracy

        return [TagAccuracy()]

    def fit(self, train: Any, dev: Any, epochs: int, callbacks: list, verbose: Any) -> Any:
        """Keras ``fit``, with the dev split decoded after every epoch: ``val_f1`` (chunk
        tags) and ``val_token_accuracy`` join the logs before checkpoints read them."""
        import keras

        task = self

        class DevScores(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                if logs is None or not task._dev_sentences:
                    return
                report = task.evaluate(*task._dev_sentences)
                logs["val_token_accuracy"] = report["token_accuracy"]
                if "f1" in report:
                    logs["val_f1"] = report["f1"]

        found = [DevScores()] if dev is not None else []
        return self.model.fit(train, validation_data=dev, epochs=epochs,
                              callbacks=found + list(callbacks), verbose=verbose, shuffle=False)

    # -- inference and evaluation ---------------------------------------------------------------
    def _crf_layer(self) -> Any:
        names = {layer.name for layer in self.model.layers}
        return self.model.get_layer("crf") if "crf" in names else None

    @property
    def crf_parameters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        crf = self._crf_layer()
        if crf is None:
            return None
        return tuple(np.asarray(w, np.float32) for w in (crf.transitions, crf.start, crf.end))

    def _emissions_of(self, words: np.ndarray, chars: np.ndarray) -> np.ndarray:
        self.require_fitted()
        return self.keras_graphs().run("model", {"words": words, "chars": chars})["emissions"]

    def head_overrides(self, data: TaggingData) -> dict[str, Any]:
        """Other tags than the model's: a fresh output layer (never a silent remap)."""
        names = tag_names_for(data.split("train")[1], self.preprocessor.scheme)
        if names == self.tag_names:
            return {}
        return {"num_tags": len(names), "reset_head": True}

    def evaluate_data(self, data: TaggingData, split: str = "dev", limit: int | None = None,
                      **options: Any) -> dict:
        tokens, tags = data.split(split)
        tokens, tags = tokens[:limit], tags[:limit]
        if not tokens:
            raise DataError(f"{data.description}: the {split} split is empty")
        report = self.evaluate(tokens, tags)
        report.update(split=split, data=data.description)
        return report

    def format_report(self, report: dict) -> str:
        return format_tagging_report(report)

    # -- export ---------------------------------------------------------------------------------
    def _inputs(self) -> list[InputSpec]:
        m = self.config.model
        return [InputSpec("words", "tokens", ("batch", "time"), "int32", m.vocab_size),
                InputSpec("chars", "tokens", ("batch", "time", "chars"), "int32",
                          m.char_vocab_size)]

    def graph_specs(self) -> list[GraphSpec]:
        return [GraphSpec("model", "model.onnx", self.model, self._inputs(), ["emissions"],
                          sequence_outputs={"emissions": "words"})]

    def export_preprocessing(self) -> dict:
        m = self.config.model
        crf = self.crf_parameters
        return {"tokenizer": "assets/tokenizer.json", "chars": "assets/chars.json",
                "tags": "assets/tags.json", "padding": "post", "pad_id": 0,
                "vocab_size": m.vocab_size, "char_vocab_size": m.char_vocab_size,
                "max_word_chars": self.config.data.max_word_chars,
                "lowercase": self.config.data.lowercase,
                "normalize_digits": self.config.data.normalize_digits,
                "crf": None if crf is None else {k: v.tolist() for k, v in
                                                 zip(("transitions", "start", "end"), crf)}}

    def compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes tags: agreement on the example sentences, and the dev
        metrics of both when ``eval_data`` is given."""
        inputs = self.example_inputs()
        a = [t.tags for t in reference.tag(inputs)]
        b = [t.tags for t in candidate.tag(inputs)]
        same = sum(x == y for sa, sb in zip(a, b) for x, y in zip(sa, sb))
        total = sum(len(s) for s in a)
        out: dict[str, Any] = {"tag_agreement": same / total}
        summary = f"tag agreement {same / total:.1%} on {total} example tokens"
        if eval_data is not None:
            data = self.load_data(eval_data, seed=self.config.training.seed)
            tokens, tags = data.split("dev" if data.num_dev else "train")
            ref, new = reference.evaluate(tokens, tags), candidate.evaluate(tokens, tags)
            key = "f1" if "f1" in ref else "token_accuracy"
            out.update({"eval_data": data.description, f"{key}_fp32": ref[key],
                        f"{key}_int8": new[key], "metric_difference": new[key] - ref[key]})
            summary += f"; {key} fp32 {ref[key]:.4f} -> int8 {new[key]:.4f}"
        out["summary"] = summary
        return out

    def int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when it loses at most half a point of entity F1 (token accuracy for
        POS) on the evaluation data; without data, when it changes no example tag."""
        if "metric_difference" in comparison:
            if comparison["metric_difference"] < -0.005:
                return "int8 loses more than 0.5 points of F1 (or token accuracy)"
            return None
        if comparison.get("tag_agreement", 0.0) < 1.0:
            return "int8 changes tags of the example sentences"
        return None

    @classmethod
    def example_inputs(cls) -> list:
        return ["John lives in New York .", "EU rejects German call to boycott British lamb .",
                "Peter Blackburn", "a", ["Jacques", "Chirac", "met", "Gerhard", "Schroeder"]]

    @classmethod
    def example_outputs(cls, model: Any, inputs: list) -> Any:
        return [{"tokens": t.tokens, "tags": t.tags,
                 "entities": [e._asdict() for e in t.entities]} for t in model.tag(inputs)]

    # -- command line ---------------------------------------------------------------------------
    @classmethod
    def add_verb_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("texts", nargs="*", help="sentences to tag")
        parser.add_argument("--file", help="a UTF-8 text file, one sentence per line")
        parser.add_argument("--tags", action="store_true",
                            help="print every token with its tag (default: the entities)")
        parser.add_argument("--json", action="store_true",
                            help="one JSON object per sentence: tokens, tags and entities "
                                 "with character offsets")

    @classmethod
    def run_verb(cls, model: Any, args: argparse.Namespace) -> int:
        from rnnzoo.tasks.text_classification import read_input_lines

        texts = list(args.texts)
        if args.file:
            texts += read_input_lines(args.file)
        if not texts:
            raise ConfigError('nothing to tag: pass sentences ("John lives in New York .") or '
                              "--file FILE")
        chunked = model.preprocessor.scheme is not None
        for text, result in zip(texts, model.tag(texts)):
            if args.json:
                print(json.dumps({"text": text, "tokens": result.tokens, "tags": result.tags,
                                  "entities": [e._asdict() for e in result.entities]},
                                 ensure_ascii=False))
            elif args.tags or not chunked:
                print(" ".join(f"{t}/{g}" for t, g in zip(result.tokens, result.tags)))
            else:
                for e in result.entities:
                    print(f"{e.text}\t{e.type}")
                if len(texts) > 1:
                    print()
        return 0


def _random_chars(rng: np.random.Generator, words: np.ndarray, width: int,
                  vocab_size: int) -> np.ndarray:
    """Character ids for a post-padded word batch: each word 1..width characters, post-padded;
    padded words have none."""
    lengths = rng.integers(1, width + 1, size=words.size)
    chars = random_tokens(rng, lengths, width, vocab_size).reshape(*words.shape, width)
    chars[words == 0] = 0
    return chars


class TaggerRuntime(_Tagger, BundleRuntime):
    """``tag(sentences)`` for a token-classification bundle, with onnxruntime and numpy
    only; CRF bundles decode with the stored transitions."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        hint = "re-export the bundle"
        tags, scheme = _read_tags(self.asset("tags.json"), BundleError, hint)
        prep = self.manifest.get("preprocessing", {})
        self.preprocessor = TaggerPreprocessor(
            WordTokenizer.load(self.asset("tokenizer.json")),
            WordTokenizer.load(self.asset("chars.json")), tags, scheme,
            self.setting("max_word_chars"), bool(prep.get("lowercase", True)),
            bool(prep.get("normalize_digits", True)))
        self.vocab_size = self.setting("vocab_size")
        self.char_vocab_size = self.setting("char_vocab_size")
        crf = prep.get("crf")
        self._crf = None
        if crf is not None:
            k = len(tags)
            try:
                params = tuple(np.asarray(crf[key], np.float32)
                               for key in ("transitions", "start", "end"))
            except (KeyError, TypeError, ValueError):
                params = None
            if params is None or params[0].shape != (k, k) or params[1].shape != (k,) \
                    or params[2].shape != (k,):
                raise BundleError(f"{self.path}: preprocessing.crf must hold transitions "
                                  f"[{k}, {k}], start [{k}] and end [{k}]; {hint}")
            self._crf = params

    @property
    def crf_parameters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        return self._crf

    def _emissions_of(self, words: np.ndarray, chars: np.ndarray) -> np.ndarray:
        return self.run("model", {"words": words, "chars": chars})["emissions"]


TASK_CLASS = TokenClassificationTask
RUNTIME_CLASS = TaggerRuntime
