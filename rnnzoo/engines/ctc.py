"""CTC decoding: per-frame log-probabilities -> label sequences, and what every CTC application
(speech recognition; handwriting next) shares around it.

Numpy only, so the Keras task and the onnxruntime runtime decode with the same code:

* ``ctc_greedy_decode`` and ``ctc_prefix_beam_search``: the decoders; ``ctc_greedy_continue``
  the best path one piece of frames at a time (streaming), carrying the last frame's label;
  :class:`CharNgramLM`, a character n-gram language model the beam search can add
  (shallow fusion);
* ``encode_labels``/``decode_labels`` (text <-> ids, 0 the blank), ``check_alphabet``,
  ``score_transcripts`` (label/character error rate and string accuracy of transcripts);
* ``ctc_training_batches``: length-grouped padded batches of ``(features, mask)`` and labels
  (the Keras side wraps them in ``tf.data``: ``rnnzoo.layers.ctc.ctc_dataset``);
* :class:`CTCRecognizer`: the user calls written once over the emissions of a backend
  (``_log_probs_of(features, mask)`` of Keras graphs or an onnxruntime bundle): batching by
  length with a frame mask, decoding, scoring. An application adds how it reads its inputs
  (audio, images) and its verb.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo import limits
from rnnzoo.data.batching import length_sorted_batches
from rnnzoo.errors import ConfigError, DataError, RnnzooError, short_repr
from rnnzoo.export.bundle import BundleError, check_count
from rnnzoo.metrics import label_error_rate
from rnnzoo.progress import Progress

__all__ = ["CTCBundleMixin", "CTCRecognizer", "CharNgramLM", "NotStreamableError", "check_alphabet",
           "check_beam_width",
           "ctc_greedy_continue", "ctc_greedy_decode", "ctc_prefix_beam_search",
           "ctc_training_batches", "decode_labels", "encode_labels", "score_transcripts"]


class NotStreamableError(RnnzooError, TypeError):
    """``stream()`` on a model whose outputs read the whole input (a bidirectional recognizer):
    it cannot emit anything until the input has ended."""


def ctc_greedy_decode(log_probs: np.ndarray, blank: int = 0) -> list[int]:
    """Best path: the most likely label per frame, repeats merged, blanks removed (Graves et
    al. 2006). ``log_probs`` is ``[T, C]`` (only the valid frames of one utterance)."""
    lp = np.asarray(log_probs)
    if lp.ndim != 2:
        raise ValueError(f"ctc_greedy_decode: expected [frames, classes], got shape {lp.shape}")
    if not len(lp):
        return []
    best = lp.argmax(axis=-1)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(c) for c in best[keep] if c != blank]


def ctc_greedy_continue(log_probs: np.ndarray, last: int = 0, blank: int = 0
                        ) -> tuple[list[int], int]:
    """The best path over the next frames of an utterance: ``(labels they add, the last
    frame's label)``. ``last`` is the label of the frame before them (``blank`` at the start),
    so a label held across two pieces is emitted once. Over any split of the frames the labels
    concatenate to ``ctc_greedy_decode`` of all of them: the decoder state of a stream."""
    lp = np.asarray(log_probs)
    if lp.ndim != 2:
        raise ValueError(f"ctc_greedy_continue: expected [frames, classes], got shape "
                         f"{lp.shape}")
    if not len(lp):
        return [], int(last)
    best = lp.argmax(axis=-1)
    prev = np.concatenate([[last], best[:-1]])
    return [int(c) for c, p in zip(best, prev) if c != blank and c != p], int(best[-1])


def ctc_prefix_beam_search(log_probs: np.ndarray, beam_width: int = 8, blank: int = 0,
                           prune: float = -30.0, lm: CharNgramLM | None = None,
                           lm_weight: float = 0.5, lm_bonus: float = 0.0,
                           alphabet: str = "") -> list[tuple[list[int], float]]:
    """CTC prefix beam search (Hannun et al. 2014, without a language model): the
    ``beam_width`` most probable label sequences with their log-probabilities, best first.

    Unlike the best path, a prefix's score sums over every alignment that collapses to it
    (blank-ending and label-ending paths kept apart, so ``a a`` needs a blank between), so it
    returns the most probable *sequence* when the beam holds every live prefix. Labels whose
    frame log-probability is below ``prune`` are not extended (they cannot matter in float64
    next to a path of log-probability > ``prune``).

    With ``lm`` (labels ``k`` are ``alphabet[k - 1]``), prefixes are ranked by their CTC
    log-probability plus ``lm_weight`` times the language model's log-probability of their
    text plus ``lm_bonus`` per label (shallow fusion, Hannun et al. 2014); the returned
    scores are those ranking scores."""
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2:
        raise ValueError(f"ctc_prefix_beam_search: expected [frames, classes], got shape "
                         f"{lp.shape}")
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) \
            or beam_width < 1:
        raise ValueError(f"beam_width must be an integer >= 1, got {beam_width!r}")
    neg = -np.inf
    if lm is not None:
        return _lm_prefix_beam_search(lp, beam_width, blank, prune, lm, lm_weight, lm_bonus,
                                      alphabet)
    # prefix -> [log P(prefix, ending in blank), log P(prefix, ending in its last label)]
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, neg]}
    for row in lp:
        labels = [c for c in range(len(row)) if c != blank and row[c] > prune]
        nxt: dict[tuple[int, ...], list[float]] = {}
        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            here = nxt.setdefault(prefix, [neg, neg])
            here[0] = np.logaddexp(here[0], total + row[blank])
            last = prefix[-1] if prefix else None
            for c in labels:
                ext = nxt.setdefault(prefix + (c,), [neg, neg])
                if c == last:  # "aa" needs a blank between; "a a" without one stays "a"
                    ext[1] = np.logaddexp(ext[1], pb + row[c])
                    here[1] = np.logaddexp(here[1], pnb + row[c])
                else:
                    ext[1] = np.logaddexp(ext[1], total + row[c])
        ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))
        beams = dict(ranked[:beam_width])
    ranked = sorted(beams.items(), key=lambda kv: -np.logaddexp(*kv[1]))
    return [(list(p), float(np.logaddexp(*s))) for p, s in ranked]


def _lm_prefix_beam_search(lp: np.ndarray, beam_width: int, blank: int, prune: float,
                           lm: CharNgramLM, weight: float, bonus: float, alphabet: str
                           ) -> list[tuple[list[int], float]]:
    """The prefix beam search with a character language model (see
    :func:`ctc_prefix_beam_search`): each prefix carries its LM log-probability, added once
    when a label extends it."""
    if not alphabet:
        raise ValueError("ctc_prefix_beam_search: a language model needs the alphabet")
    neg = -np.inf
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, neg, 0.0]}  # pb, pnb, lm

    def score(v: list[float], n: int) -> float:
        return float(np.logaddexp(v[0], v[1]) + weight * v[2] + bonus * n)

    for row in lp:
        labels = [c for c in range(len(row)) if c != blank and row[c] > prune]
        nxt: dict[tuple[int, ...], list[float]] = {}
        for prefix, (pb, pnb, lmp) in beams.items():
            total = np.logaddexp(pb, pnb)
            here = nxt.setdefault(prefix, [neg, neg, lmp])
            here[0] = np.logaddexp(here[0], total + row[blank])
            last = prefix[-1] if prefix else None
            text = "".join(alphabet[i - 1] for i in prefix[-(lm.order - 1):]) \
                if lm.order > 1 else ""
            for c in labels:
                ext = prefix + (c,)
                if ext not in nxt:
                    nxt[ext] = [neg, neg, lmp + lm.logprob(text, alphabet[c - 1])]
                if c == last:
                    nxt[ext][1] = np.logaddexp(nxt[ext][1], pb + row[c])
                    here[1] = np.logaddexp(here[1], pnb + row[c])
                else:
                    nxt[ext][1] = np.logaddexp(nxt[ext][1], total + row[c])
        ranked = sorted(nxt.items(), key=lambda kv: -score(kv[1], len(kv[0])))
        beams = dict(ranked[:beam_width])
    ranked = sorted(beams.items(), key=lambda kv: -score(kv[1], len(kv[0])))
    return [(list(p), score(v, len(p))) for p, v in ranked]


class CharNgramLM:
    """A character n-gram language model with interpolated Witten-Bell smoothing, trained on
    text a user gives (one line per sentence; never the transcripts it is scored on):
    ``logprob(context, char)`` (natural log) for the prefix beam search. Every character of
    ``alphabet`` has a non-zero probability; a line ends with ``"\n"``. Saved as JSON."""

    FORMAT = "rnnzoo.char_ngram_lm.v1"

    def __init__(self, order: int, alphabet: str,
                 counts: dict[str, dict[str, int]] | None = None) -> None:
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ConfigError(f"order: expected an integer >= 1, found {short_repr(order)}")
        self.order = order
        self.alphabet = alphabet
        self.counts: dict[str, dict[str, int]] = counts or {}
        self._cache: dict[tuple[str, str], float] = {}

    @classmethod
    def train(cls, lines: Sequence[str], alphabet: str, order: int = 5) -> CharNgramLM:
        """Count every context of up to ``order - 1`` characters in ``lines`` (characters
        outside ``alphabet`` are dropped)."""
        lm = cls(order, alphabet)
        allowed = set(alphabet)
        for line in lines:
            text = "".join(c for c in str(line).strip() if c in allowed) + "\n"
            for i, c in enumerate(text):
                for k in range(order):
                    if k > i:
                        break
                    ctx = text[i - k:i]
                    row = lm.counts.setdefault(ctx, {})
                    row[c] = row.get(c, 0) + 1
        if not lm.counts:
            raise DataError("language model: no training text")
        return lm

    def logprob(self, context: str, char: str) -> float:
        """``log P(char | the last order - 1 characters of context)``."""
        ctx = context[len(context) - self.order + 1:] if self.order > 1 else ""
        key = (ctx, char)
        if key not in self._cache:
            p = 1.0 / (len(self.alphabet) + 1)  # uniform over the alphabet and the line end
            for k in range(0, len(ctx) + 1):
                row = self.counts.get(ctx[len(ctx) - k:]) if k else self.counts.get("")
                if not row:
                    break
                n, types = sum(row.values()), len(row)
                lam = n / (n + types)
                p = lam * row.get(char, 0) / n + (1 - lam) * p
            self._cache[key] = float(np.log(p))
        return self._cache[key]

    def perplexity(self, lines: Sequence[str]) -> float:
        """Per-character perplexity of ``lines`` (line ends included)."""
        total, n = 0.0, 0
        for line in lines:
            text = "".join(c for c in str(line).strip() if c in set(self.alphabet)) + "\n"
            for i, c in enumerate(text):
                total -= self.logprob(text[:i], c)
                n += 1
        return float(np.exp(total / max(n, 1)))

    def to_json(self) -> str:
        import json

        return json.dumps({"format": self.FORMAT, "order": self.order,
                           "alphabet": self.alphabet, "counts": self.counts})

    @classmethod
    def from_json(cls, text: str, where: str = "language model") -> CharNgramLM:
        import json

        try:
            raw = json.loads(text)
            if raw.get("format") != cls.FORMAT:
                raise ValueError(f"format {raw.get('format')!r}")
            return cls(int(raw["order"]), str(raw["alphabet"]), dict(raw["counts"]))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: not a character n-gram model file "
                            f"({short_repr(exc, 80)}); train one with CharNgramLM.train") \
                from None


# -- labels, transcripts and scores (every CTC application) -------------------------------------


def encode_labels(text: str, alphabet: str) -> np.ndarray:
    """Label ids of ``text``: ``alphabet[k]`` is id ``k + 1`` (id 0 is the CTC blank)."""
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    return np.array([index[c] for c in text], dtype=np.int32)


def decode_labels(ids: Sequence[int], alphabet: str) -> str:
    """The text of label ids 1..K (no blanks: a decoder's output)."""
    return "".join(alphabet[i - 1] for i in ids)


def check_alphabet(examples: Sequence[Any], alphabet: str, where: str) -> None:
    """Every transcript's characters (``example.text``) are in ``alphabet``, or a DataError
    naming the first example (``example.source``) that is not."""
    allowed = set(alphabet)
    for ex in examples:
        bad = sorted(set(ex.text) - allowed)
        if bad:
            raise DataError(f"{where}: {ex.source}: transcript {ex.text!r} has character(s) "
                            f"{''.join(bad)!r} outside the alphabet {alphabet!r}; fix the "
                            "transcript or set data.alphabet to include them")


def read_transcript_lines(path: Path) -> list[tuple[int, Path, str]]:
    """``(line number, file, text)`` of a ``transcripts.tsv`` (``file<TAB>text``, files relative
    to its folder, ``#`` comments): the one format both CTC applications read, checked once."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip():
            raise DataError(f"{path}, line {n}: expected 'file<TAB>text', found "
                            f"{short_repr(line, 60)}")
        file, text = parts[0].strip(), parts[1].strip()
        if not text:
            raise DataError(f"{path}, line {n}: empty transcript for {file}")
        out.append((n, path.parent / file, text))
    if not out:
        raise DataError(f"{path}: no transcripts (expected lines 'file<TAB>text')")
    return out


def configured_beam(model: Any) -> int:
    """``data.beam_width`` of the model's config: the Keras task's, or the one a bundle's
    manifest records."""
    config = getattr(model, "config", None)
    if config is not None:
        return int(config.data.beam_width)
    return int(model.manifest.get("config", {}).get("data", {}).get("beam_width", 0))


def decoding_reports(model: Any, data: Any, split: str, options: Mapping[str, Any],
                     score: Callable[[Sequence[Any], int], dict]) -> tuple[list[dict], list, int]:
    """``evaluate``'s reports of a CTC application: best path, and prefix beam search of width
    ``--beam`` (else the config's ``data.beam_width``; 0: best path only) on the first
    ``options["limit"]`` examples of ``split``, each scored by ``score(examples, width)``.
    Returns the reports, the examples and the beam width (for an application's extra report)."""
    beam = options.get("beam")
    beam = configured_beam(model) if beam is None else beam
    examples = data.split(split)[:options.get("limit")]
    if not examples:
        raise DataError(f"{data.description}: the {split} split is empty")
    check_alphabet(examples, model.alphabet, data.description)
    reports = []
    for width in ([0, beam] if beam else [0]):
        report = score(examples, width)
        report.update(split=split, data=data.description,
                      decoding=f"beam {width}" if width else "greedy")
        reports.append(report)
    return reports, examples, beam


def check_beam_width(beam_width: Any) -> int:
    """A user's ``beam_width``: 0 (best path) or a prefix beam width, else ConfigError."""
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) \
            or beam_width < 0:
        raise ConfigError(f"beam_width: expected an integer >= 0 (0: best path), found "
                          f"{short_repr(beam_width, 120)}")
    limits.check("max_beam_width", int(beam_width), "beam_width")
    return int(beam_width)


def score_transcripts(references: Sequence[str] | str, hypotheses: Sequence[str], alphabet: str,
                      inputs: str = "inputs") -> dict:
    """Label error rate (the character error rate for a character alphabet) and string
    accuracy of ``hypotheses`` against ``references`` (one per input), with the first five
    pairs. Whitespace in the references is ignored when the alphabet has none (digit strings
    typed with spaces). ``inputs`` names the inputs in the count error ("audio inputs")."""
    if isinstance(references, str):
        references = [references]
    spaced = any(c.isspace() for c in alphabet)
    refs = [str(r) if spaced else "".join(str(r).split()) for r in references]
    hyps = list(hypotheses)
    if len(refs) != len(hyps):
        raise DataError(f"evaluate: {len(hyps)} {inputs} but {len(refs)} references; "
                        "pass one reference transcript per input")
    unknown = sorted({c for r in refs for c in r} - set(alphabet))
    if unknown:
        raise DataError(f"evaluate: reference characters {''.join(unknown)!r} are not in "
                        f"this model's alphabet {alphabet!r}")
    report = label_error_rate(refs, hyps)
    if " " in alphabet:  # words: the word error rate over space-separated tokens
        words = label_error_rate([r.split() for r in refs], [h.split() for h in hyps])
        report["wer"] = words["ler"]
        report["reference_words"] = words["reference_labels"]
    report["examples"] = [{"ref": r, "hyp": h} for r, h in zip(refs[:5], hyps[:5])]
    return report


Batch = tuple[tuple[np.ndarray, np.ndarray], np.ndarray]


def ctc_training_batches(feats: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                         batch_size: int, shuffle: bool, seed: int,
                         augment: Callable[[int, np.random.Generator], np.ndarray] | None = None
                         ) -> Callable[[], Iterator[Batch]]:
    """A generator function over one epoch of ``((features [B, T, F], mask [B, T]), labels
    [B, L] padded with -1)``: inputs of similar length batched together, sorted with a fresh
    jitter and batch order every epoch (call) when ``shuffle``. ``augment(i, rng)``: the
    features of a random copy of input ``i`` (training augmentation), made batch by batch so
    the work overlaps training; ``feats``' lengths still group the batches, and the draws are
    seeded by ``seed`` and the epoch."""
    lengths = np.array([len(f) for f in feats], dtype=np.float64)
    n_features = feats[0].shape[1]
    epoch = [0]

    def batches() -> Iterator[Batch]:
        rng = np.random.default_rng(seed + epoch[0])
        draws = np.random.default_rng([abs(seed), epoch[0], 1])  # the augmentation's own
        epoch[0] += 1
        key = lengths * (rng.uniform(0.9, 1.1, len(lengths)) if shuffle else 1.0)
        order = np.argsort(key, kind="stable")
        groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        if shuffle:
            rng.shuffle(groups)
        for idx in groups:
            rows = [feats[i] if augment is None else augment(int(i), draws) for i in idx]
            width = max(len(r) for r in rows)
            x = np.zeros((len(idx), width, n_features), np.float32)
            m = np.zeros((len(idx), width), np.float32)
            y = np.full((len(idx), max(len(labels[i]) for i in idx)), -1, np.int32)
            for row, (i, f) in enumerate(zip(idx, rows)):
                x[row, : len(f)] = f
                m[row, : len(f)] = 1.0
                y[row, : len(labels[i])] = labels[i]
            yield (x, m), y

    return batches


# -- the recognizer's calls, once over the emissions of a backend -------------------------------


class CTCRecognizer(abc.ABC):
    """Decoding and scoring over ``_log_probs_of(features, mask)``: the Keras task and the
    onnxruntime runtime of a CTC application both derive from it (with their application's
    input reading), so they transcribe and score with the same code. ``preprocessor`` has
    ``alphabet`` and ``decode(ids)``; ``frame_stride`` is the model's time subsampling."""

    preprocessor: Any
    frame_stride: int
    name: str
    can_stream: bool  # whether the model has a stream graph
    #: Labels whose frame log-probability is below this are not extended by the beam search
    #: (``ctc_prefix_beam_search``'s ``prune``); an application with a large alphabet and
    #: flat frames sets a tighter one.
    beam_prune: float = -30.0

    @abc.abstractmethod
    def _log_probs_of(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``log_probs [B, ceil(T / stride), 1 + K]`` of a post-padded feature batch."""

    @property
    def alphabet(self) -> str:
        return self.preprocessor.alphabet

    def log_probs_of_features(self, feats: Sequence[np.ndarray], batch_size: int = 32,
                              progress: Progress | None = None) -> list[np.ndarray]:
        """Per feature sequence ``[T, F]``, the ``[ceil(T / stride), 1 + K]`` log-probabilities
        of its valid frames (column 0 is the blank); batched by length with a frame mask.
        ``progress`` counts the sequences of each batch run."""
        batch_size = check_count("batch_size", batch_size)
        batch_size = min(batch_size, limits.current().max_batch_size)  # chunking only
        s = self.frame_stride
        out: list[Any] = [None] * len(feats)
        # A signal shorter than one hop has no causal frame: nothing to read, no label.
        full = [i for i, f in enumerate(feats) if len(f)]
        for i in set(range(len(feats))) - set(full):
            out[i] = np.zeros((0, len(self.alphabet) + 1), np.float32)
        if len(full) < len(feats) and progress is not None:
            progress.update(len(feats) - len(full))
        for idx, batch in length_sorted_batches([feats[i] for i in full], batch_size,
                                                dtype=np.float32, progress=progress):
            lengths = np.array([len(feats[full[i]]) for i in idx])
            mask = (np.arange(batch.shape[1])[None, :] < lengths[:, None]).astype(np.float32)
            lp = np.asarray(self._log_probs_of(batch, mask))
            for row, i in enumerate(idx):
                out[full[i]] = lp[row, : -(-int(lengths[row]) // s)]
        return out

    def decode(self, log_probs: np.ndarray, beam_width: int = 0,
               lm: CharNgramLM | None = None, lm_weight: float = 0.5,
               lm_bonus: float = 0.0) -> str:
        """A transcript from ``[frames, 1 + K]`` log-probabilities: best path, or prefix beam
        search with ``beam_width`` >= 1 (with ``lm``: shallow fusion of a character n-gram
        model, ``lm_weight`` times its log-probability plus ``lm_bonus`` per character)."""
        if lm is not None and not beam_width:
            raise ConfigError("a language model needs beam search: pass beam_width >= 1")
        if beam_width:
            ids = ctc_prefix_beam_search(log_probs, beam_width, prune=self.beam_prune, lm=lm,
                                         lm_weight=lm_weight, lm_bonus=lm_bonus,
                                         alphabet=self.alphabet)[0][0]
        else:
            ids = ctc_greedy_decode(log_probs)
        return self.preprocessor.decode(ids)

    # -- streaming (a ``streaming: true`` model; the application writes ``step``) ---------------
    #: Why a bidirectional recognizer cannot stream and what to use instead (the error's tail).
    stream_hint: str = "use a streaming entry"

    def _require_stream(self) -> None:
        if not self.can_stream:
            raise NotStreamableError(
                f"{self.name}: this recognizer cannot stream: {self.stream_hint}")

    def _stream_zero_state(self, batch: int) -> dict[str, np.ndarray]:
        """The stream graph's ``state_<i>`` at zero, then the best-path decoder's
        ``last_label`` and ``text`` (the transcript so far)."""
        state = {name: np.zeros((batch, *shape), np.float32)
                 for name, shape in self._stream_state_shapes().items()}
        state["last_label"] = np.zeros((batch,), np.int32)
        state["text"] = np.array([""] * batch, dtype=object)
        return state


class CTCBundleMixin:
    """The onnxruntime side of a CTC recognizer bundle (put before the application's recognizer
    in the bases): ``model`` and the optional ``stream`` graph of a
    :class:`rnnzoo.export.bundle.BundleRuntime`."""

    sessions: Mapping[str, Any]
    path: Any
    asset: Callable[[str], Any]
    setting: Callable[..., Any]
    run: Callable[..., dict]
    run_unchecked: Callable[..., dict]
    entry: str

    def _init_ctc(self, preprocessor_class: Any, asset: str) -> None:
        self.preprocessor = preprocessor_class.from_file(self.asset(asset), BundleError)
        self.frame_stride = self.setting("frame_stride", 1)
        self.name = self.entry

    def _log_probs_of(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.run("model", {"features": features, "mask": mask})["log_probs"]

    @property
    def can_stream(self) -> bool:
        return "stream" in self.sessions

    def _stream_state_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = self.__dict__.get("_stream_shapes")
        if shapes is None:
            shapes = {}
            for i in self.sessions["stream"].get_inputs():
                if i.name == "features":
                    continue
                if not all(isinstance(d, int) for d in i.shape[1:]):
                    raise BundleError(f"{self.path}: stream input {i.name} has shape "
                                      f"{i.shape}; re-export the bundle")
                shapes[i.name] = tuple(i.shape[1:])
            self._stream_shapes = shapes
        return shapes

    def _stream_run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # The feeds are the arrays step built (float32, the graph's shapes): no per-call check.
        return self.run_unchecked("stream", feeds)
