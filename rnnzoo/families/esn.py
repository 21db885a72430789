"""Echo-state network (reservoir computing): a fixed random leaky-tanh reservoir and a linear
readout fitted in closed form (ridge regression), never by gradients.

The texts present echo-state networks as the answer to hard RNN training: the recurrent
weights stay random (sparse, rescaled to a spectral radius), only the readout is learned, and
that is a least-squares problem. Here the reservoir is a Keras layer
(``rnnzoo.layers.timeseries.Reservoir``) and the readout a Dense layer, so the run directory,
checkpoints, reports, presets, ONNX export (one fused ``GRU`` or ``RNN`` operator, see the
layer) and runtime are those of every other forecaster. Training goes through the task
contract's non-gradient ``fit`` hook:

1. run the reservoir over the whole (scaled) training series from a zero state,
2. drop the first ``washout`` states (they still remember the zero start),
3. solve ``W = (X'X + ridge I)^-1 X'Y`` on centred states ``X`` and the next ``horizon``
   values ``Y`` (bias from the means, not penalised: as reservoirpy's ``Ridge``),
4. write ``W`` and the bias into the readout; then Keras' ``fit`` runs the requested epochs
   with nothing trainable, which reports train/dev loss of the fitted readout through the
   usual callbacks (history, backup, checkpoints, early stopping).

At inference the reservoir starts from zero at the window's first row, so the window
(``lookback``) should be at least ``washout`` rows long (checked).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.apps.forecasting.data import DataConfig, ForecastData, windows
from rnnzoo.apps.forecasting.model import ForecastingTask
from rnnzoo.config import rule
from rnnzoo.errors import ConfigError, DataError
from rnnzoo.families.forecaster import synthetic_dataset as _series_csv

__all__ = ["DataConfig", "ModelConfig", "Task", "ridge_readout"]


@dataclasses.dataclass
class ModelConfig:
    units: int = rule(500, min=1)
    spectral_radius: float = rule(1.25, gt=0)
    leak_rate: float = rule(0.3, gt=0, max=1)
    input_scaling: float = rule(1.0, min=0)
    connectivity: float = rule(0.1, gt=0, max=1)
    input_connectivity: float = rule(0.1, gt=0, max=1)
    bias_scaling: float = rule(0.0, min=0)
    ridge: float = rule(1e-6, min=0)
    washout: int = rule(100, min=0)
    # "series": states of the continuous training series after the washout (reservoirpy's
    # protocol); "windows": the last state of every training window, the reservoir started
    # from zero at each, exactly as forecast(window) runs it (the washout is then unused).
    readout_fit: Literal["series", "windows"] = "series"
    reservoir_seed: int = rule(0, min=0, max=2**32 - 1)  # one seed, one fixed reservoir


def ridge_readout(states: np.ndarray, targets: np.ndarray, ridge: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge regression with an unpenalised bias: ``(W [units, outputs],
    b [outputs])`` minimising ``|X W + b - Y|^2 + ridge |W|^2``. Centring X and Y removes the
    bias from the penalty; float64 normal equations (the reservoir is a few hundred units)."""
    x = np.asarray(states, np.float64)
    y = np.asarray(targets, np.float64)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc + ridge * np.eye(x.shape[1])
    try:
        w = np.linalg.solve(gram, xc.T @ yc)
    except np.linalg.LinAlgError:
        w = np.linalg.lstsq(gram, xc.T @ yc, rcond=None)[0]
    return w, y_mean - x_mean @ w


class Task(ForecastingTask):
    """An echo-state forecaster: reservoir states -> ridge readout of the next steps."""

    streams = True  # the forecast is the readout of the reservoir's state

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers.timeseries import Reservoir

        m, d = self.config.model, self.config.data
        if m.readout_fit == "series" and m.washout > d.lookback:
            raise ConfigError(f"{self.name}: washout {m.washout} is longer than lookback "
                              f"{d.lookback}: forecasts would read states that still remember "
                              "the zero start; raise lookback or lower washout")
        n_out = self.num_targets
        window = keras.Input(shape=(None, self.num_inputs), dtype="float32", name="window")
        state = Reservoir(m.units, spectral_radius=m.spectral_radius, leak_rate=m.leak_rate,
                          input_scaling=m.input_scaling, connectivity=m.connectivity,
                          input_connectivity=m.input_connectivity, bias_scaling=m.bias_scaling,
                          seed=m.reservoir_seed, name="reservoir")(window)
        flat = keras.layers.Dense(d.horizon * n_out, dtype="float32", trainable=False,
                                  kernel_initializer="zeros", name="readout")(state)
        out = keras.layers.Reshape((d.horizon, n_out), name="forecast")(flat)
        return keras.Model(window, out, name=self.config.name)

    @property
    def reservoir(self) -> Any:
        return self.model.get_layer("reservoir")

    def stream_graph(self) -> tuple[Any, list[str]]:
        """The reservoir from a given state (``state_0``, its ``units`` values) over the rows,
        then the readout: the forecast after the last row and the state it leaves. The
        reservoir's recurrence is a GRU or simple RNN layer, whose output is its state."""
        model = self.model
        cached = getattr(self, "_stream", None)
        if cached is None or cached[0] is not model:
            import keras

            window = keras.Input((None, self.num_inputs), dtype="float32", name="window")
            state = keras.Input((self.config.model.units,), dtype="float32", name="state_0")
            states = self.reservoir.rnn(window, initial_state=[state])
            last = states[:, -1, :]
            out = model.get_layer("forecast")(model.get_layer("readout")(last))
            graph = keras.Model([window, state], [out, last], name="esn_step")
            self._stream = cached = (model, graph)
        return cached[1], ["forecast", "new_state_0"]

    def datasets(self, data: ForecastData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        # The readout is fitted on the continuous training series, not on windows.
        self._fit_series = self.preprocessor.scale(data.split("train"))
        return super().datasets(data, batch_size, seed, bucketing, fixed_length)

    def series_states(self, series: np.ndarray) -> np.ndarray:
        """Reservoir states [rows, units] over one scaled series [rows, columns], from zero."""
        import tensorflow as tf

        layer = self.reservoir
        cached = getattr(self, "_states_fn", None)
        if cached is None or cached[0] is not layer:  # eager Keras steps one op at a time
            fn = tf.function(lambda x: layer(x, return_sequences=True), reduce_retracing=True)
            self._states_fn = cached = (layer, fn)
        x = tf.constant(np.asarray(series, np.float32)[None])
        return np.asarray(cached[1](x))[0]

    def fit_readout(self, series: np.ndarray) -> dict[str, float]:
        """Fit the readout on a scaled series [rows, columns] (washout, then ridge); returns
        the fit's timing and size."""
        m, h = self.config.model, self.config.data.horizon
        t0 = time.perf_counter()
        states = self.series_states(series)
        t_states = time.perf_counter() - t0
        targets = series[:, self.target_index]
        last = len(series) - h  # the state at row t predicts rows t+1 .. t+h
        if last - m.washout < 1:
            raise DataError(f"the training series has {len(series)} rows: too few for washout "
                            f"{m.washout} + horizon {h}")
        future = np.lib.stride_tricks.sliding_window_view(targets[1:], h, axis=0)  # [n, d, h]
        y = np.moveaxis(future, 2, 1)[m.washout:last].reshape(last - m.washout, -1)
        w, b = ridge_readout(states[m.washout:last], y, m.ridge)
        self.model.get_layer("readout").set_weights([w.astype(np.float32),
                                                     b.astype(np.float32)])
        return {"states_seconds": t_states, "fit_seconds": time.perf_counter() - t0,
                "rows": int(last - m.washout)}

    def window_states(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """The reservoir's last state for each scaled window [n, time, columns], from zero."""
        import tensorflow as tf

        layer = self.reservoir
        cached = getattr(self, "_last_fn", None)
        if cached is None or cached[0] is not layer:
            fn = tf.function(lambda w: layer(w), reduce_retracing=True)
            self._last_fn = cached = (layer, fn)
        return np.concatenate([np.asarray(cached[1](tf.constant(np.ascontiguousarray(
            x[i:i + batch_size], np.float32)))) for i in range(0, len(x), batch_size)])

    def fit_readout_windows(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Fit the readout on the last states of scaled windows ``x`` [n, time, columns] and
        their futures ``y`` [n, horizon, targets]."""
        t0 = time.perf_counter()
        states = self.window_states(x)
        w, b = ridge_readout(states, y.reshape(len(y), -1), self.config.model.ridge)
        self.model.get_layer("readout").set_weights([w.astype(np.float32),
                                                     b.astype(np.float32)])
        return {"fit_seconds": time.perf_counter() - t0, "rows": int(len(x))}

    def fit(self, train: Any, dev: Any, epochs: int, callbacks: list, verbose: Any) -> Any:
        series = getattr(self, "_fit_series", None)
        if series is None:
            raise DataError("esn: no training series (fit is called after datasets())")
        if self.config.model.readout_fit == "windows":
            d = self.config.data
            x, y = windows(series, d.lookback, d.horizon, self.target_index)
            self.readout_fit = self.fit_readout_windows(x, y)
        else:
            self.readout_fit = self.fit_readout(series)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have any trainable weights")
            return self.model.fit(train, validation_data=dev, epochs=epochs,
                                  callbacks=callbacks, verbose=verbose, shuffle=False)


# -- test support --------------------------------------------------------------------------------
TINY_OVERRIDES = {
    "model": {"units": 16, "washout": 8, "connectivity": 0.5, "input_connectivity": 1.0},
    "data": {"lookback": 16, "horizon": 4, "target": "OT", "features": ""},
    "training": {"epochs": 1, "batch_size": 32, "warmup_steps": 0, "early_stopping_patience": 0},
}


def synthetic_dataset(directory: str | Path, n: int = 600, seed: int = 0) -> Path:
    """The forecaster's synthetic hourly series (``date,load,OT``)."""
    return _series_csv(directory, n=n, seed=seed)
