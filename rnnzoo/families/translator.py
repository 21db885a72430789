"""Seq2seq translator: recurrent encoder, recurrent decoder, attention over the encoder outputs.

Three Keras models share one set of layers:

* ``model`` (training, teacher forcing): ``(source [B,S], target_in [B,T]) -> logits [B,T,V]``
* ``encoder``: ``source -> (encoder_outputs [B,S,H], encoder_keys [B,S,K], decoder initial
  states...)``; the attention keys are projected once per sentence, not once per step
* ``decoder_step``: ``(token [B], states..., encoder_outputs, encoder_keys, source_mask) ->
  (logits [B,V], new states..., attention [B,S])``

Generation drives ``decoder_step`` through the samplers of ``rnnzoo.generation`` (greedy, beam,
top-k, ...); the ONNX bundle holds the same two graphs, so the TF-free runtime decodes with the
same samplers in numpy. ``attention: none`` gives the classic encoder-final-state seq2seq.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.config import EntryConfig
from rnnzoo.data.parallel import ParallelData, detokenize, grouped_split, normalize, read_pairs
from rnnzoo.data.tokenizer import BOS, EOS, WordTokenizer
from rnnzoo.errors import ConfigError, DataError, RunDirError
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task as BaseTask

TASK = "translation"


@dataclasses.dataclass
class ModelConfig:
    src_vocab_size: int = 16000
    tgt_vocab_size: int = 12000
    embedding_dim: int = 256
    cell: Literal["simple", "lstm", "gru"] = "gru"
    encoder_units: int = 256  # per direction
    encoder_layers: int = 1
    encoder_bidirectional: bool = True
    decoder_units: int = 512
    decoder_layers: int = 1
    attention: Literal["additive", "multiplicative", "none"] = "additive"
    attention_units: int = 256
    # Width of the vector fed to the output projection (Luong's attentional hidden state):
    # 0 means decoder_units. At batch 1 a decoding step is bound by reading the weights, and the
    # [output_units, tgt_vocab_size] projection is most of them, so a narrower output layer
    # decodes proportionally faster.
    output_units: int = 0
    dropout: float = 0.2


@dataclasses.dataclass
class DataConfig:
    # spa.txt is "English<TAB>Spanish": Spanish -> English reads column 1, writes column 0.
    source_column: int = 1
    target_column: int = 0
    lowercase: bool = True
    max_length: int = 30  # tokens; longer training pairs are dropped (dev/test are kept)
    min_freq: int = 1
    dev_fraction: float = 0.02
    test_fraction: float = 0.03


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

    def source_batch(self, texts: Sequence[str]) -> np.ndarray:
        seqs = [self.encode_source(t) for t in texts]
        out = np.zeros((len(seqs), max(len(s) for s in seqs)), dtype=np.int32)
        for row, s in enumerate(seqs):
            out[row, : len(s)] = s
        return out


def key_dim(cfg: ModelConfig) -> int:
    """Width of the projected attention keys: additive scores project to ``attention_units``,
    multiplicative ones to the decoder's query width."""
    return cfg.attention_units if cfg.attention == "additive" else cfg.decoder_units


def state_names(cfg: ModelConfig) -> list[str]:
    per_layer = 2 if cfg.cell == "lstm" else 1
    return [f"state_{i}" for i in range(cfg.decoder_layers * per_layer)]


class Task(BaseTask):
    """A translator. ``translate(texts, beam=5)`` returns strings."""

    config: EntryConfig

    def new_preprocessor(self) -> TranslatorPreprocessor:
        d = self.config.data
        return TranslatorPreprocessor(WordTokenizer(lowercase=d.lowercase),
                                      WordTokenizer(lowercase=d.lowercase, special_bos_eos=True),
                                      d.lowercase, d.max_length)

    # -- model ---------------------------------------------------------------------------------
    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack, SequenceAttention, TokenMask

        m = self.config.model
        if m.output_units < 0:
            raise ConfigError(f"{self.name}: model.output_units must be >= 0 (0 means "
                              f"decoder_units), found {m.output_units}")
        L = keras.layers
        self.layers_: dict[str, Any] = {}
        lay = self.layers_
        lay["src_emb"] = L.Embedding(m.src_vocab_size, m.embedding_dim, mask_zero=True,
                                     name="source_embedding")
        lay["encoder"] = RecurrentStack(m.encoder_units, cell=m.cell,
                                        num_layers=m.encoder_layers,
                                        bidirectional=m.encoder_bidirectional, dropout=m.dropout,
                                        return_sequences=True, return_state=True, name="encoder")
        n_states = len(state_names(m))
        lay["bridge"] = [L.Dense(m.decoder_units, activation="tanh", name=f"bridge_{i}")
                         for i in range(n_states)]
        lay["tgt_emb"] = L.Embedding(m.tgt_vocab_size, m.embedding_dim, mask_zero=True,
                                     name="target_embedding")
        lay["decoder"] = RecurrentStack(m.decoder_units, cell=m.cell,
                                        num_layers=m.decoder_layers, dropout=m.dropout,
                                        return_sequences=True, return_state=True, name="decoder")
        if m.attention != "none":
            lay["attention"] = SequenceAttention(m.attention_units, score=m.attention,
                                                 name="attention")
        out_units = m.output_units or m.decoder_units
        if m.attention != "none" or out_units != m.decoder_units:
            lay["combine"] = L.Dense(out_units, activation="tanh", name="combine")
        lay["drop"] = L.Dropout(m.dropout, name="output_dropout")
        lay["emb_drop"] = L.Dropout(m.dropout, name="embedding_dropout")
        lay["logits"] = L.Dense(m.tgt_vocab_size, name="logits", dtype="float32")
        lay["src_mask"] = TokenMask(name="source_mask")

        src = keras.Input((None,), dtype="int32", name="source")
        tgt = keras.Input((None,), dtype="int32", name="target_in")
        enc_out, init = self._encode(src)
        x = lay["emb_drop"](lay["tgt_emb"](tgt))
        dec_out, _ = lay["decoder"](x, initial_state=init)
        logits, _ = self._head(dec_out, enc_out, lay["src_mask"](src))
        return keras.Model([src, tgt], logits, name=self.config.name)

    def _encode(self, src: Any) -> tuple[Any, list]:
        m = self.config.model
        lay = self.layers_
        enc_out, states = lay["encoder"](lay["emb_drop"](lay["src_emb"](src)))
        # Final states of the last encoder layer, directions concatenated, bridged to each
        # decoder layer's initial state (h, and c for LSTM).
        per_dir = 2 if m.cell == "lstm" else 1
        dirs = 2 if m.encoder_bidirectional else 1
        last = states[-per_dir * dirs:]
        import keras

        init = []
        for i, bridge in enumerate(lay["bridge"]):
            kind = i % per_dir
            parts = [last[d * per_dir + kind] for d in range(dirs)]
            joined = parts[0] if dirs == 1 else keras.layers.Concatenate()(parts)
            init.append(bridge(joined))
        return enc_out, init

    def _head(self, dec_out: Any, enc_out: Any, src_mask: Any, keys: Any = None
              ) -> tuple[Any, Any]:
        import keras

        lay = self.layers_
        weights = None
        if "attention" in lay:
            context, weights = lay["attention"](dec_out, enc_out, src_mask, keys=keys)
            dec_out = keras.layers.Concatenate()([dec_out, context])
        if "combine" in lay:
            dec_out = lay["combine"](dec_out)
        return lay["logits"](lay["drop"](dec_out)), weights

    @property
    def encoder(self) -> Any:
        if getattr(self, "_encoder", None) is None:
            import keras

            self.model  # noqa: B018  (builds the shared layers)
            src = keras.Input((None,), dtype="int32", name="source")
            enc_out, init = self._encode(src)
            outputs = [enc_out, *init]
            if "attention" in self.layers_:
                keys = self.layers_["attention"](enc_out, enc_out, keys_only=True)
                outputs = [enc_out, keys, *init]
            self._encoder = keras.Model(src, outputs, name="encoder")
        return self._encoder

    @property
    def decoder_step(self) -> Any:
        if getattr(self, "_decoder_step", None) is None:
            import keras

            from rnnzoo.layers import ExpandTime, SqueezeTime

            self.model  # noqa: B018
            m = self.config.model
            lay = self.layers_
            token = keras.Input((), dtype="int32", name="token")
            states = [keras.Input((m.decoder_units,), name=n) for n in state_names(m)]
            enc_dim = m.encoder_units * (2 if m.encoder_bidirectional else 1)
            enc_out = keras.Input((None, enc_dim), name="encoder_outputs")
            keys = keras.Input((None, key_dim(m)), name="encoder_keys")
            src_mask = keras.Input((None,), name="source_mask")
            x = lay["tgt_emb"](ExpandTime(name="expand_time")(token))
            dec_out, new_states = lay["decoder"](x, initial_state=states)
            logits, weights = self._head(dec_out, enc_out, src_mask, keys=keys)
            outputs = [SqueezeTime(name="squeeze_logits")(logits), *new_states]
            inputs = [token, *states]
            if weights is not None:
                inputs += [enc_out, keys, src_mask]
                outputs.append(SqueezeTime(name="squeeze_attention")(weights))
            self._decoder_step = keras.Model(inputs, outputs, name="decoder_step")
        return self._decoder_step

    # -- artifacts ---------------------------------------------------------------------------
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
        from rnnzoo.task import random_tokens

        rng = np.random.default_rng(seed)
        m = self.config.model
        src = random_tokens(rng, batch_size, 7, m.src_vocab_size)
        tgt = random_tokens(rng, batch_size, 6, m.tgt_vocab_size)
        out = np.zeros_like(tgt)
        out[:, :-1] = tgt[:, 1:]
        return [src, tgt], out

    # -- training hooks ------------------------------------------------------------------------
    def load_data(self, path: str | Path, seed: int) -> ParallelData:
        d = self.config.data
        pairs = read_pairs(path, d.source_column, d.target_column)
        train, dev, test = grouped_split(pairs, d.dev_fraction, d.test_fraction, seed)
        return ParallelData(train, dev, test, (
            f"{Path(path).name}: columns {d.source_column} -> {d.target_column}, split grouped "
            f"by sentence (no test/dev sentence in train), seed {seed}"))

    def adapt(self, data: ParallelData) -> None:
        pre = self.preprocessor
        m, d = self.config.model, self.config.data
        if not pre.source.is_fitted:
            pre.source.fit((normalize(s, d.lowercase) for s, _ in data.train),
                           max_size=m.src_vocab_size, min_freq=d.min_freq)
        if not pre.target.is_fitted:
            pre.target.fit((normalize(t, d.lowercase) for _, t in data.train),
                           max_size=m.tgt_vocab_size, min_freq=d.min_freq)

    def _encode_pairs(self, pairs: Sequence[tuple[str, str]], filter_long: bool) -> tuple:
        pre = self.preprocessor
        limit = self.config.data.max_length
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

    def datasets(self, data: ParallelData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        from rnnzoo.data.pipeline import count_batches, pair_dataset

        kw = {"batch_size": batch_size, "max_length": self.config.data.max_length,
              "bucketing": bucketing, "fixed_length": fixed_length}
        src, tgt = self._encode_pairs(data.train, filter_long=True)
        if not src:
            raise DataError(f"{data.description}: no training pair within max_length")
        train = pair_dataset(src, tgt, shuffle=True, seed=seed, **kw)
        dev = None
        if data.dev:
            dsrc, dtgt = self._encode_pairs(data.dev, filter_long=False)
            dev = pair_dataset(dsrc, dtgt, **kw)
        lengths = [max(len(a), len(b) - 1) for a, b in zip(src, tgt)]
        return train, dev, count_batches(lengths, batch_size, kw["max_length"] + 1,
                                         bucketing, fixed_length)

    def loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)

    def metrics(self) -> list:
        from rnnzoo.layers import MaskedAccuracy

        return [MaskedAccuracy(name="token_accuracy")]

    # -- generation ----------------------------------------------------------------------------
    def _compiled(self) -> tuple[Any, Any]:
        """Encoder and decoder step as tf.functions with fixed signatures: traced once and
        cached (retracing per call would dominate decoding time)."""
        if getattr(self, "_fns", None) is None:
            import tensorflow as tf

            enc, step = self.encoder, self.decoder_step
            enc_fn = tf.function(lambda x: enc(x, training=False),
                                 input_signature=[tf.TensorSpec([None, None], tf.int32)])
            sig = [tf.TensorSpec(t.shape, t.dtype) for t in step.inputs]
            step_fn = tf.function(lambda *xs: step(list(xs), training=False),
                                  input_signature=sig)
            self._fns = (enc_fn, step_fn)
        return self._fns

    def keras_engine(self) -> Any:
        """Encoder + step functions over numpy, for ``rnnzoo.generation``."""
        enc_fn, step_fn = self._compiled()
        names = state_names(self.config.model)
        attention = self.config.model.attention != "none"

        def encode(tokens: np.ndarray) -> dict:
            outs = [np.asarray(o) for o in enc_fn(tokens)]
            state = dict(zip(names, outs[-len(names):]))
            if attention:
                state["encoder_outputs"], state["encoder_keys"] = outs[0], outs[1]
                state["source_mask"] = (tokens != 0).astype(np.float32)
            return state

        def step(tokens_t: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
            args = [tokens_t.astype(np.int32)] + [state[n] for n in names]
            if attention:
                args += [state["encoder_outputs"], state["encoder_keys"], state["source_mask"]]
            outs = [np.asarray(o) for o in step_fn(*args)]
            new = dict(state)
            new.update(zip(names, outs[1 : 1 + len(names)]))
            if attention:
                new["attention"] = outs[-1]
            return outs[0], new

        return encode, step

    def translate(self, texts: Sequence[str] | str, beam: int | None = None,
                  sampler: str | None = None, max_length: int | None = None,
                  batch_size: int = 64, return_attention: bool = False, seed: int | None = None,
                  **sampler_kwargs: Any) -> Any:
        """Translate strings; ``beam=k`` uses beam search, else ``sampler`` (default greedy).

        With ``return_attention=True`` returns ``(translations, [attention [T, S] per text])``.
        """
        if not self.preprocessor.is_fitted:
            raise RunDirError(f"{self.name!r} has no vocabulary yet: train it (rnnzoo.train) or "
                              "load a trained run/preset (rnnzoo.load)")
        encode, step = self.keras_engine()
        return translate_with(encode, step, self.preprocessor, texts, beam=beam, sampler=sampler,
                              max_length=max_length or self.config.data.max_length + 10,
                              batch_size=batch_size, return_attention=return_attention,
                              seed=seed, **sampler_kwargs)

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate_pairs(self, pairs: Sequence[tuple[str, str]], beam: int | None = None) -> dict:
        """Corpus BLEU and chrF (sacrebleu, on detokenized, lower-cased text when the model is
        lower-cased)."""
        if not pairs:
            raise DataError("nothing to evaluate: the split is empty")
        hyps = self.translate([s for s, _ in pairs], beam=beam)
        return score_translations(hyps, [t for _, t in pairs], self.preprocessor.lowercase,
                                  beam)

    def evaluate_data(self, data: ParallelData, split: str = "dev", beam: int | None = None
                      ) -> dict:
        pairs = {"dev": data.dev, "test": data.test, "train": data.train}[split]
        report = self.evaluate_pairs(pairs, beam=beam)
        report.update(split=split, data=data.description)
        return report

    def format_report(self, report: dict) -> str:
        return format_translation_report(report)

    # -- export hooks ------------------------------------------------------------------------
    def export_graphs(self) -> list[dict]:
        import tensorflow as tf

        from rnnzoo.export.runtime import DECODER_FILE, ENCODER_FILE
        from rnnzoo.export.validate import random_token_batches

        m = self.config.model
        names = state_names(m)
        enc, step = self.encoder, self.decoder_step
        attention = m.attention != "none"
        src_batches = random_token_batches(m.src_vocab_size, shapes=((1, 9), (6, 13), (2, 1)))
        enc_feeds = [{"source": b} for b in src_batches]
        rng = np.random.default_rng(0)
        step_feeds = []
        for b in src_batches:
            feed = {"token": rng.integers(1, m.tgt_vocab_size, size=len(b)).astype(np.int32)}
            for n in names:
                feed[n] = rng.normal(0, 0.5, (len(b), m.decoder_units)).astype(np.float32)
            if attention:
                enc_dim = m.encoder_units * (2 if m.encoder_bidirectional else 1)
                feed["encoder_outputs"] = rng.normal(0, 0.5, (*b.shape, enc_dim)).astype(
                    np.float32)
                feed["encoder_keys"] = rng.normal(0, 0.5, (*b.shape, key_dim(m))).astype(
                    np.float32)
                feed["source_mask"] = (b != 0).astype(np.float32)
            step_feeds.append(feed)
        step_inputs = ["token", *names] + (
            ["encoder_outputs", "encoder_keys", "source_mask"] if attention else [])
        step_outputs = ["logits", *[f"new_{n}" for n in names]] + (
            ["attention"] if attention else [])

        def step_numpy(feeds: dict) -> list:
            return [np.asarray(o) for o in step([feeds[k] for k in step_inputs], training=False)]

        step_sig = [tf.TensorSpec([None], tf.int32, name="token")]
        step_sig += [tf.TensorSpec([None, m.decoder_units], tf.float32, name=n) for n in names]
        axes = {"token": {0: "batch"}, **{n: {0: "batch"} for n in names}}
        if attention:
            enc_dim = m.encoder_units * (2 if m.encoder_bidirectional else 1)
            step_sig += [tf.TensorSpec([None, None, enc_dim], tf.float32,
                                       name="encoder_outputs"),
                         tf.TensorSpec([None, None, key_dim(m)], tf.float32,
                                       name="encoder_keys"),
                         tf.TensorSpec([None, None], tf.float32, name="source_mask")]
            axes.update({k: {0: "batch", 1: "source_time"}
                         for k in ("encoder_outputs", "encoder_keys", "source_mask")})
        enc_outputs = ["encoder_outputs"] + (["encoder_keys"] if attention else []) + names
        return [
            {"name": "encoder", "file": ENCODER_FILE, "fn": enc,
             "input_signature": [tf.TensorSpec([None, None], tf.int32, name="source")],
             "input_names": ["source"], "output_names": enc_outputs,
             "dynamic_axes": {"source": {0: "batch", 1: "source_time"}},
             "sample_feeds": enc_feeds,
             "keras_numpy_fn": lambda f: [np.asarray(o) for o in enc(f["source"],
                                                                     training=False)],
             "sequence_outputs": {"encoder_outputs": "source", "encoder_keys": "source"},
             "expect_recurrent": True},
            {"name": "decoder", "file": DECODER_FILE, "fn": step,
             "input_signature": step_sig, "input_names": step_inputs,
             "output_names": step_outputs, "dynamic_axes": axes, "sample_feeds": step_feeds,
             "keras_numpy_fn": step_numpy, "expect_recurrent": True},
        ]

    def export_preprocessing(self) -> dict:
        m = self.config.model
        return {"source_tokenizer": "assets/source_tokenizer.json",
                "target_tokenizer": "assets/target_tokenizer.json",
                "lowercase": self.preprocessor.lowercase, "padding": "post", "pad_id": 0,
                "max_length": self.config.data.max_length, "src_vocab_size": m.src_vocab_size,
                "tgt_vocab_size": m.tgt_vocab_size, "state_names": state_names(m),
                "attention": m.attention != "none"}

    def compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        texts = ["¿dónde está la estación?", "tengo hambre.", "me gusta leer libros."]
        if eval_data is not None:
            texts = [s for s, _ in self.load_data(eval_data, self.config.training.seed).test[:200]]
        a, b = reference.translate(texts), candidate.translate(texts)
        same = sum(x == y for x, y in zip(a, b)) / len(texts)
        return {"sentences": len(texts), "identical_greedy_translations": same,
                "summary": f"{same:.1%} identical greedy translations on {len(texts)} sentences"}


def translate_with(encode: Any, step: Any, pre: TranslatorPreprocessor,
                   texts: Sequence[str] | str, beam: int | None, sampler: str | None,
                   max_length: int, batch_size: int = 64, return_attention: bool = False,
                   seed: int | None = None, **sampler_kwargs: Any) -> Any:
    """Shared by Keras and the ONNX runtime: same preprocessing, same samplers."""
    from rnnzoo.generation import generate

    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    if not texts:
        raise DataError("translate: empty list of texts")
    if beam is not None:
        sampler, sampler_kwargs = "beam", {"width": beam, **sampler_kwargs}
    sampler = sampler or "greedy"
    bos, eos = pre.target.index[BOS], pre.target.index[EOS]
    seqs = [pre.encode_source(t)[: pre.max_length * 2] for t in texts]
    order = np.argsort([len(s) for s in seqs], kind="stable")
    results: list[str] = [""] * len(texts)
    attentions: list[Any] = [None] * len(texts)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        tokens = np.zeros((len(idx), max(len(seqs[i]) for i in idx)), dtype=np.int32)
        for row, i in enumerate(idx):
            tokens[row, : len(seqs[i])] = seqs[i]
        state = encode(tokens)
        record = ("attention",) if return_attention and "source_mask" in state else ()
        out = generate(step, np.full(len(idx), bos, np.int32), state, max_length=max_length,
                       end_token=eos, sampler=sampler, seed=seed, record=record,
                       **sampler_kwargs)
        for row, i in enumerate(idx):
            n = int(out.lengths[row])
            results[i] = pre.decode_target(out.tokens[row, :n])
            if record:
                attentions[i] = out.recorded["attention"][row, :n, : len(seqs[i])]
    if return_attention:
        return (results[0], attentions[0]) if single else (results, attentions)
    return results[0] if single else results


def plot_attention(pre: TranslatorPreprocessor, source: str, translation: str,
                   weights: np.ndarray, path: str | Path) -> Path:
    """Heatmap of attention weights [output tokens, source tokens], written atomically."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src_tokens = pre.source.split(normalize(source, pre.lowercase))[: weights.shape[1]]
    out_tokens = pre.target.split(normalize(translation, pre.lowercase)) + ["</s>"]
    weights = weights[: len(out_tokens), : len(src_tokens)]
    fig, ax = plt.subplots(figsize=(1 + 0.5 * len(src_tokens), 1 + 0.4 * len(out_tokens)))
    ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=60, ha="right")
    ax.set_yticks(range(weights.shape[0]), out_tokens[: weights.shape[0]])
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def score_translations(hyps: Sequence[str], refs: Sequence[str], lowercase: bool,
                       beam: int | None = None) -> dict:
    import sacrebleu

    refs = [normalize(r, lowercase, space_punctuation=False) for r in refs]
    bleu_metric, chrf_metric = sacrebleu.BLEU(), sacrebleu.CHRF()
    bleu = bleu_metric.corpus_score(list(hyps), [refs])
    chrf = chrf_metric.corpus_score(list(hyps), [refs])
    return {"bleu": round(bleu.score, 2), "chrf": round(chrf.score, 2),
            "bleu_signature": str(bleu_metric.get_signature()),
            "chrf_signature": str(chrf_metric.get_signature()),
            "decoding": f"beam {beam}" if beam else "greedy", "num_examples": len(hyps),
            "examples": [{"hyp": h, "ref": r} for h, r in list(zip(hyps, refs))[:5]]}


def format_translation_report(report: dict) -> str:
    lines = [f"{report['decoding']}: BLEU {report['bleu']:.2f}  chrF {report['chrf']:.2f}  "
             f"(n={report['num_examples']}, sacrebleu, lower-cased refs)"]
    for ex in report.get("examples", [])[:3]:
        lines.append(f"  hyp: {ex['hyp']}\n  ref: {ex['ref']}")
    return "\n".join(lines)


# -- test support -------------------------------------------------------------------------------
TINY_OVERRIDES = {
    "model": {"src_vocab_size": 40, "tgt_vocab_size": 40, "embedding_dim": 16,
              "encoder_units": 16, "decoder_units": 32, "attention_units": 16, "output_units": 16,
              "dropout": 0.0},
    "data": {"max_length": 12, "dev_fraction": 0.1, "test_fraction": 0.1},
    "training": {"epochs": 1, "batch_size": 32, "warmup_steps": 0, "early_stopping_patience": 0},
}


def synthetic_dataset(directory: str | Path, n: int = 1500, seed: int = 0) -> Path:
    """A learnable toy language pair in the Anki format (``target<TAB>source``): the "source"
    is a sentence of English-like words, the "target" reverses it and renames every word
    (word -> word + 'o'), so the model must learn a lexicon and a long-range reordering."""
    import random

    rng = random.Random(seed)
    words = ("cat dog bird fish red blue green big small runs eats sees the a one two three "
             "sun moon tree").split()
    path = Path(directory) / "toy.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    seen = set()
    lines = []
    while len(lines) < n:
        src = rng.choices(words, k=rng.randint(2, 7))
        if tuple(src) in seen:
            continue
        seen.add(tuple(src))
        tgt = [w + "o" for w in reversed(src)]
        lines.append(f"{' '.join(tgt)} .\t{' '.join(src)} .")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
