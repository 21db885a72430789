"""Character language model (issue #14): the stream layout of truncated BPTT, the carried state
in training (continued across batches, reset between epochs), bits per character against a hand
computation, the readers (PTB-char symbols, nanoGPT's split, bad files), generation from a seed,
and the runtime against Keras."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
from conftest import shared_data

import rnnzoo
from rnnzoo.apps.text_generation.data import (
    EOL,
    UNK,
    CharVocab,
    DataConfig,
    load_chars,
    read_ptb_char,
    stream_batches,
)
from rnnzoo.apps.text_generation.inference import choose_sampler
from rnnzoo.errors import DataError
from rnnzoo.evaluation import evaluate_reports
from rnnzoo.families.charlm import TINY_OVERRIDES, periodic_text

TINY = {"model": TINY_OVERRIDES["model"], "data": TINY_OVERRIDES["data"]}


def _task(cell: str = "lstm", text: str = "abcd\n", **model):
    task = rnnzoo.create_model(f"charlm_{cell}", model={**TINY["model"], **model},
                               data=TINY["data"], training=TINY_OVERRIDES["training"])
    task.preprocessor = CharVocab.fit(text, task.config.model.vocab_size)
    return task


def test_stream_layout_rows_are_contiguous_and_segments_continue():
    ids = np.arange(1000, dtype=np.int32)
    x, y = stream_batches(ids, batch_size=4, bptt_length=10)
    per_row = 999 // 4  # 249 characters per stream, 24 whole segments
    assert x.shape == y.shape == (24, 4, 10)
    for b in range(4):
        stream = np.concatenate(list(x[:, b]))  # the segments of row b, in batch order
        np.testing.assert_array_equal(stream, np.arange(b * per_row, b * per_row + 240))
        np.testing.assert_array_equal(np.concatenate(list(y[:, b])), stream + 1)
        for k in range(23):  # segment k+1 of stream b starts where segment k stopped
            assert x[k + 1, b, 0] == x[k, b, -1] + 1 == y[k, b, -1]
    with pytest.raises(DataError, match="too few"):
        stream_batches(np.arange(30), batch_size=4, bptt_length=10)


class _Record(keras.callbacks.Callback):
    """At the start of every batch: the carried state and the weights it was computed with."""

    def __init__(self, layer):
        super().__init__()
        self.layer, self.rows = layer, []

    def on_train_batch_begin(self, batch, logs=None):
        carry = self.layer.__dict__["_carry"]
        (variables,) = carry.values()
        state = [keras.ops.convert_to_numpy(v) for v in variables]
        self.rows.append((batch, state, self.model.get_weights()))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stateful_training_carries_state_and_resets_between_epochs(cell, tmp_path):
    text = periodic_text(80, seed=1)
    task = _task(cell, text)
    data = load_chars(_write(tmp_path / "t.txt", text), task.config.data)
    train, dev, steps = task.datasets(data, batch_size=4, seed=0, bucketing=False,
                                      fixed_length=False)
    x, _ = stream_batches(task.preprocessor.encode(data.train), 4, task.config.data.bptt_length)
    assert steps == len(x) >= 3
    model = task.model
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=task.loss())
    record = _Record(task.carried_layer())
    task.fit(train, None, epochs=2, callbacks=[record], verbose=0)
    assert len(record.rows) == 2 * steps
    scorer, _ = task.score_graph()
    for i, (batch, state, _) in enumerate(record.rows):
        if batch == 0:  # every epoch starts from zeros
            assert all(not s.any() for s in state)
            continue
        # the carried state is the final state of the previous batch, computed from that
        # batch's carried state with the weights of that step
        _, prev_state, prev_weights = record.rows[i - 1]
        model.set_weights(prev_weights)
        out = scorer([x[batch - 1], *prev_state], training=False)
        for got, want in zip(state, out[1:]):
            np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)
        assert any(s.any() for s in state)
    # detached after fit: the model is stateless again (same input, same output twice)
    a = np.asarray(model(x[0], training=False))
    np.testing.assert_array_equal(a, np.asarray(model(x[0], training=False)))
    assert task.carried_layer().__dict__["_carry"] is None


def test_weight_dropout_option_defaults_off_and_reaches_the_stack():
    assert rnnzoo.create_model("charlm_lstm").config.model.weight_dropout == 0.0
    task = _task("lstm", weight_dropout=0.25)
    assert task.carried_layer().weight_dropout == 0.25
    with pytest.raises(Exception, match="weight_dropout"):
        _task("lstm", weight_dropout=1.0)


def test_stateless_option_shuffles_segments(tmp_path):
    text = periodic_text(80, seed=1)
    task = _task("gru", text)
    task.config = task.config.with_overrides(stateful=False)
    data = load_chars(_write(tmp_path / "t.txt", text), task.config.data)
    train, _, _ = task.datasets(data, batch_size=4, seed=0, bucketing=False,
                                fixed_length=False)
    first = [np.asarray(b[0]) for b in train]
    second = [np.asarray(b[0]) for b in train]
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))


def test_bpc_matches_a_hand_computation():
    """A zero output layer gives a uniform distribution over the 4 real symbols (the unused
    ids are masked): every character costs exactly 2 bits. Then random weights against a
    log-softmax computed by hand over the whole stream at once."""
    task = _task("lstm", "abc", vocab_size=8)
    assert task.preprocessor.symbols == [UNK, "a", "b", "c"]
    dense = task.model.get_layer("logits")
    dense.set_weights([np.zeros_like(w) for w in dense.get_weights()])
    report = task.evaluate(["abcabca", "cab"])
    assert report["chars"] == 10 and report["unknown"] == 0
    assert report["bpc"] == pytest.approx(2.0, abs=1e-6)
    assert report["nats_per_char"] == pytest.approx(2 * math.log(2), abs=1e-6)

    rng = np.random.default_rng(0)
    dense.set_weights([rng.normal(0, 1, w.shape) for w in dense.get_weights()])
    text = "abcabbcacbaabc" * 5
    ids = task.preprocessor.encode(text)
    scorer, _ = task.score_graph()
    inputs = np.concatenate([[task.preprocessor.start_id], ids[:-1]])[None].astype(np.int32)
    zeros = [np.zeros((1, task.config.model.units), np.float32)] * 2
    logits = np.asarray(scorer([inputs, *zeros], training=False)[0][0], np.float64)[:, :4]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -logp[np.arange(len(ids)), ids].sum() / len(ids) / math.log(2)
    assert task.evaluate([text])["bpc"] == pytest.approx(want, rel=1e-5)
    # scoring in chunks with the state carried equals scoring at once
    once, n = task.score_ids(ids, chunk=10_000)
    chunked, n2 = task.score_ids(ids, chunk=7)
    assert n == n2 == len(ids) and chunked == pytest.approx(once, rel=1e-5)
    # an unknown character is the unknown symbol, counted
    assert task.evaluate(["abz"])["unknown"] == 1


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_ptb_reader_symbols(tmp_path):
    folder = tmp_path / "ptb"
    folder.mkdir()
    _write(folder / "ptb.char.train.txt", "a e r _ b a n k \n c o n s u m e r s \n")
    _write(folder / "ptb.char.valid.txt", "t h e _ < u n k > \n")
    assert read_ptb_char(folder / "ptb.char.train.txt") == "aer_bank\nconsumers\n"
    data = load_chars(folder, DataConfig())
    assert data.layout == "ptb" and data.benchmark == "ptb"
    assert data.dev == "the_<unk>\n" and data.test == ""
    vocab = CharVocab.fit(data.train, 128, ptb=True)
    assert EOL in vocab.symbols and "_" in vocab.symbols and " " not in vocab.symbols
    assert vocab.to_user(vocab.from_user("the bank")) == "the bank"
    assert vocab.from_user("the bank") == "the_bank"
    _write(folder / "ptb.char.test.txt", "ab _ c \n")
    with pytest.raises(DataError, match=r"line 1: 'ab' is not one character"):
        load_chars(folder, DataConfig())


def test_real_ptb_char_and_shakespeare_split():
    ptb = load_chars(shared_data("char_lm", "ptb_char"), DataConfig())
    # 4,975,414 characters + one end-of-line symbol for each of the 42,068 sentences
    assert len(ptb.train) == 4_975_414 + 42_068
    assert len(ptb.dev) == 389_672 + 3_370 and len(ptb.test) == 438_662 + 3_761
    assert len(set(ptb.train)) == 50  # the published alphabet: 49 symbols and end of line
    shk = load_chars(shared_data("char_lm", "tinyshakespeare", "input.txt"), DataConfig())
    n = 1_115_394
    assert len(shk.train) == int(n * 0.9) == 1_003_854 and len(shk.dev) == n - 1_003_854
    assert shk.benchmark == "shakespeare" and len(set(shk.train)) == 65


def test_bad_files_get_clear_errors(tmp_path):
    with pytest.raises(DataError, match="empty file"):
        load_chars(_write(tmp_path / "empty.txt", ""), DataConfig())
    (tmp_path / "bin.txt").write_bytes(b"abc\x00\x01\x02")
    with pytest.raises(DataError, match="binary file"):
        load_chars(tmp_path / "bin.txt", DataConfig())
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\nabc".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text.*line 1"):
        load_chars(tmp_path / "latin1.txt", DataConfig())
    with pytest.raises(DataError, match="no such file"):
        load_chars(tmp_path / "missing.txt", DataConfig())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny LSTM trained on a periodic text through the real loop, with weight drop on its
    recurrent matrix (training only: the exported graphs below must not see it)."""
    root = tmp_path_factory.mktemp("charlm")
    data = _write(root / "text.txt", "abcdef\n" * 400)
    result = rnnzoo.train("charlm_lstm", data, out=root / "run", verbose=0,
                          model={**TINY["model"], "units": 32, "weight_dropout": 0.1},
                          data=TINY["data"],
                          training={**TINY_OVERRIDES["training"], "epochs": 12,
                                    "learning_rate": 0.02})
    return result.task, root


def test_learns_a_periodic_string_and_generation_is_seeded(trained):
    task, _ = trained
    assert task.generate("ab", 12, temperature=0) == "cdef\nabcdef\n"
    assert task.evaluate(["abcdef\n" * 10])["bpc"] < 0.2
    a = task.generate("", 40, temperature=1.5, seed=3)
    assert a == task.generate("", 40, temperature=1.5, seed=3)
    assert a != task.generate("", 40, temperature=1.5, seed=4)
    streamed = []
    assert task.generate("a", 9, top_k=2, seed=1, on_text=streamed.append) == "".join(streamed)
    with pytest.raises(DataError, match="not in this model's vocabulary"):
        task.generate("abz", 5)
    with pytest.raises(DataError, match="temperature"):
        task.generate("a", 5, temperature=-1)
    with pytest.raises(DataError, match="one of them"):
        choose_sampler(1.0, top_k=2, top_p=0.9)


def test_runtime_agrees_with_keras(trained):
    from rnnzoo.export import runtime, to_onnx

    task, root = trained
    assert task.config.model.weight_dropout == 0.1
    # strict: weight drop must leave one fused LSTM op per graph (no ONNX Loop)
    to_onnx(task, root / "bundle", strict=True)
    rt = runtime.load(root / "bundle")
    assert type(rt).__name__ == "TextGeneratorRuntime"
    for kw in ({"temperature": 0}, {"temperature": 1.3, "seed": 0},
               {"top_p": 0.95, "temperature": 2.0, "seed": 7}):
        assert rt.generate("abc", 60, **kw) == task.generate("abc", 60, **kw)
    text = "abcdef\nabcxef\n" * 30
    a, b = task.evaluate([text]), rt.evaluate([text])
    assert a["chars"] == b["chars"] and a["bpc"] == pytest.approx(b["bpc"], rel=1e-5)
    # one decoder step against the Keras step graph
    state = rt.initial_state(2)
    step, _ = task.step_graph()
    char = np.array([1, 3], np.int32)
    want = step([char, *state.values()], training=False)
    got = rt.run("decoder", {"char": char, **state})
    np.testing.assert_allclose(got["logits"], np.asarray(want[0]), atol=1e-5)
    served = rt.serve_predict([{"prompt": "ab", "steps": 5, "temperature": 0}], {})
    assert served == [{"text": "cdef\n"}]


def test_generate_and_evaluate_cli(trained, capsys):
    from rnnzoo.cli import main

    _, root = trained
    run = str(root / "run")
    assert main(["generate", "charlm_lstm", "--run", run, "--prompt", "ab", "--steps", "5",
                 "--temperature", "0"]) == 0
    assert capsys.readouterr().out == "abcdef\n\n"
    assert main(["generate", "charlm_lstm", "--run", run, "--prompt", "z"]) == 2
    assert "not in this model's vocabulary" in capsys.readouterr().err
    assert main(["evaluate", "charlm_lstm", "--run", run, "--data",
                 str(root / "text.txt"), "--split", "dev"]) == 0
    assert "bits per character" in capsys.readouterr().out


def test_evaluate_a_preset_through_its_bundle_without_tensorflow(trained, tmp_path):
    from test_lifecycle import run_without_tensorflow

    from rnnzoo.presets import save_preset

    task, root = trained
    preset = save_preset(task, tmp_path / "preset", {
        "name": "charlm_lstm.test", "dataset": "periodic", "split": "dev",
        "metrics": {"bpc": 0.0}, "metrics_command": "test", "training_command": "test",
        "training_wall_time_s": 0.0, "data_license": "generated"},
        storage="float32", onnx=True, int8=False)
    # The full-sequence and one-step graphs hold the same weights: stored once, as external data.
    info = json.loads((preset / "metadata.json").read_text())["onnx"]["fp32"]
    assert info["bytes_saved_by_sharing_weights_between_graphs"] > 16_000
    manifest = json.loads((preset / "onnx" / "fp32" / "bundle.json").read_text())
    assert "shared_weights.bin" in manifest["files"]
    want = evaluate_reports(task, task.load_data(root / "text.txt", 0), "dev")[0]["bpc"]
    out = run_without_tensorflow(f"""
        import json
        from rnnzoo.evaluation import evaluate_reports
        from rnnzoo import from_preset
        from rnnzoo.evaluation import reader_task
        data = reader_task({str(preset)!r}).load_data({str(root / "text.txt")!r}, 0)
        print(evaluate_reports(from_preset({str(preset)!r}), data, "dev")[0]["bpc"])
        assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)
    """)
    assert float(out.strip().splitlines()[-1]) == pytest.approx(want, rel=1e-5)
