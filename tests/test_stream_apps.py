"""Streamed generation (issue #39) on the shipped presets: ``generate``, ``translate`` and
``caption`` with ``stream=True`` yield pieces that join to the non-stream result with the same
arguments (greedy, sampling with a seed, beam search once), closing the iterator stops the
decoding, and the decoders and the echo-state forecaster stream. The presets run on the ONNX
runtime here; the same code on Keras is checked entry by entry on tiny models in
test_stream_parity.py (streamed = non-stream on both backends)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnzoo
from rnnzoo.data.parallel import detokenize
from rnnzoo.errors import ConfigError, DataError

BACKENDS = ["onnx"]


def _preset(name: str, backend: str):
    try:
        return rnnzoo.from_preset(name, backend=backend)
    except rnnzoo.errors.RnnzooError as exc:  # a preset distribution not installed
        pytest.skip(str(exc))


@pytest.fixture(scope="module", params=BACKENDS)
def charlm(request: pytest.FixtureRequest):
    return _preset("charlm_lstm.shakespeare", request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def music(request: pytest.FixtureRequest):
    return _preset("music_lstm.jsb", request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def translator(request: pytest.FixtureRequest):
    return _preset("translator_gru_attention.spa_eng", request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def captioner(request: pytest.FixtureRequest):
    return _preset("captioner_lstm_attention.flickr8k_subset", request.param)


class _Counting:
    """Counts the decoder steps a model runs (a wrapper over its runner's ``run``)."""

    def __init__(self, model, monkeypatch):
        runner = model._runner()
        self.calls = 0
        # a bundle's run checks the feeds, then calls run_unchecked (which the step also
        # calls directly once its feeds were checked)
        name = "run_unchecked" if hasattr(runner, "run_unchecked") else "run"
        original = getattr(runner, name)

        def run(graph, feeds):
            self.calls += graph == "decoder"
            return original(graph, feeds)

        monkeypatch.setattr(runner, name, run)


@pytest.mark.parametrize("options", [{"temperature": 0}, {"temperature": 0.8, "seed": 3},
                                     {"top_k": 5, "seed": 1}, {"top_p": 0.9, "seed": 2}])
def test_text_stream_joins_to_generate(charlm, options):
    text = charlm.generate("ROMEO:", steps=25, **options)
    pieces = list(charlm.generate("ROMEO:", steps=25, stream=True, **options))
    assert len(pieces) == 25 and all(len(p) == 1 for p in pieces)
    assert "".join(pieces) == text


def test_text_stream_stops_when_closed(charlm, monkeypatch):
    counter = _Counting(charlm, monkeypatch)
    it = charlm.generate("ROMEO:", steps=500, temperature=0, stream=True)
    assert counter.calls == 0  # nothing runs before the first piece is asked for
    first = [next(it) for _ in range(3)]
    it.close()
    assert counter.calls <= 3 and "".join(first) == charlm.generate("ROMEO:", 3, 0)
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(DataError, match="stream"):
        charlm.generate("ROMEO:", stream="yes")
    with pytest.raises(DataError, match="prompt"):  # arguments are checked at the call
        charlm.generate("ROMEO:\x00", stream=True)


def test_music_stream_stacks_to_generate(music):
    primer = [[60, 64, 67], [62]]
    roll = music.generate(steps=12, primer=primer, seed=4)
    frames = list(music.generate(steps=12, primer=primer, seed=4, stream=True))
    assert len(frames) == 12 and frames[0].shape == (88,) and frames[0].dtype == np.uint8
    np.testing.assert_array_equal(np.stack(frames), roll)
    many = music.generate(steps=4, primer=primer, seed=1, num_samples=3, include_primer=True)
    streamed = list(music.generate(steps=4, primer=primer, seed=1, num_samples=3,
                                   include_primer=True, stream=True))
    assert many.shape == (3, 6, 88)
    np.testing.assert_array_equal(np.stack(streamed, axis=1), many)


@pytest.mark.parametrize("options", [{}, {"sampler": "temperature", "temperature": 0.9, "seed": 5},
                                     {"sampler": "top_p", "p": 0.8, "seed": 1}, {"beam": 3}])
def test_translate_stream_joins_to_translate(translator, options):
    for text in ["¿dónde está la estación?", "tengo hambre.", "no sé si él vendrá mañana"]:
        pieces = list(translator.translate(text, stream=True, **options))
        assert "".join(pieces) == translator.translate(text, **options)
        if "beam" in options:
            assert len(pieces) <= 1  # beam search knows its best only at the end


def test_translate_stream_is_token_by_token_and_closes(translator, monkeypatch):
    text = "me gusta leer libros en la biblioteca."
    pieces = list(translator.translate(text, stream=True))
    assert len(pieces) >= 3 and pieces[1].startswith((" ", "?", ".", ",", "!", "'"))
    counter = _Counting(translator, monkeypatch)
    it = translator.translate(text, stream=True)
    next(it)
    it.close()
    assert counter.calls == 1
    with pytest.raises(ConfigError, match="one input"):
        translator.translate([text, text], stream=True)
    with pytest.raises(ConfigError, match="return_attention"):
        translator.translate(text, stream=True, return_attention=True)
    with pytest.raises(ConfigError, match="beam"):  # options are checked at the call
        translator.translate(text, stream=True, beam=0)


@pytest.mark.parametrize("options", [{}, {"sampler": "top_k", "k": 3, "seed": 0}, {"beam": 3}])
def test_caption_stream_joins_to_caption(captioner, options):
    from rnnzoo.apps.image_captioning.cli import example_inputs

    image = np.asarray(example_inputs()[0], np.uint8)
    pieces = list(captioner.caption(image, stream=True, **options))
    assert pieces and "".join(pieces) == captioner.caption(image, **options)
    if not options:
        assert len(pieces) == len(captioner.caption(image).split())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["where", "is", "it", "?", ".", ",", "¿", "¡", "'s", "'t",
                                 "don", "!", ";", ":", "’re", "x"]), max_size=12))
def test_detokenized_prefixes_grow(words):
    """A streamed translation yields the detokenized text after each token less what it
    yielded before: that needs every prefix's text to be a prefix of the next one's."""
    texts = [detokenize(" ".join(words[:n])) for n in range(len(words) + 1)]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))


def test_translator_decoder_stream(translator):
    """``model.stream(source)`` steps the decoder a token at a time: its greedy continuation
    after ``<s>`` is ``translate()``; copies branch; ``step`` checks its input."""
    text = "¿dónde está la estación?"
    s = translator.stream(text)
    p = s.step("<s>")
    assert p.shape == (len(translator.vocabulary),) and abs(float(p.sum()) - 1) < 1e-4
    words = []
    while len(words) < 30:
        word = translator.vocabulary[int(np.argmax(p))]
        if word == "</s>":
            break
        words.append(word)
        p = s.step(word)
    assert detokenize(" ".join(words)) == translator.translate(text)
    # a branch from the state after <s> tries another first word; the original is unchanged
    first = translator.stream(text)
    first.step("<s>")
    branch = first.copy()
    q_other = branch.step("here")
    np.testing.assert_allclose(first.step(words[0]), translator.step(
        words[0], translator.step("<s>", translator.initial_state(text))[1])[0], atol=1e-5)
    assert not np.allclose(q_other, first.step(words[1]))
    with pytest.raises(DataError, match="ids must be in"):
        s.step(np.array([len(translator.vocabulary)]))
    with pytest.raises(DataError, match="source"):
        translator.stream(["two", "texts"])


@pytest.fixture(scope="module", params=BACKENDS)
def esn(request: pytest.FixtureRequest):
    return _preset("esn_forecaster.mackey_glass", request.param)


def test_esn_stream_updates_the_forecast(esn):
    """One observation at a time from the zero state: after the window's rows, the forecast
    of ``forecast(window)`` (the shipped bundle has no step graph: the runtime derives one)."""
    pre = esn.preprocessor
    series = pre.mean + pre.std * np.sin(np.arange(esn.lookback + 5) / 7.0)[:, None]
    window = series[:esn.lookback]
    s = esn.stream()
    assert set(s.state) == {"state_0"}
    s.step(window[:-10])  # a chunk, then rows one at a time
    for row in window[-10:]:
        forecast = s.step(row)
    assert forecast.shape == (esn.horizon, 1)
    np.testing.assert_allclose(forecast, esn.forecast(window), atol=1e-5)
    moved = s.step(float(series[esn.lookback, 0]))  # a scalar: one observation of one column
    assert not np.allclose(moved, forecast)
    with pytest.raises(DataError, match="observation"):
        s.step([[1.0, 2.0]])


def test_window_forecasters_have_no_stream(monkeypatch):
    from rnnzoo.apps.forecasting.inference import derive_step_graph

    lstm = _preset("forecaster_lstm.etth1", "onnx")
    with pytest.raises(ConfigError, match="normalize: none"):
        lstm.stream()
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    bundle = _preset("esn_forecaster.mackey_glass", "onnx")
    with pytest.raises(rnnzoo.errors.RnnzooError, match="re-export"):
        derive_step_graph(bundle.path / "model.onnx", "esn")
