"""The tagger's user calls (``tag``, ``tag_tokens``, ``evaluate``), written once over both
backends, the numpy CRF decoder, and the onnxruntime class (``RUNTIME_CLASS``). TF-free."""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from rnnzoo.apps.token_classification.data import TaggerPreprocessor, read_tags, tokenize
from rnnzoo.data.batching import length_sorted_batches
from rnnzoo.data.conll import convert, spans
from rnnzoo.data.tokenizer import WordTokenizer
from rnnzoo.errors import DataError, short_repr
from rnnzoo.export.bundle import BundleError, BundleRuntime, check_count
from rnnzoo.io.inputs import check_batch_size, check_texts
from rnnzoo.metrics import tagging_report
from rnnzoo.progress import Progress, model_label, reporting


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

    def tag_tokens(self, sentences: Sequence[Sequence[str]], batch_size: int = 64,
                   progress: bool | Progress = False) -> list[list[str]]:
        """Tags of pre-tokenised sentences (each at least one token); batches are grouped by
        length, as the text classifier's are. ``progress=True``: a progress line on stderr."""
        batch_size = check_count("batch_size", batch_size)
        batch_size = check_batch_size(batch_size)
        for i, s in enumerate(sentences):
            if not len(s):
                raise DataError(f"sentence {i} is empty: pass at least one token")
        check_texts(sentences, "tag")
        crf = self.crf_parameters
        names = self.tag_names
        pre = self.preprocessor
        out: list[list[str]] = [[] for _ in sentences]
        ids = [pre.word_ids(s) for s in sentences]
        with reporting(progress, model_label(self, "tag"), len(sentences), "sentences") as bar:
            for idx, words in length_sorted_batches(ids, batch_size, progress=bar):
                batch = [sentences[i] for i in idx]
                scores = np.asarray(self._emissions_of(words, pre.char_ids(batch, words.shape)),
                                    np.float32)
                lengths = [len(s) for s in batch]
                if crf is None:
                    paths = [row[:n].argmax(axis=-1).tolist()
                             for row, n in zip(scores, lengths)]
                else:
                    paths = viterbi(scores, lengths, *crf)
                for i, path in zip(idx, paths):
                    out[i] = [names[k] for k in path]
        return out

    def tag(self, sentences: Any, batch_size: int = 64, progress: bool = False) -> list[Tagged]:
        """Tags and entities of each sentence (a string, split as CoNLL text is, or a list of
        tokens). Entities of a string carry character offsets; an empty string gives an
        empty result. ``progress=True``: a progress line on stderr."""
        items = _as_sentences(sentences)
        check_texts(items, "tag")
        split: list[list[tuple[str, int | None, int | None]]] = []
        for s in items:
            split.append(tokenize(s) if isinstance(s, str) else [(t, None, None) for t in s])
        nonempty = [i for i, toks in enumerate(split) if toks]
        tags = self.tag_tokens([[t for t, _, _ in split[i]] for i in nonempty], batch_size,
                               progress) if nonempty else []
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
                 batch_size: int = 64, progress: bool = False) -> dict:
        """Entity P/R/F1 (chunk tags) and token accuracy against gold tags (chunk tags in any
        scheme: they are converted to the model's). ``progress=True``: a progress line on
        stderr."""
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
        if scheme is not None:  # entity types by name: one the model never predicts is refused
            types = {tag.split("-", 1)[1] for tag in self.tag_names if "-" in tag}
            for i, seq in enumerate(gold):
                unknown = sorted({t.split("-", 1)[1] for t in seq if "-" in t} - types)
                if unknown:
                    raise DataError(f"evaluate: sentence {i} has entity type(s) {unknown} that "
                                    f"the model does not know ({', '.join(sorted(types))}); "
                                    "tags are matched by name: relabel the data, or fine-tune "
                                    "the model on its tags")
        with reporting(progress, model_label(self, "evaluate"), len(sentences),
                       "sentences") as bar:
            pred = self.tag_tokens(sentences, batch_size, bar)
        return tagging_report(gold, pred, scheme)


class TaggerRuntime(_Tagger, BundleRuntime):
    """``tag(sentences)`` for a token-classification bundle, with onnxruntime and numpy
    only; CRF bundles decode with the stored transitions."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        hint = "re-export the bundle"
        tags, scheme = read_tags(self.asset("tags.json"), BundleError, hint)
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


RUNTIME_CLASS = TaggerRuntime
