"""The sentiment recipe options of issue #37 (word dropout, max+mean pooling, label smoothing):
each does what it says, is off by default (the shipped preset builds and trains as before), and
a model that uses them still exports to ONNX (fp32 and int8) and streams exactly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_overrides
from test_export_bundle import _tiny_trained
from test_stream_parity import _classification

import rnnzoo
from rnnzoo.families.sentiment import ModelConfig

RECIPE = {"pooling": "max_mean", "word_dropout": 0.3, "label_smoothing": 0.1}


def test_options_are_off_by_default():
    """The defaults build the model the shipped preset was trained as: no word-dropout layer,
    max pooling, plain sparse cross-entropy."""
    import keras

    m = ModelConfig()
    assert (m.word_dropout, m.label_smoothing, m.pooling) == (0.0, 0.0, "max")
    task = rnnzoo.create_model("sentiment_bilstm", **tiny_overrides("sentiment"))
    assert "word_dropout" not in {layer.name for layer in task.model.layers}
    assert type(task.loss()) is keras.losses.SparseCategoricalCrossentropy


def test_word_dropout_replaces_words_by_unk_in_training_only():
    from rnnzoo.layers.text import WordDropout

    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 50, size=(200, 40)).astype(np.int32)
    tokens[:, 30:] = 0  # padding
    layer = WordDropout(0.3, seed=1)
    out = np.asarray(layer(tokens, training=True))
    changed = out != tokens
    assert set(np.unique(out[changed])) == {1}  # replaced by <unk> only
    assert not changed[:, 30:].any() and (out[:, 30:] == 0).all()  # padding kept
    assert abs(changed[:, :30].mean() - 0.3) < 0.02
    np.testing.assert_array_equal(np.asarray(layer(tokens, training=False)), tokens)
    with pytest.raises(ValueError, match="rate"):
        WordDropout(1.0)


def test_word_dropout_adds_no_weights_and_changes_no_prediction():
    """A checkpoint of a model without the layer loads into one with it (and back): the
    layer has no weights and is inert at inference."""
    plain = _tiny_trained("sentiment_bilstm")
    dropped = _tiny_trained("sentiment_bilstm", word_dropout=0.4)
    assert "word_dropout" in {layer.name for layer in dropped.model.layers}
    dropped.model.set_weights(plain.model.get_weights())
    texts = ["good movie", "the plot was really bad", "a film"]
    np.testing.assert_allclose(dropped.predict_proba(texts), plain.predict_proba(texts),
                               atol=1e-6)


def test_max_mean_pooling_concatenates_max_and_mean_over_valid_steps():
    from rnnzoo.layers import MaskedGlobalPooling1D

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    got = np.asarray(MaskedGlobalPooling1D("max_mean")(x, mask=mask))
    assert got.shape == (3, 8)
    for i in range(3):
        valid = x[i][mask[i]]
        np.testing.assert_allclose(got[i, :4], valid.max(0), atol=1e-6)
        np.testing.assert_allclose(got[i, 4:], valid.mean(0), atol=1e-6)
    assert MaskedGlobalPooling1D("max_mean").compute_output_shape((None, None, 4)) == (None, 8)
    task = _tiny_trained("sentiment_bilstm", pooling="max_mean")
    # the head reads 2 x (2 directions x units)
    assert task.model.get_layer("probs").kernel.shape[0] == 4 * task.config.model.units


def test_label_smoothing_loss():
    import keras

    from rnnzoo.layers.losses import SmoothedSparseCrossentropy

    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    labels = np.array([0, 1, 1], np.int32)
    s = 0.1
    target = np.eye(2)[labels] * (1 - s) + s / 2
    want = float(np.mean(-(target * np.log(probs)).sum(1)))
    assert float(SmoothedSparseCrossentropy(s)(labels, probs)) == pytest.approx(want, rel=1e-5)
    plain = float(keras.losses.SparseCategoricalCrossentropy()(labels, probs))
    assert float(SmoothedSparseCrossentropy(0.0)(labels, probs)) == pytest.approx(plain, 1e-5)
    assert want != pytest.approx(plain, rel=1e-3)
    loss = _tiny_trained("sentiment_bilstm", label_smoothing=0.2).loss()
    assert isinstance(loss, SmoothedSparseCrossentropy) and loss.label_smoothing == 0.2


def test_training_with_the_recipe_runs(tmp_path, sentiment_csv):
    tiny = {k: dict(v) for k, v in tiny_overrides("sentiment").items()}
    tiny["model"].update(RECIPE)
    result = rnnzoo.train("sentiment_bilstm", sentiment_csv, out=tmp_path / "run", verbose=0,
                          limit=80, **tiny)
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    clf = rnnzoo.load(tmp_path / "run")
    assert clf.config.model.word_dropout == 0.3 and clf.config.model.pooling == "max_mean"


def test_recipe_model_exports_fp32_and_int8(tmp_path):
    from rnnzoo.export import runtime, to_onnx

    task = _tiny_trained("sentiment_bilstm", **RECIPE)
    report = to_onnx(task, tmp_path / "b", quantize="int8")
    texts = ["good movie", "the plot was really bad", "a film"]
    want = task.predict_proba(texts)
    np.testing.assert_allclose(runtime.load(tmp_path / "b").predict_proba(texts), want,
                               atol=1e-5)
    assert report.int8_path is not None
    assert runtime.load(report.int8_path).predict_proba(texts).shape == want.shape


def test_unidirectional_max_mean_streams_exactly(tmp_path):
    """The step graph carries max, sum and count: token by token equals the whole text, on
    Keras and on the exported bundle."""
    from rnnzoo.export import runtime, to_onnx

    task = _tiny_trained("sentiment_gru", pooling="max_mean", num_layers=2)
    assert task.streams
    _classification(task, task, np.random.default_rng(1))
    to_onnx(task, tmp_path / "g")
    _classification(task, runtime.load(tmp_path / "g"), np.random.default_rng(2))
