"""Stateful streaming inference (issue #39) on the shipped primed generators, both backends:
``model.stream()`` reproduces greedy ``generate``, a chunk equals its steps one at a time, and
copies branch while ``reset`` starts over."""

from __future__ import annotations

import numpy as np
import pytest

import rnnzoo
from rnnzoo.engines.stream import Stream

BACKENDS = ["onnx", "keras"]


@pytest.fixture(scope="module", params=BACKENDS)
def charlm(request: pytest.FixtureRequest):
    return rnnzoo.from_preset("charlm_lstm.shakespeare", backend=request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def music(request: pytest.FixtureRequest):
    return rnnzoo.from_preset("music_lstm.jsb", backend=request.param)


def test_text_stream_reproduces_greedy_generate(charlm):
    s = charlm.stream()
    assert isinstance(s, Stream)
    p = s.step("ROMEO:")
    assert p.shape == (len(charlm.vocabulary),) and abs(float(p.sum()) - 1) < 1e-4
    out = []
    for _ in range(50):
        c = charlm.vocabulary[int(np.argmax(p))]
        out.append(c)
        p = s.step(c)
    assert "".join(out) == charlm.generate("ROMEO:", steps=50, temperature=0)


def test_text_chunk_equals_steps_and_copy_reset(charlm):
    text = "To be, or not to be"
    chunk = charlm.stream()
    whole = chunk.step(text)
    single = charlm.stream()
    for c in text:
        last = single.step(c)
    np.testing.assert_allclose(last, whole, atol=1e-5)
    for n in chunk.state:
        np.testing.assert_allclose(single.state[n], chunk.state[n], atol=1e-5)
    # the functional form agrees with the stream
    y, state = charlm.step(text, charlm.initial_state(1))
    np.testing.assert_allclose(y, whole, atol=1e-5)
    # copies branch independently; reset starts over
    branch = chunk.copy()
    saved = branch.state
    a, b = chunk.step("!"), branch.step("?")
    assert not np.allclose(a, b)
    np.testing.assert_allclose(chunk.copy().step("?"), charlm.step("?", chunk.state)[0],
                               atol=1e-6)
    chunk.reset()
    np.testing.assert_allclose(chunk.step(text), whole, atol=1e-6)
    branch.step("xyz")
    branch.state = saved
    np.testing.assert_allclose(branch.step("!"), a, atol=1e-5)


def test_music_frames_equal_chunk(music):
    rng = np.random.default_rng(0)
    primer = (rng.random((6, 88)) < 0.05).astype(np.uint8)
    whole = music.stream()
    p = whole.step(primer)
    assert p.shape == (88,) and p.dtype == np.float32
    frames = music.stream()
    for f in primer:
        q = frames.step(f)
    np.testing.assert_allclose(q, p, atol=1e-5)
    frames.reset()
    np.testing.assert_allclose(frames.step(primer), p, atol=1e-6)
