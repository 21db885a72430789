"""Forecasting data: CSV series, the Mackey-Glass generator, the splits, windows, metrics and the
scaling preprocessor. TF-free.

A CSV with a date column (``date`` by default) and numeric columns chosen by ``target`` and
``features``; the ETT files (``ETTh1.csv`` ...) get the exact Informer split (12/4/4 months, each
later split starting ``lookback`` rows early so its first window has a full history), which
the Autoformer protocol (``protocol: autoformer``: look-back 96, horizons 96..720, multivariate)
keeps, only the published tables differ; any other
CSV a chronological 70/10/20 split (Informer's ``Dataset_Custom``); the name ``mackey-glass``
the Mackey-Glass series (tau = 17), generated and seeded. Metrics are MSE and MAE on the scaled
data over every window, step and target of a split, exactly as the Informer tables report them,
plus NRMSE (RMSE over the standard deviation of the truth), the usual Mackey-Glass number. The
scaling (train-split mean and std per column) is plain numpy, so Keras and onnxruntime share it.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from rnnzoo import limits
from rnnzoo.config import rule
from rnnzoo.data.splits import HeldOutFractions
from rnnzoo.errors import ConfigError, DataError, short_repr
from rnnzoo.io import read_json

MACKEY_GLASS = "mackey-glass"
ASSET_FILE = "forecast.json"
SPLITS = ("train", "dev", "test")


@dataclasses.dataclass
class DataConfig(HeldOutFractions):
    lookback: int = rule(96, min=1)  # input window, rows
    horizon: int = rule(24, min=1)  # rows forecast at once
    # Column(s) to forecast: one name, "A,B", or "all" (every numeric column: multivariate).
    target: str = rule("OT", nonempty=True)
    # Input columns besides the targets: "" (the targets alone: univariate), "all", or "A,B".
    features: str = ""
    date_column: str = "date"  # "" for a file without one (rows are then numbered)
    # "auto": the Informer split for ETT files (ETTh*/ETTm*.csv), chronological otherwise.
    split: Literal["auto", "ett", "chronological"] = "auto"
    # Which published tables an ETT file is scored against. "informer" (Zhou et al. 2021:
    # horizons 24..720, look-back tuned per model); "autoformer" (Wu et al. 2021, and every
    # later paper: DLinear, PatchTST, SegRNN, iTransformer): multivariate, look-back 96,
    # horizons 96/192/336/720. Both use the same 12/4/4-month borders (the later papers kept
    # Informer's data_loader.py) and score every test window (stride 1, no dropped last batch);
    # "autoformer" requires an ETT file.
    protocol: Literal["informer", "autoformer"] = "informer"
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)
    scale: bool = True  # z-score every column with the train split's mean and std
    # The generated Mackey-Glass series (--data mackey-glass): length after the transient.
    mackey_glass_length: int = rule(10000, min=100)
    mackey_glass_tau: int = rule(17, min=1)


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

# The Autoformer protocol at look-back 96 (multivariate, all 7 columns), MSE/MAE on z-scored
# data over every test window: (dataset, horizon) -> {method: (mse, mae)}. SegRNN (Lin et al.
# 2023) as re-run by its authors at look-back 96 with the test-batch fix (drop_last=False),
# scripts/SegRNN/Lookback_96 of github.com/lss-1138/SegRNN, README table; the other columns are
# iTransformer's (Liu et al. 2024, Table 2) as that README quotes them.
AUTOFORMER_LOOKBACK = 96
AUTOFORMER_HORIZONS = (96, 192, 336, 720)
PUBLISHED_AUTOFORMER: dict[tuple[str, int], dict[str, tuple[float, float]]] = {
    ("ETTh1", 96): {"SegRNN": (0.368, 0.395), "iTransformer": (0.386, 0.405),
                    "PatchTST": (0.414, 0.419), "DLinear": (0.386, 0.400)},
    ("ETTh1", 192): {"SegRNN": (0.408, 0.419), "iTransformer": (0.441, 0.436),
                     "PatchTST": (0.460, 0.445), "DLinear": (0.437, 0.432)},
    ("ETTh1", 336): {"SegRNN": (0.444, 0.440), "iTransformer": (0.487, 0.458),
                     "PatchTST": (0.501, 0.466), "DLinear": (0.481, 0.459)},
    ("ETTh1", 720): {"SegRNN": (0.446, 0.457), "iTransformer": (0.503, 0.491),
                     "PatchTST": (0.500, 0.488), "DLinear": (0.519, 0.516)},
    ("ETTh2", 96): {"SegRNN": (0.278, 0.335), "iTransformer": (0.297, 0.349),
                    "PatchTST": (0.302, 0.348), "DLinear": (0.333, 0.387)},
    ("ETTh2", 192): {"SegRNN": (0.359, 0.389), "iTransformer": (0.380, 0.400),
                     "PatchTST": (0.388, 0.400), "DLinear": (0.477, 0.476)},
    ("ETTh2", 336): {"SegRNN": (0.421, 0.436), "iTransformer": (0.428, 0.432),
                     "PatchTST": (0.426, 0.433), "DLinear": (0.594, 0.541)},
    ("ETTh2", 720): {"SegRNN": (0.432, 0.455), "iTransformer": (0.427, 0.445),
                     "PatchTST": (0.431, 0.446), "DLinear": (0.831, 0.657)},
}
PUBLISHED_SOURCES = {"ett": "Zhou et al. 2021",
                     "autoformer": "look-back 96: SegRNN README (Lin et al. 2023), iTransformer"}


def published_rows(dataset: str, mode: str, horizon: int, lookback: int, protocol: str
                   ) -> dict[str, tuple[float, float]] | None:
    """The published (MSE, MAE) of the same table row, or None: the Informer tables for the
    Informer protocol ("ett"), the look-back-96 multivariate table for "autoformer"."""
    if protocol == "ett":
        return PUBLISHED.get((dataset, mode, horizon))
    if protocol == "autoformer" and mode == "M" and lookback == AUTOFORMER_LOOKBACK:
        return PUBLISHED_AUTOFORMER.get((dataset, horizon))
    return None


# -- reading series -----------------------------------------------------------------------------
def column_names(spec: str) -> list[str]:
    """The names of a column list setting (``"OT"``, ``"A, B"``)."""
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
        names = column_names(spec)
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


def parse_date(text: str) -> dt.datetime | None:
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


FLOAT32_MAX = float(np.finfo(np.float32).max)


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
        max_rows = limits.current().max_series_length
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
                    if abs(value) > FLOAT32_MAX:  # 1e308 would become inf in the model
                        raise DataError(f"{path}, line {line}, column {col!r}: {text} is "
                                        "outside the float32 range (magnitude at most 3.4e+38) "
                                        "the model computes in; fix the value")
                    values.append(value)
                if date_index is not None:
                    when = parse_date(row[date_index])
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
                if len(rows) >= max_rows:  # stop at the limit, before reading on
                    limits.check("max_series_length", len(rows) + 1, f"{path}: rows")
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
    protocol: str  # "ett" (Informer), "autoformer", "chronological", "mackey-glass"
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
    autoformer = d.protocol == "autoformer"
    if d.split in ("auto", "ett") or autoformer:
        borders = ett_borders(stem, d.lookback, rows)
        if borders is None and (d.split == "ett" or autoformer):
            what = "protocol 'autoformer'" if autoformer else "split 'ett'"
            raise DataError(f"{path}: {what} needs an ETT file (ETTh1.csv ...) of at least "
                            f"20 months of rows; use --set protocol=informer "
                            "split=chronological")
    protocol = ("autoformer" if autoformer else "ett") if borders is not None else "chronological"
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
