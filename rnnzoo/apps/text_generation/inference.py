"""Text generation inference: ``generate``, ``evaluate`` and scoring written once over both
backends, and the onnxruntime model (``RUNTIME_CLASS``). TF-free.

User call (Keras and runtime alike): ``generate(prompt, steps, temperature=, top_k=, top_p=,
seed=)`` -> str, through the shared samplers of ``rnnzoo.engines.sampling`` and the primed
sampling loop of ``rnnzoo.engines.primed``; ``evaluate(texts)`` -> bits per character. Two graphs:
``model`` (``chars [B, T]`` and the states -> ``logits [B, T, V]``, ``new_<state>``) for scoring
and priming, and ``decoder`` (one step: ``char [B]`` and the states -> ``logits``,
``new_<state>``) for sampling.

Scoring runs a text as one stream with the state carried across it (chunks of ``SCORE_CHUNK``
characters through the ``model`` graph), the first character predicted from the start symbol
(the end-of-line symbol).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from rnnzoo import limits
from rnnzoo.apps.text_generation.data import ASSET_FILE, LN2, CharVocab
from rnnzoo.engines.primed import (
    BundleStates,
    PrimedGenerator,
    check_seed,
    generation_request,
    iter_primed,
)
from rnnzoo.engines.sampling import (
    GreedySampler,
    TemperatureSampler,
    TokenSampler,
    TopKSampler,
    TopPSampler,
    log_softmax,
)
from rnnzoo.errors import DataError, short_repr
from rnnzoo.export.bundle import BundleError, BundleRuntime, as_texts
from rnnzoo.io import read_json
from rnnzoo.io.inputs import check_text
from rnnzoo.progress import Progress, model_label, reporting

DEFAULT_STEPS = 200
SCORE_CHUNK = 1024  # characters per ``model`` call when scoring a stream (state carried)


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
    limits.check("max_generation_steps", int(steps), "steps")
    return int(steps)


class _TextGenerator(PrimedGenerator):
    """``generate``, ``score`` and ``evaluate`` over the ``model`` and ``decoder`` graphs."""

    preprocessor: CharVocab

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
        check_text(text, where)
        text = self.preprocessor.from_user(text)
        if strict:
            unknown = self.preprocessor.unknown(text)
            if unknown:
                raise DataError(f"{where}: character(s) {short_repr(''.join(unknown))} are not "
                                f"in this model's vocabulary of {self.preprocessor.size - 1} "
                                "characters (see .preprocessor.symbols)")
        return self.preprocessor.encode(text)

    def score_ids(self, ids: np.ndarray, chunk: int = SCORE_CHUNK,
                  progress: Progress | None = None) -> tuple[float, int]:
        """Total negative log-likelihood in nats of every id of the stream ``ids``, the first
        predicted from the start symbol, the state carried across chunks; and the count.
        ``progress`` counts the characters of each chunk scored."""
        ids = np.asarray(ids, dtype=np.int32)
        if len(ids) == 0:
            return 0.0, 0
        x = np.concatenate([[self.preprocessor.start_id], ids[:-1]]).astype(np.int32)
        state = self._zero_state(1)
        total = 0.0
        for s in range(0, len(x), chunk):
            logits, state = self._run_chunk(x[s:s + chunk], state)
            logp = log_softmax(self._masked(logits))
            target = ids[s:s + chunk]
            total -= float(logp[np.arange(len(target)), target].sum())
            if progress is not None:
                progress.update(len(target))
        return total, len(ids)

    def evaluate(self, texts: Any, references: Any = None, progress: bool = False) -> dict:
        """Bits per character (and nats per character) of ``texts``, each scored as one stream
        from a zero state, every character predicted (the first from the start symbol);
        unknown characters count as the unknown symbol (``unknown`` says how many). A text is
        its own reference: ``references`` is accepted only as the same texts.
        ``progress=True``: a progress line on stderr."""
        texts = as_texts(texts, "texts")
        if references is not None and as_texts(references, "references") != texts:
            raise DataError("evaluate: a language model scores texts against themselves "
                            "(character t from characters < t); call evaluate(texts)")
        total, count, unknown = 0.0, 0, 0
        streams = [self.preprocessor.encode(self.preprocessor.from_user(t)) for t in texts]
        with reporting(progress, model_label(self, "evaluate"), sum(map(len, streams)),
                       "characters") as bar:
            for ids in streams:
                unknown += int((ids == 0).sum())
                nats, n = self.score_ids(ids, progress=bar)
                total, count = total + nats, count + n
        if not count:
            raise DataError("evaluate: nothing to score (empty texts)")
        return {"bpc": total / count / LN2, "nats_per_char": total / count, "chars": count,
                "texts": len(texts), "unknown": unknown}

    @property
    def vocabulary(self) -> list[str]:
        """The characters in output order: ``step``'s probabilities are aligned with it (entry
        0 is the unknown symbol, what characters outside the vocabulary are read as)."""
        return [self.preprocessor.to_user(c) for c in self.preprocessor.symbols]

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """The state a text starts from: the zero state after the start symbol (end of line),
        as ``generate`` and ``evaluate`` begin."""
        start = np.full((batch, 1), self.preprocessor.start_id, np.int32)
        return self._feed_ids(start, self._zero_state(batch))[1]

    def _feed_ids(self, ids: np.ndarray, state: dict[str, np.ndarray]
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits ``[B, V]`` after ids ``[B, T]`` from ``state``, and the state after them: one
        character through the one-step ``decoder`` graph (as ``generate`` samples), a chunk
        through the ``model`` graph (as ``generate`` primes)."""
        if ids.shape[1] == 1:
            return self._decoder_step()(ids[:, 0], state)
        out = self._runner().run("model", {"chars": ids, **state})
        return out["logits"][:, -1], {n: out[f"new_{n}"] for n in state}

    def step(self, x: Any, state: dict[str, np.ndarray]) -> tuple[np.ndarray,
                                                                   dict[str, np.ndarray]]:
        """Feed characters ``x`` from ``state`` (from ``initial_state``): a string (batch 1;
        unknown characters read as the unknown symbol, as ``evaluate`` reads them) or int ids
        ``[B, T]``. Returns the next-character probabilities after the last one, float32
        aligned with ``vocabulary`` (``[V]`` for a string, ``[B, V]`` for ids), and the state."""
        if isinstance(x, str):
            ids = self.preprocessor.encode(self.preprocessor.from_user(x))[None]
        else:
            ids = np.asarray(x)
            if ids.dtype.kind not in "iu" or ids.ndim != 2:
                raise DataError(f"step: expected a string or int ids [batch, time], found "
                                f"{short_repr(x)}")
            if ids.size and (ids.min() < 0 or ids.max() >= self.preprocessor.size):
                raise DataError(f"step: ids must be in [0, {self.preprocessor.size})")
            ids = ids.astype(np.int32)
        if ids.shape[1] == 0:
            raise DataError("step: nothing to feed (an empty input)")
        logits, state = self._feed_ids(ids, state)
        probs = np.exp(log_softmax(self._masked(logits)))[:, : self.preprocessor.size]
        probs = probs.astype(np.float32)
        return (probs[0] if isinstance(x, str) else probs), state

    def generate(self, prompt: str = "", steps: int = DEFAULT_STEPS, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 on_text: Callable[[str], Any] | None = None,
                 stream: bool = False) -> str | Iterator[str]:
        """``steps`` characters continuing ``prompt`` (returned without the prompt), sampled
        with the shared samplers (temperature 0: greedy; ``top_k``; ``top_p``) from
        ``np.random.default_rng(seed)``: the same seed gives the same text, on Keras and on
        the runtime. ``on_text`` receives each character as it is generated.
        ``stream=True``: an iterator of the characters as they are sampled (joined, the text
        the call returns without it); closing it stops the sampling.
        A prompt character outside the vocabulary is a DataError."""
        if not isinstance(stream, bool):
            raise DataError(f"stream: expected True or False, found {stream!r}")
        pieces = self._pieces(prompt, steps, temperature, top_k, top_p, seed)
        if stream:
            return pieces
        out = []
        for piece in pieces:
            out.append(piece)
            if on_text is not None:
                on_text(piece)
        return "".join(out)

    def _pieces(self, prompt: Any, steps: Any, temperature: Any, top_k: Any, top_p: Any,
                seed: Any) -> Iterator[str]:
        """``generate``'s characters one at a time: the arguments are checked now, the
        prompt is run and the characters sampled as the iterator is read."""
        if not isinstance(prompt, str):
            raise DataError(f"prompt: expected a string, found {type(prompt).__name__}")
        steps = _check_steps(steps)
        check_seed(seed)
        sampler = choose_sampler(temperature, top_k, top_p)
        ids = self._encode_user(prompt, "prompt", strict=True)
        feed = np.concatenate([[self.preprocessor.start_id], ids]).astype(np.int32)
        pre = self.preprocessor

        def choose(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            return np.asarray(sampler.select(log_softmax(self._masked(logits)), rng),
                              dtype=np.int32)

        def sample() -> Iterator[str]:
            logits, state = self._run_chunk(feed, self._zero_state(1))
            rng = np.random.default_rng(seed)
            for chosen in iter_primed(self._decoder_step(), state, logits[-1:], steps, choose,
                                      rng):
                yield pre.to_user(pre.decode([int(chosen[0])]))

        return sample()


class TextGeneratorRuntime(BundleStates, _TextGenerator, BundleRuntime):
    """``generate(prompt, steps, ...)`` and ``evaluate(texts)`` for a text-generation bundle
    with onnxruntime and numpy only: the same graphs, sampling loop and random stream as the
    Keras model."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        asset = self.asset(ASSET_FILE)
        self.preprocessor = CharVocab.from_dict(
            read_json(asset, BundleError, "re-export the bundle"), str(asset), BundleError)
        self.name = self.entry

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
            item = generation_request({"prompt": item} if isinstance(item, str) else item,
                                      where, known, '{"prompt": "ROMEO:", "steps": 200}',
                                      DEFAULT_STEPS, self.SERVE_MAX_STEPS)
            try:
                text = self.generate(**dict(item))
            except DataError as exc:
                raise DataError(f"{where}: {exc}") from None
            out.append({"text": text})
        return out


RUNTIME_CLASS = TextGeneratorRuntime
