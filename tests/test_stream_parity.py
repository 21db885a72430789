"""Generated stream parity (issue #39), from the registry: every entry whose application
streams (character LMs, music generators, the translators' and captioners' decoders, the
forecasters that take one observation at a time), built tiny and untrained, exported once.
On Keras and on the exported ONNX bundle, stepping one element at a time through the graph
that carries the state gives the whole sequence's outputs (within 1e-4), and a stream's greedy
continuation equals ``generate(temperature=0)`` / ``translate()`` / ``caption()`` /
``forecast()``, a classifier's stream gives ``predict_proba`` of the text so far, and
``stream=True`` output joins to the non-stream call's. A new entry of these
applications is covered without editing this file."""

from __future__ import annotations

import numpy as np
import pytest

import rnnzoo
from rnnzoo.data.parallel import detokenize
from rnnzoo.engines.decoding import graph_step
from rnnzoo.families import family_spec
from rnnzoo.registry import get_entry, task_from_config

ATOL = 1e-4
# Speech recognition streams too; its streaming CTC entry has its own parity tests. So do
# recommendation (tests/test_recommendation.py: a stream's top-k equals recommend's) and
# handwriting (tests/test_handwriting.py: stroke-by-stroke log-probs equal the whole line's),
# and video prediction (tests/test_video_prediction.py: frame-by-frame steps equal the rollout
# and the training model's closed loop, on Keras and onnxruntime).
ELSEWHERE = {"speech-recognition", "recommendation", "handwriting-recognition",
             "video-prediction"}


def _streams(name: str) -> bool:
    entry = get_entry(name)
    if entry.task in ("text-generation", "music-generation", "translation",
                      "image-captioning"):
        return True
    return entry.task in ("forecasting", "text-classification", "long-dependency") \
        and task_from_config(entry).streams


ENTRIES = [n for n in rnnzoo.list_models() if _streams(n)]


def test_every_streaming_entry_is_covered():
    """An entry whose model offers ``stream()`` is in ENTRIES (or tested elsewhere): a new
    streaming application must add its parity check here."""
    for name in rnnzoo.list_models():
        entry = get_entry(name)
        task = task_from_config(entry)
        if hasattr(task, "stream") and getattr(task, "streams", True) \
                and entry.task not in ELSEWHERE:
            assert name in ENTRIES, f"{name} ({entry.task}) streams but has no parity check"
    assert {"esn_forecaster", "forecaster_lstm_stream", "charlm_lstm", "sentiment_gru",
            "memory_rnn", "memory_gru", "memory_lstm"} <= set(ENTRIES)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """``built(name) -> (tiny Keras task, its ONNX runtime)``, each exported once."""
    from rnnzoo.export import runtime, to_onnx

    root = tmp_path_factory.mktemp("stream_parity")
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            spec = family_spec(get_entry(name).family)
            task = rnnzoo.create_model(name, **spec.tiny_overrides)
            data = task.load_data(spec.synthetic_dataset(root / f"{name}_data", n=40), 0)
            task.adapt(data)
            if hasattr(task, "fit_readout"):  # an echo-state readout starts at zero
                task.fit_readout(task.preprocessor.scale(data.split("train")))
            to_onnx(task, root / name, validate=False)
            cache[name] = (task, runtime.load(root / name))
        return cache[name]

    return get


def _stepped(runner, graph: str, inputs: np.ndarray, state: dict) -> tuple[list, dict]:
    """Logits after each of ``inputs[:, t]`` fed one at a time through a one-step graph."""
    step = graph_step(runner, graph)
    out = []
    for t in range(inputs.shape[1]):
        logits, state = step(inputs[:, t], state)
        out.append(np.asarray(logits))
    return out, state


def _text(task, model, rng):
    runner = model._runner()
    ids = rng.integers(1, model.preprocessor.size, size=(2, 12)).astype(np.int32)
    zero = model._zero_state(2)
    whole = runner.run("model", {"chars": ids, **zero})
    stepped, state = _stepped(runner, "decoder", ids, zero)
    np.testing.assert_allclose(np.stack(stepped, 1), whole["logits"], atol=ATOL)
    for n in zero:
        np.testing.assert_allclose(state[n], whole[f"new_{n}"], atol=ATOL)
    # the stream's greedy continuation is generate(temperature=0)
    prompt = "".join(model.vocabulary[i] for i in (1, 2, 1))
    s = model.stream()
    p = s.step(prompt)
    out = []
    for _ in range(15):
        out.append(model.vocabulary[int(np.argmax(p))])
        p = s.step(out[-1])
    assert "".join(out) == model.generate(prompt, 15, temperature=0)
    pieces = list(model.generate(prompt, 10, temperature=0.9, seed=1, stream=True))
    assert len(pieces) == 10 and "".join(pieces) == model.generate(prompt, 10, 0.9, seed=1)


def _music(task, model, rng):
    runner = model._runner()
    frames = (rng.random((2, 10, 88)) < 0.1).astype(np.int32)
    feed = np.concatenate([np.zeros((2, 1, 88), np.int32), frames[:, :-1]], axis=1)
    feeds = {"frames": feed.astype(np.float32)}
    weights = model._nade_weights()  # an RNN-NADE also reads each frame's own keys
    if weights is not None:
        feeds["targets"] = frames
    whole = runner.run("model", feeds)["logits"]
    stepped, _ = _stepped(runner, "decoder", feed, model._zero_state(2))
    stepped = np.stack(stepped, 1)
    if weights is not None:  # its decoder gives the NADE biases: the keys' conditionals
        from rnnzoo.apps.music_generation import nade

        stepped = nade.conditionals(*nade.split_biases(stepped, 88), *weights, frames)
    np.testing.assert_allclose(stepped, whole, atol=ATOL)
    s = model.stream()
    p = s.step(frames[0, :3])
    out = []
    for _ in range(8):
        out.append((p > 0.5).astype(np.uint8))
        p = s.step(out[-1])
    np.testing.assert_array_equal(np.stack(out),
                                  model.generate(8, primer=frames[0, :3], temperature=0))
    streamed = list(model.generate(6, primer=frames[0, :3], seed=2, stream=True))
    np.testing.assert_array_equal(np.stack(streamed),
                                  model.generate(6, primer=frames[0, :3], seed=2))


def _greedy(model, stream, banned, limit: int) -> list[str]:
    """The words of a decoder stream's greedy continuation after ``<s>`` (never ``banned``
    ids, as ``caption`` never picks them), up to ``</s>`` or ``limit`` tokens."""
    p = stream.step("<s>")
    words = []
    for _ in range(limit):
        p = p.copy()
        p[list(banned)] = -1
        word = model.vocabulary[int(np.argmax(p))]
        if word in ("</s>", "<pad>"):
            break
        words.append(word)
        p = stream.step(np.array([model.vocabulary.index(word)]))
    return words


def _translation(task, model, rng):
    from rnnzoo.apps.translation.inference import encode_sources

    m = task.config.model
    source = rng.integers(1, m.src_vocab_size, size=(1, 7)).astype(np.int32)
    target_in = rng.integers(3, m.tgt_vocab_size, size=(1, 6)).astype(np.int32)
    target_in[:, 0] = model.preprocessor.target.index["<s>"]
    whole = np.asarray(task.model([source, target_in], training=False))
    runner = model._runner()
    stepped, _ = _stepped(runner, "decoder", target_in, encode_sources(runner, source))
    np.testing.assert_allclose(np.stack(stepped, 1), whole, atol=ATOL)
    text = " ".join(model.preprocessor.source.vocab[3:8])
    assert "".join(model.translate(text, stream=True)) == model.translate(text)
    sampled = {"sampler": "top_k", "k": 3, "seed": 4}
    assert "".join(model.translate(text, stream=True, **sampled)) == model.translate(
        text, **sampled)
    words = _greedy(model, model.stream(text), banned=(),
                    limit=model.preprocessor.max_length + 10)
    shown = [w for w in words if w != "<s>"]  # decode_target leaves the start token out
    assert detokenize(" ".join(shown)) == model.translate(text)


def _captioning(task, model, rng):
    from rnnzoo.engines.seq2seq import encode_once

    m = task.config.model
    image = rng.uniform(0, 255, size=(1, m.image_size, m.image_size, 3)).astype(np.float32)
    target_in = rng.integers(3, m.vocab_size, size=(1, 6)).astype(np.int32)
    target_in[:, 0] = model.preprocessor.tokenizer.index["<s>"]
    whole = np.asarray(task.model([target_in, image], training=False))
    runner = model._runner()
    stepped, _ = _stepped(runner, "decoder", target_in, encode_once(runner, {"image": image}))
    np.testing.assert_allclose(np.stack(stepped, 1), whole, atol=ATOL)
    picture = image[0].astype(np.uint8)
    assert "".join(model.caption(picture, stream=True)) == model.caption(picture)
    vocab = model.vocabulary
    words = _greedy(model, model.stream(picture), banned=(0, 1, vocab.index("<s>")),
                    limit=model.preprocessor.max_length + 1)
    assert " ".join(words) == model.caption(picture)


def _forecasting(task, model, rng):
    columns = len(model.preprocessor.columns)
    window = rng.normal(size=(model.lookback, columns))
    want = model.forecast(window)
    s = model.stream()
    for row in window:
        got = s.step(row)
    np.testing.assert_allclose(got, want, atol=ATOL)
    # a chunk goes on from the state as its rows one at a time do
    batch = rng.normal(size=(2, model.lookback, columns))
    y, state = model.step(batch[:, :5], model.initial_state(2))
    y, state = model.step(batch[:, 5:], state)
    np.testing.assert_allclose(y, model.forecast(batch), atol=ATOL)


def _classification(task, model, rng):
    if hasattr(model, "manifest"):  # the bundle says which inputs are state
        assert "step" in model.manifest["stream"]["graphs"]
    words = ["good", "the", "movie", "bad", "really", "plot"]
    text = [str(w) for w in rng.choice(words, size=7)]
    s = model.stream()
    got = np.stack([s.step(w) for w in text])
    want = model.predict_proba([" ".join(text[:k]) for k in range(1, len(text) + 1)])
    np.testing.assert_allclose(got, want, atol=ATOL)
    # token ids in chunks, a batch of two streams, go on as one token at a time does
    ids = rng.integers(2, model.preprocessor.tokenizer.vocab_size, size=(2, 9)).astype(np.int32)
    y, state = model.step(ids[:, :4], model.initial_state(2))
    y, state = model.step(ids[:, 4:], state)
    np.testing.assert_allclose(y, model._probs_of(ids), atol=ATOL)


def _long_dependency(task, model, rng):
    from rnnzoo.apps.long_dependency.data import GENERATORS

    x, _ = GENERATORS[model.problem](2, 6, int(rng.integers(100)))
    want = model.predict_raw(x)
    last = want[:, 0] if model.problem == "adding" else want[:, -1]
    s = model.stream()
    outs = [s.step(row) for row in x[0]]
    np.testing.assert_allclose(outs[-1], last[0], atol=ATOL)
    if model.problem == "copy":  # every step's output, not only the last
        np.testing.assert_allclose(np.stack(outs), want[0], atol=ATOL)
    y, state = model.step(x[:, :5], model.initial_state(2))
    y, state = model.step(x[:, 5:], state)
    np.testing.assert_allclose(y, last, atol=ATOL)


CHECKS = {"text-generation": _text, "music-generation": _music, "translation": _translation,
          "image-captioning": _captioning, "forecasting": _forecasting,
          "text-classification": _classification, "long-dependency": _long_dependency}


@pytest.mark.parametrize("backend", ["keras", "onnx"])
@pytest.mark.parametrize("name", ENTRIES)
def test_step_by_step_equals_whole_sequence(name, backend, built):
    task, bundle = built(name)
    model = task if backend == "keras" else bundle
    CHECKS[get_entry(name).task](task, model, np.random.default_rng(0))


def test_pooling_and_copy_streams_exactly(tmp_path):
    """The pooling a classifier carries as running state (mean: sum and count; max: the
    maximum) and the copy problem's per-step read-out stream as the whole sequence does."""
    for name, overrides in (("sentiment_gru", {"pooling": "mean", "num_layers": 2}),
                            ("sentiment_gru", {"pooling": "max", "cell": "lstm"}),
                            ("memory_gru", None)):
        spec = family_spec(get_entry(name).family)
        tiny = {k: dict(v) for k, v in spec.tiny_overrides.items()}
        if overrides:
            tiny["model"].update(overrides)
        else:
            tiny["data"]["problem"] = "copy"
        task = rnnzoo.create_model(name, **tiny)
        if name.startswith("sentiment"):
            task.adapt(task.load_data(spec.synthetic_dataset(tmp_path / str(overrides["pooling"]),
                                                             n=40), 0))
            _classification(task, task, np.random.default_rng(1))
        else:
            _long_dependency(task, task, np.random.default_rng(1))


def test_bidirectional_classifier_does_not_stream():
    """A bidirectional encoder reads the whole text before any output: one typed error."""
    from rnnzoo.engines.ctc import NotStreamableError

    spec = family_spec(get_entry("sentiment_bilstm").family)
    task = rnnzoo.create_model("sentiment_bilstm", **spec.tiny_overrides)
    assert not task.streams
    with pytest.raises(NotStreamableError, match="bidirectional"):
        task.initial_state(1)
