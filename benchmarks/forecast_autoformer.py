"""Forecasting on the Autoformer protocol: ETTh1/ETTh2 multivariate (7 columns from 7), look-back
96, horizons 96/192/336/720, MSE/MAE on z-scored data over every test window (stride 1, every
column), as Autoformer, DLinear, PatchTST, SegRNN and iTransformer report them.

On the same windows: persistence (repeat the last value), the window mean, a DLinear-style
linear model and an NLinear-style one fitted by (ridge) least squares on the train windows with
the ridge chosen on validation, and any trained run or preset passed with ``--model
H=PATH`` (a SegRNN run per horizon), scored through its public ``evaluate`` on Keras and, for
presets, on the onnxruntime bundle. The published numbers of the same rows are printed beside.

DLinear's two linear maps (one on the moving-average trend, one on the remainder) act on a
linear decomposition of the window, so together they are one linear map of the window: the
least-squares fit of that map is the best DLinear on the train windows (no gradient steps,
no epochs to tune). One map, shared by every column (DLinear's default, ``individual=False``).

    python benchmarks/forecast_autoformer.py --data /work/shared/data/timeseries_ett/ETTh1.csv \\
        --model 96=/work/runs/segrnn_etth1_h96 --json /work/runs/segrnn_bench_etth1.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.forecasting.data import (
    AUTOFORMER_HORIZONS,
    AUTOFORMER_LOOKBACK,
    PUBLISHED_AUTOFORMER,
    DataConfig,
    ForecastPreprocessor,
    forecast_metrics,
    load_forecast_data,
    windows,
)

RIDGES = (0.0, 1.0, 10.0, 100.0, 1000.0)


def split_windows(path: str, horizon: int, lookback: int = AUTOFORMER_LOOKBACK
                  ) -> tuple[Any, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The loaded data and the z-scored (train statistics) windows of each split, float32 as
    every model here reads them: inputs [n, lookback, 7], futures [n, horizon, 7]."""
    config = DataConfig(lookback=lookback, horizon=horizon, target="all", features="",
                        protocol="autoformer")
    data = load_forecast_data(path, config, seed=0)
    pre = ForecastPreprocessor(data.columns, data.targets, lookback, horizon)
    pre.fit(data, scale=True)
    idx = list(range(len(data.columns)))
    return data, {s: windows(pre.scale(data.split(s)), lookback, horizon, idx)
                  for s in ("train", "dev", "test")}


def moving_average(x: np.ndarray, kernel: int = 25) -> np.ndarray:
    """DLinear's trend: a moving average over time with the ends repeated ((k-1)/2 each side).
    ``x`` [n, time]."""
    pad = (kernel - 1) // 2
    padded = np.concatenate([np.repeat(x[:, :1], pad, 1), x, np.repeat(x[:, -1:], pad, 1)], 1)
    c = np.cumsum(np.pad(padded, ((0, 0), (1, 0))), axis=1)
    return (c[:, kernel:] - c[:, :-kernel]) / kernel


def per_channel(x: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """[n, time, c] -> [n*c, time] (channel-independent rows)."""
    rows = np.moveaxis(x, 2, 1).reshape(-1, x.shape[1]).astype(np.float64)
    if y is None:
        return (rows,)
    return rows, np.moveaxis(y, 2, 1).reshape(-1, y.shape[1]).astype(np.float64)


def back(rows: np.ndarray, n: int, c: int) -> np.ndarray:
    return np.moveaxis(rows.reshape(n, c, -1), 1, 2)


class LinearForecaster:
    """One linear map of the window per step ahead, shared by every column, fitted by ridge
    least squares. ``shift="last"``: on the window minus its last value (NLinear); ``"none"``:
    on [remainder, trend] (DLinear: the same span as the window itself)."""

    def __init__(self, shift: str) -> None:
        self.shift = shift

    def features(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ref = rows[:, -1:] if self.shift == "last" else np.zeros((len(rows), 1))
        x = rows - ref
        if self.shift == "none":
            trend = moving_average(x)
            x = np.concatenate([x - trend, trend], axis=1)
        return np.concatenate([x, np.ones((len(x), 1))], axis=1), ref

    def fit(self, x: np.ndarray, y: np.ndarray, ridge: float) -> LinearForecaster:
        rows, target = per_channel(x, y)
        f, ref = self.features(rows)
        gram = f.T @ f
        penalty = ridge * np.eye(len(gram))
        penalty[-1, -1] = 0.0  # the bias is not penalised
        self.w = np.linalg.lstsq(gram + penalty, f.T @ (target - ref), rcond=None)[0]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        (rows,) = per_channel(x)
        f, ref = self.features(rows)
        return back(f @ self.w + ref, len(x), x.shape[2]).astype(np.float32)


def fit_linear(shift: str, sets: dict) -> tuple[LinearForecaster, float, float]:
    """The ridge (of ``RIDGES``) with the lowest validation MSE; (model, ridge, val MSE)."""
    best = None
    for ridge in RIDGES:
        model = LinearForecaster(shift).fit(*sets["train"], ridge)
        val = forecast_metrics(model.predict(sets["dev"][0]), sets["dev"][1])["mse"]
        if best is None or val < best[2]:
            best = (model, ridge, val)
    return best


def score(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    m = forecast_metrics(pred, truth)
    return {"mse": m["mse"], "mae": m["mae"]}


def evaluate_model(path: str, data_path: str, backend: str) -> dict[str, Any]:
    """A run or preset scored by ``rnnzoo evaluate``'s code path (its own split and scaling)."""
    import rnnzoo
    from rnnzoo.evaluation import evaluate_reports

    run_dir = Path(path).is_dir() and not (Path(path) / "metadata.json").is_file()
    if run_dir and backend != "keras":
        raise SystemExit(f"{path}: a run directory is scored on keras only (the onnx backends "
                         "need a preset: rnnzoo save-preset)")
    if backend == "keras":
        model = rnnzoo.load(path) if run_dir else rnnzoo.from_preset(path, backend="keras")
    else:  # "onnx" or "onnx-int8": the preset's bundle through onnxruntime
        precision = "int8" if backend.endswith("int8") else "fp32"
        model = rnnzoo.from_preset(path, backend="onnx", precision=precision)
    data = model.load_data(data_path, seed=0) if hasattr(model, "load_data") else None
    if data is None:  # the runtime: read the split with the bundle's own columns
        pre = model.preprocessor
        config = DataConfig(lookback=pre.lookback, horizon=pre.horizon, target="all",
                            features="", protocol="autoformer")
        data = load_forecast_data(data_path, config, 0, pre.columns, pre.targets)
    report = evaluate_reports(model, data, "test", {})[0]
    return {"mse": report["mse"], "mae": report["mae"], "num_windows": report["num_windows"],
            "horizon": report["horizon"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="ETTh1.csv or ETTh2.csv")
    parser.add_argument("--horizons", default=",".join(map(str, AUTOFORMER_HORIZONS)))
    parser.add_argument("--model", action="append", default=[], metavar="H=PATH",
                        help="a trained run or preset forecasting H steps (repeatable)")
    parser.add_argument("--backends", default="keras",
                        help="backends to score --model on, comma-separated: keras, onnx, "
                        "onnx-int8 (run directories are scored on keras only)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    horizons = [int(h) for h in args.horizons.split(",")]
    models: dict[int, list[str]] = {}
    for item in args.model:
        h, _, path = item.partition("=")
        models.setdefault(int(h), []).append(path)
    dataset = Path(args.data).stem
    results: dict[str, Any] = {"dataset": dataset, "lookback": AUTOFORMER_LOOKBACK,
                               "command": " ".join(["python", *sys.argv]), "horizons": {}}
    for h in horizons:
        t0 = time.time()
        _, sets = split_windows(args.data, h)
        x, y = sets["test"]
        row: dict[str, Any] = {"num_windows": int(len(x))}
        row["persistence"] = score(np.repeat(x[:, -1:], h, axis=1), y)
        row["window_mean"] = score(np.repeat(x.mean(axis=1, keepdims=True), h, axis=1), y)
        for name, shift in (("dlinear_ls", "none"), ("nlinear_ls", "last")):
            model, ridge, val = fit_linear(shift, sets)
            row[name] = {**score(model.predict(x), y), "ridge": ridge, "val_mse": val}
        for path in models.get(h, []):
            run_dir = Path(path).is_dir() and not (Path(path) / "metadata.json").is_file()
            for backend in ["keras"] if run_dir else args.backends.split(","):
                row[f"{Path(path).name}[{backend}]"] = evaluate_model(path, args.data, backend)
        row["published"] = {k: {"mse": v[0], "mae": v[1]}
                            for k, v in PUBLISHED_AUTOFORMER.get((dataset, h), {}).items()}
        results["horizons"][str(h)] = row
        print(f"{dataset} H={h} ({len(x)} test windows, {time.time() - t0:.1f} s)")
        for name, r in row.items():
            if isinstance(r, dict) and name != "published":
                print(f"  {name:32s} MSE {r['mse']:.4f}  MAE {r['mae']:.4f}")
        print("  published: " + ", ".join(f"{k} {v['mse']:.3f}/{v['mae']:.3f}"
                                          for k, v in row["published"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
