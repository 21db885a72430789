"""Forecasting, the Keras side (``TASK_CLASS``): the task the forecaster and echo-state families
build on. A family's model maps ``window`` [batch, time, columns] (z-scored) to ``forecast``
[batch, horizon, targets]; training reads shuffled windows of the train split under MSE.
``forecast``/``evaluate`` are the TF-free calls of ``inference.py``, run here over the Keras
graph. TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.forecasting.data import (
    ASSET_FILE,
    ForecastData,
    ForecastPreprocessor,
    column_names,
    forecast_metrics,
    load_forecast_data,
    windows,
)
from rnnzoo.apps.forecasting.inference import STEP_FILE, STREAM_GRAPH, _Forecaster, no_stream
from rnnzoo.config import EntryConfig
from rnnzoo.errors import ConfigError, DataError, RunDirError
from rnnzoo.export.bundle import MODEL_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task


class ForecastingTask(_Forecaster, Task):
    """Keras side of a forecaster; a family adds ``build_model`` (input ``window`` [batch,
    time, columns], output ``forecast`` [batch, horizon, targets])."""

    task_type = "forecasting"
    variable_length = False  # windows of exactly `lookback` rows
    metric_directions = {"loss": "min", "mae": "min", "mse": "min", "nrmse": "min"}
    head_layers = ("forecast",)

    def new_preprocessor(self) -> ForecastPreprocessor:
        d = self.config.data
        targets = [] if d.target.strip().lower() == "all" else column_names(d.target)
        feats = d.features.strip()
        columns = list(targets)
        if feats and feats.lower() != "all":
            columns += [c for c in column_names(feats) if c not in columns]
        elif feats.lower() == "all":
            columns = []
        return ForecastPreprocessor(columns, targets, d.lookback, d.horizon,
                                    date_column=d.date_column)

    def save_assets(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / ASSET_FILE, self.preprocessor.to_json())

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> ForecastPreprocessor:
        pre = ForecastPreprocessor.from_json(directory / ASSET_FILE, RunDirError,
                                             "train the model again")
        if (pre.lookback, pre.horizon) != (config.data.lookback, config.data.horizon):
            raise RunDirError(f"{directory / ASSET_FILE}: lookback/horizon {pre.lookback}/"
                              f"{pre.horizon} differ from the config's "
                              f"{config.data.lookback}/{config.data.horizon}")
        return pre

    @property
    def num_inputs(self) -> int:
        cols = self.preprocessor.columns
        if not cols:
            raise RunDirError(f"{self.name}: the columns are read from the data ('all'); "
                              "train the model (or load a trained one) before building it")
        return len(cols)

    @property
    def num_targets(self) -> int:
        return len(self.preprocessor.targets) or self.num_inputs

    @property
    def target_index(self) -> list[int]:
        pre = self.preprocessor
        return pre.target_index if pre.targets else list(range(self.num_inputs))

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(batch_size, self.config.data.lookback, self.num_inputs))
        y = rng.normal(size=(batch_size, self.config.data.horizon, self.num_targets))
        return x.astype(np.float32), y.astype(np.float32)

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> ForecastData:
        pre = self.preprocessor
        if pre.is_fitted:
            return load_forecast_data(path, self.config.data, seed, pre.columns, pre.targets)
        return load_forecast_data(path, self.config.data, seed)

    def adapt(self, data: ForecastData) -> None:
        """Fit the scaling on the training split (unless fitted, as when fine-tuning: then the
        columns must be the model's)."""
        pre = self.preprocessor
        if pre.is_fitted:
            if data.columns != pre.columns or data.targets != pre.targets:
                raise DataError(f"{data.description}: columns {data.columns} -> "
                                f"{data.targets} differ from the model's {pre.columns} -> "
                                f"{pre.targets}")
            return
        pre.date_column = self.config.data.date_column
        pre.fit(data, self.config.data.scale)

    def scaled_windows(self, data: ForecastData, split: str) -> tuple[np.ndarray, np.ndarray]:
        values = self.preprocessor.scale(data.split(split))
        return windows(values, data.lookback, data.horizon, self.target_index)

    def datasets(self, data: ForecastData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        import tensorflow as tf

        x, y = self.scaled_windows(data, "train")
        if not len(x):
            raise DataError(f"{data.description}: no training window")
        train = (tf.data.Dataset.from_tensor_slices((np.ascontiguousarray(x),
                                                     np.ascontiguousarray(y)))
                 .shuffle(min(len(x), 20000), seed=seed, reshuffle_each_iteration=True)
                 .batch(batch_size, drop_remainder=fixed_length)
                 .prefetch(tf.data.AUTOTUNE))
        dev = None
        if data.num_dev:
            dx, dy = self.scaled_windows(data, "dev")
            dev = tf.data.Dataset.from_tensor_slices((np.ascontiguousarray(dx),
                                                      np.ascontiguousarray(dy))).batch(256)
        steps = len(x) // batch_size if fixed_length else -(-len(x) // batch_size)
        return train, dev, max(1, steps)

    def loss(self) -> Any:
        import keras

        return keras.losses.MeanSquaredError()

    def metrics(self) -> list:
        return ["mae"]

    # Whether ``stream_graph`` gives a graph (read from the config alone: no model is built).
    streams: bool = False

    def stream_graph(self) -> tuple[Any, list[str]] | None:
        """``(Keras model, output names)`` of the exported ``step`` graph: ``window`` (z-scored
        rows ``[batch, time, columns]``, one or more) and the recurrent states ``state_<i>``
        ``[batch, width]`` -> ``forecast`` after the last row and ``new_state_<i>``; the state
        goes on where the rows stop, so a series is fed one observation at a time. None (the
        default) where a forecast reads the whole window at once (per-window normalisation,
        an attention decoder over the window)."""
        return None

    # -- inference and evaluation ---------------------------------------------------------------
    def _predict_scaled(self, x: np.ndarray) -> np.ndarray:
        self.require_fitted()
        return self.keras_graphs().run("model", {"window": x})["forecast"]

    def _stream_graph(self) -> tuple[Callable[[dict], dict], dict[str, int]]:
        self.require_fitted()
        graphs = self.keras_graphs()
        spec = graphs.specs.get(STREAM_GRAPH)
        if spec is None:
            raise ConfigError(no_stream(self.name))
        widths = {i.name: int(i.shape[1]) for i in spec.inputs if i.kind == "state"}
        return lambda feeds: graphs.run(STREAM_GRAPH, feeds), widths

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
        window = InputSpec("window", "features", ("batch", "time", self.num_inputs))
        specs = [GraphSpec("model", MODEL_FILE, self.model, [window], ["forecast"])]
        stream = self.stream_graph()
        if stream is not None:
            fn, outputs = stream
            states = [InputSpec(t.name, "state", ("batch", int(t.shape[-1])))
                      for t in fn.inputs[1:]]
            specs.append(GraphSpec(STREAM_GRAPH, STEP_FILE, fn, [window, *states], outputs))
        return specs

    def _export_preprocessing(self) -> dict:
        return {"preprocessor": f"assets/{ASSET_FILE}", "lookback": self.lookback,
                "horizon": self.horizon, "num_inputs": self.num_inputs,
                "num_targets": self.num_targets}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes forecasts: max drift on random windows, and test MSE on
        ``eval_data`` when given."""
        rng = np.random.default_rng(1)
        x = rng.normal(size=(16, self.lookback, self.num_inputs)).astype(np.float32)
        drift = float(np.abs(reference.predict_scaled(x) - candidate.predict_scaled(x)).max())
        out: dict[str, Any] = {"random_windows": 16, "max_scaled_drift": drift}
        summary = f"max forecast drift {drift:.4f} (scaled units) on 16 random windows"
        if eval_data is not None:
            data = self.load_data(eval_data, seed=self.config.training.seed)
            split = "test" if data.num_windows("test") else "dev"
            xs, ys = self.scaled_windows(data, split)
            a = forecast_metrics(reference.predict_scaled(xs), ys)["mse"]
            b = forecast_metrics(candidate.predict_scaled(xs), ys)["mse"]
            out.update(eval_data=data.description, mse_fp32=a, mse_int8=b)
            summary += f"; {split} MSE fp32 {a:.4f} -> int8 {b:.4f}"
        out["summary"] = summary
        return out


TASK_CLASS = ForecastingTask
