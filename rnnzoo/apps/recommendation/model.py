"""Recommendation, the Keras side (``TASK_CLASS``): next-item models trained with a full softmax
over the item catalogue.

Training reads every user's sequence without its last item (the leave-one-out validation
target), cut into windows of ``max_length + 1`` items; at every position the model predicts the
next item with cross-entropy over all items (``ignore_class`` 0 skips the padding), which is
what brings GRU4Rec close to SASRec under full ranking (Klenitskiy & Vasilev 2023). Windows of
similar length are batched together. The dev pass scores each user's last item given the rest
(val_loss: its cross-entropy).

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

from rnnzoo.apps.recommendation import cli
from rnnzoo.apps.recommendation.data import (
    ASSET_FILE,
    ItemCatalog,
    SequenceData,
    load_sequences,
    padded_batches,
    windows,
)
from rnnzoo.apps.recommendation.inference import _Recommender
from rnnzoo.config import EntryConfig
from rnnzoo.engines.decoding import GraphRunner
from rnnzoo.errors import DataError
from rnnzoo.export.bundle import DECODER_FILE, MODEL_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text, read_json
from rnnzoo.task import Task

#: Users whose int8 ranking is compared with fp32's (first ones of the data's dev split).
INT8_USERS = 1000


def _batches_dataset(make: Any, count: int) -> Any:
    """A tf.data dataset of the ``count`` ``(items, targets)`` batches (any shape) of
    ``make()``, called once per pass so each epoch can reshuffle."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, None], tf.int32)
    ds = tf.data.Dataset.from_generator(make, output_signature=(spec, spec))
    ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    options = tf.data.Options()
    options.deterministic = True
    return ds.prefetch(2).with_options(options)


class RecommendationTask(_Recommender, Task):
    """Keras side of a next-item recommender; a family adds ``build_model``, ``score_graph``
    and ``step_graph``."""

    task_type = "recommendation"
    metric_directions = {"loss": "min"}
    head_layers = ("logits",)

    @abc.abstractmethod
    def score_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)``: ``items`` int32 ``[B, T]`` and the states
        ``state_<i>`` -> ``logits [B, V]`` after the last item and ``new_state_<i>``."""

    @abc.abstractmethod
    def step_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)`` of one step: ``item`` int32 ``[B]`` and the states ->
        ``logits [B, V]`` and ``new_state_<i>``."""

    def new_preprocessor(self) -> ItemCatalog:
        return ItemCatalog()

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / ASSET_FILE, self.preprocessor.to_json() + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> ItemCatalog:
        path = directory / ASSET_FILE
        return ItemCatalog.from_dict(read_json(path, DataError, "re-save the model"), str(path),
                                     fitted=False)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Random post-padded windows: row 0 full length (10), row 1 one item."""
        rng = np.random.default_rng(seed)
        v = self.preprocessor.size if self.is_fitted else self.config.model.num_items + 1
        ids = rng.integers(1, v, size=(batch_size, 11)).astype(np.int32)
        lengths = rng.integers(1, 11, size=batch_size)
        lengths[0] = 10
        if batch_size > 1:
            lengths[1] = 1
        x, y = ids[:, :-1].copy(), ids[:, 1:].copy()
        pad = np.arange(10)[None, :] >= lengths[:, None]
        x[pad] = 0
        y[pad] = 0
        return x, y

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> SequenceData:
        return load_sequences(path, self.config.data)

    def limit_data(self, data: SequenceData, limit: int, seed: int = 0) -> SequenceData:
        """At most ``limit`` users (a seeded sample, kept in file order)."""
        if len(data.sequences) <= limit:
            return data
        keep = np.sort(np.random.default_rng(seed).choice(len(data.sequences), limit,
                                                          replace=False))
        return dataclasses.replace(
            data, sequences=[data.sequences[i] for i in keep],
            users=[data.users[i] for i in keep],
            description=f"{data.description} (at most {limit} users)")

    def adapt(self, data: SequenceData) -> None:
        """The catalogue: the ``num_items`` most frequent items of the training interactions
        (every sequence without its last item), with their counts and titles."""
        if not self.is_fitted:
            seen = [s[:-1] for s in data.sequences if len(s) >= 2]
            if not any(len(s) for s in seen):
                raise DataError(f"{data.description}: no sequence with 2 or more interactions "
                                "(nothing to learn the next item from)")
            self.preprocessor = ItemCatalog.fit(seen, self.config.model.num_items, data.titles)

    def datasets(self, data: SequenceData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        cat = self.preprocessor
        length = self.config.data.max_length
        pieces = windows([cat.known(s) for s in data.split("train")], length)
        if not pieces:
            raise DataError(f"{data.description}: no training sequence with 2 or more known "
                            "items after leaving out each user's last one")
        count = len(padded_batches(pieces, batch_size, np.random.default_rng(seed)))
        epoch = [0]

        def train() -> Any:
            epoch[0] += 1
            yield from padded_batches(pieces, batch_size, np.random.default_rng([seed, epoch[0]]))

        dev_rows = []
        split = data.split("dev")
        for history, target in zip(split.histories, split.targets):
            row = cat.known(history)[-length:]
            if len(row):
                dev_rows.append(np.concatenate([row, [cat.index.get(int(target), 0)]]))
        dev = None
        if dev_rows:
            def dev_batches() -> Any:
                for x, y in padded_batches(dev_rows, 256, np.random.default_rng(0)):
                    keep = np.zeros_like(y)  # only the held-out item is scored
                    last = np.count_nonzero(x, axis=1) - 1
                    keep[np.arange(len(y)), last] = y[np.arange(len(y)), last]
                    yield x, keep
            dev = _batches_dataset(dev_batches, -(-len(dev_rows) // 256))
        return _batches_dataset(train, count), dev, count

    def loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)

    # -- inference ------------------------------------------------------------------------------
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
        v = self.config.model.num_items + 1
        states = [InputSpec(t.name, "state", ("batch", int(t.shape[-1])))
                  for t in step.inputs[1:]]
        items = InputSpec("items", "tokens", ("batch", "time"), "int32", v)
        item = InputSpec("item", "tokens", ("batch",), "int32", v)
        return [
            GraphSpec("model", MODEL_FILE, scorer, [items, *states], score_outputs),
            GraphSpec("decoder", DECODER_FILE, step, [item, *states], step_outputs,
                      sizes=({"batch": 1}, {"batch": 6}, {"batch": 2})),
        ]

    def _export_preprocessing(self) -> dict:
        return {"items": f"assets/{ASSET_FILE}", "max_length": self.config.data.max_length,
                "num_items": self.config.model.num_items, "padding_id": 0}

    def _stream_manifest(self) -> dict:
        """Facts for ``bundle.json``'s ``stream``: inputs are model indices into the catalogue
        (``items.json``'s ``ids``, index ``i + 1`` is ``ids[i]``); 0 is padding, never fed."""
        note = ("feed model indices: index i + 1 is the item ids[i] of the vocabulary file; "
                "index 0 is padding (never recommended)")
        return {graph: {"symbols": {"input": feed, "output": "logits",
                                    "count": self.preprocessor.size,
                                    "vocabulary": f"assets/{ASSET_FILE}", "key": "ids",
                                    "note": note}}
                for graph, feed in (("model", "items"), ("decoder", "item"))}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """NDCG@10 of both on the first ``INT8_USERS`` users of ``eval_data``'s dev split (else
        on histories drawn from the catalogue), and how many top-10 lists differ."""
        if eval_data is not None:
            split = self.load_data(eval_data, self.config.training.seed).split("dev")
            histories = [h.tolist() for h in split.histories[:INT8_USERS]]
            targets = split.targets[:INT8_USERS].tolist()
        else:
            rng = np.random.default_rng(0)
            ids = self.preprocessor.ids
            histories = [rng.choice(ids, size=int(rng.integers(2, 30))).tolist()
                         for _ in range(64)]
            targets = rng.choice(ids, size=64).tolist()
        a = reference.evaluate(histories, targets, sampled=False)["ndcg@10"]
        b = candidate.evaluate(histories, targets, sampled=False)["ndcg@10"]
        probe = histories[:50]
        differ = sum(x["items"] != y["items"] for x, y in
                     zip(reference.recommend(probe), candidate.recommend(probe)))
        return {"users": len(histories), "ndcg@10_fp32": a, "ndcg@10_int8": b,
                "top10_lists_changed": differ,
                "summary": f"NDCG@10 fp32 {a:.4f} -> int8 {b:.4f} on {len(histories)} users; "
                           f"{differ} of {len(probe)} top-10 lists changed"}

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when its NDCG@10 is at most 0.005 (absolute) below fp32's."""
        a, b = comparison.get("ndcg@10_fp32"), comparison.get("ndcg@10_int8")
        allowed = cli.INT8_TOLERANCE["absolute"]
        if a is None or b is None or a - b > allowed:
            return f"int8 NDCG@10 more than {allowed} below fp32's"
        return None


TASK_CLASS = RecommendationTask
