"""rnnzoo's echo-state network against reservoirpy on Mackey-Glass: NRMSE and fit time side by
side, the same reservoir hyperparameters, the same series, in one run.

    pip install -e '.[bench]'          # reservoirpy
    python benchmarks/bench_esn.py [--seeds 20] [--full-seeds 2] [--units 500] [--horizon 1]
                                   [--json out.json]

The series is rnnzoo's Mackey-Glass generator (tau = 17, 10,000 samples after a transient,
seeded), z-scored with the train rows' mean and std and split chronologically 70/10/20, exactly
what ``rnnzoo train esn_forecaster --data mackey-glass`` reads. For every reservoir seed:

* **rnnzoo**: ``rnnzoo.train("esn_forecaster", "mackey-glass", ...)``, the real training path
  (run directory, non-gradient ``fit`` hook: states over the train rows, washout, ridge).
  Fit time = the hook's readout fit (reservoir states + ridge solve); the whole ``train`` call
  (with Keras' reporting epoch, checkpoints and reports) is listed too.
* **reservoirpy**: ``Reservoir(units, lr, sr, input_scaling, rc_connectivity,
  input_connectivity, seed) >> Ridge(ridge)``, ``fit(train inputs, next values, warmup=washout)``.

Both are then scored the same way, teacher-forced: the reservoir continues from the end of the
train rows over the dev and test rows, and the readout's test-row forecasts give NRMSE (RMSE
over the standard deviation of the truth). rnnzoo's own windowed evaluation (the reservoir
started from zero at each ``lookback``-row window, as ``forecast(window)`` runs it) is listed
as well. The reservoirs' random draws differ between the libraries (same distributions, other
generators), and single reservoirs have heavy-tailed errors in both libraries (a few draws are
several times worse than the typical one), so the comparison is over 20 seeds: median, mean
and spread. The first ``--full-seeds`` seeds go through the whole ``rnnzoo.train`` call.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def nrmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return math.sqrt(float(np.mean((pred - truth) ** 2))) / float(np.std(truth))


def targets_of(series: np.ndarray, horizon: int) -> np.ndarray:
    """Row t -> the next ``horizon`` values [rows - horizon, horizon]."""
    return np.stack([series[1 + k: len(series) - horizon + 1 + k] for k in range(horizon)],
                    axis=1)


def run_rnnzoo(hp: dict, seed: int, horizon: int, lookback: int, work: Path,
               full: bool) -> dict:
    """``full``: through ``rnnzoo.train`` (run directory, fit hook, Keras reporting epoch, dev
    report) plus the windowed test evaluation; otherwise the same readout fit the hook runs
    (``Task.fit_readout`` on the adapted task), which is what the fit time measures anyway."""
    import rnnzoo

    overrides = {"model": {**hp, "reservoir_seed": seed},
                 "data": {"lookback": lookback, "horizon": horizon, "target": "x"}}
    t0 = time.perf_counter()
    if full:
        result = rnnzoo.train("esn_forecaster", "mackey-glass", out=work / f"rnnzoo-{seed}",
                              verbose=0, **overrides)
        task = result.task
        fit = task.readout_fit
    else:
        task = rnnzoo.create_model("esn_forecaster", **overrides)
        data = task.load_data("mackey-glass", seed=task.config.training.seed)
        task.adapt(data)
        fit = task.fit_readout(task.preprocessor.scale(data.split("train")))
    train_wall = time.perf_counter() - t0
    data = task.load_data("mackey-glass", seed=task.config.training.seed)
    series = task.preprocessor.scale(data.series.values)[:, 0]
    (_, n_train), (test_lo, test_hi) = data.borders["train"], data.borders["test"]
    # Teacher-forced over the whole series from zero = the train states, then continuing.
    states = task.series_states(series[:, None])
    w, b = task.model.get_layer("readout").get_weights()
    first = test_lo + lookback  # the test split's own rows (after its look-back overlap)
    rows = np.arange(first - 1, test_hi - horizon)
    pred = states[rows] @ w + b
    truth = targets_of(series, horizon)[rows]
    out = {"nrmse": nrmse(pred, truth), "fit_s": fit["fit_seconds"],
           "series": series, "first": first, "n_train": n_train, "test_hi": test_hi}
    if full:
        from rnnzoo.evaluation import evaluate_reports

        out["nrmse_windowed"] = evaluate_reports(task, data, "test")[0]["nrmse"]
        out["train_call_s"] = train_wall
    return out


def run_reservoirpy(hp: dict, seed: int, horizon: int, series: np.ndarray, n_train: int,
                    first: int, test_hi: int) -> dict:
    from reservoirpy.nodes import Reservoir, Ridge

    reservoir = Reservoir(hp["units"], lr=hp["leak_rate"], sr=hp["spectral_radius"],
                          input_scaling=hp["input_scaling"], rc_connectivity=hp["connectivity"],
                          input_connectivity=hp["input_connectivity"], bias=0.0, seed=seed)
    readout = Ridge(ridge=hp["ridge"])
    esn = reservoir >> readout
    y = targets_of(series, horizon)
    x_train = series[: n_train - horizon, None]
    t0 = time.perf_counter()
    esn.fit(x_train, y[: n_train - horizon], warmup=hp["washout"])
    fit_s = time.perf_counter() - t0
    # Continue from the end of the train inputs over every later row, teacher-forced.
    rest = esn.run(series[n_train - horizon: test_hi - horizon, None])
    rows = np.arange(first - 1, test_hi - horizon)
    pred = np.asarray(rest)[rows - (n_train - horizon)]
    return {"nrmse": nrmse(pred, y[rows]), "fit_s": fit_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--full-seeds", dest="full_seeds", type=int, default=2,
                        help="how many seeds go through the whole rnnzoo.train call")
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--horizon", type=int, default=1)
    parser.add_argument("--lookback", type=int, default=None,
                        help="window of the windowed evaluation (default: the entry's)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    try:
        import reservoirpy
    except ImportError:
        print("reservoirpy is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    from rnnzoo.registry import get_entry

    entry = get_entry("esn_forecaster")
    model = entry.model
    if args.lookback is None:
        args.lookback = entry.data.lookback
    hp = {"units": args.units, "spectral_radius": model.spectral_radius,
          "leak_rate": model.leak_rate, "input_scaling": model.input_scaling,
          "connectivity": model.connectivity, "input_connectivity": model.input_connectivity,
          "ridge": model.ridge, "washout": model.washout}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            ours = run_rnnzoo(hp, seed, args.horizon, args.lookback, Path(tmp),
                              full=seed < args.full_seeds)
            theirs = run_reservoirpy(hp, seed, args.horizon, ours.pop("series"),
                                     ours.pop("n_train"), ours.pop("first"),
                                     ours.pop("test_hi"))
            rows.append({"seed": seed, "rnnzoo": ours, "reservoirpy": theirs})
            windowed = (f" (windowed {ours['nrmse_windowed']:.3e})"
                        if "nrmse_windowed" in ours else "")
            print(f"seed {seed}: rnnzoo NRMSE {ours['nrmse']:.3e}{windowed}, fit "
                  f"{ours['fit_s']:.2f}s | reservoirpy NRMSE {theirs['nrmse']:.3e}, fit "
                  f"{theirs['fit_s']:.2f}s", flush=True)

    def stat(lib: str, key: str) -> tuple[float, float, float]:
        """(mean, std, median) over the seeds that have ``key``."""
        v = np.array([r[lib][key] for r in rows if key in r[lib]])
        return float(v.mean()), float(v.std()), float(np.median(v))

    summary = {
        "hyperparameters": hp, "horizon": args.horizon, "seeds": args.seeds,
        "series": "rnnzoo mackey_glass(n=10000, tau=17, seed=1234), z-scored, 70/10/20",
        "reservoirpy_version": reservoirpy.__version__,
        "rnnzoo": {k: stat("rnnzoo", k) for k in ("nrmse", "nrmse_windowed", "fit_s",
                                                   "train_call_s")},
        "statistics": "(mean, std, median) over the seeds",
        "reservoirpy": {k: stat("reservoirpy", k) for k in ("nrmse", "fit_s")},
        "runs": rows,
    }
    ratio = summary["rnnzoo"]["nrmse"][0] / summary["reservoirpy"]["nrmse"][0]
    median_ratio = summary["rnnzoo"]["nrmse"][2] / summary["reservoirpy"]["nrmse"][2]
    summary["nrmse_ratio"] = ratio
    summary["nrmse_median_ratio"] = median_ratio
    print()
    print(f"Mackey-Glass (tau 17), {args.horizon} step(s) ahead, {args.seeds} seeds, "
          + ", ".join(f"{k}={v}" for k, v in hp.items()))
    print(f"{'':24}{'test NRMSE: median':>20}{'mean +- std':>22}{'fit time, s':>16}")
    for lib, label in (("rnnzoo", "rnnzoo"), ("reservoirpy", f"reservoirpy "
                                                               f"{reservoirpy.__version__}")):
        m, sd, med = summary[lib]["nrmse"]
        f, fs, _ = summary[lib]["fit_s"]
        print(f"{label:24}{med:>20.3e}{m:>13.3e} +- {sd:.1e}{f:>10.2f} +- {fs:.2f}")
    m, sd, med = summary["rnnzoo"]["nrmse_windowed"]
    print(f"{'rnnzoo, windowed eval':24}{med:>20.3e}{m:>13.3e} +- {sd:.1e}"
          f"   ({args.full_seeds} seeds; reservoir from zero per {args.lookback}-row window)")
    print(f"rnnzoo / reservoirpy NRMSE: median {median_ratio:.3f}, mean {ratio:.3f} "
          "(target: within 10%)")
    print(f"rnnzoo whole train() call: {summary['rnnzoo']['train_call_s'][0]:.1f}s")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
