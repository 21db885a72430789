"""Task type ``translation``: source sentences -> target sentences, encode once, step per token.

User call (Keras and runtime alike): ``translate(texts, beam=, sampler=)``; CLI verb
``rnnzoo translate``. Two graphs: ``encoder`` (``source`` -> ``encoder_outputs``, optional
``encoder_keys``, decoder initial states) and ``decoder`` (``token``, states, encoder tensors ->
``logits``, ``new_<state>``, optional ``attention``), both driven by the samplers of
``rnnzoo.generation`` through one engine (``graph_step``). A family implements
``build_model`` plus ``encoder_graph()`` and ``decoder_graph()``.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnzoo.config import EntryConfig, rule
from rnnzoo.data.batching import length_sorted_batches
from rnnzoo.data.parallel import ParallelData, detokenize, grouped_split, normalize, read_pairs
from rnnzoo.data.tokenizer import BOS, EOS, WordTokenizer
from rnnzoo.errors import ConfigError, DataError, RnnzooError, RunDirError
from rnnzoo.export.bundle import (
    DECODER_FILE,
    ENCODER_FILE,
    BundleError,
    BundleRuntime,
    as_texts,
    check_count,
    check_tokens,
)
from rnnzoo.export.specs import GraphSpec, InputSpec, token_batches
from rnnzoo.extras import require_module
from rnnzoo.generation import (
    BeamSampler,
    GraphRunner,
    Sampler,
    generate,
    get_sampler,
    graph_step,
)
from rnnzoo.io import atomic_write_text, save_figure
from rnnzoo.task import Task


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


def split_pairs(data: ParallelData, split: str) -> list[tuple[str, str]]:
    """The pairs of a split; ``"all"`` is the whole file."""
    splits = {"dev": data.dev, "test": data.test, "train": data.train,
              "all": data.train + data.dev + data.test}
    if split not in splits:
        raise ConfigError(f"split {split!r}: translation data has the splits "
                          f"{', '.join(splits)}")
    return splits[split]


def encode_sources(runner: GraphRunner, tokens: np.ndarray) -> dict[str, np.ndarray]:
    """Run the encoder once per batch: the decoder's initial state and per-sentence constants
    (only what the decoder reads, so beam search tiles nothing else)."""
    wanted = set(runner.input_names("decoder"))
    state = {k: v for k, v in runner.run("encoder", {"source": tokens}).items() if k in wanted}
    if "source_mask" in wanted:
        state["source_mask"] = (tokens != 0).astype(np.float32)
    return state


def choose_sampler(verb: str, vocab: int, vocab_name: str, beam: int | None,
                   sampler: str | None, sampler_kwargs: dict[str, Any], seed: int | None
                   ) -> Sampler:
    """The sampler of a ``translate``/``caption`` call: ``beam=k`` is beam search of width k,
    else ``sampler`` (default greedy) with its options. Every bad value (names, options, a
    width above the vocabulary, a bad seed) is a ``ConfigError`` before any decoding."""
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)
                             or seed < 0):
        raise ConfigError(f"seed: expected an integer >= 0 or None, found {seed!r}")
    if beam is not None:
        if not isinstance(beam, int) or isinstance(beam, bool) or not 1 <= beam <= vocab:
            raise ConfigError(f"beam: expected an integer in [1, {vocab}] ({vocab_name}), "
                              f"got {beam!r}")
        if sampler not in (None, "beam"):
            raise ConfigError(f"beam={beam} is beam search: drop sampler={sampler!r}, or "
                              "drop beam to sample")
        sampler, sampler_kwargs = "beam", {"width": beam, **sampler_kwargs}
    try:  # sampler names and options (k, p, temperature, ...) fail before any decoding
        chosen = get_sampler(sampler or "greedy", **sampler_kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{verb}: {exc}") from None
    if isinstance(chosen, BeamSampler) and chosen.width > vocab:
        raise ConfigError(f"beam width: expected an integer in [1, {vocab}] ({vocab_name}), "
                          f"got {chosen.width}")
    return chosen


class _Translator(abc.ABC):
    """``translate`` written once over a :class:`GraphRunner` (Keras graphs or a bundle)."""

    preprocessor: TranslatorPreprocessor

    @abc.abstractmethod
    def _runner(self) -> GraphRunner:
        """The graphs to decode with."""

    def translate(self, texts: Sequence[str] | str, beam: int | None = None,
                  sampler: str | None = None, max_length: int | None = None,
                  batch_size: int = 64, return_attention: bool = False, seed: int | None = None,
                  **sampler_kwargs: Any) -> Any:
        """Translate strings; ``beam=k`` uses beam search, else ``sampler`` (default greedy).

        With ``return_attention=True`` returns ``(translations, [attention [T, S] per text])``.
        """
        pre = self.preprocessor
        single = isinstance(texts, str)
        texts = as_texts(texts, "translate")
        batch_size = check_count("batch_size", batch_size)
        if max_length is not None:
            max_length = check_count("max_length", max_length, "tokens per translation")
        chosen = choose_sampler("translate", pre.target.vocab_size, "the target vocabulary",
                                beam, sampler, sampler_kwargs, seed)
        runner = self._runner()
        max_length = max_length or pre.max_length + 10
        bos, eos = pre.target.index[BOS], pre.target.index[EOS]
        seqs = [pre.encode_source(t)[: pre.max_length * 2] for t in texts]
        step = graph_step(runner, "decoder")
        results: list[str] = [""] * len(texts)
        attentions: list[Any] = [None] * len(texts)
        try:
            for idx, tokens in length_sorted_batches(seqs, batch_size):
                state = encode_sources(runner, tokens)
                record = ("attention",) if return_attention and "source_mask" in state else ()
                out = generate(step, np.full(len(idx), bos, np.int32), state,
                               max_length=max_length, end_token=eos, sampler=chosen,
                               seed=seed, record=record)
                for row, i in enumerate(idx):
                    n = int(out.lengths[row])
                    results[i] = pre.decode_target(out.tokens[row, :n])
                    if record:
                        attentions[i] = out.recorded["attention"][row, :n, : len(seqs[i])]
        except ValueError as exc:  # the decoding engine's own checks
            if isinstance(exc, RnnzooError):
                raise
            raise DataError(f"translate: {exc}") from None
        if return_attention:
            return (results[0], attentions[0]) if single else (results, attentions)
        return results[0] if single else results

    def evaluate(self, sources: Sequence[str], references: Sequence[str],
                 beam: int | None = None) -> dict:
        """Corpus BLEU and chrF (sacrebleu) of the translations of ``sources``."""
        sources = as_texts(sources, "evaluate sources", allow_empty=True)
        references = as_texts(references, "evaluate references", allow_empty=True)
        if len(sources) != len(references):
            raise DataError(f"evaluate: got {len(sources)} sources but {len(references)} "
                            "references; pass one reference per source")
        if not sources:
            raise DataError("nothing to evaluate: no sentences")
        hyps = self.translate(sources, beam=beam)
        return score_translations(hyps, list(references), self.preprocessor.lowercase, beam)


class TranslationTask(_Translator, Task):
    """Keras side of a translator; a family adds ``build_model``, ``encoder_graph`` and
    ``decoder_graph``."""

    task_type = "translation"
    verb = "translate"
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

    # -- inference and evaluation ---------------------------------------------------------------
    def _runner(self) -> GraphRunner:
        self.require_fitted()
        return self.keras_graphs()

    def evaluate_data(self, data: ParallelData, split: str = "dev", beam: int | None = None,
                      limit: int | None = None, **options: Any) -> dict:
        pairs = split_pairs(data, split)[:limit]
        report = self.evaluate([s for s, _ in pairs], [t for _, t in pairs], beam=beam)
        report.update(split=split, data=data.description)
        return report

    def evaluate_reports(self, data: ParallelData, split: str,
                         options: Mapping[str, Any]) -> list[dict]:
        """Greedy and beam-search scores on the same split."""
        limit = options.get("limit")
        return [self.evaluate_data(data, split, limit=limit),
                self.evaluate_data(data, split, beam=options.get("beam") or 5, limit=limit)]

    def format_report(self, report: dict) -> str:
        lines = [f"{report['decoding']}: BLEU {report['bleu']:.2f}  chrF {report['chrf']:.2f}  "
                 f"(n={report['num_examples']}, sacrebleu, lower-cased refs)"]
        for ex in report.get("examples", [])[:3]:
            lines.append(f"  hyp: {ex['hyp']}\n  ref: {ex['ref']}")
        return "\n".join(lines)

    # -- export ---------------------------------------------------------------------------------
    def graph_specs(self) -> list[GraphSpec]:
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

    def export_preprocessing(self) -> dict:
        m = self.config.model
        return {"source_tokenizer": "assets/source_tokenizer.json",
                "target_tokenizer": "assets/target_tokenizer.json",
                "lowercase": self.preprocessor.lowercase, "padding": "post", "pad_id": 0,
                "max_length": self.config.data.max_length, "src_vocab_size": m.src_vocab_size,
                "tgt_vocab_size": m.tgt_vocab_size}

    def compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        texts = ["¿dónde está la estación?", "tengo hambre.", "me gusta leer libros."]
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            texts = [s for s, _ in (data.test or data.dev or data.train)[:200]]
        a, b = reference.translate(texts), candidate.translate(texts)
        same = sum(x == y for x, y in zip(a, b)) / len(texts)
        return {"sentences": len(texts), "identical_greedy_translations": same,
                "summary": f"{same:.1%} identical greedy translations on {len(texts)} sentences"}

    def int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when at least 90% of its greedy translations equal fp32's."""
        if comparison.get("identical_greedy_translations", 0.0) < 0.9:
            return "fewer than 90% of int8 greedy translations equal fp32's"
        return None

    @classmethod
    def example_inputs(cls) -> list:
        return ["the movie was good", "bad plot", "a"]

    @classmethod
    def example_outputs(cls, model: Any, inputs: list) -> Any:
        return {"greedy": model.translate(inputs, max_length=6),
                "beam": model.translate(inputs, beam=2, max_length=6)}

    # -- command line ---------------------------------------------------------------------------
    @classmethod
    def add_verb_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_decoding_arguments(parser, "TEXT", "sentences to translate",
                               "save the attention heatmap of the first sentence")

    @classmethod
    def add_evaluate_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_beam_score_argument(parser)

    @classmethod
    def run_verb(cls, model: Any, args: argparse.Namespace) -> int:
        texts = list(args.texts)
        if not texts:
            raise ConfigError('nothing to translate: pass sentences, e.g. '
                              '"¿Dónde está la estación?"')
        want_attention = args.attention_plot is not None
        out = model.translate(texts, return_attention=want_attention, **decoding_kwargs(args))
        translations, attentions = out if want_attention else (out, None)
        for src, hyp in zip(texts, translations):
            print(hyp if len(texts) == 1 else f"{src}\t{hyp}")
        if want_attention:
            if attentions[0] is None:
                raise ConfigError("this translator has no attention to plot (attention: none)")
            plot_attention(model.preprocessor, texts[0], translations[0], attentions[0],
                           args.attention_plot)
            print(f"attention heatmap for the first sentence: {args.attention_plot}",
                  file=sys.stderr)
        return 0



def add_decoding_arguments(parser: argparse.ArgumentParser, metavar: str, inputs_help: str,
                           attention_help: str) -> None:
    """The conditional-generation verbs' options (``translate``, ``caption``): inputs, beam or
    sampler, and the attention plot; ``decoding_kwargs`` turns them into the call's keywords."""
    # dest "texts": the CLI collects positionals given after the options into it
    parser.add_argument("texts", nargs="*", metavar=metavar, help=inputs_help)
    parser.add_argument("--beam", type=int, help="beam width (beam search)")
    parser.add_argument("--sampler", choices=["greedy", "temperature", "top_k", "top_p"])
    parser.add_argument("--k", type=int, help="top_k: candidates kept")
    parser.add_argument("--p", type=float, help="top_p: nucleus mass")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--seed", type=int, help="seed for the stochastic samplers")
    parser.add_argument("--attention-plot", dest="attention_plot", metavar="PNG",
                        help=attention_help)


def decoding_kwargs(args: argparse.Namespace) -> dict:
    """Keywords of ``translate``/``caption`` from ``add_decoding_arguments``' options."""
    kwargs = {k: v for k, v in (("k", args.k), ("p", args.p),
                                ("temperature", args.temperature)) if v is not None}
    return {"beam": args.beam, "sampler": args.sampler, "seed": args.seed, **kwargs}


def add_beam_score_argument(parser: argparse.ArgumentParser) -> None:
    """``rnnzoo evaluate --beam``, declared once for the task types that share it."""
    if "--beam" not in parser._option_string_actions:
        parser.add_argument("--beam", type=int, help="beam width for the beam-search "
                            "score (default: translation 5, image-captioning 3)")

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


def plot_attention(pre: TranslatorPreprocessor, source: str, translation: str,
                   weights: np.ndarray, path: str | Path) -> Path:
    """Heatmap of attention weights [output tokens, source tokens], written atomically."""
    matplotlib = require_module("matplotlib", "--attention-plot")
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
    return save_figure(fig, path, dpi=100)


def score_translations(hyps: Sequence[str], refs: Sequence[str], lowercase: bool,
                       beam: int | None = None) -> dict:
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


TASK_CLASS = TranslationTask
RUNTIME_CLASS = TranslatorRuntime
