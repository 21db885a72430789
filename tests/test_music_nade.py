"""The RNN-NADE music family's own behaviour: the NADE frame likelihood is normalised (brute
force over every frame of a few keys), key-by-key sampling draws from it, the one-pass scoring
graph agrees with the step graph the sampler uses, and Keras and the ONNX runtime give the same
likelihoods and the same sampled frames for a seed (temperature, per-key top-p). (Build, train,
resume, export and the runtime of the entry are covered by test_lifecycle.py.)"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import rnnzoo
from rnnzoo.apps.music_generation import nade
from rnnzoo.apps.music_generation.data import NUM_KEYS
from rnnzoo.errors import DataError

K, H = 6, 4  # a NADE small enough to enumerate its 2^K frames


def frame_nll_of(z: np.ndarray, keys: np.ndarray) -> np.ndarray:
    return (np.logaddexp(0.0, z) - keys * z).sum(-1)


@pytest.fixture(scope="module")
def small_nade():
    rng = np.random.default_rng(0)
    return (rng.normal(size=K), rng.normal(size=H), rng.normal(size=(K, H)),
            rng.normal(size=(K, H)))


def test_nade_likelihood_is_normalised_and_matches_the_keras_layer(small_nade):
    from rnnzoo.families.music_nade import _nade_layer_class

    b_v, b_h, w, v = small_nade
    frames = np.array(list(itertools.product([0, 1], repeat=K)), np.float64)
    z = nade.conditionals(b_v, b_h, w, v, frames)
    total = np.exp(-frame_nll_of(z, frames)).sum()
    assert math.isclose(total, 1.0, rel_tol=1e-9), total
    # The Keras layer (the training and scoring graph) computes the same conditionals in one
    # pass, -1 (padding) counting as 0.
    layer = _nade_layer_class()(K, H, dtype="float32")
    layer.build(None)
    layer.set_weights([w.astype(np.float32), v.astype(np.float32)])
    bv = np.broadcast_to(b_v, frames.shape).astype(np.float32)
    bh = np.broadcast_to(b_h, (len(frames), H)).astype(np.float32)
    got = np.asarray(layer(bv[None], bh[None], frames[None].astype(np.float32)))[0]
    np.testing.assert_allclose(got, z, atol=1e-4)
    padded = np.asarray(layer(bv[None, :1], bh[None, :1], -np.ones((1, 1, K), np.float32)))
    np.testing.assert_allclose(padded[0, 0], z[0], atol=1e-4)


def test_key_by_key_sampling_draws_from_the_nade(small_nade):
    b_v, b_h, w, v = small_nade
    k = 3
    b_v, w, v = b_v[:k], w[:k], v[:k]
    frames = np.array(list(itertools.product([0, 1], repeat=k)), np.float64)
    exact = np.exp(-frame_nll_of(nade.conditionals(b_v, b_h, w, v, frames), frames))
    n = 10000
    logits = np.broadcast_to(np.concatenate([b_v, b_h]), (n, k + H))
    draws = nade.sample(logits, w, v, 1.0, 1.0, np.random.default_rng(1))
    codes = draws @ (2 ** np.arange(k)[::-1])
    freq = np.bincount(codes, minlength=2 ** k) / n
    np.testing.assert_allclose(freq, exact, atol=0.02)  # > 4 standard errors
    # The vectorised sampler makes exactly the draws of the plain loop over keys (each key
    # from its conditional given the keys already drawn, with its own uniform).
    b_v6, _, w6, v6 = small_nade
    rows = np.random.default_rng(5).normal(0, 2, (40, K + H))
    for temperature, top_p in ((1.0, 1.0), (0.7, 0.8)):
        got = nade.sample(rows, w6, v6, temperature, top_p, np.random.default_rng(6))
        u = np.random.default_rng(6).random((40, K))
        want = np.zeros((40, K), np.int32)
        for k in range(K):
            z = nade.conditionals(rows[:, :K], rows[:, K:], w6, v6, want)[:, k]
            want[:, k] = nade.choose_keys(z, u[:, k], temperature, top_p)
        assert np.array_equal(got, want) and 0 < want.sum() < want.size
    # Temperature 0, or a top-p below every key's likelier outcome, is the greedy frame.
    greedy = nade.sample(logits[:2], w, v, 0.0, 1.0, np.random.default_rng(2))
    assert np.array_equal(greedy, nade.sample(logits[:2], w, v, 1.0, 0.5,
                                              np.random.default_rng(3)))
    assert np.array_equal(greedy[0], greedy[1])


# -- a tiny model, Keras and the runtime ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny untrained RNN-NADE (visible bias 0 so about half the keys sound) and its bundle."""
    from rnnzoo.export import runtime, to_onnx

    task = rnnzoo.create_model("music_lstm_nade", model={
        "units": 8, "nade_units": 8, "input_dropout": 0.0, "dropout": 0.0,
        "output_bias_init": 0.0})
    path = tmp_path_factory.mktemp("nade") / "bundle"
    to_onnx(task, path)
    return task, runtime.load(path)


def pieces() -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    return [(rng.random((t, NUM_KEYS)) < 0.06).astype(np.uint8) for t in (7, 3, 12)]


def test_one_pass_scoring_is_the_step_graph_sampled_key_by_key(tiny):
    task, _ = tiny
    piece = pieces()[0]
    z = task._logits([piece])[0]
    # The decoder (what generation runs) primed frame by frame gives the same NADE biases.
    step = task._decoder_step()
    state = task._zero_state(1)
    feed = np.concatenate([np.zeros((1, NUM_KEYS), np.int32), piece[:-1]]).astype(np.int32)
    w, v = task._nade_weights()
    for t in range(len(piece)):
        biases, state = step(feed[t:t + 1], state)
        b_v, b_h = nade.split_biases(biases, NUM_KEYS)
        np.testing.assert_allclose(z[t], nade.conditionals(b_v, b_h, w, v, piece[t:t + 1])[0],
                                   atol=1e-4)
    nll = task.nll([piece])
    assert math.isclose(nll["nll"], frame_nll_of(z[1:].astype(np.float64), piece[1:]).mean(),
                        rel_tol=1e-9)


def test_keras_and_runtime_score_and_sample_the_same(tiny):
    task, rt = tiny
    rolls = pieces()
    assert math.isclose(task.nll(rolls)["nll"], rt.nll(rolls)["nll"], rel_tol=1e-5)
    np.testing.assert_allclose(task.frame_probabilities(rolls[1]),
                               rt.frame_probabilities(rolls[1]), atol=1e-5)
    for seed, temperature, top_p in ((0, 1.0, None), (5, 0.7, 0.9), (2, 0.0, None)):
        a = task.generate(10, primer=rolls[1], temperature=temperature, seed=seed,
                          top_p=top_p, num_samples=2)
        b = rt.generate(10, primer=rolls[1], temperature=temperature, seed=seed,
                        top_p=top_p, num_samples=2)
        assert a.shape == (2, 10, NUM_KEYS) and np.array_equal(a, b), (seed, temperature)
        assert 0 < a.sum() < a.size  # keys both on and off: the draws are not trivial
    streamed = np.stack(list(rt.generate(6, seed=3, stream=True)))
    assert np.array_equal(streamed, rt.generate(6, seed=3))
    p_keras, _ = task.step(rolls[2][:4], task.initial_state())
    p_rt, _ = rt.step(rolls[2][:4], rt.initial_state())
    assert p_keras.shape == (NUM_KEYS,)
    np.testing.assert_allclose(p_keras, p_rt, atol=1e-5)
    with pytest.raises(DataError, match="top_p"):
        rt.generate(4, top_p=0.0)
