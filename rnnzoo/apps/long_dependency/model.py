"""Long-dependency problems, the Keras side (``TASK_CLASS``): the task the ``memory`` family
builds on (features ``[B, T, F]`` -> ``y``: a sum for adding, per-step digit probabilities for
copy). ``solve``/``evaluate`` are the TF-free calls of ``inference.py``, run here over the Keras
graph. TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.long_dependency.data import (
    ASSET_FILE,
    COPY_CLASSES,
    FEATURES,
    GENERATORS,
    LongDependencyData,
    LongDependencyPreprocessor,
    check_problem,
    features,
    load_long_dependency,
)
from rnnzoo.apps.long_dependency.inference import STEP_FILE, STREAM_GRAPH, _Solver, no_stream
from rnnzoo.config import EntryConfig
from rnnzoo.engines.ctc import NotStreamableError
from rnnzoo.errors import RunDirError, short_repr
from rnnzoo.export.bundle import MODEL_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text, read_json
from rnnzoo.task import Task


class LongDependencyTask(_Solver, Task):
    """Keras side of a long-dependency model; a family adds ``build_model``."""

    task_type = "long-dependency"
    metric_directions = {"loss": "min", "mse": "min", "accuracy": "max"}

    @property
    def num_features(self) -> int:
        return FEATURES[self.config.data.problem]

    def new_preprocessor(self) -> LongDependencyPreprocessor:
        return LongDependencyPreprocessor(self.config.data.problem)

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / ASSET_FILE, json.dumps(
            {"problem": self.preprocessor.problem}) + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> LongDependencyPreprocessor:
        path = directory / ASSET_FILE
        info = read_json(path, RunDirError, "re-train or re-save the model")
        if not isinstance(info, dict) or info.get("problem") != config.data.problem:
            raise RunDirError(f"{path}: expected problem {config.data.problem!r} (the config's), "
                              f"found {short_repr(info)}")
        return LongDependencyPreprocessor(config.data.problem)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        problem = self.config.data.problem
        x, y = GENERATORS[problem](batch_size, 9, seed)
        x = features(problem, x)
        if batch_size > 1:  # post-padded: row 1 keeps its first two steps (zero frames after)
            x[1, 2:] = 0.0
        return x, (y if problem == "adding" else y.astype(np.int32))

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> LongDependencyData:
        return load_long_dependency(path)

    def adapt(self, data: LongDependencyData) -> None:
        check_problem(data, self.config.data.problem, self.name)

    def limit_data(self, data: LongDependencyData, limit: int, seed: int = 0
                   ) -> LongDependencyData:
        """At most ``limit`` sequences per split (a seeded sample, in order)."""
        rng = np.random.default_rng(seed)

        def cut(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if len(x) <= limit:
                return x, y
            keep = np.sort(rng.choice(len(x), limit, replace=False))
            return x[keep], y[keep]

        (xt, yt), (xd, yd) = cut(data.x_train, data.y_train), cut(data.x_dev, data.y_dev)
        return dataclasses.replace(data, x_train=xt, y_train=yt, x_dev=xd, y_dev=yd,
                                   description=f"{data.description} (at most {limit} per split)")

    def datasets(self, data: LongDependencyData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        import tensorflow as tf

        problem = data.problem

        def make(x: np.ndarray, y: np.ndarray, shuffle: bool) -> Any:
            y = y.astype(np.float32 if problem == "adding" else np.int32)
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            if shuffle:
                ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            ds = ds.batch(batch_size)
            if problem == "copy":  # digits stay int8 in memory; one-hot per batch
                ds = ds.map(lambda a, b: (tf.one_hot(tf.cast(a, tf.int32), COPY_CLASSES), b))
            options = tf.data.Options()
            options.autotune.enabled = False
            options.deterministic = True
            return ds.prefetch(2).with_options(options)

        dev = make(data.x_dev, data.y_dev, False) if data.num_dev else None
        return (make(data.x_train, data.y_train, True), dev,
                math.ceil(data.num_train / batch_size))

    def loss(self) -> Any:
        import keras

        if self.config.data.problem == "adding":
            return keras.losses.MeanSquaredError()
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self) -> list:
        return [] if self.config.data.problem == "adding" else ["accuracy"]

    # -- inference and evaluation ---------------------------------------------------------------
    def _outputs(self, feats: np.ndarray) -> np.ndarray:
        return self.keras_graphs().run("model", {"x": feats})["y"]

    # -- streaming ------------------------------------------------------------------------------
    # Whether ``stream_graph`` gives a graph (read from the config alone: no model is built).
    streams: bool = False

    def stream_graph(self) -> tuple[Any, list[str]] | None:
        """``(Keras model, output names)`` of the exported ``step`` graph (``x`` and
        ``state_<i>`` -> ``y`` and ``new_state_<i>``); None (the default) where the output
        reads the whole sequence at once."""
        return None

    def _stream_graph(self) -> tuple[Any, dict[str, int]]:
        graphs = self.keras_graphs()
        spec = graphs.specs.get(STREAM_GRAPH)
        if spec is None:
            raise NotStreamableError(no_stream(self.name))
        widths = {i.name: int(i.shape[1]) for i in spec.inputs if i.kind == "state"}
        return lambda feeds: graphs.run(STREAM_GRAPH, feeds), widths

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
        x = InputSpec("x", "features", ("batch", "time", self.num_features))
        specs = [GraphSpec("model", MODEL_FILE, self.model, [x], ["y"])]
        stream = self.stream_graph()
        if stream is not None:
            fn, outputs = stream
            states = [InputSpec(t.name, "state", ("batch", int(t.shape[-1])))
                      for t in fn.inputs[1:]]
            specs.append(GraphSpec(STREAM_GRAPH, STEP_FILE, fn, [x, *states], outputs))
        return specs

    def _export_preprocessing(self) -> dict:
        return {"problem": self.config.data.problem, "features": self.num_features}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes the outputs on generated inputs (T=50), and the problem's loss
        on ``eval_data``'s dev split when given."""
        x, y = GENERATORS[self.problem](64, 50, 7)
        drift = float(np.abs(reference.predict_raw(x) - candidate.predict_raw(x)).max())
        out: dict[str, Any] = {"max_output_drift": drift}
        summary = f"max output drift {drift:.4g} on 64 generated sequences"
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            xd, yd = data.split("dev")
            a, b = reference.score(xd, yd), candidate.score(xd, yd)
            out.update(loss_fp32=a["loss"], loss_int8=b["loss"])
            summary += f"; loss fp32 {a['loss']:.4g} -> int8 {b['loss']:.4g}"
        out["summary"] = summary
        return out


TASK_CLASS = LongDependencyTask
