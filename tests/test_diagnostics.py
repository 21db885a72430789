"""Gradient diagnostics through time (rnnzoo/diagnostics/) and the long-dependency task type
(rnnzoo/apps/long_dependency/): analytic profiles, spectra, clipping counts, determinism of
the generators and their baselines, training unchanged by the diagnostics, the CLI."""

from __future__ import annotations

import json
import math
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import rnnzoo
from rnnzoo import diagnostics as D
from rnnzoo.apps.long_dependency import data as L
from rnnzoo.cli import main
from rnnzoo.errors import DataError

TINY = {"model": {"units": 8}, "training": {"epochs": 1, "batch_size": 16,
                                             "early_stopping_patience": 0}}


def _linear_rnn(w: np.ndarray, u: np.ndarray) -> keras.Model:
    h = w.shape[0]
    x = keras.Input((None, u.shape[0]))
    rnn = keras.layers.SimpleRNN(h, activation=None, use_bias=False, name="linear")
    model = keras.Model(x, rnn(x))
    rnn.set_weights([u, w])
    return model


def _as_task(model: keras.Model, loss) -> types.SimpleNamespace:
    return types.SimpleNamespace(model=model, loss=lambda: loss)


def test_profile_of_a_linear_rnn_is_analytic():
    # Keras: h_t = x_t U + h_{t-1} W (row vectors). With L = c . h_T:
    # dL/dh_T = c and dL/dh_{t-1} = W dL/dh_t, so ||dL/dh_t|| = ||W^(T-1-t) c||.
    rng = np.random.default_rng(0)
    T, H = 15, 5
    w = rng.normal(0, 0.6, (H, H)).astype("float32")
    u = rng.normal(0, 1.0, (3, H)).astype("float32")
    c = rng.normal(size=(1, H)).astype("float32")
    x = rng.normal(size=(1, T, 3)).astype("float32")
    task = _as_task(_linear_rnn(w, u), lambda y, p: tf.reduce_sum(p * y))
    got = np.asarray(D.temporal_profile(task, x, c)["layers"]["linear"]["profile"])
    g, want = c[0].astype(np.float64), []
    for _ in range(T):
        want.append(np.linalg.norm(g))
        g = w.astype(np.float64) @ g
    np.testing.assert_allclose(got, want[::-1], rtol=1e-4)


def test_profile_is_measured_per_direction_and_skips_padding():
    # Bidirectional over a masked batch: the backward layer's profile is on the input's time
    # axis (largest gradient at t=0, its last step), and padded steps do not count.
    x = keras.Input((None,), dtype="int32")
    e = keras.layers.Embedding(10, 4, mask_zero=True)(x)
    h = keras.layers.Bidirectional(keras.layers.LSTM(3), name="bi")(e)
    model = keras.Model(x, keras.layers.Dense(1)(h))
    tokens = np.array([[1, 2, 3, 4, 5, 6], [3, 4, 0, 0, 0, 0]], np.int32)
    task = _as_task(model, keras.losses.MeanSquaredError())
    layers = D.temporal_profile(task, tokens, np.ones((2, 1), np.float32))["layers"]
    forward = next(v for k, v in layers.items() if "forward" in k)
    backward = next(v for k, v in layers.items() if "backward" in k)
    assert forward["valid_rows"] == [2, 2, 1, 1, 1, 1]
    assert len(backward["profile"]) == 6
    assert int(np.argmax(backward["profile"])) == 0
    assert int(np.argmax(forward["profile"])) in (1, 5)  # the last valid step of a row


def test_vanilla_rnn_forgets_faster_than_an_lstm_with_forget_bias():
    x, y = L.adding_problem(16, 60, seed=3)
    lengths = {}
    for cell in ("rnn", "lstm"):
        keras.utils.set_random_seed(0)
        task = rnnzoo.create_model(f"memory_{cell}", units=16)
        if cell == "rnn":  # small recurrent weights: ||dh_t/dh_t-1|| < 0.3
            layer = D.recurrent_layers(task.model)[0][1]
            q = np.linalg.qr(np.random.default_rng(0).normal(size=(16, 16)))[0]
            layer.cell.recurrent_kernel.assign((0.3 * q).astype("float32"))
        prof = D.temporal_profile(task, x, y)["layers"]
        (info,) = prof.values()
        lengths[cell] = D.memory_length(info["profile"])
    assert lengths["rnn"]["memory_length"] is not None and lengths["rnn"]["memory_length"] < 15
    assert lengths["lstm"]["start_to_peak"] > 1e3 * lengths["rnn"]["start_to_peak"]
    assert (lengths["lstm"]["memory_length"] is None
            or lengths["lstm"]["memory_length"] > 2 * lengths["rnn"]["memory_length"])


def test_memory_length_reads_the_lag_below_the_floor():
    profile = [10.0 ** (-k) for k in range(8)][::-1]  # peak 1 at t=7, x0.1 per step back
    info = D.memory_length(profile)
    assert info["peak_step"] == 7 and info["memory_length"] == 4  # 1e-4 < 1e-3 at lag 4
    assert info["decay_per_step"] == pytest.approx(0.1)
    assert D.memory_length([1.0] * 5)["memory_length"] is None
    # A backward layer's past is the later steps.
    back = D.memory_length(profile[::-1], direction="backward")
    assert back["peak_step"] == 0 and back["memory_length"] == 4


def test_chrono_init_lengthens_memory_at_initialisation():
    x, y = L.adding_problem(8, 200, seed=0)
    reach = {}
    for horizon in (0, 200):
        keras.utils.set_random_seed(0)
        task = rnnzoo.create_model("memory_lstm", units=16, chrono_init=horizon)
        (info,) = D.temporal_profile(task, x, y)["layers"].values()
        reach[horizon] = D.memory_length(info["profile"])
    assert reach[200]["start_to_peak"] > 1e6 * reach[0]["start_to_peak"]
    assert reach[200]["memory_length"] is None or (
        reach[200]["memory_length"] > 2 * reach[0]["memory_length"])


def test_spectral_radius_and_gate_blocks_match_numpy():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(6, 6))
    s = D.spectrum(m)
    assert s["spectral_radius"] == pytest.approx(np.abs(np.linalg.eigvals(m)).max())
    np.testing.assert_allclose(s["singular_values"], np.linalg.svd(m, compute_uv=False))
    task = rnnzoo.create_model("memory_lstm", units=4)
    (path, layer), = D.recurrent_layers(task.model)
    blocks = D.recurrent_matrices(layer)
    u = np.asarray(layer.cell.recurrent_kernel)
    assert list(blocks) == ["input", "forget", "cell", "output"]
    np.testing.assert_array_equal(blocks["forget"], u[:, 4:8])


def test_gate_saturation_of_a_forced_forget_gate():
    task = rnnzoo.create_model("memory_lstm", units=4)
    (path, layer), = D.recurrent_layers(task.model)
    bias = np.asarray(layer.cell.bias).copy()
    bias[4:8] = 50.0  # forget gate pinned at 1
    layer.cell.bias.assign(bias)
    x, y = L.adding_problem(4, 10, seed=0)
    measured = D.temporal_profile(task, x, y, keep_inputs=True)
    gates = D.gate_saturation(D.recurrent_layers(task.model), measured["_record"])[path]
    assert gates["forget"]["near_1"] == 1.0 and gates["forget"]["mean"] > 0.99
    assert gates["input"]["saturated"] < 1.0


def _clip_callback(tmp_path, clipnorm):
    task = rnnzoo.create_model("memory_gru", **TINY)
    data = task.load_data("adding:T=6,train=32,dev=8", seed=0)
    task.adapt(data)
    task.model.compile(optimizer=keras.optimizers.SGD(global_clipnorm=clipnorm), loss="mse")
    cb = D.training_callback(task, data, tmp_path, every=1000, clipnorm=clipnorm, seed=0)
    cb.set_model(task.model)
    cb.on_train_begin()
    return cb, task.model.optimizer


def test_clipping_is_counted_on_a_hand_made_case(tmp_path):
    cb, opt = _clip_callback(tmp_path, clipnorm=1.0)
    big = [tf.constant([3.0, 4.0]), None]  # norm 5: clipped to 1 (scale 0.2)
    small = [tf.constant([0.3, 0.4]), tf.constant([0.0])]  # norm 0.5: untouched
    clipped = opt._clip_gradients(big)
    np.testing.assert_allclose(clipped[0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(opt._clip_gradients(small)[0], [0.3, 0.4], rtol=1e-6)
    stats = {k: float(v.numpy()) for k, v in cb.stats.items()}
    assert stats["steps"] == 2 and stats["clipped"] == 1
    assert stats["norm_max"] == pytest.approx(5.0)
    assert stats["norm_sum"] == pytest.approx(5.5)
    assert stats["scale_sum"] == pytest.approx(1.2)
    cb.on_train_end()
    assert "_clip_gradients" not in opt.__dict__  # the optimizer is restored


def _train(tmp_path, name, **training):
    data = "adding:T=20,train=96,dev=16,seed=1"
    return rnnzoo.train("memory_lstm", data, out=tmp_path / name, verbose=0,
                        model=TINY["model"], training={**TINY["training"], "epochs": 2,
                                                       **training})


def test_diagnostics_do_not_change_training(tmp_path):
    plain = _train(tmp_path, "plain")
    watched = _train(tmp_path, "watched", diagnose_every=2)
    for a, b in zip(plain.task.model.get_weights(), watched.task.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    content = json.loads((tmp_path / "watched" / D.DIAGNOSTICS_FILE).read_text())
    records = content["records"]
    assert [r["step"] for r in records] == [0, 2, 4, 6, 8, 10, 12]  # 6 steps/epoch x 2
    assert records[0]["window_steps"] == 0 and all(r["window_steps"] == 2
                                                   for r in records[1:])
    assert all(0.0 <= r["clip_fraction"] <= 1.0 for r in records[1:])
    assert set(records[-1]["layer_grad_norms"]) == {"rnn/lstm_0/lstm_cell", "y"}
    (profile,) = records[-1]["profiles"].values()
    assert len(profile) == 20 and profile[-1] > profile[0] > 0
    assert (tmp_path / "watched" / D.DIAGNOSTICS_PLOT).stat().st_size > 0
    assert not (tmp_path / "plain" / D.DIAGNOSTICS_FILE).exists()
    rnnzoo.load(tmp_path / "watched")  # the run still verifies


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt("simulated preemption after the first epoch")


def test_diagnostics_continue_after_a_resume(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        rnnzoo.train("memory_gru", "adding:T=20,train=96,dev=16,seed=1", out=tmp_path / "r",
                     verbose=0, callbacks=[_Interrupt()], model=TINY["model"],
                     training={**TINY["training"], "epochs": 2, "diagnose_every": 2})
    result = rnnzoo.train("memory_gru", "adding:T=20,train=96,dev=16,seed=1",
                          out=tmp_path / "r", verbose=0, model=TINY["model"],
                          training={**TINY["training"], "epochs": 2, "diagnose_every": 2})
    assert result.resumed_from_epoch == 1
    records = json.loads((tmp_path / "r" / D.DIAGNOSTICS_FILE).read_text())["records"]
    assert [r["step"] for r in records] == [0, 2, 4, 6, 8, 10, 12]


def test_generators_are_deterministic_and_their_baselines_hold():
    x1, y1 = L.adding_problem(20000, 50, seed=4)
    x2, y2 = L.adding_problem(20000, 50, seed=4)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert (x1[:, :, 1].sum(1) == 2).all()
    np.testing.assert_allclose(y1[:, 0], (x1[:, :, 0] * x1[:, :, 1]).sum(1), rtol=1e-6)
    assert np.mean((y1 - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.005)  # Bai et al.'s 0.167
    assert not np.array_equal(L.adding_problem(5, 50, seed=5)[0], x1[:5])

    x, y = L.copy_memory(1000, 30, seed=2)
    np.testing.assert_array_equal(x, L.copy_memory(1000, 30, seed=2)[0])
    assert x.shape == y.shape == (1000, 50)
    assert ((x[:, :10] >= 1) & (x[:, :10] <= 8)).all()
    assert (x[:, 10:39] == 0).all() and (x[:, 39:] == 9).all()
    np.testing.assert_array_equal(y[:, -10:], x[:, :10])
    assert (y[:, :-10] == 0).all()
    # The memoryless model: blank with certainty, then uniform over the 8 digits.
    probs = np.zeros((1000, 50, 10))
    probs[:, :-10, 0] = 1.0
    probs[:, -10:, 1:9] = 1 / 8
    nll = -np.log(np.take_along_axis(probs, y[..., None].astype(int), -1)).mean()
    assert nll == pytest.approx(L.copy_baseline(30))
    assert L.copy_baseline(1000) == pytest.approx(0.0204, abs=1e-4)  # Bai et al.'s LSTM


@pytest.mark.parametrize("spec, problem", [
    ("adding:T=abc", "not an integer"), ("adding:X=3", "KEY=VALUE"), ("mul:T=3", "expected a"),
    ("adding:T=1", "T must be"), ("copy:train=0", "train must be")])
def test_bad_specs_are_one_clear_error(spec, problem):
    with pytest.raises(DataError, match=problem):
        L.load_long_dependency(spec)


def test_problem_mismatch_names_the_fix():
    task = rnnzoo.create_model("memory_rnn")
    with pytest.raises(DataError, match="--set problem=copy"):
        task.adapt(task.load_data("copy:T=5,train=4,dev=2", seed=0))


def test_diagnose_report_and_cli(tmp_path, capsys):
    run = _train(tmp_path, "run").run_dir
    report = rnnzoo.diagnostics.diagnose(run, "adding:T=20,train=96,dev=16,seed=1",
                                         probe_size=8, out=tmp_path / "report")
    (layer,) = report["layers"].values()
    assert layer["cell"] == "lstm" and len(layer["profile"]) == 20
    assert set(layer["matrices"]) == {"input", "forget", "cell", "output"}
    assert set(report["gates"]["rnn/lstm_0"]) == {"input", "forget", "output"}
    assert report["probe_examples"] == 8 and "memory" in report["summary"]
    for name in ("report.json", "profile.png", "spectrum.png", "gates.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    json.loads((tmp_path / "report" / "report.json").read_text())

    code = main(["diagnose", "memory_lstm", "--run", str(run), "--data",
                 "adding:T=20,train=96,dev=16,seed=1", "--probe-size", "4"])
    out = capsys.readouterr()
    assert code == 0 and "rnn/lstm_0 (lstm, 8 units)" in out.out
    code = main(["solve", "memory_lstm", "--run", str(run), "--count", "2", "--length", "20",
                 "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(rows) == 2 and set(rows[0]) == {"prediction", "target"}
    code = main(["diagnose", "memory_lstm", "--run", str(run), "--data", "adding:T=x"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not an integer" in err
    assert math.isfinite(report["loss"])


def test_train_flag_sets_the_recipe_key():
    from rnnzoo.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["train", "memory_rnn", "--data", "d"]).diagnose is None
    assert parse(["train", "memory_rnn", "--data", "d", "--diagnose"]).diagnose == 100
    assert parse(["train", "memory_rnn", "--data", "d", "--diagnose", "7"]).diagnose == 7
    with pytest.raises(rnnzoo.ConfigError, match="diagnose_every"):
        rnnzoo.create_model("memory_rnn", diagnose_every=-1)


def test_diagnose_a_shipped_preset():
    from conftest import shared_data

    data = shared_data("sentiment", "SST-2")
    model = rnnzoo.from_preset("sentiment_bilstm.sst2", backend="keras")
    report = rnnzoo.diagnose(model, data, probe_size=8)
    assert len(report["layers"]) == 4  # two bidirectional LSTM layers, two directions each
    assert {v["direction"] for v in report["layers"].values()} == {"forward", "backward"}
    assert all(set(g) == {"input", "forget", "output"} for g in report["gates"].values())
    assert report["gradient_norm_per_layer"]["embedding"] > 0


@pytest.mark.parametrize("name", rnnzoo.list_models())
def test_profile_and_spectra_on_every_entry(name):
    """Generic over families: every entry's tiny model, on its own dummy batch and loss, gives a
    finite profile for each recurrent layer and a spectrum for each recurrent matrix."""
    from rnnzoo.families import family_spec
    from rnnzoo.registry import get_entry

    tiny = family_spec(get_entry(name).family).tiny_overrides
    task = rnnzoo.create_model(name, model=tiny["model"], data=tiny.get("data", {}))
    x, y = task.dummy_batch(4, seed=0)
    layers = D.recurrent_layers(task.model)
    measured = D.temporal_profile(task, x, y, keep_inputs=True)
    assert math.isfinite(measured["loss"])
    assert len(measured["layers"]) >= len(layers)  # every layer (a reused one: once per call)
    for info in measured["layers"].values():
        assert info["profile"] and all(math.isfinite(v) for v in info["profile"])
    for _, layer in layers:
        for m in D.recurrent_matrices(layer).values():
            assert math.isfinite(D.spectrum(m)["spectral_radius"])
    D.gate_saturation(layers, measured["_record"])
