"""Forecasting task type, forecaster and echo-state families: what is their own (the lifecycle
harness covers train/resume/reload/preset/export/runtime for every entry)."""

from __future__ import annotations

import datetime as dt
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data

import rnnzoo
from rnnzoo.apps.forecasting.data import (
    DataConfig,
    ForecastPreprocessor,
    ett_borders,
    forecast_metrics,
    load_forecast_data,
    mackey_glass,
)
from rnnzoo.errors import ConfigError, DataError
from rnnzoo.evaluation import evaluate_reports
from rnnzoo.families.esn import ridge_readout
from rnnzoo.families.forecaster import synthetic_dataset


def _csv(path: Path, rows: list[str], header: str = "date,load,OT") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _hours(n: int, start: dt.datetime = dt.datetime(2020, 1, 1)) -> list[str]:
    return [(start + dt.timedelta(hours=i)).isoformat(sep=" ") for i in range(n)]


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory):
    """A tiny LSTM forecaster trained on the synthetic sine series."""
    root = tmp_path_factory.mktemp("sine")
    data = synthetic_dataset(root, n=900, seed=0)
    result = rnnzoo.train("forecaster_lstm", data, out=root / "run", verbose=0,
                          model={"units": 16}, data={"lookback": 48, "horizon": 6},
                          training={"epochs": 12, "batch_size": 32, "learning_rate": 5e-3,
                                    "early_stopping_patience": 0})
    return result, data


def test_tiny_model_forecasts_a_sine_wave(sine_run):
    result, data = sine_run
    task = result.task
    loaded = task.load_data(data, seed=0)
    report = evaluate_reports(task, loaded, "test")[0]
    x, y = task.scaled_windows(loaded, "test")
    persistence = forecast_metrics(np.repeat(x[:, -1:, :], 6, axis=1), y)["mse"]
    assert report["mse"] < 0.35 * persistence, (report["mse"], persistence)
    # The user call on a clean sine, in file units: close to the continuation.
    t = np.arange(60)
    ot = np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 61)
    window = ot[:, None]  # univariate: the model reads OT alone
    future = np.arange(60, 66)
    truth = np.sin(2 * np.pi * future / 24) + 0.5 * np.sin(2 * np.pi * future / 61)
    pred = task.forecast(window)
    assert pred.shape == (6, 1)
    # A clean sine (the model was trained on a noisy one), amplitude ~1.5: close, not exact.
    assert np.abs(pred[:, 0] - truth).mean() < 0.3, (pred[:, 0], truth)


def test_evaluate_windows_and_references_matches_the_split_report(sine_run):
    result, data = sine_run
    task = result.task
    loaded = task.load_data(data, seed=0)
    x, y = task.scaled_windows(loaded, "test")
    pre = task.preprocessor
    idx = pre.target_index
    windows = x * pre.std + pre.mean  # back to file units, as a user holds them
    refs = y * pre.std[idx] + pre.mean[idx]
    report = task.evaluate(windows, refs)
    split_report = evaluate_reports(task, loaded, "test")[0]
    assert report["mse"] == pytest.approx(split_report["mse"], rel=1e-4)
    assert report["num_windows"] == len(x) and report["steps"] == 6
    first = task.evaluate(windows, refs[:, :2])  # fewer steps than the horizon: those steps
    assert first["steps"] == 2
    with pytest.raises(DataError, match=r"expected shape \[\d+, steps <= 6, 1\]"):
        task.evaluate(windows, refs[:3])


def test_forecast_verb_prints_timestamps_and_plots(sine_run, tmp_path):
    from rnnzoo.cli import main

    result, data = sine_run
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["forecast", "forecaster_lstm", "--run", str(result.run_dir), "--data",
                   str(data), "--horizon", "3", "--at", "800", "--plot",
                   str(tmp_path / "f.png")])
    assert rc == 0
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 4 and "truth OT" in lines[0]
    # Row 800 of an hourly series starting 2020-01-01 00:00: the forecast starts one hour on.
    assert lines[1].startswith("2020-02-03 09:00:00"), lines[1]
    assert (tmp_path / "f.png").stat().st_size > 5000
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["forecast", "forecaster_lstm", "--run", str(result.run_dir), "--data",
                     str(data), "--json"]) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(rows) == 6 and set(rows[0]) == {"time", "OT"}


def test_informer_split_boundaries_are_exact(tmp_path):
    n = 17420
    rng = np.random.default_rng(0)
    values = rng.normal(size=n)
    path = _csv(tmp_path / "ETTh1.csv", [f"{d},1.0,{v:.6f}" for d, v in zip(_hours(n),
                                                                             values)])
    data = load_forecast_data(path, DataConfig(lookback=96, horizon=24), seed=0)
    assert data.protocol == "ett"
    assert data.borders == {"train": (0, 8640), "dev": (8544, 11520), "test": (11424, 14400)}
    assert data.num_train == 8640 - 96 - 24 + 1
    assert data.num_windows("test") == 2880 - 24 + 1
    # 15-minute files: four times the rows.
    assert ett_borders("ETTm1", 96, 69680)["test"] == (4 * 11520 - 96, 4 * 14400)
    # Scaling uses the train rows only.
    task = rnnzoo.create_model("forecaster_lstm", data={"lookback": 96, "horizon": 24})
    task.adapt(data)
    assert np.isclose(task.preprocessor.mean[0], values[:8640].mean())
    assert np.isclose(task.preprocessor.std[0], values[:8640].std())
    x, y = task.scaled_windows(data, "test")
    first = (values[11424:11520] - values[:8640].mean()) / values[:8640].std()
    np.testing.assert_allclose(x[0, :, 0], first, atol=1e-5)  # file has 6 decimals
    assert y.shape == (2857, 24, 1)
    # Any other file: chronological 70/10/20 with the look-back overlap.
    other = load_forecast_data(_csv(tmp_path / "other.csv", [f"{d},1,{i}" for i, d in
                                                            enumerate(_hours(1000))]),
                               DataConfig(lookback=10, horizon=5), seed=0)
    assert other.borders == {"train": (0, 700), "dev": (690, 800), "test": (790, 1000)}


def test_real_etth1_split_dates():
    path = shared_data("timeseries_ett", "ETTh1.csv")
    data = load_forecast_data(path, DataConfig(lookback=96, horizon=24), seed=0)
    dates = data.series.dates
    assert dates[0] == dt.datetime(2016, 7, 1)
    assert dates[8640] == dt.datetime(2017, 6, 26)  # 360 days on: 12 Informer "months"
    assert data.borders["test"] == (11424, 14400)
    assert len(data.series.values) == 17420


def test_multivariate_columns(tmp_path):
    path = synthetic_dataset(tmp_path, n=400)
    data = load_forecast_data(path, DataConfig(target="all", features="all"), seed=0)
    assert data.columns == ["load", "OT"] and data.targets == ["load", "OT"]
    assert data.mode == "M"
    ms = load_forecast_data(path, DataConfig(target="OT", features="all"), seed=0)
    assert ms.columns == ["load", "OT"] and ms.targets == ["OT"] and ms.mode == "MS"


def test_mackey_glass_generator_is_seeded():
    a, b, c = mackey_glass(800, seed=1), mackey_glass(800, seed=1), mackey_glass(800, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert 0.2 < a.min() < 0.6 and 1.1 < a.max() < 1.45  # the tau=17 attractor's range
    data = load_forecast_data("mackey-glass", DataConfig(lookback=50, horizon=1,
                                                         mackey_glass_length=1000), seed=3)
    assert data.series.values.shape == (1000, 1) and data.protocol == "mackey-glass"


# -- echo-state network --------------------------------------------------------------------------
def _esn(**model):
    task = rnnzoo.create_model("esn_forecaster", model={"units": 60, **model},
                               data={"lookback": 30, "horizon": 3, "target": "OT"})
    task.preprocessor.mean, task.preprocessor.std = np.zeros(1), np.ones(1)
    return task


@pytest.mark.parametrize("radius", [0.9, 1.25])
def test_esn_spectral_radius_equals_setting(radius):
    task = _esn(spectral_radius=radius, washout=10)
    w = task.reservoir.recurrent_matrix()
    assert np.isclose(np.abs(np.linalg.eigvals(w)).max(), radius, rtol=1e-5)
    assert 0.05 < np.mean(w != 0) < 0.15  # connectivity 0.1
    again = _esn(spectral_radius=radius, washout=10).reservoir.recurrent_matrix()
    np.testing.assert_array_equal(w, again)  # seeded


@pytest.mark.parametrize("leak", [0.3, 1.0])
def test_reservoir_is_the_leaky_esn_update(leak):
    task = _esn(leak_rate=leak, bias_scaling=0.2, washout=10)
    layer = task.reservoir
    w, w_in, b = layer.matrices(1)
    u = np.sin(np.arange(40) * 0.4)[:, None]
    h, expected = np.zeros(60), []
    for x in u:
        h = (1 - leak) * h + leak * np.tanh(w @ h + w_in @ x + b)
        expected.append(h)
    np.testing.assert_allclose(task.series_states(u), np.array(expected), atol=2e-5)


def test_ridge_readout_equals_numpy_least_squares():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12))
    y = x @ rng.normal(size=(12, 3)) + 0.7 + 0.1 * rng.normal(size=(200, 3))
    w, b = ridge_readout(x, y, 0.0)
    ones = np.hstack([x, np.ones((200, 1))])
    ref = np.linalg.lstsq(ones, y, rcond=None)[0]
    np.testing.assert_allclose(w, ref[:-1], atol=1e-10)
    np.testing.assert_allclose(b, ref[-1], atol=1e-10)
    # With a penalty: the regularised normal equations on centred data (bias not penalised).
    lam = 5.0
    wr, br = ridge_readout(x, y, lam)
    xc, yc = x - x.mean(0), y - y.mean(0)
    np.testing.assert_allclose(wr, np.linalg.solve(xc.T @ xc + lam * np.eye(12), xc.T @ yc),
                               atol=1e-10)
    np.testing.assert_allclose(br, y.mean(0) - x.mean(0) @ wr, atol=1e-10)


def test_esn_training_fits_the_readout_in_closed_form(tmp_path):
    data = synthetic_dataset(tmp_path, n=500)
    result = rnnzoo.train("esn_forecaster", data, out=tmp_path / "run", verbose=0,
                          model={"units": 40, "washout": 20},
                          data={"lookback": 30, "horizon": 3, "target": "OT"})
    task = result.task
    series = task.preprocessor.scale(task.load_data(data, 0).split("train"))
    states = task.series_states(series)
    y = np.stack([series[1 + k: len(series) - 3 + 1 + k, 0] for k in range(3)], axis=1)
    w, b = ridge_readout(states[20:len(series) - 3], y[20:], 1e-6)
    got_w, got_b = task.model.get_layer("readout").get_weights()
    np.testing.assert_allclose(got_w, w, atol=1e-4)
    np.testing.assert_allclose(got_b, b, atol=1e-4)
    assert result.metrics["mse"] < 0.2  # z-scored series: variance ~1


def test_esn_windows_readout_fits_the_window_states(tmp_path):
    """readout_fit=windows: ridge on the last state of every training window (the reservoir
    started from zero at each, as forecast(window) runs it)."""
    data = synthetic_dataset(tmp_path, n=400)
    result = rnnzoo.train("esn_forecaster", data, out=tmp_path / "run", verbose=0,
                          model={"units": 30, "readout_fit": "windows", "washout": 500},
                          data={"lookback": 20, "horizon": 2, "target": "OT"})
    task = result.task
    x, y = task.scaled_windows(task.load_data(data, 0), "train")
    last = np.stack([task.series_states(window)[-1] for window in x[::37]])
    np.testing.assert_allclose(task.window_states(x[::37]), last, atol=1e-5)
    w, b = ridge_readout(task.window_states(x), y.reshape(len(y), -1), 1e-6)
    got_w, got_b = task.model.get_layer("readout").get_weights()
    np.testing.assert_allclose(got_w, w, atol=1e-4)
    np.testing.assert_allclose(got_b, b, atol=1e-4)
    assert result.metrics["mse"] < 0.2


def test_esn_washout_longer_than_lookback_is_refused():
    with pytest.raises(ConfigError, match="washout 50 is longer than lookback 30"):
        _esn(washout=50).model  # noqa: B018


# -- bad input -----------------------------------------------------------------------------------
def _load(path, **kw):
    return load_forecast_data(path, DataConfig(lookback=4, horizon=2, **kw), seed=0)


def test_missing_target_column(tmp_path):
    path = _csv(tmp_path / "s.csv", [f"{d},1,2" for d in _hours(50)])
    with pytest.raises(DataError, match=r"s\.csv: no column 'temp' .*load, OT.*--target"):
        _load(path, target="temp")


def test_non_numeric_value_names_line_and_column(tmp_path):
    rows = [f"{d},1,2" for d in _hours(50)]
    rows[6] = rows[6].replace(",2", ",warm")
    with pytest.raises(DataError, match=r"s\.csv, line 8, column 'OT': 'warm' is not a number"):
        _load(_csv(tmp_path / "s.csv", rows))


@pytest.mark.parametrize("gap", ["", "NaN", "nan"])
def test_gap_names_line_and_column(tmp_path, gap):
    rows = [f"{d},1,2" for d in _hours(50)]
    rows[9] = rows[9].rsplit(",", 1)[0] + "," + gap
    with pytest.raises(DataError, match=r"s\.csv, line 11, column 'OT': missing value"):
        _load(_csv(tmp_path / "s.csv", rows))


def test_unsorted_and_duplicate_dates(tmp_path):
    hours = _hours(50)
    rows = [f"{d},1,2" for d in hours]
    rows[20], rows[21] = rows[21], rows[20]
    with pytest.raises(DataError, match=r"s\.csv, line 23, column 'date': .* is not later "
                                        r"than .*sort the file"):
        _load(_csv(tmp_path / "s.csv", rows))
    rows = [f"{d},1,2" for d in hours]
    rows[5] = rows[4]
    with pytest.raises(DataError, match=r"line 7, column 'date'"):
        _load(_csv(tmp_path / "d.csv", rows))
    rows = [f"{d},1,2" for d in hours]
    rows[3] = "yesterday,1,2"
    with pytest.raises(DataError, match=r"line 5, column 'date': 'yesterday' is not a date"):
        _load(_csv(tmp_path / "e.csv", rows))


def test_window_shorter_than_lookback(sine_run, tmp_path):
    task = sine_run[0].task
    with pytest.raises(DataError, match=r"forecast\(window\): 10 time steps, but this model "
                                        r"looks back 48"):
        task.forecast(np.zeros((10, 1)))
    short = _csv(tmp_path / "short.csv", [f"{d},1,2" for d in _hours(20)])
    with pytest.raises(DataError, match=r"short\.csv: 20 rows up to the forecast origin \(line "
                                        r"21\), but this model looks back 48 rows \(column "
                                        r"'OT'\)"):
        task.forecast_csv(short)
    with pytest.raises(DataError, match=r"row 3, column 'OT' is not a finite number"):
        bad = np.zeros((48, 1))
        bad[3, 0] = np.nan
        task.forecast(bad)
    with pytest.raises(ConfigError, match="forecasts 6 steps at once"):
        task.forecast(np.zeros((48, 1)), horizon=7)
    with pytest.raises(DataError, match=r"no column 'OT', which this model reads"):
        task.forecast_csv(_csv(tmp_path / "x.csv", [f"{d},1" for d in _hours(60)],
                               header="date,load"))


def test_leak_one_reservoir_exports_as_fused_rnn(tmp_path):
    from rnnzoo.export import to_onnx

    data = synthetic_dataset(tmp_path, n=300)
    result = rnnzoo.train("esn_forecaster", data, out=tmp_path / "run", verbose=0,
                          model={"units": 24, "washout": 8, "leak_rate": 1.0,
                                 "spectral_radius": 0.9},
                          data={"lookback": 16, "horizon": 2, "target": "OT"})
    report = to_onnx(result.task, tmp_path / "bundle", strict=True)
    info = report.graphs["model"]
    assert info["recurrent_ops"] == {"RNN": 1} and info["loop_ops"] == 0
    assert max(info["max_abs_diff"].values()) <= 1e-4


# -- the Autoformer protocol and SegRNN ----------------------------------------------------------
def test_autoformer_protocol_on_real_etth1(tmp_path):
    """Autoformer/DLinear/SegRNN's data_loader.py: the same 12/4/4-month borders with the
    look-back overlap, all 7 columns (mode M), every test window; the published look-back-96
    rows come with the report, and a file that is not ETT is refused."""
    from rnnzoo.apps.forecasting.cli import evaluate_reports as app_reports
    from rnnzoo.apps.forecasting.data import published_rows

    path = shared_data("timeseries_ett", "ETTh1.csv")
    config = DataConfig(lookback=96, horizon=96, target="all", protocol="autoformer")
    data = load_forecast_data(path, config, seed=0)
    assert data.protocol == "autoformer" and data.mode == "M" and len(data.columns) == 7
    assert data.borders == {"train": (0, 8640), "dev": (8544, 11520), "test": (11424, 14400)}
    assert data.num_windows("test") == 2976 - 96 - 96 + 1 == 2785
    assert published_rows("ETTh1", "M", 720, 96, "autoformer")["SegRNN"] == (0.446, 0.457)
    assert published_rows("ETTh1", "M", 96, 336, "autoformer") is None  # other look-back
    assert published_rows("ETTh1", "S", 24, 96, "ett")["LSTMa"] == (0.114, 0.272)

    class Persistence:  # the report's plumbing on a model-free forecaster
        preprocessor = None

        def evaluate(self, x, y, progress=False):
            pred = np.repeat(x[:, -1:, :], y.shape[1], axis=1)
            return {**forecast_metrics(pred, y), "num_windows": len(x)}

    fake = Persistence()
    fake.preprocessor = type("P", (), {"target_index": list(range(7))})()
    report = app_reports(fake, data, "test", {"limit": 8})[0]
    assert report["protocol"] == "autoformer" and report["published"]["SegRNN"]["mse"] == 0.368
    with pytest.raises(DataError, match="protocol 'autoformer' needs an ETT file"):
        load_forecast_data(synthetic_dataset(tmp_path, n=300), config, seed=0)


def test_segrnn_parallel_decoding_is_one_gru_step_per_segment():
    """PMF without repeating the state equals the reference's: the GRU cell run on the state
    repeated once per output segment with [position | channel] as input; the window minus its
    last value, the horizon cropped from whole segments, the last value added back."""
    import keras

    from rnnzoo.families._segrnn_layers import SegmentRecurrence

    keras.utils.set_random_seed(0)
    task = rnnzoo.create_model("forecaster_segrnn", model={"units": 8, "seg_len": 4},
                               data={"lookback": 12, "horizon": 6, "target": "all",
                                     "protocol": "informer"})
    task.preprocessor = ForecastPreprocessor(["a", "b", "c"], ["a", "b", "c"], 12, 6,
                                             [0.0] * 3, [1.0] * 3)
    model = task.model
    layer = model.get_layer("segrnn")
    assert isinstance(layer, SegmentRecurrence) and layer.out_segments == 2
    x = np.random.default_rng(0).normal(size=(2, 12, 3)).astype(np.float32)
    got = np.asarray(model(x))
    last = x[:, -1:, :]
    seg = (x - last).transpose(0, 2, 1).reshape(-1, 3, 4)
    h = np.asarray(layer.gru(layer.embed(seg)))
    q = np.concatenate([np.tile(np.asarray(layer.position)[None], (3, 1, 1)),
                        np.tile(np.asarray(layer.channel)[:, None], (1, 2, 1))], axis=-1)
    out, _ = layer.gru.cell(np.tile(q.reshape(-1, 8), (2, 1)), [np.repeat(h, 2, axis=0)])
    want = np.asarray(layer.head(out)).reshape(2, 3, 8)[:, :, :6].transpose(0, 2, 1) + last
    np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(ConfigError, match="no stream.*SegRNN reads its window in segments"):
        task.stream()


def test_segrnn_lookback_must_be_whole_segments():
    task = rnnzoo.create_model("forecaster_segrnn", model={"units": 8, "seg_len": 24},
                               data={"lookback": 100, "protocol": "informer"})
    with pytest.raises(ConfigError, match=r"lookback 100 is not a multiple of seg_len 24; "
                                          r"use --set lookback=96"):
        task.check_config()
