"""Encode once, then step: the decoding engine of the attention-decoder applications.

Translation (source tokens -> sentence) and image captioning (image -> sentence) decode the same
way. An ``encoder`` graph runs once per batch, and the outputs the ``decoder`` graph reads (its
initial states, the memory it attends to and the memory's attention keys) become the decoder's
state; a sampler (greedy, temperature, top-k, top-p or beam search) then drives the one-step
``decoder`` graph through :func:`rnnzoo.engines.decoding.graph_step`. The Keras task and the
onnxruntime bundle are both ``GraphRunner``s, so this one loop serves both backends.

The two applications also share their user call's options (``beam=``, ``sampler=``, ``seed=``),
one CLI adapter (:class:`DecodingVerb`: the verb built on the call, ``evaluate --beam``, the
greedy-then-beam evaluation reports, the harness's example outputs) and the int8 gate on
identical greedy outputs; those live here too, once. TF-free.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from rnnzoo import limits
from rnnzoo.engines.base import Sampler, State, StepFn, log_softmax
from rnnzoo.engines.beam import BeamSampler
from rnnzoo.engines.decoding import GraphRunner, generate, generate_stream, graph_step
from rnnzoo.engines.sampling import get_sampler
from rnnzoo.engines.stream import Stream
from rnnzoo.errors import ConfigError, DataError, RnnzooError, short_repr
from rnnzoo.export.bundle import check_count
from rnnzoo.progress import Progress, add_progress_argument, progress_wanted

__all__ = [
    "DecoderStreams",
    "DecodingVerb",
    "add_beam_score_argument",
    "add_decoding_arguments",
    "check_stream",
    "choose_sampler",
    "compare_greedy",
    "decode",
    "decode_stream",
    "decoding_kwargs",
    "decoding_options",
    "encode_once",
    "greedy_int8_rejection",
    "user_result",
    "without_tokens",
]


# -- the user call's options ------------------------------------------------------------------
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
        limits.check("max_beam_width", beam, "beam")
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
    if isinstance(chosen, BeamSampler):
        limits.check("max_beam_width", chosen.width, "beam width")
    return chosen


def decoding_options(verb: str, vocab: int, vocab_name: str, length_unit: str, *,
                     beam: int | None, sampler: str | None, sampler_kwargs: dict[str, Any],
                     seed: int | None, batch_size: Any, max_length: Any
                     ) -> tuple[Sampler, int, int | None]:
    """``(sampler, batch_size, max_length or None)`` of a call, every value checked (in this
    order) before the model is touched: a bad option is one clear error, not a traceback from
    the middle of a batch."""
    batch_size = check_count("batch_size", batch_size)
    batch_size = min(batch_size, limits.current().max_batch_size)  # chunking only
    if max_length is not None:
        max_length = check_count("max_length", max_length, length_unit)
        limits.check("max_decode_length", max_length, "max_length")
    chosen = choose_sampler(verb, vocab, vocab_name, beam, sampler, sampler_kwargs, seed)
    return chosen, batch_size, max_length


# -- the engine -------------------------------------------------------------------------------
def encode_once(runner: GraphRunner, feeds: Mapping[str, np.ndarray]) -> State:
    """Run the encoder once per batch and keep only what the decoder reads (its initial state
    and the memory it attends to), so beam search tiles nothing else."""
    wanted = set(runner.input_names("decoder"))
    return {k: v for k, v in runner.run("encoder", feeds).items() if k in wanted}


def without_tokens(step: StepFn, banned: Sequence[int], size: int | None = None) -> StepFn:
    """``step`` whose logits never choose ``banned`` (e.g. ``<pad>``, ``<s>``, ``<unk>``), nor
    with ``size`` an id from ``size`` on (outputs beyond the fitted vocabulary: the model is
    sized by a cap, those ids never were targets and have no text)."""
    banned = list(banned)

    def wrapped(tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        logits, new = step(tokens, state)
        logits = np.array(logits, dtype=np.float32, copy=True)
        logits[:, banned] = -1e9
        if size is not None:
            logits[:, size:] = -1e9
        return logits, new

    return wrapped


def decode(verb: str, runner: GraphRunner, batches: Iterable[tuple[Sequence[int], State]],
           count: int, *, bos: int, eos: int, max_length: int, sampler: Sampler,
           seed: int | None, attention: bool, banned: Sequence[int] = (),
           size: int | None = None, progress: Progress | None = None
           ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Decode every input: ``batches`` yields ``(input indices, encoder state)`` (built lazily,
    one batch at a time); returns the generated ids per input (up to and with ``</s>``) and,
    with ``attention`` and a decoder that outputs it, the attention per generated token
    ``[tokens, memory]`` (else None). The engine's own checks (bad logits, shapes) become a
    ``DataError`` naming ``verb``. ``progress`` counts the inputs of each decoded batch.
    ``banned`` ids and, with ``size`` (the fitted vocabulary's), ids from ``size`` on are
    never chosen."""
    step = graph_step(runner, "decoder")
    if banned or size is not None:
        step = without_tokens(step, banned, size)
    record = ("attention",) if attention and "attention" in runner.output_names("decoder") \
        else ()
    tokens: list[Any] = [None] * count
    maps: list[Any] = [None] * count
    try:
        for idx, state in batches:
            out = generate(step, np.full(len(idx), bos, np.int32), state,
                           max_length=max_length, end_token=eos, sampler=sampler, seed=seed,
                           record=record)
            for row, i in enumerate(idx):
                n = int(out.lengths[row])
                tokens[i] = out.tokens[row, :n]
                if record:
                    maps[i] = out.recorded["attention"][row, :n]
            if progress is not None:
                progress.update(len(idx))
    except ValueError as exc:  # the decoding engine's own checks
        if isinstance(exc, RnnzooError):
            raise
        raise DataError(f"{verb}: {exc}") from None
    return tokens, maps


def check_stream(verb: str, stream: Any, single: bool, return_attention: Any,
                 progress: Any) -> None:
    """``stream=`` of a ``translate``/``caption`` call: a bool, and a stream decodes one input
    (a server streams one request) without the attention or a progress line."""
    if not isinstance(stream, bool):
        raise ConfigError(f"stream: expected True or False, found {stream!r}")
    if not stream:
        return
    if not single:
        raise ConfigError(f"{verb}(stream=True) decodes one input: pass one, not a list")
    if return_attention or progress:
        raise ConfigError(f"{verb}(stream=True): return_attention and progress are for the "
                          "non-stream call; drop them")


def decode_stream(verb: str, runner: GraphRunner, state: Callable[[], State], *, bos: int,
                  eos: int, max_length: int, sampler: Sampler, seed: int | None,
                  text: Callable[[list[int]], str], banned: Sequence[int] = (),
                  size: int | None = None) -> Iterator[str]:
    """One input decoded as ``decode`` decodes it, yielded as text deltas: after each token
    the text of the ids so far (``text(ids)``, the non-stream call's own detokenizer) less
    what was already yielded; the deltas concatenate to the non-stream result. Greedy and
    sampling yield token by token, beam search the final text once. ``state()`` runs the
    encoder (batch 1) when the first delta is asked for; closing the iterator stops the
    decoding. The engine's own checks become a ``DataError`` naming ``verb``."""
    step = graph_step(runner, "decoder")
    if banned or size is not None:
        step = without_tokens(step, banned, size)
    ids: list[int] = []
    shown = ""
    try:
        for chunk in generate_stream(step, bos, state(), max_length, eos, sampler, seed):
            ids.extend(chunk)
            now = text(ids)
            # The detokenizers only join at the end of the text (punctuation spacing), so the
            # text so far is a prefix of every later one; a change that is not is held back
            # until it is (at worst to the end).
            if len(now) > len(shown) and now.startswith(shown):
                delta, shown = now[len(shown):], now
                yield delta
    except ValueError as exc:  # the decoding engine's own checks
        if isinstance(exc, RnnzooError):
            raise
        raise DataError(f"{verb}: {exc}") from None
    if shown != text(ids):  # never for this package's detokenizers (tested)
        raise DataError(f"{verb}: the streamed text {shown!r} is not a prefix of the result "
                        f"{text(ids)!r}")


def user_result(outputs: list, attentions: list, single: bool, return_attention: bool) -> Any:
    """What ``translate``/``caption`` return: one output for one input, else a list; with
    ``return_attention`` the pair ``(outputs, attentions)``."""
    if return_attention:
        return (outputs[0], attentions[0]) if single else (outputs, attentions)
    return outputs[0] if single else outputs


class DecoderStreams(abc.ABC):
    """``stream(source)``, ``initial_state(source)`` and ``step(x, state)`` of an attention
    decoder (translation, captioning): the decoder of one input, fed target tokens one at a
    time (``step("<s>")`` first, then the words chosen), returning the next-token
    probabilities aligned with ``vocabulary``. The state is the decoder's recurrent state plus
    the encoder's outputs it attends to, so a stream can be copied to try other words (the
    decoder graph once per token, as ``translate``/``caption`` decode)."""

    @abc.abstractmethod
    def _runner(self) -> GraphRunner:
        """The graphs to decode with."""

    @abc.abstractmethod
    def _encode_one(self, source: Any) -> State:
        """The encoder's state (batch 1) for one input, as the non-stream call encodes it."""

    @abc.abstractmethod
    def _target_ids(self, text: str) -> list[int]:
        """Target words (no special tokens) -> ids, as the training targets were read."""

    @property
    @abc.abstractmethod
    def vocabulary(self) -> list[str]:
        """The target tokens in output order: ``step``'s probabilities are aligned with it."""

    @abc.abstractmethod
    def _vocabulary_size(self) -> int:
        """``len(vocabulary)`` without copying it (per step)."""

    def initial_state(self, source: Any) -> State:
        """The state before the first target token: the encoder's outputs for ``source``
        (one input: a text to translate, an image to caption)."""
        state = self._encode_one(source)
        return {n: state[n] for n in self._runner().input_names("decoder")[1:]}

    def _ids(self, x: Any) -> tuple[np.ndarray, bool]:
        """``([B, T] int32 ids, batched)`` of target tokens: words (``<s>``/``</s>`` as
        themselves) or ids ``[T]`` / ``[B, T]``."""
        if isinstance(x, str):
            index = {w: i for i, w in enumerate(self.vocabulary)}
            ids = []
            for piece in x.split():
                ids += [index[piece]] if piece in ("<s>", "</s>") and piece in index \
                    else self._target_ids(piece)
            arr, batched = np.asarray([ids], np.int64).reshape(1, -1), False
        else:
            arr = np.asarray(x)
            batched = arr.ndim == 2
            if arr.ndim == 1:
                arr = arr[None]
            if arr.dtype.kind not in "iu" or arr.ndim != 2:
                raise DataError(f"step: expected target words or int ids [time] / [batch, "
                                f"time], found {short_repr(x)}")
        if arr.shape[1] == 0:
            raise DataError("step: nothing to feed (no target token)")
        size = self._vocabulary_size()
        if arr.min() < 0 or arr.max() >= size:
            raise DataError(f"step: ids must be in [0, {size})")
        return arr.astype(np.int32), batched

    def step(self, x: Any, state: State) -> tuple[np.ndarray, State]:
        """Feed target tokens ``x`` (words such as ``"<s> where is"``, or ids) from ``state``
        (from ``initial_state``): the next-token probabilities after the last one, float32
        aligned with ``vocabulary`` (``[V]``, or ``[B, V]`` for ids ``[B, T]``), and the state
        after it. These are the model's probabilities over its vocabulary, as ``translate``
        reads them; ``caption`` also never picks ``<pad>``, ``<s>`` or (by default)
        ``<unk>``."""
        ids, batched = self._ids(x)
        runner = self._runner()
        cached = getattr(self, "_stream_step", None)
        if cached is None or cached[0] is not runner:
            cached = self._stream_step = (runner, graph_step(runner, "decoder"))
        keys = list(state)
        logits = None
        try:
            for t in range(ids.shape[1]):
                logits, state = cached[1](ids[:, t], state)
        except KeyError as exc:
            raise DataError(f"step: state has no {exc}; start from initial_state(source)") \
                from None
        size = self._vocabulary_size()  # outputs beyond the fitted vocabulary: never chosen
        logits = np.array(logits, dtype=np.float64)
        logits[:, size:] = -np.inf
        probs = np.exp(log_softmax(logits))[:, :size].astype(np.float32)
        return (probs if batched else probs[0]), {k: state[k] for k in keys}

    def stream(self, source: Any) -> Stream:
        """A :class:`rnnzoo.engines.stream.Stream` over ``step`` from
        ``initial_state(source)``."""
        return Stream(self.step, self.initial_state(source))


# -- command line and reports -----------------------------------------------------------------
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
    add_progress_argument(parser)


def decoding_kwargs(args: argparse.Namespace) -> dict:
    """Keywords of ``translate``/``caption`` from ``add_decoding_arguments``' options."""
    kwargs = {k: v for k, v in (("k", args.k), ("p", args.p),
                                ("temperature", args.temperature)) if v is not None}
    return {"beam": args.beam, "sampler": args.sampler, "seed": args.seed,
            "progress": progress_wanted(args), **kwargs}


def add_beam_score_argument(parser: argparse.ArgumentParser) -> None:
    """``rnnzoo evaluate --beam``, declared once for the task types that share it."""
    if "--beam" not in parser._option_string_actions:
        parser.add_argument("--beam", type=int, help="beam width for the beam-search "
                            "score (default: translation 5, image-captioning 3)")


@dataclasses.dataclass(frozen=True)
class DecodingVerb:
    """The CLI adapter of an attention decoder (``rnnzoo translate``, ``rnnzoo caption``):
    the application's ``cli.py`` exports these bound methods as its role functions.

    ``call``: the user call (and verb); ``metavar``/``inputs_help``/``attention_help``: the
    verb's arguments; ``nothing``: the error without inputs; ``no_attention``: the error for
    ``--attention-plot`` on a model without attention; ``plot(preprocessor, first input, first
    output, its attention, path)`` draws it and ``plotted`` says where; ``default_beam``: the
    width of ``rnnzoo evaluate``'s beam-search report."""

    call: str
    metavar: str
    inputs_help: str
    attention_help: str
    nothing: str
    no_attention: str
    plot: Callable[..., Any]
    plotted: str
    default_beam: int

    def add_verb_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_decoding_arguments(parser, self.metavar, self.inputs_help, self.attention_help)

    def add_evaluate_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_beam_score_argument(parser)

    def run_verb(self, model: Any, args: argparse.Namespace) -> int:
        """The user call on the inputs, one output per line (``input<TAB>output`` for
        several), and with ``--attention-plot`` the first input's attention drawn."""
        inputs = list(args.texts)
        if not inputs:
            raise ConfigError(self.nothing)
        want_attention = args.attention_plot is not None
        out = getattr(model, self.call)(inputs, return_attention=want_attention,
                                        **decoding_kwargs(args))
        outputs, attentions = out if want_attention else (out, None)
        for source, output in zip(inputs, outputs):
            print(output if len(inputs) == 1 else f"{source}\t{output}")
        if want_attention:
            if attentions[0] is None:
                raise ConfigError(self.no_attention)
            self.plot(model.preprocessor, inputs[0], outputs[0], attentions[0],
                      args.attention_plot)
            print(f"{self.plotted}: {args.attention_plot}", file=sys.stderr)
        return 0

    def example_outputs(self, model: Any, inputs: list) -> dict:
        """The user call as plain data for the harness: greedy and beam 2, 6 tokens at most."""
        call = getattr(model, self.call)
        return {"greedy": call(inputs, max_length=6), "beam": call(inputs, beam=2, max_length=6)}

    def reports(self, score: Callable[[int | None, bool], dict], split: str,
                description: str, options: Mapping[str, Any]) -> list[dict]:
        """The greedy report, then the beam-search one (``options["beam"]``, else
        ``default_beam``; 0: none, as at the end of training), each from ``score(beam,
        progress)`` (the model's public ``evaluate``, with ``options["progress"]``) and
        labelled with the split and the data."""
        beam = options.get("beam")
        progress = options.get("progress", False)
        reports = []
        for width in [None] + ([] if beam == 0 else [beam or self.default_beam]):
            report = score(width, progress)
            report.update(split=split, data=description)
            reports.append(report)
        return reports


# -- int8 bundles -----------------------------------------------------------------------------
def compare_greedy(reference: Any, candidate: Any, call: str, inputs: list, outputs: str,
                   unit: str) -> dict:
    """How many greedy outputs of a candidate bundle (int8) equal the reference's (fp32),
    through the user call ``call``: ``{unit: n, "identical_greedy_<outputs>": fraction,
    "summary": ...}``."""
    a, b = getattr(reference, call)(inputs), getattr(candidate, call)(inputs)
    same = sum(x == y for x, y in zip(a, b)) / len(inputs)
    return {unit: len(inputs), f"identical_greedy_{outputs}": same,
            "summary": f"{same:.1%} identical greedy {outputs} on {len(inputs)} {unit}"}


def greedy_int8_rejection(comparison: Mapping[str, Any], outputs: str) -> str | None:
    """int8 ships when at least 90% of its greedy outputs equal fp32's."""
    if comparison.get(f"identical_greedy_{outputs}", 0.0) < 0.9:
        return f"fewer than 90% of int8 greedy {outputs} equal fp32's"
    return None
