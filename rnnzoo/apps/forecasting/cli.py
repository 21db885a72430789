"""Forecasting on the command line: ``rnnzoo forecast NAME --data CSV [--horizon H] [--at ROW]
[--plot PNG] [--json]``, and the report of ``rnnzoo evaluate`` (MSE/MAE/NRMSE on the z-scored
windows of a split, the published numbers of the same table row beside them: the Informer
tables, or the Autoformer protocol's look-back-96 table), computed through the
public ``evaluate`` of the Keras task or the runtime alike. TF-free."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.forecasting.data import PUBLISHED_SOURCES, published_rows, windows
from rnnzoo.apps.forecasting.inference import ForecastResult, time_text
from rnnzoo.errors import DataError
from rnnzoo.io import save_figure

VERB = "forecast"
#: The metric ``rnnzoo evaluate`` leads with (``report_metrics`` name) and its direction.
HEADLINE = ("mse", "min")
#: Families known by another metric: the echo-state network by NRMSE (as in the reservoir-
#: computing literature on Mackey-Glass), the other forecasters by MSE (the Informer tables).
HEADLINE_BY_FAMILY = {"esn": ("nrmse", "min")}
#: How much an int8 bundle may raise the MSE (relative), for the families that ship one
#: (SegRNN; the other forecasters are fp32 only). The preset harness checks the same rule.
INT8_TOLERANCE = {"relative": 0.005}
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Forecasting the next steps of a series like the one it was trained on, from "
                "a window of its recent values.")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Trained on one series: the scaling (z-scores) and dynamics are that series'; another "
    "series needs retraining or fine-tuning.",
    "The horizon and look-back window are fixed at training.",
    "Point forecasts without uncertainty; errors grow with the horizon and under regime "
    "changes.",
)


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rnnzoo forecast``."""
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


def run_verb(model: Any, args: argparse.Namespace) -> int:
    """The forecast after the last row (or ``--at``), a table or JSON lines, and the plot."""
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
            row: dict[str, Any] = {"time": time_text(when),
                                   **{n: round(float(v), 6) for n, v in zip(names, values)}}
            if truth is not None:
                row["truth"] = {n: float(v) for n, v in zip(names, truth)}
            print(json.dumps(row))
        else:
            line = time_text(when).ljust(20) + "".join(f"{v:>14.4f}" for v in values)
            if truth is not None:
                line += "".join(f"{v:>16.4f}" for v in truth)
            print(line)
    if args.plot:
        name = getattr(model, "name", None) or getattr(model, "entry", "")
        plot_forecast(result, args.plot, title=f"{name}: {len(result.times)} steps after "
                      f"{time_text(result.history_times[-1])}")
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """None: a split is scored over all of its windows."""
    return None


def evaluate_reports(model: Any, data: Any, split: str, options: Mapping[str, Any]
                     ) -> list[dict]:
    """MSE/MAE/NRMSE (z-scored) over the first ``options["limit"]`` windows of ``split``
    (every one by default), through ``model.evaluate(windows, futures)`` in file units."""
    x, y = windows(data.split(split), data.lookback, data.horizon,
                   model.preprocessor.target_index)
    limit = options.get("limit")
    x, y = x[:limit], y[:limit]
    if not len(x):
        raise DataError(f"{data.description}: the {split} split has no window of "
                        f"{data.lookback} + {data.horizon} rows")
    scores = model.evaluate(x, y, progress=options.get("progress", False))
    report = {k: scores[k] for k in ("mse", "mae", "nrmse", "mse_by_step")}
    report.update(split=split, data=data.description, num_windows=int(len(x)),
                  horizon=data.horizon, lookback=data.lookback, mode=data.mode,
                  dataset=data.dataset, targets=list(data.targets))
    published = published_rows(data.dataset, data.mode, data.horizon, data.lookback,
                               data.protocol)
    if published and split == "test":
        report["published"] = {k: {"mse": v[0], "mae": v[1]} for k, v in published.items()}
        if data.protocol != "ett":  # the Informer reports stay as they were
            report["published_source"] = PUBLISHED_SOURCES[data.protocol]
            report["protocol"] = data.protocol
    return [report]


def format_report(report: dict) -> str:
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
        source = report.get("published_source", PUBLISHED_SOURCES["ett"])
        lines.append(f"published ({source}, {report['dataset']} mode {report['mode']}, "
                     f"horizon {report['horizon']}, MSE/MAE): " + ", ".join(
                         f"{k} {v['mse']:.3f}/{v['mae']:.3f}" for k, v in published.items()))
    return "\n".join(lines)


def example_inputs() -> list:
    """Phases of the sine windows ``example_outputs`` forecasts."""
    return [0.0, 1.3]


def example_outputs(model: Any, inputs: list) -> Any:
    """Forecasts of sine windows around the training mean, one per phase."""
    pre = model.preprocessor
    t = np.arange(pre.lookback)[:, None] + np.arange(len(pre.columns))[None, :]
    batch = np.stack([pre.mean + pre.std * np.sin(0.35 * t + phase) for phase in inputs])
    return {"forecast": model.forecast(batch).tolist()}


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
