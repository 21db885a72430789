"""Translation on Keras: the task type's class (``TASK_CLASS``), its tf.data pipelines and the
encoder and one-step decoder graphs it exports. The token loss, metric and Keras graph runner
are the attention decoders' shared ``AttentionDecoderTask``; ``translate`` and ``evaluate`` come
from :mod:`rnnzoo.apps.translation.inference`. TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps._attention_decoder import AttentionDecoderTask
from rnnzoo.apps.translation.data import (
    DataConfig,
    ParallelData,
    TranslatorPreprocessor,
    encode_pairs,
    read_parallel,
)
from rnnzoo.apps.translation.inference import _Translator
from rnnzoo.config import EntryConfig
from rnnzoo.data.parallel import normalize
from rnnzoo.data.tokenizer import WordTokenizer
from rnnzoo.engines.seq2seq import compare_greedy, greedy_int8_rejection
from rnnzoo.errors import DataError, RunDirError
from rnnzoo.export.bundle import DECODER_FILE, ENCODER_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec, token_batches
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task

__all__ = ["TASK_CLASS", "DataConfig", "TranslationTask"]


class TranslationTask(AttentionDecoderTask, _Translator, Task):
    """Keras side of a translator; a family adds ``build_model``, ``encoder_graph`` and
    ``decoder_graph``."""

    task_type = "translation"
    metric_directions = {"loss": "min", "token_accuracy": "max", "bleu": "max", "chrf": "max"}

    @abc.abstractmethod
    def encoder_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model: source -> outputs, output names)``; names are ``encoder_outputs``,
        optionally ``encoder_keys``, and the decoder's state names."""

    @abc.abstractmethod
    def decoder_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)`` of one decoding step: inputs ``token``, the states,
        and the encoder tensors it attends to (named as the encoder outputs, plus
        ``source_mask``); outputs ``logits``, ``new_<state>`` and optionally ``attention``."""

    def new_preprocessor(self) -> TranslatorPreprocessor:
        d = self.config.data
        return TranslatorPreprocessor(WordTokenizer(lowercase=d.lowercase),
                                      WordTokenizer(lowercase=d.lowercase, special_bos_eos=True),
                                      d.lowercase, d.max_length)

    def save_assets(self, directory: Path) -> None:
        self.preprocessor.source.save(directory / "source_tokenizer.json")
        self.preprocessor.target.save(directory / "target_tokenizer.json")
        atomic_write_text(directory / "translator.json", json.dumps(
            {"lowercase": self.preprocessor.lowercase,
             "max_length": self.preprocessor.max_length}))

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> TranslatorPreprocessor:
        for name in ("source_tokenizer.json", "target_tokenizer.json"):
            if not (directory / name).is_file():
                raise RunDirError(f"missing {directory / name}")
        return TranslatorPreprocessor(
            WordTokenizer.load(directory / "source_tokenizer.json"),
            WordTokenizer.load(directory / "target_tokenizer.json"),
            config.data.lowercase, config.data.max_length)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[list, np.ndarray]:
        m = self.config.model
        src = token_batches(m.src_vocab_size, ((batch_size, 7),), seed=seed)[0]
        tgt = token_batches(m.tgt_vocab_size, ((batch_size, 6),), seed=seed + 1)[0]
        out = np.zeros_like(tgt)
        out[:, :-1] = tgt[:, 1:]
        return [src, tgt], out

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> ParallelData:
        return read_parallel(path, self.config.data, seed)

    def adapt(self, data: ParallelData) -> None:
        pre = self.preprocessor
        m, d = self.config.model, self.config.data
        if not pre.source.is_fitted:
            pre.source.fit((normalize(s, d.lowercase) for s, _ in data.train),
                           max_size=m.src_vocab_size, min_freq=d.min_freq)
        if not pre.target.is_fitted:
            pre.target.fit((normalize(t, d.lowercase) for _, t in data.train),
                           max_size=m.tgt_vocab_size, min_freq=d.min_freq)

    def datasets(self, data: ParallelData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        from rnnzoo.data.pipeline import count_batches, pair_dataset

        limit = self.config.data.max_length
        kw = {"batch_size": batch_size, "max_length": limit, "bucketing": bucketing,
              "fixed_length": fixed_length}
        src, tgt = encode_pairs(self.preprocessor, data.train, limit, filter_long=True)
        if not src:
            raise DataError(f"{data.description}: no training pair within max_length")
        train = pair_dataset(src, tgt, shuffle=True, seed=seed, **kw)
        dev = None
        if data.dev:
            dsrc, dtgt = encode_pairs(self.preprocessor, data.dev, limit, filter_long=False)
            dev = pair_dataset(dsrc, dtgt, **kw)
        lengths = [max(len(a), len(b) - 1) for a, b in zip(src, tgt)]
        return train, dev, count_batches(lengths, batch_size, kw["max_length"] + 1,
                                         bucketing, fixed_length)

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
        m = self.config.model
        enc, enc_outputs = self.encoder_graph()
        dec, dec_outputs = self.decoder_graph()
        source = InputSpec("source", "tokens", ("batch", "source_time"), "int32",
                           m.src_vocab_size)
        sizes = ({"batch": 1, "source_time": 9}, {"batch": 6, "source_time": 13},
                 {"batch": 2, "source_time": 1})
        return [
            GraphSpec("encoder", ENCODER_FILE, enc, [source], enc_outputs,
                      sequence_outputs={n: "source" for n in enc_outputs
                                        if n in ("encoder_outputs", "encoder_keys")},
                      sizes=sizes),
            GraphSpec("decoder", DECODER_FILE, dec, _step_inputs(dec, m.tgt_vocab_size),
                      dec_outputs, sizes=sizes),
        ]

    def _export_preprocessing(self) -> dict:
        m = self.config.model
        return {"source_tokenizer": "assets/source_tokenizer.json",
                "target_tokenizer": "assets/target_tokenizer.json",
                "lowercase": self.preprocessor.lowercase, "padding": "post", "pad_id": 0,
                "max_length": self.config.data.max_length, "src_vocab_size": m.src_vocab_size,
                "tgt_vocab_size": m.tgt_vocab_size}

    def _stream_manifest(self) -> dict:
        """Facts for ``bundle.json``'s ``stream`` (rnnzoo.export.streamspec) that a caller
        outside rnnzoo needs to decode: the source text as encoder ids, the ``source_mask``
        the decoder attends with, the start and end tokens, and which logits are words (as
        ``translate`` does: ``encode_sources`` and the seq2seq engine)."""
        from rnnzoo.data.tokenizer import _TOKEN_RE, BOS, EOS
        from rnnzoo.export.streamspec import token_decoder_facts

        pre = self.preprocessor
        target = pre.target
        facts = token_decoder_facts(
            words=target.vocab, vocabulary="assets/target_tokenizer.json",
            start=target.index[BOS], end=target.index[EOS], max_steps=pre.max_length + 10,
            context="the encoder (on the source ids)")
        facts["source"] = {
            "graph": "encoder", "input": "source", "vocabulary": "assets/source_tokenizer.json",
            "key": "vocab", "pad_id": 0, "unknown_id": 1, "max_tokens": pre.max_length * 2,
            "unicode": "NFC", "lowercase": pre.lowercase, "tokens": _TOKEN_RE.pattern,
            "note": "text -> source ids: Unicode NFC, then lower-case (when lowercase); the "
                    "words are the 'tokens' regex matches; each word's id is its index in "
                    "vocabulary[key] (unknown_id when absent); keep the first max_tokens ids "
                    "(a text with none is [unknown_id]); a batch is post-padded with pad_id to "
                    "its longest row"}
        facts["text"] = {
            "note": "the words of the chosen ids before the end id (or pad_id), joined by one "
                    "space; rnnzoo's translate then drops the space before ? . ! , ; : and a "
                    "clitic such as 's, and after ¿ ¡"}
        facts["source_mask"] = {
            "input": "source_mask", "dtype": "float32", "shape": ["batch", "source_time"],
            "from": {"graph": "encoder", "input": "source"}, "pad_id": 0,
            "note": "1.0 where the encoder's source ids are tokens, 0.0 at padding (source == "
                    "pad_id), i.e. (source != 0) as float32; attention ignores the 0.0 "
                    "positions; built once per source and fed unchanged at every step"}
        return {"decoder": facts}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        texts = ["¿dónde está la estación?", "tengo hambre.", "me gusta leer libros."]
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            texts = [s for s, _ in (data.test or data.dev or data.train)[:200]]
        return compare_greedy(reference, candidate, "translate", texts, "translations",
                              "sentences")

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when at least 90% of its greedy translations equal fp32's."""
        return greedy_int8_rejection(comparison, "translations")


def _step_inputs(step_model: Any, tgt_vocab_size: int) -> list[InputSpec]:
    """Input specs of a decoder step, read off the Keras model: ``token`` ids, ``*mask`` 0/1
    over the source, float states and encoder tensors ([batch, source_time, width])."""
    specs = []
    for tensor in step_model.inputs:
        name = tensor.name
        dims = ("batch", "source_time")[: len(tensor.shape)]
        shape = tuple(dims[i] if i < len(dims) and d is None else d
                      for i, d in enumerate(tensor.shape))
        if name == "token":
            specs.append(InputSpec(name, "tokens", shape, "int32", tgt_vocab_size))
        elif name.endswith("mask"):
            specs.append(InputSpec(name, "mask", shape))
        else:
            specs.append(InputSpec(name, "state" if len(shape) == 2 else "features", shape))
    return specs


TASK_CLASS = TranslationTask
