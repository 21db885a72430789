"""Forecasting, the user calls: ``forecast(window)``, ``forecast_csv(path)`` and ``evaluate``,
written once over both backends, and the onnxruntime runtime (``RUNTIME_CLASS``).

``forecast(window) -> [horizon, targets]`` in the series' own units (a batch ``[n, time,
columns]`` gives ``[n, horizon, targets]``); ``forecast_csv(path)`` for a CSV file with a date
column. One exported graph: z-scored float32 ``window`` [batch, time, columns] -> ``forecast``
[batch, horizon, targets]. TF-free.
"""

from __future__ import annotations

import abc
import csv
import datetime as dt
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rnnzoo.apps.forecasting.data import (
    ASSET_FILE,
    ForecastPreprocessor,
    Series,
    forecast_metrics,
    parse_date,
    read_series,
)
from rnnzoo.errors import ConfigError, DataError, RunDirError, short_repr
from rnnzoo.export.bundle import BundleError, BundleRuntime, check_count
from rnnzoo.progress import Progress, model_label, reporting


class ForecastResult(NamedTuple):
    """What ``forecast_csv`` returns: the history used, the forecast after it (file units, one
    row per step ahead, one column per target) with its timestamps, and the truth when the file
    goes on past the forecast origin."""

    targets: list[str]
    history_times: list[Any]
    history: np.ndarray
    times: list[Any]
    forecast: np.ndarray
    truth: np.ndarray | None


def _future_times(last: Any, steps: int, step_seconds: float | None) -> list[Any]:
    if isinstance(last, dt.datetime):
        delta = dt.timedelta(seconds=step_seconds or 3600.0)
        return [last + delta * (k + 1) for k in range(steps)]
    return [int(last) + k + 1 for k in range(steps)]


def time_text(t: Any) -> str:
    return t.isoformat(sep=" ") if isinstance(t, dt.datetime) else str(t)


class _Forecaster(abc.ABC):
    """The user calls, written once over ``_predict_scaled(x) -> y`` (Keras or onnxruntime)."""

    preprocessor: ForecastPreprocessor

    @abc.abstractmethod
    def _predict_scaled(self, x: np.ndarray) -> np.ndarray:
        """z-scored float32 windows [n, time, columns] -> z-scored forecasts [n, H, targets]."""

    @property
    def lookback(self) -> int:
        return self.preprocessor.lookback

    @property
    def horizon(self) -> int:
        return self.preprocessor.horizon

    def predict_scaled(self, x: np.ndarray, batch_size: int = 256,
                       progress: bool | Progress = False) -> np.ndarray:
        """Scaled forecasts for scaled windows, in batches (``progress=True``: a progress line
        on stderr)."""
        with reporting(progress, model_label(self, "forecast"), len(x), "windows") as bar:
            out = [np.asarray(self._predict_scaled(np.ascontiguousarray(x[i:i + batch_size],
                                                                        np.float32)))
                   for i in bar.over(range(0, len(x), batch_size),
                                     lambda i: min(batch_size, len(x) - i))]
        d = len(self.preprocessor.targets)
        return np.concatenate(out) if out else np.zeros((0, self.horizon, d), np.float32)

    def _check_window(self, window: Any, where: str) -> np.ndarray:
        try:
            arr = np.asarray(window, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{where}: expected numbers [time, columns] (or [n, time, columns]),"
                            f" found {short_repr(window, 60)}") from None
        cols = self.preprocessor.columns
        if arr.ndim == 1 and len(cols) == 1:
            arr = arr[:, None]
        if arr.ndim not in (2, 3) or arr.shape[-1] != len(cols):
            raise DataError(f"{where}: expected shape [time, {len(cols)}] (columns "
                            f"{', '.join(cols)}) or [n, time, {len(cols)}], found "
                            f"{arr.shape}")
        if arr.shape[-2] < self.lookback:
            raise DataError(f"{where}: {arr.shape[-2]} time steps, but this model looks back "
                            f"{self.lookback}; pass at least {self.lookback} rows")
        bad = np.argwhere(~np.isfinite(arr))
        if len(bad):
            *_, row, col = bad[0]
            raise DataError(f"{where}: row {row}, column {cols[col]!r} is not a finite number; "
                            "fill the gap first")
        return arr

    def forecast(self, window: Any, horizon: int | None = None) -> np.ndarray:
        """The next ``horizon`` steps (default: the model's) after the last ``lookback`` rows of
        ``window`` [time, columns] (or a batch [n, time, columns]), in file units:
        [horizon, targets] (or [n, horizon, targets])."""
        self.require_fitted()
        arr = self._check_window(window, "forecast(window)")
        steps = self._check_horizon(horizon)
        single = arr.ndim == 2
        batch = arr[None] if single else arr
        x = self.preprocessor.scale(batch[:, -self.lookback:, :])
        y = self.preprocessor.unscale_targets(self.predict_scaled(x).astype(np.float64))
        y = y[:, :steps]
        return y[0] if single else y

    def evaluate(self, windows: Any, references: Any, progress: bool = False) -> dict[str, Any]:
        """Errors of the forecasts for ``windows`` ([n, time, columns], file units) against the
        true futures ``references`` ([n, steps, targets], steps <= the model's horizon): MSE, MAE
        and NRMSE on the z-scored scale the Informer tables use (float32, as training scales
        the series), plus MSE/MAE in file units. The same call on the Keras task and on the
        runtime, so a deployment can be re-scored; ``rnnzoo evaluate`` scores a split with it.
        ``progress=True``: a progress line on stderr."""
        self.require_fitted()
        arr = self._check_window(windows, "evaluate(windows)")
        batch = arr[None] if arr.ndim == 2 else arr
        try:
            refs = np.asarray(references, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("evaluate(references): expected numbers [n, steps, targets], found "
                            f"{short_repr(references, 60)}") from None
        d = len(self.preprocessor.targets)
        if refs.ndim == 2 and arr.ndim == 2:
            refs = refs[None]
        if refs.ndim == 2 and d == 1:
            refs = refs[:, :, None]
        if refs.ndim != 3 or refs.shape[0] != len(batch) or refs.shape[2] != d \
                or not 1 <= refs.shape[1] <= self.horizon:
            raise DataError(f"evaluate(references): expected shape [{len(batch)}, steps <= "
                            f"{self.horizon}, {d}] (targets {', '.join(self.preprocessor.targets)}"
                            f"), found {refs.shape}")
        pre = self.preprocessor
        steps = refs.shape[1]
        with reporting(progress, model_label(self, "evaluate"), len(batch), "windows") as bar:
            scaled = self.predict_scaled(pre.scale(batch[:, -self.lookback:, :]),
                                         progress=bar)[:, :steps]
        idx = pre.target_index
        truth = ((refs - pre.mean[idx]) / pre.std[idx]).astype(np.float32)
        pred = pre.unscale_targets(scaled.astype(np.float64))
        report = forecast_metrics(scaled, truth)
        report.update(mse_file_units=float(np.mean((pred - refs) ** 2)),
                      mae_file_units=float(np.mean(np.abs(pred - refs))),
                      num_windows=int(len(batch)), steps=int(steps))
        return report
    def _check_horizon(self, horizon: Any) -> int:
        if horizon is None:
            return self.horizon
        steps = check_count("horizon", horizon)
        if steps > self.horizon:
            raise ConfigError(f"horizon {steps}: this model forecasts {self.horizon} steps at "
                              f"once; pass --horizon {self.horizon} or less, or train one with "
                              f"--set horizon={steps}")
        return steps

    def require_fitted(self) -> None:
        if not self.preprocessor.is_fitted:
            raise RunDirError("this forecaster has no scaling statistics yet: train it "
                              "(rnnzoo.train) or load a trained run/preset (rnnzoo.load)")

    def forecast_csv(self, path: str | os.PathLike, target: str | None = None,
                     horizon: int | None = None, at: str | int | None = None
                     ) -> ForecastResult:
        """Forecast after row ``at`` of a CSV series (a 0-based row number or a date; default:
        the last row). ``target`` names the file's column for the model's target when it is
        called differently (univariate models)."""
        self.require_fitted()
        pre = self.preprocessor
        steps = self._check_horizon(horizon)
        rename = {}
        if target is not None and target not in pre.columns:
            if len(pre.targets) != 1:
                raise ConfigError(f"--target {target!r}: this model forecasts "
                                  f"{', '.join(pre.targets)}; give those columns")
            rename[pre.targets[0]] = target
        wanted = [rename.get(c, c) for c in pre.columns]

        def choose(header: Sequence[str]) -> list[str]:
            for c in wanted:
                if c not in header or c == pre.date_column:
                    raise DataError(f"{path}: no column {c!r}, which this model reads "
                                    f"(columns: {', '.join(header)}); pass --target NAME for "
                                    "the column to forecast")
            return wanted

        date_column = pre.date_column
        if date_column and Path(path).is_file():  # a file without the date column: row numbers
            try:
                with open(path, newline="", encoding="utf-8-sig") as f:
                    header = [h.strip() for h in next(csv.reader(f), [])]
            except (OSError, UnicodeDecodeError, csv.Error):
                header = [date_column]  # read_series reports the problem
            if date_column not in header:
                date_column = ""
        series = read_series(path, choose, date_column)
        rows = len(series.values)
        times = series.dates if series.dates is not None else list(range(rows))
        origin = rows - 1 if at is None else self._origin(at, series, times)
        if origin + 1 < self.lookback:
            raise DataError(f"{path}: {origin + 1} rows up to the forecast origin (line "
                            f"{origin + series.first_line}), but this model looks back "
                            f"{self.lookback} rows (column {wanted[pre.target_index[0]]!r}); "
                            "pass a longer file or a later --at")
        window = series.values[origin + 1 - self.lookback: origin + 1]
        pred = self.forecast(window, steps)
        truth = None
        if origin + 1 < rows:
            truth = series.values[origin + 1: origin + 1 + steps][:, pre.target_index]
        step_seconds = pre.step_seconds
        if series.dates is not None and len(series.dates) > 1:
            step_seconds = float(np.median(np.diff(
                [d.timestamp() for d in series.dates[-min(rows, 500):]])))
        hist = max(0, origin + 1 - max(self.lookback, 4 * steps))
        return ForecastResult(
            [rename.get(t, t) for t in pre.targets], list(times[hist:origin + 1]),
            series.values[hist:origin + 1][:, pre.target_index],
            _future_times(times[origin], steps, step_seconds), pred, truth)

    @staticmethod
    def _origin(at: str | int, series: Series, times: list[Any]) -> int:
        text = str(at).strip()
        if re.fullmatch(r"-?\d+", text):
            i = int(text)
            i = i + len(times) if i < 0 else i
            if not 0 <= i < len(times):
                raise ConfigError(f"--at {at}: {series.path} has rows 0..{len(times) - 1}")
            return i
        when = parse_date(text)
        if when is None or series.dates is None:
            raise ConfigError(f"--at {at!r}: expected a row number or a date of the file")
        for i, d in enumerate(series.dates):
            if d >= when:
                return i if d == when else i - 1
        return len(times) - 1



class ForecasterRuntime(_Forecaster, BundleRuntime):
    """``forecast(window)`` for a forecasting bundle, with onnxruntime and numpy only."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.preprocessor = ForecastPreprocessor.from_json(self.asset(ASSET_FILE), BundleError,
                                                           "re-export the bundle")
        if not self.preprocessor.is_fitted:
            raise BundleError(f"{self.path}: the preprocessor has no scaling; re-export")

    @property
    def name(self) -> str:
        return self.entry

    def _predict_scaled(self, x: np.ndarray) -> np.ndarray:
        return self.run("model", {"window": np.asarray(x, np.float32)})["forecast"]

    @property
    def serve_demo(self) -> dict[str, Any]:
        """``rnnzoo serve``'s demo input: one window of ``lookback`` rows, a daily cycle around
        the training mean (the server's default hook calls ``forecast`` on the instances)."""
        pre = self.preprocessor
        t = np.arange(self.lookback)[:, None]
        window = pre.mean + pre.std * np.sin(2 * np.pi * t / 24.0)
        return {"input": "json", "example": np.round(window, 3).tolist()}



RUNTIME_CLASS = ForecasterRuntime
