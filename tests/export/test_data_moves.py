"""The export's data-movement clean-up (issue 21): cancelling transposes and reversals around
the backward direction of bidirectional layers changes no output bit and removes most copies."""

from __future__ import annotations

import collections
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from rnnzoo.export import _convert, _simplify  # noqa: E402

L = keras.layers
VOCAB = 50


def _stacked(cell) -> keras.Model:
    inp = keras.Input((None,), dtype="int32")
    x = L.Embedding(VOCAB, 8, mask_zero=True)(inp)
    x = L.Bidirectional(cell(6, return_sequences=True))(x)
    x = L.Bidirectional(cell(5, return_sequences=True))(x)
    model = keras.Model(inp, L.Dense(3)(x))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    return model


def _convert_with(model, moves: bool, monkeypatch):
    if not moves:
        monkeypatch.setattr(_simplify, "_cancel_moves", lambda graph: 0)
    proto = _convert.convert(model, [tf.TensorSpec([None, None], tf.int32)], ["tokens"],
                             ["out"])
    monkeypatch.undo()
    return proto


@pytest.mark.parametrize("cell", [L.LSTM, L.GRU])
def test_moves_cancel_and_outputs_are_bit_identical(cell, monkeypatch) -> None:
    model = _stacked(cell)
    plain = _convert_with(model, False, monkeypatch)
    moved = _convert_with(model, True, monkeypatch)
    before = collections.Counter(n.op_type for n in plain.graph.node)
    after = collections.Counter(n.op_type for n in moved.graph.node)
    assert after["Transpose"] + after["ReverseSequence"] <= (
        before["Transpose"] + before["ReverseSequence"]) // 2
    assert after[cell.__name__.upper()] == before[cell.__name__.upper()] == 4
    tokens = np.random.default_rng(1).integers(1, VOCAB, (5, 9)).astype(np.int32)
    for row, length in enumerate((9, 1, 4, 7, 2)):  # padded rows of every kind
        tokens[row, length:] = 0
    outs = [ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"])
            .run(None, {"tokens": tokens})[0] for p in (plain, moved)]
    np.testing.assert_array_equal(outs[0], outs[1])
    keras_out = np.asarray(model(tokens))
    mask = tokens != 0
    np.testing.assert_allclose(outs[1][mask], keras_out[mask], atol=1e-5)
    assert _simplify.simplify(moved)["moves"] == 0  # idempotent


def _one_step_decoder() -> keras.Model:
    """A decoder step as the translator exports it: token -> embedding -> a one-step GRU from
    the given state, attention-style broadcast ``keys[:, None]``."""
    token = keras.Input((), dtype="int32", batch_size=None)
    state = keras.Input((6,))
    keys = keras.Input((None, 6))
    x = L.Reshape((1, 8))(L.Embedding(VOCAB, 8)(token))
    out, new_state = L.GRU(6, return_state=True)(x, initial_state=state)
    scores = keras.ops.sum(keras.ops.tanh(out[:, None, :] + keys[:, :, :]), axis=-1)
    model = keras.Model([token, state, keys], [L.Dense(VOCAB)(out) + scores[:, :1], new_state])
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    return model


def test_no_op_nodes_go_and_outputs_are_bit_identical(monkeypatch) -> None:
    # A one-step GRU's full-length sequence_lens, TensorFlow's wrapping of negative embedding
    # indices and "to the end" slices compute nothing: dropped, with no output bit changed.
    model = _one_step_decoder()
    specs = [tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 6], tf.float32),
             tf.TensorSpec([None, None, 6], tf.float32)]
    names = ["token", "state", "keys"]
    monkeypatch.setattr(_simplify, "_drop_no_ops", lambda graph, shapes: 0)
    plain = _convert.convert(model, specs, names, ["logits", "new_state"])
    monkeypatch.undo()
    lean = _convert.convert(model, specs, names, ["logits", "new_state"])
    before = collections.Counter(n.op_type for n in plain.graph.node)
    after = collections.Counter(n.op_type for n in lean.graph.node)
    assert before["Less"] == 1 and after["Less"] == 0  # index wrapping gone
    assert after["Slice"] < before["Slice"]
    gru = [n for n in lean.graph.node if n.op_type == "GRU"][0]
    assert len(gru.input) <= 4 or gru.input[4] == ""  # no sequence_lens
    assert len(lean.graph.node) <= len(plain.graph.node) - 10
    rng = np.random.default_rng(3)
    feeds = {"token": rng.integers(0, VOCAB, 4).astype(np.int32),
             "state": rng.normal(size=(4, 6)).astype(np.float32),
             "keys": rng.normal(size=(4, 3, 6)).astype(np.float32)}
    outs = [ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"])
            .run(None, feeds) for p in (plain, lean)]
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    keras_out = model([feeds[n] for n in names])
    np.testing.assert_allclose(outs[1][0], np.asarray(keras_out[0]), atol=1e-5)
    assert _simplify.simplify(lean)["no_ops"] == 0  # idempotent


@pytest.mark.parametrize("cell", [L.GRU, L.SimpleRNN])
def test_one_step_recurrence_unrolls_to_the_same_function(cell, monkeypatch) -> None:
    # Before int8 quantization a one-step GRU/RNN becomes MatMuls (which quantize) and gates;
    # a recurrence over a sequence is left to its operator.
    from rnnzoo.export._one_step import unroll_one_step

    token, state = keras.Input((), dtype="int32"), keras.Input((6,))
    x = L.Reshape((1, 8))(L.Embedding(VOCAB, 8)(token))
    out, new_state = cell(6, return_state=True)(x, initial_state=state)
    model = keras.Model([token, state], [L.Dense(VOCAB)(out), new_state])
    rng = np.random.default_rng(4)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    proto = _convert.convert(model, [tf.TensorSpec([None], tf.int32),
                                     tf.TensorSpec([None, 6], tf.float32)],
                             ["token", "state"], ["logits", "new_state"])
    op = "GRU" if cell is L.GRU else "RNN"
    before = collections.Counter(n.op_type for n in proto.graph.node)[op]
    unrolled = onnx_copy(proto)
    assert before == 1 and unroll_one_step(unrolled) == 1
    ops = collections.Counter(n.op_type for n in unrolled.graph.node)
    assert ops[op] == 0 and ops["MatMul"] == collections.Counter(
        n.op_type for n in proto.graph.node)["MatMul"] + 2
    feeds = {"token": rng.integers(0, VOCAB, 5).astype(np.int32),
             "state": rng.normal(size=(5, 6)).astype(np.float32)}
    got, want = (ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"])
                 .run(None, feeds) for p in (unrolled, proto))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-5)
    sequence = _stacked(L.GRU)
    seq_proto = _convert.convert(sequence, [tf.TensorSpec([None, None], tf.int32)], ["tokens"],
                                 ["out"])
    assert unroll_one_step(seq_proto) == 0


def onnx_copy(proto):
    import onnx

    return onnx.ModelProto.FromString(proto.SerializeToString())
