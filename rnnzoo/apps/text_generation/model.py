"""Text generation, the Keras side: character language models trained by truncated BPTT.

The model predicts character t+1 from characters <= t (softmax over the character vocabulary),
so it both scores text (bits per character, the published metric) and writes it (sampled
character by character from a prompt; ``rnnzoo.apps.text_generation.inference``).

Training (char-rnn): the training text is laid out as ``batch_size`` parallel contiguous
streams (``data.stream_batches``). With ``stateful: true`` the recurrent state at the end of
batch k is the initial state of batch k+1 (gradients stop at the boundary), reset to zero at the
start of each epoch and of each validation pass (:meth:`TextGenerationTask.fit`, through
``rnnzoo.layers.stream.CarriedRecurrentStack``; the shared training loop is unchanged).

A family implements ``build_model``, ``score_graph`` and ``step_graph``. TensorFlow and Keras
are imported inside the functions that need them.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.text_generation import cli
from rnnzoo.apps.text_generation.data import (
    ASSET_FILE,
    LN2,
    CharData,
    CharVocab,
    load_chars,
    stream_batches,
)
from rnnzoo.apps.text_generation.inference import _TextGenerator
from rnnzoo.config import EntryConfig
from rnnzoo.engines.decoding import GraphRunner
from rnnzoo.engines.primed import held_out, int8_gate, int8_report
from rnnzoo.engines.sampling import log_softmax
from rnnzoo.errors import ConfigError, DataError
from rnnzoo.export.bundle import DECODER_FILE, MODEL_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text, read_json
from rnnzoo.task import Task


def _stream_dataset(x: np.ndarray, y: np.ndarray, shuffle: bool, seed: int) -> Any:
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return ds.prefetch(2).with_options(options)


class TextGenerationTask(_TextGenerator, Task):
    """Keras side of a character language model; a family adds ``build_model``,
    ``score_graph`` and ``step_graph``."""

    task_type = "text-generation"
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
        spec = {s.name: s for s in self._graph_specs()}["decoder"]
        return {i.name: int(i.shape[1]) for i in spec.inputs if i.kind == "state"}

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
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

    def _export_preprocessing(self) -> dict:
        return {"charlm": f"assets/{ASSET_FILE}", "vocab_size": self.config.model.vocab_size,
                "start_symbol": "end of line", "unknown_id": 0}

    def _stream_manifest(self) -> dict:
        """Facts for ``bundle.json``'s ``stream`` (rnnzoo.export.streamspec) that a caller
        outside rnnzoo needs: a text starts by feeding the start symbol, and only the first
        ``count`` logits are characters (the model is sized by ``vocab_size``, a cap), so a
        user's own softmax slices them off."""
        vocabulary = f"assets/{ASSET_FILE}"
        start = self.preprocessor.start_id
        facts = {}
        for graph, feed in (("model", "chars"), ("decoder", "char")):
            facts[graph] = {
                "start": {"input": feed, "feed": start,
                          "symbol": self.preprocessor.symbols[start],
                          "note": "from the initial state, feed this id first (texts begin "
                                  "after an end of line), then the prompt's ids"},
                "symbols": {"input": feed, "output": "logits",
                            "count": self.preprocessor.size, "vocabulary": vocabulary,
                            "key": "symbols", "unknown_id": 0,
                            "note": "ids in and output positions index vocabulary[key]; "
                                    "positions from count on are never characters"},
            }
        return facts

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """bpc of both on up to 20,000 characters of ``eval_data``'s test (else dev) split,
        or on a fixed sample of the vocabulary, and the largest probability drift."""
        text = held_out(self, eval_data, 20000)
        if text is None:
            rng = np.random.default_rng(0)
            text = self.preprocessor.decode(rng.integers(1, self.preprocessor.size, 500))
        ids = self.preprocessor.encode(text)
        a, n = reference.score_ids(ids)
        b, _ = candidate.score_ids(ids)
        probe = ids[:200]
        pa = np.exp(log_softmax(reference._masked(reference._run_chunk(
            probe, reference._zero_state(1))[0])))
        pb = np.exp(log_softmax(candidate._masked(candidate._run_chunk(
            probe, candidate._zero_state(1))[0])))
        drift = float(np.abs(pa - pb).max())
        return int8_report("bpc", "bpc", a / n / LN2, b / n / LN2, drift,
                           ("chars", n, "characters"))

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when its bpc is at most 0.5% above fp32's."""
        return int8_gate(comparison, "bpc", "bits per character", cli.INT8_TOLERANCE["relative"])


TASK_CLASS = TextGenerationTask
