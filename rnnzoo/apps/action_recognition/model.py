"""Action recognition, the Keras side (``TASK_CLASS``): the task a skeleton family builds on.

The model maps skeleton features ``features [B, T, F]`` (``data.skeleton_features``,
standardised with the training set's mean and deviation) and a 0/1 frame ``mask [B, T]`` to
``probs [B, num_classes]``. Training batches are drawn afresh every epoch, so the augmentation
(a turn about the vertical axis, a per-axis stretch, another pace and build, joint jitter) gives new
copies each time; batches hold sequences of similar length. TensorFlow is imported inside
functions only.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps._classification import (
    NamedClassesHead,
    accuracy_int8_rule,
    classifier_comparison,
)
from rnnzoo.apps.action_recognition.data import (
    ACTIONS,
    ASSET_FILE,
    ActionData,
    SkeletonPreprocessor,
    load_action_data,
)
from rnnzoo.apps.action_recognition.inference import _ActionClassifier
from rnnzoo.config import EntryConfig
from rnnzoo.errors import DataError, RunDirError
from rnnzoo.export.bundle import MODEL_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec, random_lengths
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task, placeholder_labels

DEV_BATCH = 64


def _dataset(make: Any, count: int, features: int) -> Any:
    """A tf.data dataset of the ``count`` ``((features, mask), labels)`` batches of
    ``make()``, called once per pass so each epoch draws new augmented copies."""
    import tensorflow as tf

    spec = ((tf.TensorSpec([None, None, features], tf.float32),
             tf.TensorSpec([None, None], tf.float32)), tf.TensorSpec([None], tf.int32))
    ds = tf.data.Dataset.from_generator(make, output_signature=spec)
    ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    options = tf.data.Options()
    options.deterministic = True
    return ds.prefetch(2).with_options(options)


class ActionRecognitionTask(NamedClassesHead, _ActionClassifier, Task):
    """Keras side of a skeleton action classifier; a family adds ``build_model`` (inputs
    ``features`` and ``mask``, output ``probs``)."""

    task_type = "action-recognition"
    metric_directions = {"loss": "min", "accuracy": "max"}
    head_layers = ("probs",)
    label_count_key = "num_classes"

    def new_preprocessor(self) -> SkeletonPreprocessor:
        n = self.config.model.num_classes
        names = list(ACTIONS) if n == len(ACTIONS) else placeholder_labels(n)
        d = self.config.data
        return SkeletonPreprocessor(names, d.max_frames, d.velocities, smooth=d.smooth,
                                    align=d.align, arms=d.arms)

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / ASSET_FILE, self.preprocessor.to_json() + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> SkeletonPreprocessor:
        pre = SkeletonPreprocessor.from_file(directory / ASSET_FILE, RunDirError)
        if len(pre.label_names) != config.model.num_classes:
            raise RunDirError(f"{directory / ASSET_FILE}: {len(pre.label_names)} class names, "
                              f"but the model has num_classes={config.model.num_classes}")
        return pre

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[Any, np.ndarray]:
        rng = np.random.default_rng(seed)
        time = 12
        lengths = random_lengths(rng, batch_size, time)
        mask = (np.arange(time)[None, :] < lengths[:, None]).astype(np.float32)
        x = rng.normal(0, 1, (batch_size, time, self.preprocessor.num_features))
        x = (x * mask[..., None]).astype(np.float32)
        return (x, mask), rng.integers(0, self.config.model.num_classes, size=batch_size)

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> ActionData:
        return load_action_data(path, self.config.data)

    def adapt(self, data: ActionData) -> None:
        """Check the classes and fit the features' mean and deviation on the training split
        (unless fitted, as when fine-tuning)."""
        n = self.config.model.num_classes
        if len(data.label_names) != n:
            raise DataError(f"{data.description}: {len(data.label_names)} actions, but "
                            f"{self.name!r} is configured for num_classes={n}; pass --set "
                            f"num_classes={len(data.label_names)}")
        if not data.train_sequences:
            raise DataError(f"{data.description}: no training sequences (every subject is in "
                            "dev_subjects?)")
        pre = self.preprocessor
        pre.label_names = list(data.label_names)
        if not pre.is_fitted:
            pre.fit(data.train_sequences)

    def datasets(self, data: ActionData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        pre, cfg = self.preprocessor, self.config.data
        seqs, labels = data.train_sequences, np.asarray(data.train_labels, np.int32)
        plain = [pre.features(s) for s in seqs]
        count = -(-len(seqs) // batch_size)
        epoch = [0]

        def train() -> Any:
            epoch[0] += 1
            rng = np.random.default_rng([seed, epoch[0]])
            if cfg.rotate_degrees or cfg.stretch or cfg.time_warp or cfg.jitter or cfg.build:
                feats = [pre.features(s, rng, cfg.rotate_degrees, cfg.stretch, cfg.time_warp,
                                      cfg.jitter, cfg.build) for s in seqs]
            else:
                feats = plain
            # similar lengths together (ties shuffled), the batches in random order
            order = np.lexsort((rng.permutation(len(feats)), [len(f) for f in feats]))
            batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
            for k in rng.permutation(len(batches)):
                idx = batches[k]
                yield (*pre.batch([feats[i] for i in idx]),), labels[idx]

        dev = None
        if data.dev_sequences:
            dev_feats = [pre.features(s) for s in data.dev_sequences]
            dev_labels = np.asarray(data.dev_labels, np.int32)
            order = np.argsort([len(f) for f in dev_feats], kind="stable")

            def dev_batches() -> Any:
                for i in range(0, len(order), DEV_BATCH):
                    idx = order[i:i + DEV_BATCH]
                    yield (*pre.batch([dev_feats[j] for j in idx]),), dev_labels[idx]

            dev = _dataset(dev_batches, -(-len(order) // DEV_BATCH), pre.num_features)
        return _dataset(train, count, pre.num_features), dev, count

    def loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self) -> list:
        return ["accuracy"]

    # -- inference ------------------------------------------------------------------------------
    def _probs_of(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.require_fitted()
        return self.keras_graphs().run("model", {"features": features, "mask": mask})["probs"]

    def _preprocessor_for_head(self, config: EntryConfig, labels: list[str] | None,
                               fresh: bool) -> SkeletonPreprocessor:
        """The same features and statistics, under the copy's class names."""
        pre = copy.copy(self.preprocessor)
        pre.label_names = self.head_class_names(config.model.num_classes, labels, fresh)
        return pre

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
        features = InputSpec("features", "features",
                             ("batch", "time", self.preprocessor.num_features))
        mask = InputSpec("mask", "mask", ("batch", "time"))
        return [GraphSpec("model", MODEL_FILE, self.model, [features, mask], ["probs"])]

    def _export_preprocessing(self) -> dict:
        pre = self.preprocessor
        return {"skeleton": f"assets/{ASSET_FILE}", "max_frames": pre.max_frames,
                "features": pre.num_features, "num_classes": len(pre.label_names)}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes predictions: argmax agreement and the largest probability
        drift on random sequences, and accuracy on ``eval_data``'s dev split when given."""
        rng = np.random.default_rng(1)
        base = rng.normal(0, 0.3, (20, 3)) + [0.0, 0.0, 2.7]
        seqs = [base + np.cumsum(rng.normal(0, 0.02, (n, 20, 3)), axis=0)
                for n in rng.integers(5, 60, size=32)]
        return classifier_comparison(self, reference, candidate,
                                     reference.probs_of_sequences(seqs),
                                     candidate.probs_of_sequences(seqs), eval_data, "sequences")

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when it loses at most half a point of accuracy on the evaluation data
        (or, without data, agrees with fp32 on every random sequence)."""
        return accuracy_int8_rule(comparison, 1.0)


TASK_CLASS = ActionRecognitionTask
