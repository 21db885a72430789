"""Registry-generated tests: every zoo entry builds, trains a step, and round-trips its config and
its saved forms (.keras with safe_mode, and rnnzoo's weights+assets directory) exactly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_overrides

import rnnzoo
from rnnzoo.registry import get_entry

ENTRIES = rnnzoo.list_models()


def _tiny(name: str):
    return rnnzoo.create_model(name, **tiny_overrides(get_entry(name).family))


def _tokens(rng: np.random.Generator, batch: int, time: int, vocab: int) -> np.ndarray:
    """Random post-padded token ids, including a full-length and a length-1 row."""
    lengths = rng.integers(1, time + 1, size=batch)
    lengths[0], lengths[-1] = time, 1
    x = rng.integers(2, vocab, size=(batch, time)).astype(np.int32)
    x[np.arange(time)[None, :] >= lengths[:, None]] = 0
    return x


@pytest.mark.parametrize("name", ENTRIES)
def test_entry_builds_trains_one_step_and_round_trips(name, tmp_path):
    import keras

    task = _tiny(name)
    model = task.model
    vocab = task.config.model.vocab_size
    rng = np.random.default_rng(0)
    x = _tokens(rng, 6, 9, vocab)
    y = rng.integers(0, task.config.model.num_classes, size=6)
    model.compile(optimizer="adam", loss=task.loss())
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))

    expected = model(x, training=False).numpy()
    assert expected.shape == (6, task.config.model.num_classes)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, rtol=1e-5)

    # get_config round trip (functional model with rnnzoo's custom layers)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x, training=False).numpy(), expected, atol=1e-6)

    # .keras archive, loaded with safe_mode=True (no code runs on load)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), expected, atol=1e-6)

    # rnnzoo's directory format: config.json + weights + assets + checksums
    task.preprocessor.tokenizer.fit(["some words here"], max_size=vocab)
    saved = task.save(tmp_path / "saved")
    again = rnnzoo.load(saved)
    assert again.config.to_dict() == task.config.to_dict()
    np.testing.assert_allclose(again.model(x, training=False).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("name", ENTRIES)
def test_padding_does_not_change_predictions(name):
    """Masking works: extra post-padding leaves the outputs unchanged."""
    task = _tiny(name)
    x = _tokens(np.random.default_rng(1), 4, 5, task.config.model.vocab_size)
    wide = np.concatenate([x, np.zeros((4, 7), np.int32)], axis=1)
    np.testing.assert_allclose(task.model(x).numpy(), task.model(wide).numpy(), atol=1e-6)
