"""Task type ``text-generation``: character-level language models trained by truncated BPTT.

A text is one stream of characters. The model predicts character t+1 from characters <= t
(softmax over the character vocabulary), so it both scores text (bits per character, the
published metric) and writes it (sampled character by character from a prompt).

Training (char-rnn): the training text is laid out as ``batch_size`` parallel contiguous
streams, each cut into consecutive segments of ``bptt_length`` characters; batch k holds segment
k of every stream. With ``stateful: true`` the recurrent state at the end of batch k is the
initial state of batch k+1 (gradients stop at the boundary), reset to zero at the start of each
epoch and of each validation pass (:meth:`TextGenerationTask.fit`, through
``rnnzoo.layers.stream.CarriedRecurrentStack``; the shared training loop is unchanged).

Evaluation scores every character of a split as one stream with the state carried across it
(chunks of ``SCORE_CHUNK`` characters through the ``model`` graph), the first character
predicted from the start symbol (the end-of-line symbol): bits per character and nats per
character. Unknown characters map to one symbol (id 0) and are counted.

User call (Keras and runtime alike): ``generate(prompt, steps, temperature=, top_k=, top_p=,
seed=)`` -> str, through the shared samplers of ``rnnzoo.generation``; ``evaluate(texts)``;
CLI verb ``rnnzoo generate`` (shared with music-generation: one verb, the options of both).
Two graphs: ``model`` (``chars [B, T]`` and the states -> ``logits [B, T, V]``, ``new_<state>``)
for scoring and priming, and ``decoder`` (one step: ``char [B]`` and the states -> ``logits``,
``new_<state>``) for sampling. A family implements ``build_model``, ``score_graph`` and
``step_graph``.

Data layouts (``load_data``): any UTF-8 file or folder of files (concatenated in path order; the
last ``dev_fraction`` is the dev split, as nanoGPT splits tiny-shakespeare 90/10), and the
Penn Treebank character files (``ptb.char.{train,valid,test}.txt``: characters separated by
spaces, ``_`` between words, one end-of-line symbol per line as in the published setup).

TF-free at import: the runtime half lives here.
"""

from __future__ import annotations

import abc
import argparse
import collections
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from rnnzoo.config import EntryConfig, rule
from rnnzoo.data.splits import Splits
from rnnzoo.errors import ConfigError, DataError, short_repr
from rnnzoo.export.bundle import DECODER_FILE, MODEL_FILE, BundleError, BundleRuntime, as_texts
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.generation import (
    GraphRunner,
    GreedySampler,
    TemperatureSampler,
    TokenSampler,
    TopKSampler,
    TopPSampler,
    graph_step,
    log_softmax,
)
from rnnzoo.io import atomic_write_text, read_json
from rnnzoo.task import Task

ASSET_FILE = "charlm.json"
UNK = "\ufffd"  # id 0: every character outside the training vocabulary
EOL = "\n"  # the end-of-line symbol (PTB: one per sentence); also the start symbol
DEFAULT_STEPS = 200
SCORE_CHUNK = 1024  # characters per ``model`` call when scoring a stream (state carried)
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
class DataConfig:
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

    def check(self) -> list[str]:
        if self.dev_fraction + self.test_fraction >= 1:
            return [f"test_fraction: dev_fraction + test_fraction must be < 1 (the rest is the "
                    f"training split), found {self.dev_fraction:g} + {self.test_fraction:g}"]
        return []


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


def _stream_dataset(x: np.ndarray, y: np.ndarray, shuffle: bool, seed: int) -> Any:
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return ds.prefetch(2).with_options(options)


# -- sampling and scoring, written once over a GraphRunner --------------------------------------


def choose_sampler(temperature: Any = 1.0, top_k: Any = None, top_p: Any = None
                   ) -> TokenSampler:
    """The shared sampler for these options: temperature 0 is greedy; ``top_k`` or ``top_p``
    (not both) restrict sampling after the temperature."""
    ok = isinstance(temperature, (int, float, np.floating)) and not isinstance(temperature,
                                                                                bool)
    if not ok or not math.isfinite(temperature) or temperature < 0:
        raise DataError(f"temperature: expected a number >= 0 (1 = the model's "
                        f"probabilities, 0 = the most likely character), got {temperature!r}")
    if top_k is not None and top_p is not None:
        raise DataError("top_k and top_p: give one of them")
    try:
        if temperature == 0:
            return GreedySampler()
        if top_k is not None:
            return TopKSampler(top_k, float(temperature))
        if top_p is not None:
            return TopPSampler(top_p, float(temperature))
        return TemperatureSampler(float(temperature))
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise DataError(f"steps: expected an integer >= 1 (characters to generate), got "
                        f"{steps!r}")
    return int(steps)


class _TextGenerator(abc.ABC):
    """``generate``, ``score`` and ``evaluate`` over the ``model`` and ``decoder`` graphs."""

    preprocessor: CharVocab

    @abc.abstractmethod
    def _runner(self) -> GraphRunner:
        """The graphs to run (Keras or onnxruntime)."""

    @abc.abstractmethod
    def _state_sizes(self) -> dict[str, int]:
        """Width of each recurrent state input."""

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        return {n: np.zeros((batch, w), np.float32) for n, w in self._state_sizes().items()}

    def _masked(self, logits: np.ndarray) -> np.ndarray:
        """Logits over the vocabulary: output ids the vocabulary does not use (the model is
        sized by ``vocab_size``, a cap) are never predicted."""
        logits = np.array(logits, dtype=np.float64)
        logits[..., self.preprocessor.size:] = -np.inf
        return logits

    def _run_chunk(self, ids: np.ndarray, state: dict[str, np.ndarray]
                   ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits ``[T, V]`` for one row of ids from ``state``, and the state after them."""
        out = self._runner().run("model", {"chars": ids[None].astype(np.int32), **state})
        return out["logits"][0], {n: out[f"new_{n}"] for n in state}

    def _encode_user(self, text: str, where: str, strict: bool) -> np.ndarray:
        text = self.preprocessor.from_user(text)
        if strict:
            unknown = self.preprocessor.unknown(text)
            if unknown:
                raise DataError(f"{where}: character(s) {short_repr(''.join(unknown))} are not "
                                f"in this model's vocabulary of {self.preprocessor.size - 1} "
                                "characters (see .preprocessor.symbols)")
        return self.preprocessor.encode(text)

    def score_ids(self, ids: np.ndarray, chunk: int = SCORE_CHUNK) -> tuple[float, int]:
        """Total negative log-likelihood in nats of every id of the stream ``ids``, the first
        predicted from the start symbol, the state carried across chunks; and the count."""
        ids = np.asarray(ids, dtype=np.int32)
        if len(ids) == 0:
            return 0.0, 0
        x = np.concatenate([[self.preprocessor.start_id], ids[:-1]]).astype(np.int32)
        state = self.initial_state(1)
        total = 0.0
        for s in range(0, len(x), chunk):
            logits, state = self._run_chunk(x[s:s + chunk], state)
            logp = log_softmax(self._masked(logits))
            target = ids[s:s + chunk]
            total -= float(logp[np.arange(len(target)), target].sum())
        return total, len(ids)

    def evaluate(self, texts: Any, references: Any = None) -> dict:
        """Bits per character (and nats per character) of ``texts``, each scored as one stream
        from a zero state, every character predicted (the first from the start symbol);
        unknown characters count as the unknown symbol (``unknown`` says how many). A text is
        its own reference: ``references`` is accepted only as the same texts."""
        texts = as_texts(texts, "texts")
        if references is not None and as_texts(references, "references") != texts:
            raise DataError("evaluate: a language model scores texts against themselves "
                            "(character t from characters < t); call evaluate(texts)")
        total, count, unknown = 0.0, 0, 0
        for text in texts:
            ids = self.preprocessor.encode(self.preprocessor.from_user(text))
            unknown += int((ids == 0).sum())
            nats, n = self.score_ids(ids)
            total, count = total + nats, count + n
        if not count:
            raise DataError("evaluate: nothing to score (empty texts)")
        return {"bpc": total / count / LN2, "nats_per_char": total / count, "chars": count,
                "texts": len(texts), "unknown": unknown}

    def generate(self, prompt: str = "", steps: int = DEFAULT_STEPS, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 on_text: Callable[[str], Any] | None = None) -> str:
        """``steps`` characters continuing ``prompt`` (returned without the prompt), sampled
        with the shared samplers (temperature 0: greedy; ``top_k``; ``top_p``) from
        ``np.random.default_rng(seed)``: the same seed gives the same text, on Keras and on
        the runtime. ``on_text`` receives each character as it is generated (streaming).
        A prompt character outside the vocabulary is a DataError."""
        if not isinstance(prompt, str):
            raise DataError(f"prompt: expected a string, found {type(prompt).__name__}")
        steps = _check_steps(steps)
        sampler = choose_sampler(temperature, top_k, top_p)
        ids = self._encode_user(prompt, "prompt", strict=True)
        feed = np.concatenate([[self.preprocessor.start_id], ids]).astype(np.int32)
        logits, state = self._run_chunk(feed, self.initial_state(1))
        logits = logits[-1:]
        step = graph_step(self._runner(), "decoder")
        rng = np.random.default_rng(seed)
        out = []
        for t in range(steps):
            chosen = np.asarray(sampler.select(log_softmax(self._masked(logits)), rng),
                                dtype=np.int32)
            out.append(int(chosen[0]))
            if on_text is not None:
                on_text(self.preprocessor.to_user(self.preprocessor.decode(out[-1:])))
            if t + 1 < steps:
                logits, state = step(chosen, state)
        return self.preprocessor.to_user(self.preprocessor.decode(out))


def _benchmark_lines(report: Mapping[str, Any]) -> list[str]:
    bench = PUBLISHED.get(report.get("benchmark") or "")
    if not bench or report.get("split") != bench["split"]:
        return []
    table = " · ".join(f"{k} {v:.4f}" for k, v in bench["values"].items())
    return [f"  published {report['split']} {bench['unit']} ({bench['source']}): {table}"]


class TextGenerationTask(_TextGenerator, Task):
    """Keras side of a character language model; a family adds ``build_model``,
    ``score_graph`` and ``step_graph``."""

    task_type = "text-generation"
    verb = "generate"
    metric_directions = {"loss": "min", "bpc": "min", "nats_per_char": "min"}

    @abc.abstractmethod
    def score_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)``: ``chars`` int32 ``[B, T]`` and the states
        ``state_<i>`` -> ``logits [B, T, V]`` and ``new_state_<i>``."""

    @abc.abstractmethod
    def step_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)`` of one step: ``char`` int32 ``[B]`` and the
        states -> ``logits [B, V]`` and ``new_state_<i>``."""

    @abc.abstractmethod
    def carried_layer(self) -> Any:
        """The ``CarriedRecurrentStack`` of ``self.model`` (stateful training)."""

    def new_preprocessor(self) -> CharVocab:
        return CharVocab()

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / ASSET_FILE, self.preprocessor.to_json() + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> CharVocab:
        path = directory / ASSET_FILE
        return CharVocab.from_dict(read_json(path, DataError, "re-save the model"), str(path),
                                   fitted=False)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        v = self.preprocessor.size if self.is_fitted else self.config.model.vocab_size
        ids = rng.integers(0, v, size=(batch_size, 10)).astype(np.int32)
        return ids[:, :-1], ids[:, 1:]

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> CharData:
        return load_chars(path, self.config.data)

    def limit_data(self, data: CharData, limit: int, seed: int = 0) -> CharData:
        """At most ``limit`` characters per split (the first ones: a stream is kept whole)."""
        return dataclasses.replace(
            data, train=data.train[:limit], dev=data.dev[:limit], test=data.test[:limit],
            description=f"{data.description} (at most {limit} characters per split)")

    def adapt(self, data: CharData) -> None:
        if not data.train:
            raise DataError(f"{data.description}: no training characters")
        if not self.is_fitted:
            self.preprocessor = CharVocab.fit(data.train, self.config.model.vocab_size,
                                              ptb=data.layout == "ptb")

    def datasets(self, data: CharData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        d = self.config.data
        x, y = stream_batches(self.preprocessor.encode(data.train), batch_size, d.bptt_length)
        train = _stream_dataset(x, y, shuffle=not d.stateful, seed=seed)
        dev = None
        if len(data.dev) > d.bptt_length:  # fewer streams when the dev text is short
            rows = min(batch_size, (len(data.dev) - 1) // d.bptt_length)
            dev = _stream_dataset(*stream_batches(self.preprocessor.encode(data.dev), rows,
                                                  d.bptt_length), shuffle=False, seed=seed)
        return train, dev, len(x)

    def loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def fit(self, train: Any, dev: Any, epochs: int, callbacks: list, verbose: Any) -> Any:
        """Keras ``fit``; with ``stateful: true`` the recurrent state is carried from each
        batch to the next (one variable set per batch size, outside the weights) and reset to
        zero when an epoch or a validation pass begins."""
        if not self.config.data.stateful:
            return super().fit(train, dev, epochs, callbacks, verbose)
        import keras

        model = self.model
        strategy = model.distribute_strategy
        if type(strategy).__name__ != "_DefaultDistributionStrategy":
            raise ConfigError(f"{self.name}: stateful training carries one state per stream "
                              "on one device; with a distribution strategy set "
                              "--set stateful=false")
        layer = self.carried_layer()
        widths = list(self._state_sizes().values())
        sizes = {int(ds.element_spec[0].shape[0]) for ds in (train, dev) if ds is not None}
        carry = {b: [keras.Variable(np.zeros((b, w), np.float32), trainable=False,
                                    dtype="float32", name=f"carry_{b}_{i}")
                     for i, w in enumerate(widths)] for b in sizes}

        def reset() -> None:
            for variables in carry.values():
                for v in variables:
                    v.assign(np.zeros(v.shape, np.float32))

        class ResetCarry(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
                reset()

            def on_test_begin(self, logs: dict | None = None) -> None:
                reset()

        def forget_traces() -> None:  # traced functions read (or not) the carry
            model.train_function = model.test_function = model.predict_function = None

        layer.attach_carry(carry)
        forget_traces()
        try:
            return model.fit(train, validation_data=dev, epochs=epochs,
                             callbacks=[ResetCarry(), *callbacks], verbose=verbose,
                             shuffle=False)
        finally:
            layer.attach_carry(None)
            forget_traces()

    # -- inference and evaluation ---------------------------------------------------------------
    def _runner(self) -> GraphRunner:
        self.require_fitted()
        return self.keras_graphs()

    def _state_sizes(self) -> dict[str, int]:
        if self.graph_runner is not None:  # a preset's bundle (rnnzoo evaluate, no Keras)
            inputs = self.graph_runner.sessions["decoder"].get_inputs()[1:]
            return {i.name: int(i.shape[1]) for i in inputs}
        spec = {s.name: s for s in self.graph_specs()}["decoder"]
        return {i.name: int(i.shape[1]) for i in spec.inputs if i.kind == "state"}

    def evaluate_data(self, data: CharData, split: str = "dev", limit: int | None = None,
                      **options: Any) -> dict:
        text = data.split(split)[:limit]
        if len(text) < 1:
            raise DataError(f"{data.description}: the {split} split is empty")
        ids = self.preprocessor.encode(text)
        nats, n = self.score_ids(ids)
        bench = PUBLISHED.get(data.benchmark or "")
        return {"bpc": nats / n / LN2, "nats_per_char": nats / n, "chars": n,
                "unknown": int((ids == 0).sum()), "split": split, "data": data.description,
                "benchmark": data.benchmark,
                "published": bench["values"] if bench and bench["split"] == split else {}}

    def format_report(self, report: dict) -> str:
        lines = [f"{report['bpc']:.4f} bits per character ({report['nats_per_char']:.4f} "
                 f"nats/char) over {report['chars']} characters, state carried across the "
                 f"split; {report.get('unknown', 0)} unknown; lower is better"]
        return "\n".join(lines + _benchmark_lines(report))

    # -- export ---------------------------------------------------------------------------------
    def graph_specs(self) -> list[GraphSpec]:
        scorer, score_outputs = self.score_graph()
        step, step_outputs = self.step_graph()
        v = self.config.model.vocab_size
        states = [InputSpec(t.name, "state", ("batch", int(t.shape[-1])))
                  for t in step.inputs[1:]]
        chars = InputSpec("chars", "tokens", ("batch", "time"), "int32", v)
        char = InputSpec("char", "tokens", ("batch",), "int32", v)
        return [
            GraphSpec("model", MODEL_FILE, scorer, [chars, *states], score_outputs,
                      sequence_outputs={"logits": "chars"}),
            GraphSpec("decoder", DECODER_FILE, step, [char, *states], step_outputs,
                      sizes=({"batch": 1}, {"batch": 6}, {"batch": 2})),
        ]

    def export_preprocessing(self) -> dict:
        return {"charlm": f"assets/{ASSET_FILE}", "vocab_size": self.config.model.vocab_size,
                "start_symbol": "end of line", "unknown_id": 0}

    def compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """bpc of both on up to 20,000 characters of ``eval_data``'s test (else dev) split,
        or on a fixed sample of the vocabulary, and the largest probability drift."""
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            text = (data.test or data.dev or data.train)[:20000]
        else:
            rng = np.random.default_rng(0)
            text = self.preprocessor.decode(rng.integers(1, self.preprocessor.size, 500))
        ids = self.preprocessor.encode(text)
        a, n = reference.score_ids(ids)
        b, _ = candidate.score_ids(ids)
        probe = ids[:200]
        pa = np.exp(log_softmax(reference._masked(reference._run_chunk(
            probe, reference.initial_state(1))[0])))
        pb = np.exp(log_softmax(candidate._masked(candidate._run_chunk(
            probe, candidate.initial_state(1))[0])))
        drift = float(np.abs(pa - pb).max())
        return {"chars": n, "bpc_fp32": a / n / LN2, "bpc_int8": b / n / LN2,
                "max_prob_drift": drift,
                "summary": f"bpc fp32 {a / n / LN2:.4f} -> int8 {b / n / LN2:.4f} on {n} "
                           f"characters; max probability drift {drift:.4f}"}

    def int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when its bpc is at most 0.5% above fp32's."""
        a, b = comparison.get("bpc_fp32"), comparison.get("bpc_int8")
        if a is None or b is None or b > a * 1.005:
            return "int8 bits per character more than 0.5% above fp32's"
        return None

    @classmethod
    def example_inputs(cls) -> list:
        return [{"prompt": "", "steps": 12, "seed": 0},
                {"prompt": "ab", "steps": 8, "temperature": 0.0},
                {"prompt": "a", "steps": 10, "temperature": 0.8, "top_k": 3, "seed": 5}]

    @classmethod
    def example_outputs(cls, model: Any, inputs: list) -> Any:
        out = []
        for item in inputs:
            prompt = "".join(c for c in item["prompt"]
                             if c in model.preprocessor.index and c != UNK)
            text = model.generate(**{**item, "prompt": prompt})
            out.append({"text": text, "bpc": model.evaluate([prompt + text])["bpc"]})
        return out

    # -- command line ---------------------------------------------------------------------------
    @classmethod
    def add_verb_arguments(cls, parser: argparse.ArgumentParser) -> None:
        # Shared with music-generation (one `generate` verb): the common options are declared
        # again with both tasks' defaults in the help (the parser keeps the last declaration).
        parser.add_argument("--steps", type=int, help=f"frames/characters to generate (music: "
                            f"default 64; text: default {DEFAULT_STEPS})")
        parser.add_argument("--temperature", type=float,
                            help="sampling temperature (default 1; 0 = the most likely "
                            "frame/character)")
        parser.add_argument("--seed", type=int, help="random seed (same seed, same output)")
        parser.add_argument("--prompt", default="",
                            help="text: the text to continue (default: start of a line)")
        parser.add_argument("--top-k", dest="top_k", type=int,
                            help="text: sample among the k most likely characters")
        parser.add_argument("--top-p", dest="top_p", type=float,
                            help="text: nucleus sampling with mass p")

    @classmethod
    def run_verb(cls, model: Any, args: argparse.Namespace) -> int:
        steps = args.steps if args.steps is not None else DEFAULT_STEPS
        temperature = args.temperature if args.temperature is not None else 1.0
        prompt = getattr(args, "prompt", "") or ""

        def show(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        show(prompt)
        model.generate(prompt, steps=steps, temperature=temperature,
                       top_k=getattr(args, "top_k", None), top_p=getattr(args, "top_p", None),
                       seed=args.seed, on_text=show)
        show("\n")
        return 0


class TextGeneratorRuntime(_TextGenerator, BundleRuntime):
    """``generate(prompt, steps, ...)`` and ``evaluate(texts)`` for a text-generation bundle
    with onnxruntime and numpy only: the same graphs, sampling loop and random stream as the
    Keras model."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        asset = self.asset(ASSET_FILE)
        self.preprocessor = CharVocab.from_dict(
            read_json(asset, BundleError, "re-export the bundle"), str(asset), BundleError)
        self.name = self.entry

    def _runner(self) -> GraphRunner:
        return self

    def _state_sizes(self) -> dict[str, int]:
        inputs = self.sessions["decoder"].get_inputs()[1:]
        return {i.name: int(i.shape[1]) for i in inputs}

    # -- rnnzoo serve (rnnzoo.serving) ------------------------------------------------------------
    serve_options: ClassVar[dict[str, Any]] = {}
    serve_demo: ClassVar[dict[str, Any]] = {
        "input": "json", "options": {},
        "example": {"prompt": "ROMEO:", "steps": 200, "temperature": 0.8, "seed": 0}}
    SERVE_MAX_STEPS: ClassVar[int] = 4096

    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One ``{"text"}`` per instance, an object with ``generate``'s arguments (``prompt``,
        ``steps``, ``temperature``, ``top_k``, ``top_p``, ``seed``)."""
        known = {"prompt", "steps", "temperature", "top_k", "top_p", "seed"}
        out = []
        for i, item in enumerate(instances):
            where = f"instances[{i}]"
            item = {} if item is None else item
            if isinstance(item, str):
                item = {"prompt": item}
            if not isinstance(item, Mapping):
                raise DataError(f"{where}: expected an object such as {{\"prompt\": \"ROMEO:\", "
                                f"\"steps\": 200}}, found {short_repr(item)}")
            unknown = sorted(set(item) - known)
            if unknown:
                raise DataError(f"{where}: unknown key(s) {', '.join(unknown)}; expected "
                                f"{', '.join(sorted(known))}")
            steps = item.get("steps", DEFAULT_STEPS)
            if isinstance(steps, int) and steps > self.SERVE_MAX_STEPS:
                raise DataError(f"{where}: steps {steps} exceeds the server's limit of "
                                f"{self.SERVE_MAX_STEPS}")
            try:
                text = self.generate(**dict(item))
            except DataError as exc:
                raise DataError(f"{where}: {exc}") from None
            out.append({"text": text})
        return out


TASK_CLASS = TextGenerationTask
RUNTIME_CLASS = TextGeneratorRuntime
