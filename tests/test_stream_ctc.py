"""Streaming speech recognition (issue #39): the ``ctc_lstm_stream`` entry on both backends.

A tiny untrained streaming recognizer (module fixture, exported once): causal log-mel frames
come out bitwise the same whole or chunk by chunk; the ``stream`` graph fed a signal's frames
in pieces gives the whole-utterance log-probabilities; after every chunk ``s.step`` returns
``transcribe`` of the audio so far, and ``transcribe(stream=True)`` ends on ``transcribe()``. A
bidirectional recognizer refuses to stream with a typed error naming the streaming entry. The
shipped preset, where installed, streams test strings to their whole-utterance transcripts.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnzoo
from rnnzoo.apps.speech_recognition.data import CausalLogMel, DataConfig, FeatureParams, log_mel
from rnnzoo.engines.ctc import NotStreamableError, ctc_greedy_continue, ctc_greedy_decode
from rnnzoo.errors import ConfigError, DataError

RATE = 8000
PRESET = "ctc_lstm_stream.fsdd"


def _signals() -> list[np.ndarray]:
    from rnnzoo.families.ctc import tone_string

    rng = np.random.default_rng(0)
    return [tone_string(t, rng) for t in ("abcab", "cab", "a", "bbca")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(keras task, onnx runtime, signals)``: untrained ctc_lstm_stream, 2 layers of 8."""
    from rnnzoo.export import runtime, to_onnx

    from rnnzoo.families.ctc import TINY_OVERRIDES

    model = {**TINY_OVERRIDES["model"], "conv_kernel": 4, "num_layers": 2}
    task = rnnzoo.create_model("ctc_lstm_stream", **{**TINY_OVERRIDES, "model": model})
    signals = _signals()
    pre = task.preprocessor
    pre.alphabet = "abc"
    pre.fit([log_mel(a, pre.params) for a in signals])
    out = tmp_path_factory.mktemp("stream_ctc") / "bundle"
    to_onnx(task, out)
    return task, runtime.load(out), signals


def test_causal_frames_are_the_same_whole_or_in_chunks():
    params = FeatureParams.from_config(DataConfig(), causal=True)
    assert FeatureParams.from_config(DataConfig()).causal is False  # the bidirectional entries
    rng = np.random.default_rng(1)
    extractor = CausalLogMel(params)
    for n, sizes in ((4321, [800]), (2000, [1, 79, 80, 81, 333]), (79, [5])):
        x = rng.normal(0, 0.1, n).astype(np.float32)
        whole = log_mel(x, params)
        assert whole.shape == (n // params.hop_length, params.n_mels)
        pieces, tail, seen, k = [], None, 0, 0
        while seen < n:
            chunk = x[seen:seen + sizes[k % len(sizes)]]
            frames, tail = extractor.advance(chunk, tail, seen)
            pieces.append(frames)
            seen, k = seen + len(chunk), k + 1
        np.testing.assert_array_equal(np.concatenate(pieces), whole)
    # no frame reads ahead: changing samples from (t + 1) * hop on leaves frames 0..t alone
    x = rng.normal(0, 0.1, 1600).astype(np.float32)
    y = x.copy()
    y[800:] = 0.5
    np.testing.assert_array_equal(log_mel(x, params)[:10], log_mel(y, params)[:10])


def test_greedy_continue_is_the_best_path_in_pieces():
    rng = np.random.default_rng(2)
    lp = np.log(rng.dirichlet(np.full(4, 0.3), size=40))
    for cuts in ([40], [1, 7, 8, 24], [13, 27]):
        ids, last, at = [], 0, 0
        for end in np.cumsum(cuts):
            more, last = ctc_greedy_continue(lp[at:end], last)
            ids, at = ids + more, end
        assert ids == ctc_greedy_decode(lp)


@pytest.mark.parametrize("backend", ["keras", "onnx"])
def test_stream_graph_in_pieces_equals_the_whole_utterance(tiny, backend):
    task, rt, signals = tiny
    model = task if backend == "keras" else rt
    if backend == "onnx":  # the contract of the exported step graph's names
        names = rt.input_names("stream")
        assert names[0] == "features" and names[1:] == [f"state_{i}" for i in range(5)]
        assert rt.output_names("stream") == ["log_probs", *[f"new_{n}" for n in names[1:]]]
    signal = signals[0]
    whole = model.frame_log_probs(signal)[0]
    feats = model.preprocessor.features(signal)
    state = {n: np.zeros((1, *s), np.float32) for n, s in model._stream_state_shapes().items()}
    pieces = []
    for start in range(0, len(feats), 4):  # 4 frames (40 ms) a call; a partial group last
        out = model._stream_run({"features": feats[None, start:start + 4], **state})
        state = {n: out[f"new_{n}"] for n in state}
        pieces.append(out["log_probs"][0])
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-4)


@pytest.mark.parametrize("backend", ["keras", "onnx"])
def test_step_returns_the_transcript_of_the_audio_so_far(tiny, backend):
    task, rt, signals = tiny
    model = task if backend == "keras" else rt
    finals = model.transcribe(signals)
    assert len(set(finals)) > 1, finals  # the untrained model still says different things
    for signal, final in zip(signals, finals):
        chunk = 800 if backend == "keras" else 333  # 100 ms; an odd size splits frame groups
        s = model.stream()
        for start in range(0, len(signal), chunk):
            text = s.step(signal[start:start + chunk])
            if backend == "onnx":
                assert text == model.transcribe(signal[:start + chunk])[0]
        assert text == final
        partials = list(model.transcribe(signal, stream=True, chunk_seconds=0.05))
        assert partials[-1] == final
        assert all(a != b for a, b in zip(partials, partials[1:]))  # yielded when changed
    # the state: named pieces, copied out; a copy branches, reset starts over
    s = model.stream()
    half = s.step(signals[0][:1200])
    assert {"audio_tail", "samples", "pending", "state_0", "state_1", "last_label",
            "text"} <= set(s.state)
    branch = s.copy()
    assert s.step(signals[0][1200:]) == branch.step(signals[0][1200:]) == finals[0]
    s.reset()
    assert s.step(signals[0][:1200]) == half
    # several streams at once: one row each
    rows = np.stack([signals[1][:2400], signals[3][:2400]])
    both = model.stream(batch=2).step(rows)
    assert both == model.transcribe([signals[1][:2400], signals[3][:2400]])


def test_bad_streaming_calls_are_typed_errors(tiny):
    task, rt, signals = tiny
    with pytest.raises(DataError, match=r"\[n\] or \[batch, n\]"):
        rt.stream().step(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(DataError, match="batch 1"):
        rt.stream().step(np.zeros((2, 80), np.float32))
    with pytest.raises(ConfigError, match="best path"):
        rt.transcribe(signals[0], stream=True, beam_width=4)
    with pytest.raises(ConfigError, match="chunk_seconds"):
        rt.transcribe(signals[0], stream=True, chunk_seconds=0)
    with pytest.raises(DataError, match="one input"):
        rt.transcribe(signals[:2], stream=True)
    assert rt.stream().step(np.zeros(0, np.float32)) == ""  # nothing yet: nothing heard


def test_a_bidirectional_recognizer_cannot_stream():
    bi = rnnzoo.create_model("ctc_bilstm")
    for call in (bi.stream, lambda: bi.initial_state(1),
                 lambda: bi.transcribe(np.zeros(800, np.float32), stream=True)):
        with pytest.raises(NotStreamableError, match="ctc_lstm_stream"):
            call()


def test_shipped_streaming_preset_streams_to_the_whole_transcript():
    """Where the preset is installed: 100 ms chunks of real test strings end on the
    whole-utterance transcript, on the ONNX bundle and on Keras."""
    from conftest import shared_data

    if PRESET not in rnnzoo.list_presets():
        pytest.skip(f"{PRESET} is not installed")
    from rnnzoo.apps.speech_recognition.data import load_speech

    root = shared_data("speech_digits_fsdd")
    asr = rnnzoo.from_preset(PRESET, backend="onnx")
    # the preset's first test strings (drawn in order from string_seed 0)
    data = load_speech(root, DataConfig(train_strings=1, dev_strings=0, test_strings=3), 0)
    signals = [ex.audio(RATE) for ex in data.test]
    whole = asr.transcribe(signals)
    keras_asr = rnnzoo.from_preset(PRESET, backend="keras")
    for signal, text in zip(signals, whole):
        for model in (asr, keras_asr):
            assert list(model.transcribe(signal, stream=True))[-1] == text
