"""Task type ``forecasting``: a window of a multivariate time series -> the next ``horizon`` steps.

User call (Keras and runtime alike): ``forecast(window) -> [horizon, targets]`` in the series'
own units (a batch ``[n, time, columns]`` gives ``[n, horizon, targets]``), and
``forecast_csv(path)`` for a CSV file with a date column; CLI verb ``rnnzoo forecast``. One
exported graph: z-scored float32 ``window`` [batch, time, columns] -> ``forecast``
[batch, horizon, targets]. The scaling (train-split mean and std per column, as in the Informer
protocol) is plain numpy in the preprocessor, so Keras and onnxruntime share it.

Data (``load_data``): a CSV with a date column (``date`` by default) and numeric columns chosen by
``target`` and ``features``; the ETT files (``ETTh1.csv`` ...) get the exact Informer split
(12/4/4 months, each later split starting ``lookback`` rows early so its first window has a full
history); any other CSV a chronological 70/10/20 split (Informer's ``Dataset_Custom``); the
name ``mackey-glass`` the Mackey-Glass series (tau = 17), generated and seeded. Metrics are MSE
and MAE on the scaled data over every window, step and target of a split, exactly as the
Informer tables report them, plus NRMSE (RMSE over the standard deviation of the truth), the
usual Mackey-Glass number.
"""

from __future__ import annotations

import abc
import argparse
import csv
import dataclasses
import datetime as dt
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from rnnzoo.config import EntryConfig, rule
from rnnzoo.errors import ConfigError, DataError, RunDirError, short_repr
from rnnzoo.export.bundle import MODEL_FILE, BundleError, BundleRuntime, check_count
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text, read_json, save_figure
from rnnzoo.task import Task

MACKEY_GLASS = "mackey-glass"
ASSET_FILE = "forecast.json"
SPLITS = ("train", "dev", "test")


@dataclasses.dataclass
class DataConfig:
    lookback: int = rule(96, min=1)  # input window, rows
    horizon: int = rule(24, min=1)  # rows forecast at once
    # Column(s) to forecast: one name, "A,B", or "all" (every numeric column: multivariate).
    target: str = rule("OT", nonempty=True)
    # Input columns besides the targets: "" (the targets alone: univariate), "all", or "A,B".
    features: str = ""
    date_column: str = "date"  # "" for a file without one (rows are then numbered)
    # "auto": the Informer split for ETT files (ETTh*/ETTm*.csv), chronological otherwise.
    split: Literal["auto", "ett", "chronological"] = "auto"
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)
    scale: bool = True  # z-score every column with the train split's mean and std
    # The generated Mackey-Glass series (--data mackey-glass): length after the transient.
    mackey_glass_length: int = rule(10000, min=100)
    mackey_glass_tau: int = rule(17, min=1)

    def check(self) -> list[str]:
        if self.dev_fraction + self.test_fraction >= 1.0:
            return [f"dev_fraction + test_fraction: expected < 1 (something must be left to "
                    f"train on), found {self.dev_fraction} + {self.test_fraction}"]
        return []


# -- published reference numbers (Zhou et al. 2021, Informer tables after the 2021 fix) ---------
# (dataset, mode, horizon) -> {method: (mse, mae)}; mode "S" = OT from OT, "M" = all 7 from all 7.
PUBLISHED: dict[tuple[str, str, int], dict[str, tuple[float, float]]] = {
    ("ETTh1", "S", 24): {"Informer": (0.098, 0.247), "LSTMa": (0.114, 0.272),
                         "DeepAR": (0.107, 0.280)},
    ("ETTh1", "S", 48): {"Informer": (0.158, 0.319), "LSTMa": (0.193, 0.358),
                         "DeepAR": (0.162, 0.327)},
    ("ETTh1", "S", 168): {"Informer": (0.183, 0.346), "LSTMa": (0.236, 0.392),
                          "DeepAR": (0.239, 0.422)},
    ("ETTh1", "S", 336): {"Informer": (0.222, 0.387), "LSTMa": (0.590, 0.698),
                          "DeepAR": (0.445, 0.552)},
    ("ETTh1", "S", 720): {"Informer": (0.269, 0.435), "LSTMa": (0.683, 0.768),
                          "DeepAR": (0.658, 0.707)},
    ("ETTh1", "M", 24): {"Informer": (0.577, 0.549), "LSTMa": (0.650, 0.624),
                         "LSTnet": (1.293, 0.901)},
    ("ETTh1", "M", 48): {"Informer": (0.685, 0.625), "LSTMa": (0.702, 0.675),
                         "LSTnet": (1.456, 0.960)},
    ("ETTh1", "M", 168): {"Informer": (0.931, 0.752), "LSTMa": (1.212, 0.867),
                          "LSTnet": (1.997, 1.214)},
    ("ETTh1", "M", 336): {"Informer": (1.128, 0.873), "LSTMa": (1.424, 0.994),
                          "LSTnet": (2.655, 1.369)},
    ("ETTh1", "M", 720): {"Informer": (1.215, 0.896), "LSTMa": (1.960, 1.322),
                          "LSTnet": (2.143, 1.380)},
    ("ETTh2", "S", 24): {"LSTMa": (0.155, 0.307)},
    ("ETTh2", "S", 48): {"LSTMa": (0.190, 0.348)},
    ("ETTh2", "S", 168): {"LSTMa": (0.385, 0.514)},
    ("ETTh2", "M", 24): {"LSTMa": (1.143, 0.813)},
    ("ETTh2", "M", 48): {"LSTMa": (1.671, 1.221)},
    ("ETTh2", "M", 168): {"LSTMa": (4.117, 1.674)},
}


# -- reading series -----------------------------------------------------------------------------
def _names(spec: str) -> list[str]:
    return [s.strip() for s in spec.split(",") if s.strip()]


def resolve_columns(header: Sequence[str], target: str, features: str, date_column: str,
                    where: str) -> tuple[list[str], list[str]]:
    """(input columns, target columns) for a file's header: targets first among the inputs'
    order in the file, every name checked against the header."""
    numeric = [h for h in header if h != date_column]
    if not numeric:
        raise DataError(f"{where}: no value column besides {date_column!r} (columns: "
                        f"{', '.join(header)})")

    def pick(spec: str, key: str) -> list[str]:
        if spec.strip().lower() == "all":
            return list(numeric)
        names = _names(spec)
        for name in names:
            if name not in header or name == date_column:
                raise DataError(f"{where}: no column {name!r} (the file's value columns: "
                                f"{', '.join(numeric)}); pass {key} one of them, or 'all'")
        return names

    targets = pick(target, "--target")
    if not targets:
        raise DataError(f"{where}: target {target!r} names no column; pass --target OT (or "
                        "'all')")
    wanted = set(targets) | set(pick(features, "--features") if features.strip() else [])
    return [h for h in header if h in wanted], targets


def _parse_date(text: str) -> dt.datetime | None:
    text = text.strip()
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M", "%Y/%m/%d %H:%M:%S",
                "%Y/%m/%d %H:%M", "%Y/%m/%d"):
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


class Series(NamedTuple):
    """A CSV series: ``values`` [rows, columns] float64 in file units, the columns' names, and
    one date per row (``None`` without a date column). ``first_line``: file line of row 0."""

    values: np.ndarray
    columns: list[str]
    dates: list[dt.datetime] | None
    path: str
    first_line: int


def read_series(path: str | os.PathLike, columns_for: Any, date_column: str = "date") -> Series:
    """Read a CSV time series; ``columns_for(header) -> columns`` picks the value columns.

    Every problem names the file, line and column with the fix: a missing column, a value that
    is not a number, a gap (empty or NaN), a date that cannot be read or that is not later than
    the row before (the rows must be in time order, without duplicates)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a CSV time series with a "
                        f"{date_column or 'header'} column)")
    try:
        f = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    with f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: empty file; expected a header line such as "
                            "'date,OT'") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}, line 1: not a UTF-8 CSV header ({exc})") from None
        if date_column and date_column not in header:
            raise DataError(f"{path}, line 1: no {date_column!r} column (columns: "
                            f"{', '.join(header)}); name the date column {date_column!r}, or "
                            f"--set date_column=<name> ('' for a file without dates)")
        columns = list(columns_for(header))
        index = [header.index(c) for c in columns]
        date_index = header.index(date_column) if date_column else None
        rows: list[list[float]] = []
        dates: list[dt.datetime] = []
        line = 1
        try:
            for line, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) < len(header):
                    raise DataError(f"{path}, line {line}: {len(row)} fields, the header has "
                                    f"{len(header)}")
                values = []
                for col, i in zip(columns, index):
                    text = row[i].strip()
                    try:
                        value = float(text)
                    except ValueError:
                        if not text:
                            value = math.nan
                        else:
                            raise DataError(f"{path}, line {line}, column {col!r}: "
                                            f"{short_repr(text, 40)} is not a number") from None
                    if not math.isfinite(value):
                        raise DataError(f"{path}, line {line}, column {col!r}: missing value "
                                        f"({text or 'empty'}); fill or drop the gap (forecasting "
                                        "needs evenly spaced complete rows)")
                    values.append(value)
                if date_index is not None:
                    when = _parse_date(row[date_index])
                    if when is None:
                        raise DataError(f"{path}, line {line}, column {date_column!r}: "
                                        f"{short_repr(row[date_index], 40)} is not a date "
                                        "(expected e.g. 2016-07-01 00:00:00)")
                    if dates and when <= dates[-1]:
                        raise DataError(
                            f"{path}, line {line}, column {date_column!r}: {when} is not later "
                            f"than the previous row's {dates[-1]}; sort the file by date and "
                            "drop duplicate rows")
                    dates.append(when)
                rows.append(values)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path}, line {line + 1}: not a UTF-8 CSV line ({exc})") from None
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    return Series(np.asarray(rows, dtype=np.float64), columns,
                  dates if date_index is not None else None, str(path), 2)


def mackey_glass(n: int, tau: int = 17, seed: int = 0, beta: float = 0.2, gamma: float = 0.1,
                 power: float = 10.0, dt_: float = 0.1, transient: int = 1000) -> np.ndarray:
    """The Mackey-Glass series dx/dt = beta x(t-tau) / (1 + x(t-tau)^n) - gamma x(t), sampled
    every time unit (standard parameters; tau = 17 is mildly chaotic). Runge-Kutta 4 with step
    ``dt_``, the delayed term held over each step; the history before t = 0 is 1.2 plus seeded
    noise (so each seed is another trajectory), and the first ``transient`` samples are dropped."""
    rng = np.random.default_rng(seed)
    sub = int(round(1.0 / dt_))
    lag = int(round(tau / dt_))
    total = (n + transient) * sub
    x = np.empty(total + lag + 1)
    x[: lag + 1] = 1.2 + 0.1 * rng.standard_normal(lag + 1)

    def f(value: float, delayed: float) -> float:
        return beta * delayed / (1.0 + delayed ** power) - gamma * value

    for i in range(lag, lag + total):
        xi, d0, d1 = x[i], x[i - lag], x[i - lag + 1]
        dm = 0.5 * (d0 + d1)
        k1 = f(xi, d0)
        k2 = f(xi + 0.5 * dt_ * k1, dm)
        k3 = f(xi + 0.5 * dt_ * k2, dm)
        k4 = f(xi + dt_ * k3, d1)
        x[i + 1] = xi + dt_ / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x[lag + 1 + transient * sub:: sub][:n].copy()


def ett_borders(name: str, lookback: int, rows: int) -> dict[str, tuple[int, int]] | None:
    """The Informer split of an ETT file (``data_loader.py``): 12/4/4 months of rows, dev and
    test starting ``lookback`` rows early (their first window looks back into the split before).
    Hourly files (ETTh*) have 24 rows a day, 15-minute files (ETTm*) 96."""
    m = re.match(r"ETT([hm])\d", name)
    if m is None:
        return None
    day = 24 if m.group(1) == "h" else 96
    month = 30 * day
    train, dev, test = 12 * month, 16 * month, 20 * month
    if rows < test:
        return None
    return {"train": (0, train), "dev": (train - lookback, dev), "test": (dev - lookback, test)}


def chronological_borders(rows: int, lookback: int, dev_fraction: float,
                          test_fraction: float) -> dict[str, tuple[int, int]]:
    """Informer's ``Dataset_Custom`` split: first 70% train, next 10% dev, last 20% test (the
    fractions are settings), each later split starting ``lookback`` rows early."""
    n_train = int(rows * (1.0 - dev_fraction - test_fraction))
    n_test = int(rows * test_fraction)
    n_dev = rows - n_train - n_test
    return {"train": (0, n_train),
            "dev": (max(0, n_train - lookback), n_train + n_dev),
            "test": (max(0, rows - n_test - lookback), rows)}


@dataclasses.dataclass
class ForecastData:
    """A series with its splits (row ranges, look-back overlap included)."""

    series: Series
    targets: list[str]
    borders: dict[str, tuple[int, int]]
    lookback: int
    horizon: int
    protocol: str  # "ett" (Informer), "chronological", "mackey-glass"
    dataset: str  # file stem (ETTh1) or "mackey-glass"

    @property
    def description(self) -> str:
        return f"{self.series.path} ({self.protocol} split, {len(self.series.values)} rows)"

    @property
    def columns(self) -> list[str]:
        return self.series.columns

    def num_windows(self, split: str) -> int:
        lo, hi = self.split_rows(split)
        return max(0, hi - lo - self.lookback - self.horizon + 1)

    @property
    def num_train(self) -> int:
        return self.num_windows("train")

    @property
    def num_dev(self) -> int:
        return self.num_windows("dev")

    def split_rows(self, split: str) -> tuple[int, int]:
        if split == "all":
            return 0, len(self.series.values)
        if split not in self.borders:
            raise ConfigError(f"split {split!r}: forecasting data has the splits train, dev, "
                              "test and all (the whole file)")
        return self.borders[split]

    def split(self, name: str) -> np.ndarray:
        """The rows of a split, [rows, columns], file units."""
        lo, hi = self.split_rows(name)
        return self.series.values[lo:hi]

    @property
    def mode(self) -> str:
        """Informer's names: "S" (a target from itself), "M" (all from all), "MS" (one from
        all); "" otherwise."""
        if self.columns == self.targets:
            return "S" if len(self.targets) == 1 else "M"
        return "MS" if len(self.targets) == 1 else ""


def load_forecast_data(path: str | os.PathLike, d: DataConfig, seed: int,
                       columns: Sequence[str] | None = None,
                       targets: Sequence[str] | None = None) -> ForecastData:
    """Read (or generate) a series and split it. ``columns``/``targets`` (a fitted model's)
    replace the config's column choice, so a model is scored on exactly its own columns."""
    if str(path).strip().lower().replace("_", "-") == MACKEY_GLASS:
        values = mackey_glass(d.mackey_glass_length, tau=d.mackey_glass_tau, seed=seed)
        series = Series(values[:, None], ["x"], None,
                        f"{MACKEY_GLASS}(tau={d.mackey_glass_tau}, n={d.mackey_glass_length}, "
                        f"seed={seed})", 0)
        borders = chronological_borders(len(values), d.lookback, d.dev_fraction,
                                        d.test_fraction)
        return ForecastData(series, ["x"], borders, d.lookback, d.horizon, MACKEY_GLASS,
                            MACKEY_GLASS)
    target_names: list[str] = []

    def choose(header: Sequence[str]) -> list[str]:
        if columns is not None:
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(f"{path}: no column {missing[0]!r}, which this model reads "
                                f"(its columns: {', '.join(columns)}; the file's: "
                                f"{', '.join(header)})")
            target_names.extend(targets or [])
            return list(columns)
        inputs, found = resolve_columns(header, d.target, d.features, d.date_column, str(path))
        target_names.extend(found)
        return inputs

    series = read_series(path, choose, d.date_column)
    rows = len(series.values)
    stem = Path(path).stem
    borders = None
    if d.split in ("auto", "ett"):
        borders = ett_borders(stem, d.lookback, rows)
        if borders is None and d.split == "ett":
            raise DataError(f"{path}: split 'ett' needs an ETT file (ETTh1.csv ...) of at least "
                            f"20 months of rows; use --set split=chronological")
    protocol = "ett" if borders is not None else "chronological"
    if borders is None:
        borders = chronological_borders(rows, d.lookback, d.dev_fraction, d.test_fraction)
    data = ForecastData(series, target_names, borders, d.lookback, d.horizon, protocol, stem)
    if data.num_train < 1:
        lo, hi = borders["train"]
        raise DataError(f"{path}: the train split has {hi - lo} rows, fewer than look-back "
                        f"{d.lookback} + horizon {d.horizon}; use a longer file or a smaller "
                        "--set lookback=/horizon=")
    return data


def windows(values: np.ndarray, lookback: int, horizon: int, target_index: Sequence[int]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Every (input, future) pair of a [rows, columns] block: inputs [n, lookback, columns],
    futures [n, horizon, targets] (views where possible)."""
    n = len(values) - lookback - horizon + 1
    if n < 1:
        c = values.shape[1]
        return (np.zeros((0, lookback, c), values.dtype),
                np.zeros((0, horizon, len(target_index)), values.dtype))
    view = np.lib.stride_tricks.sliding_window_view(values, lookback, axis=0)  # [rows', c, L]
    x = np.moveaxis(view[:n], 2, 1)
    tv = np.lib.stride_tricks.sliding_window_view(values[lookback:, list(target_index)],
                                                  horizon, axis=0)
    y = np.moveaxis(tv[:n], 2, 1)
    return x, y


def forecast_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """MSE and MAE over every window, step and target (the Informer tables' numbers), NRMSE
    (RMSE / std of the truth), and the MSE of each step ahead."""
    err = pred.astype(np.float64) - truth.astype(np.float64)
    mse = float(np.mean(err ** 2))
    std = float(np.std(truth))
    return {"mse": mse, "mae": float(np.mean(np.abs(err))),
            "nrmse": math.sqrt(mse) / std if std > 0 else float("nan"),
            "mse_by_step": np.mean(err ** 2, axis=(0, 2)).tolist()}


# -- preprocessing ------------------------------------------------------------------------------
class ForecastPreprocessor:
    """Column names, the train split's mean and std per column, look-back and horizon, and the
    rows' spacing (for the timestamps of a forecast). JSON only: nothing is executed on load."""

    def __init__(self, columns: Sequence[str], targets: Sequence[str], lookback: int,
                 horizon: int, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, date_column: str = "date",
                 step_seconds: float | None = None, dataset: str = "") -> None:
        self.columns = list(columns)
        self.targets = list(targets)
        self.lookback = int(lookback)
        self.horizon = int(horizon)
        self.mean = None if mean is None else np.asarray(mean, np.float64)
        self.std = None if std is None else np.asarray(std, np.float64)
        self.date_column = date_column
        self.step_seconds = step_seconds
        self.dataset = dataset

    @property
    def is_fitted(self) -> bool:
        return self.mean is not None and bool(self.columns)

    @property
    def target_index(self) -> list[int]:
        return [self.columns.index(t) for t in self.targets]

    def fit(self, data: ForecastData, scale: bool) -> None:
        train = data.split("train")
        self.columns, self.targets = list(data.columns), list(data.targets)
        self.dataset = data.dataset
        if scale:
            self.mean = train.mean(axis=0)
            std = train.std(axis=0)
            self.std = np.where(std > 0, std, 1.0)
        else:
            self.mean = np.zeros(len(self.columns))
            self.std = np.ones(len(self.columns))
        dates = data.series.dates
        if dates and len(dates) > 1:
            steps = np.diff(np.array([d.timestamp() for d in dates[:2000]]))
            self.step_seconds = float(np.median(steps))

    def scale(self, values: np.ndarray) -> np.ndarray:
        """File units -> z-scores, per column (float32)."""
        return ((values - self.mean) / self.std).astype(np.float32)

    def unscale_targets(self, values: np.ndarray) -> np.ndarray:
        idx = self.target_index
        return values * self.std[idx] + self.mean[idx]

    def to_json(self) -> str:
        return json.dumps({
            "columns": self.columns, "targets": self.targets, "lookback": self.lookback,
            "horizon": self.horizon,
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
            "date_column": self.date_column, "step_seconds": self.step_seconds,
            "dataset": self.dataset}, indent=1)

    @classmethod
    def from_json(cls, path: Path, error: type[Exception], hint: str) -> ForecastPreprocessor:
        raw = read_json(path, error, hint)
        unfitted = isinstance(raw, dict) and raw.get("mean") is None and raw.get("std") is None
        if unfitted:  # a model saved before training: names and sizes only, no statistics
            raw = {**raw, "mean": [0.0] * len(raw.get("columns") or []),
                   "std": [1.0] * len(raw.get("columns") or [])}
        ok = (isinstance(raw, dict) and isinstance(raw.get("columns"), list)
              and isinstance(raw.get("targets"), list) and (bool(raw["columns"]) or unfitted)
              and all(isinstance(c, str) for c in raw["columns"])
              and all(t in raw["columns"] for t in raw["targets"])
              and (bool(raw["targets"]) or unfitted)
              and isinstance(raw.get("mean"), list) and isinstance(raw.get("std"), list)
              and len(raw["mean"]) == len(raw["std"]) == len(raw["columns"])
              and all(isinstance(v, (int, float)) for v in raw["mean"] + raw["std"])
              and all(isinstance(raw.get(k), int) and raw[k] >= 1
                      for k in ("lookback", "horizon")))
        if not ok:
            raise error(f"{path}: not a forecasting preprocessor (columns, targets, mean, std, "
                        f"lookback, horizon); {hint}")
        step = raw.get("step_seconds")
        return cls(raw["columns"], raw["targets"], raw["lookback"], raw["horizon"],
                   None if unfitted else raw["mean"], None if unfitted else raw["std"],
                   str(raw.get("date_column", "date")),
                   float(step) if isinstance(step, (int, float)) else None,
                   str(raw.get("dataset", "")))


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


def _time_text(t: Any) -> str:
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

    def predict_scaled(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Scaled forecasts for scaled windows, in batches."""
        out = [np.asarray(self._predict_scaled(np.ascontiguousarray(x[i:i + batch_size],
                                                                    np.float32)))
               for i in range(0, len(x), batch_size)]
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

    def evaluate(self, windows: Any, references: Any) -> dict[str, Any]:
        """Errors of the forecasts for ``windows`` ([n, time, columns], file units) against the
        true futures ``references`` ([n, steps, targets], steps <= the model's horizon): MSE, MAE
        and NRMSE on the z-scored scale the Informer tables use, plus MSE/MAE in file units.
        The same call on the Keras task and on the runtime, so a deployment can be re-scored."""
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
        pred = self.forecast(batch)[:, :refs.shape[1]]
        idx = self.preprocessor.target_index
        mean, std = self.preprocessor.mean[idx], self.preprocessor.std[idx]
        report = forecast_metrics((pred - mean) / std, (refs - mean) / std)
        report.update(mse_file_units=float(np.mean((pred - refs) ** 2)),
                      mae_file_units=float(np.mean(np.abs(pred - refs))),
                      num_windows=int(len(batch)), steps=int(refs.shape[1]))
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
        when = _parse_date(text)
        if when is None or series.dates is None:
            raise ConfigError(f"--at {at!r}: expected a row number or a date of the file")
        for i, d in enumerate(series.dates):
            if d >= when:
                return i if d == when else i - 1
        return len(times) - 1


def plot_forecast(result: ForecastResult, path: str | os.PathLike, title: str = "") -> Path:
    """History, forecast and (when known) the truth, one panel per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.targets)
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.8 * n), squeeze=False)
    for j, (ax, name) in enumerate(zip(axes[:, 0], result.targets)):
        ax.plot(result.history_times, result.history[:, j], color="0.35", label="history")
        if result.truth is not None and len(result.truth):
            ax.plot(result.times[:len(result.truth)], result.truth[:, j], color="tab:green",
                    label="truth")
        ax.plot(result.times, result.forecast[:, j], color="tab:red", label="forecast")
        ax.axvline(result.history_times[-1], color="0.7", linestyle=":")
        ax.set_ylabel(name)
        ax.legend(loc="upper left", fontsize=8)
    if title:
        axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    return save_figure(fig, path)


# -- the Keras task -----------------------------------------------------------------------------
class ForecastingTask(_Forecaster, Task):
    """Keras side of a forecaster; a family adds ``build_model`` (input ``window`` [batch,
    time, columns], output ``forecast`` [batch, horizon, targets])."""

    task_type = "forecasting"
    verb = "forecast"
    variable_length = False  # windows of exactly `lookback` rows
    metric_directions = {"loss": "min", "mae": "min", "mse": "min", "nrmse": "min"}
    head_layers = ("forecast",)

    def new_preprocessor(self) -> ForecastPreprocessor:
        d = self.config.data
        targets = [] if d.target.strip().lower() == "all" else _names(d.target)
        feats = d.features.strip()
        columns = list(targets)
        if feats and feats.lower() != "all":
            columns += [c for c in _names(feats) if c not in columns]
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

    # -- inference and evaluation ---------------------------------------------------------------
    def _predict_scaled(self, x: np.ndarray) -> np.ndarray:
        self.require_fitted()
        return self.keras_graphs().run("model", {"window": x})["forecast"]

    def evaluate_data(self, data: ForecastData, split: str = "dev", limit: int | None = None,
                      **options: Any) -> dict:
        x, y = self.scaled_windows(data, split)
        x, y = x[:limit], y[:limit]
        if not len(x):
            raise DataError(f"{data.description}: the {split} split has no window of "
                            f"{data.lookback} + {data.horizon} rows")
        report = forecast_metrics(self.predict_scaled(x), y)
        report.update(split=split, data=data.description, num_windows=int(len(x)),
                      horizon=data.horizon, lookback=data.lookback, mode=data.mode,
                      dataset=data.dataset, targets=list(data.targets))
        published = PUBLISHED.get((data.dataset, data.mode, data.horizon))
        if published and data.protocol == "ett" and split == "test":
            report["published"] = {k: {"mse": v[0], "mae": v[1]} for k, v in published.items()}
        return report

    def format_report(self, report: dict) -> str:
        return format_forecast_report(report)

    # -- export ---------------------------------------------------------------------------------
    def graph_specs(self) -> list[GraphSpec]:
        window = InputSpec("window", "features", ("batch", "time", self.num_inputs))
        return [GraphSpec("model", MODEL_FILE, self.model, [window], ["forecast"])]

    def export_preprocessing(self) -> dict:
        return {"preprocessor": f"assets/{ASSET_FILE}", "lookback": self.lookback,
                "horizon": self.horizon, "num_inputs": self.num_inputs,
                "num_targets": self.num_targets}

    def compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
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

    @classmethod
    def example_inputs(cls) -> list:
        return [0.0, 1.3]

    @classmethod
    def example_outputs(cls, model: Any, inputs: list) -> Any:
        pre = model.preprocessor
        t = np.arange(pre.lookback)[:, None] + np.arange(len(pre.columns))[None, :]
        batch = np.stack([pre.mean + pre.std * np.sin(0.35 * t + phase) for phase in inputs])
        return {"forecast": model.forecast(batch).tolist()}

    # -- command line ---------------------------------------------------------------------------
    @classmethod
    def add_verb_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", required=True, metavar="CSV",
                            help="the series: a CSV with a date column and the model's columns")
        parser.add_argument("--target", help="the file's column for the model's target, when "
                            "it is named differently (univariate models)")
        parser.add_argument("--horizon", type=int, help="steps ahead (default: the model's)")
        parser.add_argument("--at", metavar="ROW|DATE",
                            help="forecast after this row (0-based) or date instead of the "
                            "last row; the rows after it are plotted as the truth")
        parser.add_argument("--plot", metavar="PNG", help="also plot history, forecast, truth")
        parser.add_argument("--json", action="store_true", help="one JSON object per step")

    @classmethod
    def run_verb(cls, model: Any, args: argparse.Namespace) -> int:
        result = model.forecast_csv(args.data, target=args.target, horizon=args.horizon,
                                    at=args.at)
        names = result.targets
        if not args.json:
            print("time".ljust(20) + "".join(f"{n:>14}" for n in names)
                  + ("".join(f"{'truth ' + n:>16}" for n in names)
                     if result.truth is not None else ""))
        for k, when in enumerate(result.times):
            values = result.forecast[k]
            truth = (result.truth[k] if result.truth is not None and k < len(result.truth)
                     else None)
            if args.json:
                row: dict[str, Any] = {"time": _time_text(when),
                                       **{n: round(float(v), 6) for n, v in zip(names, values)}}
                if truth is not None:
                    row["truth"] = {n: float(v) for n, v in zip(names, truth)}
                print(json.dumps(row))
            else:
                line = _time_text(when).ljust(20) + "".join(f"{v:>14.4f}" for v in values)
                if truth is not None:
                    line += "".join(f"{v:>16.4f}" for v in truth)
                print(line)
        if args.plot:
            name = getattr(model, "name", None) or getattr(model, "entry", "")
            plot_forecast(result, args.plot, title=f"{name}: {len(result.times)} steps after "
                          f"{_time_text(result.history_times[-1])}")
            print(f"wrote {args.plot}", file=sys.stderr)
        return 0


def format_forecast_report(report: dict) -> str:
    """Headline MSE/MAE/NRMSE, and the published numbers of the same table row beside them."""
    def num(v: float) -> str:  # Mackey-Glass errors are far below 1e-4
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"

    lines = [f"MSE {num(report['mse'])}   MAE {num(report['mae'])}   NRMSE {num(report['nrmse'])}"
             f"   (scaled; {report['num_windows']} windows, horizon {report['horizon']}, "
             f"look-back {report['lookback']}, mode {report.get('mode') or '-'})"]
    steps = report.get("mse_by_step") or []
    if len(steps) > 1:
        picks = sorted({0, len(steps) // 2 - 1, len(steps) - 1})
        lines.append("MSE by step ahead: " + ", ".join(f"{i + 1}: {num(steps[i])}"
                                                       for i in picks))
    published = report.get("published")
    if published:
        lines.append(f"published (Zhou et al. 2021, {report['dataset']} mode {report['mode']}, "
                     f"horizon {report['horizon']}, MSE/MAE): " + ", ".join(
                         f"{k} {v['mse']:.3f}/{v['mae']:.3f}" for k, v in published.items()))
    return "\n".join(lines)


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


TASK_CLASS = ForecastingTask
RUNTIME_CLASS = ForecasterRuntime
