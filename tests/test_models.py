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


@pytest.mark.parametrize("name", ENTRIES)
def test_entry_builds_trains_one_step_and_round_trips(name, tmp_path):
    import keras

    task = _tiny(name)
    model = task.model
    x, y = task.dummy_batch(6)
    if model.trainable_weights:  # an echo-state network has none: its readout is fitted in
        model.compile(optimizer="adam", loss=task.loss())  # closed form (test_forecasting)
        before = [w.copy() for w in model.get_weights()]
        loss = model.train_on_batch(x, y)
        assert np.isfinite(loss)
        assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))

    expected = model(x, training=False).numpy()
    assert np.isfinite(expected).all()

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
    saved = task.save(tmp_path / "saved")
    again = rnnzoo.load(saved)
    assert again.config.to_dict() == task.config.to_dict()
    np.testing.assert_allclose(again.model(x, training=False).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("name", ENTRIES)
def test_padding_does_not_change_predictions(name):
    """Post-padding the first input (masked tokens, or frames after the end of a causal
    sequence) leaves the outputs of the valid steps unchanged."""
    task = _tiny(name)
    if not task.variable_length:
        pytest.skip(f"{task.task_type} reads fixed-length windows: padding is not an input")
    x, _ = task.dummy_batch(4, seed=1)
    inputs = list(x) if isinstance(x, (list, tuple)) else [x]
    first = inputs[0]
    pad = np.zeros((len(first), 5, *first.shape[2:]), first.dtype)
    # A per-step input of the same [batch, time] (a tagger's characters per word, a float frame
    # mask) is padded along with it.
    padded = [np.concatenate([first, pad], axis=1), *(
        np.concatenate([v, np.zeros((len(v), 5, *v.shape[2:]), v.dtype)], axis=1)
        if v.shape[:2] == first.shape[:2] and (
            (v.ndim == 3 and v.dtype.kind == "i") or (v.ndim == 2 and v.dtype.kind == "f"))
        else v
        for v in inputs[1:])]

    def call(v):
        return task.model(v if isinstance(x, (list, tuple)) else v[0]).numpy()

    want, got = call(inputs), call(padded)
    got = got[tuple(slice(0, n) for n in want.shape)]  # sequence outputs: the valid steps
    np.testing.assert_allclose(want, got, atol=1e-5)
