"""Translation's user calls, written once over both backends, and its onnxruntime model.

``translate(texts, beam=, sampler=)`` and ``evaluate(sources, references)`` run on a
``GraphRunner``: the Keras task's compiled graphs or a bundle's sessions (``encoder_model.onnx``
once per batch, ``decoder_model.onnx`` once per token), through the shared encode-once + step
engine of :mod:`rnnzoo.engines.seq2seq`. TF-free.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from rnnzoo.apps.translation.data import TranslatorPreprocessor
from rnnzoo.data.batching import length_sorted_batches
from rnnzoo.data.parallel import normalize
from rnnzoo.data.tokenizer import BOS, EOS, WordTokenizer
from rnnzoo.engines.decoding import GraphRunner
from rnnzoo.engines.seq2seq import (
    DecoderStreams,
    check_stream,
    decode,
    decode_stream,
    decoding_options,
    encode_once,
    user_result,
)
from rnnzoo.errors import ConfigError, DataError
from rnnzoo.export.bundle import BundleError, BundleRuntime, as_texts, check_tokens
from rnnzoo.extras import require_module
from rnnzoo.io.inputs import check_texts
from rnnzoo.progress import Progress, model_label, reporting

__all__ = ["RUNTIME_CLASS", "TranslatorRuntime", "encode_sources", "score_translations"]


def encode_sources(runner: GraphRunner, tokens: np.ndarray) -> dict[str, np.ndarray]:
    """Run the encoder once per batch: the decoder's initial state and per-sentence constants
    (only what the decoder reads, so beam search tiles nothing else), and the source mask."""
    state = encode_once(runner, {"source": tokens})
    if "source_mask" in runner.input_names("decoder"):
        state["source_mask"] = (tokens != 0).astype(np.float32)
    return state


def score_translations(hyps: Sequence[str], refs: Sequence[str], lowercase: bool,
                       beam: int | None = None) -> dict:
    """Corpus BLEU and chrF (sacrebleu) against normalised references, with a few examples."""
    sacrebleu = require_module("sacrebleu", "BLEU and chrF (translation evaluate)")

    refs = [normalize(r, lowercase, space_punctuation=False) for r in refs]
    bleu_metric, chrf_metric = sacrebleu.BLEU(), sacrebleu.CHRF()
    bleu = bleu_metric.corpus_score(list(hyps), [refs])
    chrf = chrf_metric.corpus_score(list(hyps), [refs])
    return {"bleu": round(bleu.score, 2), "chrf": round(chrf.score, 2),
            "bleu_signature": str(bleu_metric.get_signature()),
            "chrf_signature": str(chrf_metric.get_signature()),
            "decoding": f"beam {beam}" if beam else "greedy", "num_examples": len(hyps),
            "examples": [{"hyp": h, "ref": r} for h, r in list(zip(hyps, refs))[:5]]}


class _Translator(DecoderStreams):
    """``translate``, ``evaluate`` and the decoder's stream written once over a
    :class:`GraphRunner` (Keras graphs or a bundle)."""

    preprocessor: TranslatorPreprocessor

    @abc.abstractmethod
    def _runner(self) -> GraphRunner:
        """The graphs to decode with."""

    # -- the decoder's stream (rnnzoo.engines.seq2seq.DecoderStreams) ---------------------------
    @property
    def vocabulary(self) -> list[str]:
        """The target tokens in output order (``step``'s probabilities are aligned with it)."""
        return list(self.preprocessor.target.vocab)

    def _vocabulary_size(self) -> int:
        return len(self.preprocessor.target.vocab)

    def _encode_one(self, source: Any) -> dict[str, np.ndarray]:
        if not isinstance(source, str):
            raise DataError(f"source: expected the text to translate, found "
                            f"{type(source).__name__}")
        pre = self.preprocessor
        tokens = np.asarray([pre.encode_source(source)[: pre.max_length * 2]], np.int32)
        return encode_sources(self._runner(), tokens)

    def _target_ids(self, text: str) -> list[int]:
        return self.preprocessor.target.encode(normalize(text, self.preprocessor.lowercase))

    def translate(self, texts: Sequence[str] | str, beam: int | None = None,
                  sampler: str | None = None, max_length: int | None = None,
                  batch_size: int = 64, return_attention: bool = False, seed: int | None = None,
                  progress: bool | Progress = False, stream: bool = False,
                  **sampler_kwargs: Any) -> Any:
        """Translate strings; ``beam=k`` uses beam search, else ``sampler`` (default greedy).

        With ``return_attention=True`` returns ``(translations, [attention [T, S] per text])``.
        ``progress=True``: a progress line on stderr. ``stream=True`` (one text): an iterator
        of the translation's text as it is decoded (token by token; beam search yields the
        final text once) whose pieces join to the non-stream result.
        """
        pre = self.preprocessor
        single = isinstance(texts, str)
        check_stream("translate", stream, single, return_attention, progress)
        texts = as_texts(texts, "translate")
        check_texts(texts, "translate")
        chosen, batch_size, max_length = decoding_options(
            "translate", pre.target.vocab_size, "the target vocabulary", "tokens per translation",
            beam=beam, sampler=sampler, sampler_kwargs=sampler_kwargs, seed=seed,
            batch_size=batch_size, max_length=max_length)
        runner = self._runner()
        seqs = [pre.encode_source(t)[: pre.max_length * 2] for t in texts]
        if stream:
            tokens = np.asarray([seqs[0]], np.int32)
            return decode_stream("translate", runner, lambda: encode_sources(runner, tokens),
                                 bos=pre.target.index[BOS], eos=pre.target.index[EOS],
                                 max_length=max_length or pre.max_length + 10, sampler=chosen,
                                 seed=seed, text=pre.decode_target, size=len(pre.target.vocab))
        batches = ((idx, encode_sources(runner, tokens))
                   for idx, tokens in length_sorted_batches(seqs, batch_size))
        with reporting(progress, model_label(self, "translate"), len(texts), "sentences") as bar:
            ids, maps = decode("translate", runner, batches, len(texts),
                               bos=pre.target.index[BOS], eos=pre.target.index[EOS],
                               max_length=max_length or pre.max_length + 10, sampler=chosen,
                               seed=seed, attention=return_attention,
                               size=len(pre.target.vocab), progress=bar)
        results = [pre.decode_target(row) for row in ids]
        maps = [m if m is None else m[:, : len(s)] for m, s in zip(maps, seqs)]
        return user_result(results, maps, single, return_attention)

    def evaluate(self, sources: Sequence[str], references: Sequence[str],
                 beam: int | None = None, progress: bool = False) -> dict:
        """Corpus BLEU and chrF (sacrebleu) of the translations of ``sources``
        (``progress=True``: a progress line on stderr)."""
        sources = as_texts(sources, "evaluate sources", allow_empty=True)
        references = as_texts(references, "evaluate references", allow_empty=True)
        if len(sources) != len(references):
            raise DataError(f"evaluate: got {len(sources)} sources but {len(references)} "
                            "references; pass one reference per source")
        if not sources:
            raise DataError("nothing to evaluate: no sentences")
        label = f"{model_label(self, 'evaluate')} ({f'beam {beam}' if beam else 'greedy'})"
        with reporting(progress, label, len(sources), "sentences") as bar:
            hyps = self.translate(sources, beam=beam, progress=bar)
        return score_translations(hyps, list(references), self.preprocessor.lowercase, beam)


class TranslatorRuntime(_Translator, BundleRuntime):
    """``translate(texts, beam=5)`` for a translator bundle: ``encoder_model.onnx`` once per
    batch, ``decoder_model.onnx`` once per generated token, driven by the same samplers and the
    same engine as the Keras model."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        lowercase = self.manifest["preprocessing"].get("lowercase", True)
        if not isinstance(lowercase, bool):
            raise BundleError(f"{self.path / 'bundle.json'}: preprocessing.lowercase must be "
                              f"true or false, found {lowercase!r}; re-export the bundle")
        target = WordTokenizer.load(self.asset("target_tokenizer.json"))
        if BOS not in target.index or EOS not in target.index:
            raise BundleError(f"{self.path}: assets/target_tokenizer.json has no {BOS}/{EOS} "
                              "tokens, so it cannot decode; re-export the bundle")
        self.preprocessor = TranslatorPreprocessor(
            WordTokenizer.load(self.asset("source_tokenizer.json")), target,
            lowercase, self.setting("max_length"))
        self.src_vocab_size = self.setting("src_vocab_size")

    def run(self, graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if graph == "encoder" and isinstance(feeds, Mapping) and "source" in feeds:
            check_tokens(feeds["source"], self.src_vocab_size, "source")
        return super().run(graph, feeds)

    def _runner(self) -> GraphRunner:
        return self

    # -- rnnzoo serve (rnnzoo.serving) ------------------------------------------------------------
    serve_demo: ClassVar[dict[str, Any]] = {"input": "text", "example": "tengo hambre .",
                                            "options": {"attention": True}}

    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One ``{"translation"}`` per text, with ``"attention": true`` also the attention
        matrix [target step, source token] and both token lists (the demo's heatmap). Other
        options go to ``translate`` (``beam``, ``sampler``, ``max_length``, ``seed``, sampler
        parameters). A source of more than twice ``max_length`` tokens (what ``translate``
        reads) is refused unless ``"truncate": true``."""
        options = dict(options)
        attention, truncate = options.pop("attention", False), options.pop("truncate", False)
        for key, value in (("attention", attention), ("truncate", truncate)):
            if not isinstance(value, bool):
                raise ConfigError(f"{key}: expected true or false, found {value!r}")
        texts = as_texts(instances, "instances")
        pre, limit = self.preprocessor, self.preprocessor.max_length * 2
        sources = [pre.source.split(normalize(t, pre.lowercase)) for t in texts]
        if not truncate:
            for i, words in enumerate(sources):
                if len(words) > limit:
                    raise DataError(f"instances[{i}]: {len(words)} tokens, more than this "
                                    f"model reads ({limit}); shorten the text, or send "
                                    '"truncate": true to translate its first tokens')
        if not attention:
            return [{"translation": t} for t in self.translate(texts, **options)]
        out, maps = self.translate(texts, return_attention=True, **options)
        result = []
        for text, words, matrix in zip(out, sources, maps):
            item: dict[str, Any] = {"translation": text}
            if matrix is not None:
                rows = self.preprocessor.target.split(normalize(text, pre.lowercase)) + [EOS]
                item.update(attention=np.round(np.asarray(matrix, np.float64), 4).tolist(),
                            source_tokens=(words or [""])[: len(matrix[0])],
                            target_tokens=(rows + [EOS] * len(matrix))[: len(matrix)])
            result.append(item)
        return result


RUNTIME_CLASS = TranslatorRuntime
