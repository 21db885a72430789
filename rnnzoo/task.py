"""The contract between the shared machinery (training loop, CLI, exporter, runtime) and a model.

Three layers, as in keras-hub (a task base such as ``TextClassifier``; a family supplies its
backbone and preprocessor):

* :class:`Task` (here): what every zoo model has (config, preprocessor, Keras model, saving) and
  the list of hooks the training loop and the exporter call, each documented once below.
* an application (``rnnzoo/apps/<task>/model.py``) subclasses it and implements the task's
  hooks: data, loss, metrics, export graphs. Its user calls live in ``inference.py`` (shared
  with its runtime class) and its CLI verb, reports and harness examples in ``cli.py``.
* a family (``rnnzoo/families/<family>.py``) subclasses the task type and implements
  ``build_model`` (and its preprocessor where the task type's is not enough).

Nothing here imports TensorFlow at module level.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from rnnzoo.config import EntryConfig, validate_config
from rnnzoo.errors import ConfigError, RunDirError
from rnnzoo.io import (
    atomic_directory,
    atomic_write_text,
    check_removable_preset_dir,
    check_removable_run_dir,
    ensure_directory,
)
from rnnzoo.saving import (
    ASSETS_DIR,
    CONFIG_FILE,
    WEIGHTS_FILE,
    atomic_save_weights,
    write_checksums,
)

Direction = Literal["max", "min"]


class Task(abc.ABC):
    """A zoo model: ``.model`` (Keras, built on first use), ``.preprocessor``, ``.config``.

    Class attributes a task type sets:

    * ``task_type``: the ``task:`` key of its entries (``"translation"``).
    * ``metric_directions``: ``{"accuracy": "max", "loss": "min", ...}`` for every metric the
      training loop may monitor (``val_`` prefixes are stripped); checkpoints and early
      stopping follow it, so a ``val_bleu`` monitor keeps the best epoch, not the worst.
    """

    task_type: ClassVar[str] = ""
    #: False for task types whose inputs are fixed-length windows (forecasting): post-padding
    #: is not a valid input there, so the padding-invariance test does not apply.
    variable_length: ClassVar[bool] = True
    metric_directions: ClassVar[dict[str, Direction]] = {"loss": "min"}
    # Output layers a fine-tuning run re-initialises when the labels change.
    head_layers: ClassVar[tuple[str, ...]] = ()
    #: The config key that counts the head's named outputs (``num_classes``, ``num_tags``), set
    #: by ``with_new_head(labels=...)``; None where the outputs have no names to give.
    label_count_key: ClassVar[str | None] = None

    def __init__(self, config: EntryConfig, preprocessor: Any = None) -> None:
        self.config = config
        self.preprocessor = preprocessor if preprocessor is not None else self.new_preprocessor()
        self._model = None
        # Layers kept frozen when the training loop builds the model (fine-tuning a head).
        self.frozen_layers: frozenset[str] = frozenset()

    # -- family hooks ------------------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self) -> Any:
        """Build the Keras training model from ``self.config`` (under the caller's strategy
        scope and dtype policy)."""

    # -- task-type hooks: preprocessing and artifacts ---------------------------------------
    @abc.abstractmethod
    def new_preprocessor(self) -> Any:
        """A fresh (unfitted) preprocessor for this config."""

    @abc.abstractmethod
    def save_assets(self, directory: Path) -> None:
        """Write the preprocessor's files (tokenizer JSON, labels) into ``directory``."""

    @classmethod
    @abc.abstractmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> Any:
        """Read what ``save_assets`` wrote."""

    @property
    def is_fitted(self) -> bool:
        """Whether the preprocessor has its vocabulary/labels (it is adapted to data)."""
        return bool(getattr(self.preprocessor, "is_fitted", True))

    # -- task-type hooks: data and training -------------------------------------------------
    @abc.abstractmethod
    def load_data(self, path: str | os.PathLike, seed: int) -> Any:
        """Read a dataset (file or folder, layout detected) into the task's data object: it
        has ``num_train``, ``num_dev``, ``description`` and ``split(name)``."""

    @abc.abstractmethod
    def adapt(self, data: Any) -> None:
        """Fit the preprocessor on the training split (unless fitted, as when fine-tuning)."""

    @abc.abstractmethod
    def datasets(self, data: Any, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        """``(train tf.data, dev tf.data or None, train steps per epoch)``."""

    @abc.abstractmethod
    def loss(self) -> Any:
        """The Keras loss."""

    def metrics(self) -> list:
        """Keras metrics compiled into training (named in ``metric_directions``)."""
        return []

    def fit(self, train: Any, dev: Any, epochs: int, callbacks: list, verbose: Any) -> Any:
        """Run training; the default is Keras ``fit``. A non-gradient family (a closed-form
        readout) overrides this and keeps the run directory, checkpoints and reports."""
        return self.model.fit(train, validation_data=dev, epochs=epochs, callbacks=callbacks,
                              verbose=verbose, shuffle=False)

    @abc.abstractmethod
    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[Any, Any]:
        """Random ``(inputs, targets)`` for ``self.model`` (post-padded, with a full-length and a
        length-1 row): the lifecycle harness trains and round-trips every entry on it."""

    def limit_data(self, data: Any, limit: int, seed: int = 0) -> Any:
        """At most ``limit`` examples in each split (``train``, ``dev``, ``test``), a seeded
        sample kept in file order: ``rnnzoo train --limit N`` for quick trials. The default
        handles dataclass data objects whose per-split lists are named ``<split>`` or
        ``<split>_*`` (``train_texts``, ``train_labels``); other layouts override it."""
        if not dataclasses.is_dataclass(data):
            raise ConfigError(f"limit: {self.task_type} data cannot be cut to N examples "
                              "(its task type does not implement limit_data)")
        names = [f.name for f in dataclasses.fields(data)]
        changes: dict[str, Any] = {}
        rng = np.random.default_rng(seed)
        for split in ("train", "dev", "test"):
            group = [n for n in names if n == split or n.startswith(f"{split}_")]
            lists = [getattr(data, n) for n in group if isinstance(getattr(data, n), list)]
            if not lists or len(lists[0]) <= limit:
                continue
            size = len(lists[0])
            keep = np.sort(rng.choice(size, limit, replace=False))
            for n in group:
                value = getattr(data, n)
                if isinstance(value, list) and len(value) == size:
                    changes[n] = [value[i] for i in keep]
        if not changes:
            return data
        if isinstance(getattr(data, "description", None), str):
            changes["description"] = f"{data.description} (at most {limit} examples per split)"
        return dataclasses.replace(data, **changes)

    # -- task-type hooks: export and runtime --------------------------------------------------
    @abc.abstractmethod
    def _graph_specs(self) -> list[Any]:
        """The graphs to export (``rnnzoo.export.specs.GraphSpec``): one model, or an encoder
        and a one-step decoder. The Keras decoding engine runs the same specs."""

    @abc.abstractmethod
    def _export_preprocessing(self) -> dict:
        """What the runtime needs besides the graphs (asset names, max length, ...)."""

    @abc.abstractmethod
    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much a candidate bundle (int8) changes results against a reference (fp32), on
        the task's metric when ``eval_data`` is given; has a ``summary`` line."""

    def _calibration_run(self, runtime: Any, eval_data: Any = None) -> bool:
        """Run ``runtime`` (the fp32 bundle) on representative inputs so that the exporter can
        quantize the graphs it feeds statically (int8 activations with ranges calibrated on
        those feeds; onnxruntime's integer convolutions only pay off that way). False, the
        default: dynamic int8, which needs no data."""
        return False

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """Why an int8 bundle, compared with ``_compare_runtimes``, is not good enough to ship
        inside a preset (None: ship it). The default ships fp32 only: a task type opts in
        with its own rule on its own metric."""
        return f"no int8 acceptance rule for {self.task_type} models (fp32 only)"

    # -- shared behaviour ---------------------------------------------------------------------
    @classmethod
    def metric_direction(cls, monitor: str) -> Direction:
        """``"max"`` or ``"min"`` for a monitored metric (``val_`` prefix allowed)."""
        name = monitor[4:] if monitor.startswith("val_") else monitor
        if name not in cls.metric_directions:
            raise ConfigError(
                f"training.monitor: {monitor!r} is not a metric of {cls.task_type} models; "
                f"expected one of {', '.join(sorted(cls.metric_directions))} (optionally "
                "with the val_ prefix)"
            )
        return cls.metric_directions[name]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def model(self) -> Any:
        if self._model is None:
            from rnnzoo.extras import import_tensorflow

            import_tensorflow(f"building the Keras model of {self.name!r}")  # quietly
            # A config changed in code (dataclasses.replace) skipped the checks of
            # build_section: check it here, before Keras fails on it with a traceback.
            for section in ("model", "data", "training"):
                validate_config(getattr(self.config, section), f"{self.name}: {section}")
            try:
                self._model = self.build_model()
            except Exception as exc:  # noqa: BLE001 - only memory exhaustion is translated
                problem = out_of_memory(exc)
                if problem is None:
                    raise
                raise ConfigError(f"{self.name}: the model does not fit in memory ({problem}); "
                                  "make it smaller (units, vocab_size, embedding_dim, "
                                  "num_layers)") from None
        return self._model

    @property
    def is_built(self) -> bool:
        return self._model is not None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} family={self.config.family!r}>"

    def require_fitted(self) -> None:
        if not self.is_fitted:
            raise RunDirError(
                f"{self.name!r} has no vocabulary yet: train it (rnnzoo.train) or load a trained "
                "run/preset (rnnzoo.load)"
            )

    def keras_graphs(self) -> KerasGraphs:
        """The task's graphs as compiled Keras functions, with the runtime's ``run`` API: one
        decoding engine drives both backends."""
        cached = getattr(self, "_keras_graphs", None)
        if cached is None or cached[0] is not self.model:  # rebuilt models get new graphs
            self._keras_graphs = (self.model, KerasGraphs(self._graph_specs()))
        return self._keras_graphs[1]

    def head_overrides(self, data: Any) -> dict[str, Any]:
        """What fine-tuning on ``data`` must change (e.g. ``labels=`` the data's class names,
        a fresh head, when they differ from the model's); nothing by default."""
        return {}

    def head_labels(self) -> list[str] | None:
        """The names of the head's outputs (class names, tags); None where they have none."""
        return None

    def _preprocessor_for_head(self, config: EntryConfig, labels: list[str] | None,
                               fresh: bool) -> Any:
        """The preprocessor of a ``with_new_head`` copy with ``config``: ``labels`` (or
        placeholders when the head is ``fresh`` or resized) as its output names. The default
        shares this task's (the task type has no output names)."""
        return self.preprocessor

    def with_new_head(self, freeze_backbone: bool = False, reset_head: bool = False,
                      labels: Sequence[str] | None = None, **overrides: Any) -> Task:
        """A copy for fine-tuning: ``overrides`` change the config (``num_classes=5``), every
        layer whose weights still fit keeps them, the others (the new head, and the task's
        ``head_layers`` with ``reset_head``) start fresh. ``freeze_backbone=True`` trains only
        the fresh layers.

        ``labels`` names the new head's outputs (class names, tags; their count sets
        ``num_classes``/``num_tags``), and names other than the model's always get a fresh
        head: nothing is remapped silently. Without ``labels``, a resized or reset head is
        named by placeholders (``class_0``, ``class_1``, ...; taggers ``tag_0``, or
        ``B-type_0``-style tags under a chunk scheme) until training on data sets the data's
        names; the copy predicts either way. This task is left unchanged."""
        from rnnzoo.registry import task_from_config

        self.require_fitted()
        if labels is not None:
            if self.label_count_key is None:
                raise ConfigError(f"labels: {type(self).__name__} outputs have no names to set")
            labels = _label_names(labels)
            overrides = {self.label_count_key: len(labels), **overrides}
            reset_head = reset_head or labels != self.head_labels()
        config = self.config.with_overrides(**overrides) if overrides else self.config
        resized = self.label_count_key is not None and getattr(
            config.model, self.label_count_key) != getattr(self.config.model,
                                                           self.label_count_key)
        new = task_from_config(config, self._preprocessor_for_head(
            config, labels, reset_head or resized))
        fresh, partly = [], {}
        old_layers = {layer.name: layer for layer in self.model.layers}
        for layer in new.model.layers:
            old = old_layers.get(layer.name)
            shapes = [tuple(w.shape) for w in layer.get_weights()]
            keep = not (reset_head and layer.name in self.head_layers)
            if keep and old is not None and shapes == [tuple(w.shape)
                                                       for w in old.get_weights()]:
                layer.set_weights(old.get_weights())
            elif shapes:
                fresh.append(layer.name)
                kept = _keep_matching_variables(old, layer) if keep and old is not None else 0
                if kept:
                    partly[layer.name] = (kept, len(shapes))
        if freeze_backbone:
            if not fresh:
                raise ConfigError("freeze_backbone: no new layer to train (the config change "
                                  "keeps every layer's shape); give e.g. num_classes=")
            new.frozen_layers = frozenset(
                layer.name for layer in new.model.layers
                if layer.name not in fresh and layer.get_weights())
        new.new_head_layers = fresh
        new.kept_weights = partly  # layer -> (weights kept, weights), for the fine-tuning note
        return new

    def write_artifacts(self, directory: Path, weights: bool = True) -> None:
        """Write config, assets (and weights) into an existing directory, file by file."""
        ensure_directory(directory)
        atomic_write_text(
            directory / CONFIG_FILE, json.dumps(self.config.to_dict(), indent=2) + "\n"
        )
        self.save_assets(directory / ASSETS_DIR)
        if weights:
            atomic_save_weights(self.model, directory / WEIGHTS_FILE)

    def save(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Save config, weights and assets to a new directory (written whole, then renamed).
        ``overwrite`` replaces only a saved model, run or preset directory, never a folder
        holding anything else."""
        def fill(tmp: Path) -> None:
            self.write_artifacts(tmp)
            write_checksums(tmp)

        return atomic_directory(Path(directory), fill, overwrite, RunDirError,
                                removable=check_removable_model_dir)


def _keep_matching_variables(old: Any, layer: Any) -> int:
    """Copy into ``layer`` the variables of ``old`` with the same path (below the layer) and
    shape, and count them: a recurrent stack grown from 2 to 3 layers (``num_layers=3``) keeps
    its trained first two and only the third starts fresh."""
    def below(variable: Any) -> str:
        return variable.path.split("/", 1)[-1]

    olds = {below(v): v for v in old.weights}
    kept = 0
    for v in layer.weights:
        match = olds.get(below(v))
        if match is not None and tuple(match.shape) == tuple(v.shape):
            v.assign(match.numpy())
            kept += 1
    return kept


def placeholder_labels(count: int, prefix: str = "class") -> list[str]:
    """``class_0``, ``class_1``, ...: the names of a new head's outputs before training on data
    gives them the data's names."""
    return [f"{prefix}_{i}" for i in range(count)]


def _label_names(labels: Any) -> list[str]:
    """``labels`` as a list of distinct non-empty strings, or a ``ConfigError`` saying why not."""
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise ConfigError(f"labels: expected a list of names, found {labels!r}"[:200])
    names = list(labels)
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise ConfigError(f"labels: expected non-empty strings, found {bad[0]!r}")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"labels: each name once; {', '.join(twice)} given twice")
    return names


_OOM = re.compile(r"OOM when allocating tensor with shape\s*\[[^\]]*\]")


def out_of_memory(exc: BaseException) -> str | None:
    """A short description when ``exc`` is memory exhaustion (``MemoryError``, TensorFlow's
    ``ResourceExhaustedError``), else None: a model or batch too large for the machine is a
    configuration problem to report in one line, not a traceback."""
    if isinstance(exc, MemoryError):
        return "out of memory"
    if type(exc).__name__ != "ResourceExhaustedError":
        return None
    found = _OOM.search(str(exc))
    return found.group(0) if found else "out of memory"


def check_removable_model_dir(path: Path) -> None:
    """Raise ``RunDirError`` unless ``path`` is a saved model, a run or a preset directory
    (what ``Task.save(overwrite=True)`` may replace)."""
    try:
        check_removable_run_dir(path, RunDirError)
    except RunDirError:
        try:
            check_removable_preset_dir(path, RunDirError)
        except RunDirError:
            pass
        else:
            return
        raise


class KerasGraphs:
    """Graph specs run by Keras, behind the same ``run(graph, feeds) -> outputs`` call as an
    onnxruntime bundle, so one decoding engine drives both. Each graph is traced once with a
    fixed signature (retracing per call would dominate decoding time)."""

    def __init__(self, specs: Sequence[Any]) -> None:
        self.specs = {s.name: s for s in specs}
        self._fns: dict[str, Any] = {}

    def input_names(self, graph: str) -> list[str]:
        return self.specs[graph].input_names

    def output_names(self, graph: str) -> list[str]:
        return list(self.specs[graph].outputs)

    def _function(self, graph: str) -> Any:
        if graph not in self._fns:
            import tensorflow as tf

            spec = self.specs[graph]
            model = spec.fn
            sig = [tf.TensorSpec([None if isinstance(d, str) else d for d in i.shape],
                                 i.dtype, name=i.name) for i in spec.inputs]
            single = len(sig) == 1
            self._fns[graph] = tf.function(
                lambda *xs: model(xs[0] if single else list(xs), training=False),
                input_signature=sig)
        return self._fns[graph]

    def run(self, graph: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self.specs[graph]
        result = self._function(graph)(*[feeds[n] for n in spec.input_names])
        if not isinstance(result, (list, tuple)):
            result = [result]
        return {n: np.asarray(v) for n, v in zip(spec.outputs, result)}
