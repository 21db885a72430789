"""Fused ONNX export of Keras recurrent layers: op types, parity with Keras, ONNX checker.

Every configuration is exported with ``convert`` and must (a) contain the fused ONNX op
(LSTM/GRU/RNN) and no Loop/Scan, (b) match Keras to 1e-5 on valid (post-padded) positions,
(c) pass ``onnx.checker`` with ``full_check=True``. Sizes are tiny: tracing+conversion dominates.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from rnnzoo.export import _tracing  # noqa: E402
from rnnzoo.export._convert import convert  # noqa: E402
from rnnzoo.export.errors import (  # noqa: E402
    ExportError,
    ExportValidationError,
    FusionFallbackWarning,
)
from rnnzoo.export.specs import token_batches  # noqa: E402
from rnnzoo.export.validate import (  # noqa: E402
    check_fused,
    check_model,
    is_post_padded,
    op_counts,
    parity,
    post_padded_lengths,
)

L = keras.layers
VOCAB, EMB, TOL = 20, 6, 1e-5
TOKENS_SPEC = [tf.TensorSpec([None, None], tf.int32)]
BATCHES = token_batches(VOCAB, shapes=((1, 7), (5, 7), (3, 3), (1, 1)), seed=3)


def _randomize(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random weights everywhere (non-zero biases, non-orthogonal kernels) so gate mix-ups show."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign((rng.normal(size=w.shape) * 0.5).astype("float32"))
    return model


def _token_model(*layers: keras.layers.Layer) -> keras.Model:
    inp = keras.Input((None,), dtype="int32", name="tokens")
    x = L.Embedding(VOCAB, EMB, mask_zero=True)(inp)
    for layer in layers:
        x = layer(x)
    return _randomize(keras.Model(inp, x))


def _keras_outputs(model):
    def run(feeds):
        out = model(feeds["tokens"], training=False)
        return [np.asarray(o) for o in tf.nest.flatten(out)]

    return run


def _export_and_check(model, expect: dict[str, int], batches=BATCHES):
    """Convert, check ops + checker + parity on valid positions; return (proto, max diffs)."""
    proto = convert(model, TOKENS_SPEC, ["tokens"])
    counts = op_counts(proto)
    for op, n in expect.items():
        assert counts.get(op, 0) == n, (op, counts)
    assert check_fused(proto, expect_recurrent=True) == []
    check_model(proto)
    feeds = [{"tokens": t} for t in batches]
    # Sequence outputs ([batch, time, units]) are compared on valid steps only.
    keras_out = _keras_outputs(model)(feeds[0])
    names = [o.name for o in proto.graph.output]
    seq = {n: "tokens" for n, a in zip(names, keras_out) if a.ndim == 3}
    return proto, parity(_keras_outputs(model), proto, feeds, tol=TOL, valid_lengths_from=seq)


# name -> (builder, expected fused op counts, uses only Keras' own cuDNN path by default)
CASES = {
    "lstm": (lambda: _token_model(L.LSTM(5)), {"LSTM": 1}, True),
    "lstm_seq": (lambda: _token_model(L.LSTM(5, return_sequences=True)), {"LSTM": 1}, True),
    "lstm_go_backwards_seq": (
        lambda: _token_model(L.LSTM(5, go_backwards=True, return_sequences=True)),
        {"LSTM": 1},
        True,
    ),
    "lstm_hard_sigmoid": (
        lambda: _token_model(L.LSTM(5, recurrent_activation="hard_sigmoid")),
        {"LSTM": 1},
        False,
    ),
    "lstm_recurrent_dropout": (
        lambda: _token_model(L.LSTM(5, dropout=0.2, recurrent_dropout=0.3)),
        {"LSTM": 1},
        True,
    ),
    "lstm_relu_activation": (
        lambda: _token_model(L.LSTM(5, activation="relu")),
        {"LSTM": 1},
        False,
    ),
    "rnn_wrapper_lstm_cell": (lambda: _token_model(L.RNN(L.LSTMCell(5))), {"LSTM": 1}, False),
    "gru_reset_after": (lambda: _token_model(L.GRU(5)), {"GRU": 1}, True),
    "gru_relu_hard_sigmoid": (
        lambda: _token_model(L.GRU(5, activation="relu", recurrent_activation="hard_sigmoid")),
        {"GRU": 1},
        False,
    ),
    "gru_reset_after_no_bias": (lambda: _token_model(L.GRU(5, use_bias=False)), {"GRU": 1}, False),
    "gru_reset_before_backwards_seq": (
        lambda: _token_model(L.GRU(5, reset_after=False, go_backwards=True, return_sequences=True)),
        {"GRU": 1},
        False,
    ),
    "gru_reset_before": (lambda: _token_model(L.GRU(5, reset_after=False)), {"GRU": 1}, False),
    "simple_rnn": (lambda: _token_model(L.SimpleRNN(5)), {"RNN": 1}, False),
    "simple_rnn_relu_seq": (
        lambda: _token_model(L.SimpleRNN(5, activation="relu", return_sequences=True)),
        {"RNN": 1},
        False,
    ),
    "simple_rnn_activations": (
        lambda: _token_model(
            *[
                L.SimpleRNN(4, activation=a, return_sequences=True)
                for a in ("linear", "elu", "softsign", "softplus", "sigmoid", "hard_sigmoid")
            ]
        ),
        {"RNN": 6},
        False,
    ),
    "simple_rnn_go_backwards": (
        lambda: _token_model(L.SimpleRNN(5, go_backwards=True)),
        {"RNN": 1},
        False,
    ),
    "bi_lstm_concat_seq": (
        lambda: _token_model(L.Bidirectional(L.LSTM(5, return_sequences=True))),
        {"LSTM": 2},
        True,
    ),
    "bi_gru_sum": (
        lambda: _token_model(L.Bidirectional(L.GRU(5), merge_mode="sum")),
        {"GRU": 2},
        True,
    ),
    "bi_rnn_mul": (
        lambda: _token_model(L.Bidirectional(L.SimpleRNN(5), merge_mode="mul")),
        {"RNN": 2},
        False,
    ),
    "bi_lstm_ave_seq": (
        lambda: _token_model(L.Bidirectional(L.LSTM(5, return_sequences=True), merge_mode="ave")),
        {"LSTM": 2},
        True,
    ),
    "bi_lstm_none": (
        lambda: _token_model(L.Bidirectional(L.LSTM(5), merge_mode=None)),
        {"LSTM": 2},
        True,
    ),
    "stacked_bigru_lstm_gru": (
        lambda: _token_model(
            L.Bidirectional(L.GRU(4, return_sequences=True)),
            L.LSTM(5, return_sequences=True),
            L.GRU(4),
        ),
        {"GRU": 3, "LSTM": 1},
        True,
    ),
    "lstm_return_state": (
        lambda: _token_model(L.LSTM(5, return_state=True)),
        {"LSTM": 1},
        True,
    ),
    "gru_return_state_seq": (
        lambda: _token_model(L.GRU(5, return_state=True, return_sequences=True)),
        {"GRU": 1},
        True,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fused_parity(case: str) -> None:
    build, expect, _ = CASES[case]
    keras.utils.set_random_seed(0)
    _, diffs = _export_and_check(build(), expect)
    print(case, diffs)
    assert max(diffs.values()) <= TOL


KERAS_PATH_CASES = [c for c, (_, _, keras_path) in CASES.items() if keras_path][:6]


@pytest.mark.parametrize("case", KERAS_PATH_CASES)
def test_emitter_path_matches_for_lstm_gru(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """rnnzoo's own emitter (the fallback if Keras' cuDNN path changes) gives the same result."""
    monkeypatch.setattr(_tracing, "USE_KERAS_CUDNN_PATH", False)
    build, expect, _ = CASES[case]
    keras.utils.set_random_seed(0)
    proto, diffs = _export_and_check(build(), expect)
    fused = [n for n in proto.graph.node if n.op_type in ("LSTM", "GRU")]
    assert fused and all("rnnzoo_fused" in n.name for n in fused)
    print(case, diffs)


def test_missing_private_gpu_probe_still_fuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """If Keras drops ``_is_gpu_available``, LSTM/GRU go through rnnzoo's emitter instead."""
    monkeypatch.setattr(_tracing, "_check_internals", lambda: (None, "probe is gone"))
    proto, _ = _export_and_check(_token_model(L.Bidirectional(L.LSTM(4))), {"LSTM": 2})
    assert all("rnnzoo_fused" in n.name for n in proto.graph.node if n.op_type == "LSTM")


def test_keras_cudnn_path_is_taken() -> None:
    """Default LSTM/GRU go through Keras' own cuDNN graph (no rnnzoo marker in the node name)."""
    model = _token_model(L.Bidirectional(L.LSTM(4, return_sequences=True)), L.GRU(3))
    proto = convert(model, TOKENS_SPEC, ["tokens"])
    fused = [n for n in proto.graph.node if n.op_type in ("LSTM", "GRU")]
    assert len(fused) == 3
    assert not any("rnnzoo_fused" in n.name for n in fused)
    gru = _attrs(next(n for n in fused if n.op_type == "GRU"))
    assert gru["linear_before_reset"] == 1 and gru["direction"] == b"forward"


@pytest.mark.parametrize("flag", ["is_cuda_build", "is_rocm_build"])
def test_gpu_build_gate_orders(flag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keras reorders GRU gates on CUDA builds, LSTM gates on ROCm builds; so does the handler."""
    info = dict(tf.sysconfig.get_build_info())
    info[flag] = True
    monkeypatch.setattr(tf.sysconfig, "get_build_info", lambda: info)
    model = _token_model(L.Bidirectional(L.GRU(5, return_sequences=True)), L.LSTM(4))
    _export_and_check(model, {"GRU": 2, "LSTM": 1})


def test_nested_custom_layer_in_submodel() -> None:
    class Encoder(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.emb = L.Embedding(VOCAB, EMB, mask_zero=True)
            self.bi = L.Bidirectional(L.GRU(4, return_sequences=True))
            self.rnn = L.SimpleRNN(3)

        def call(self, tokens):
            mask = self.emb.compute_mask(tokens)
            return self.rnn(self.bi(self.emb(tokens), mask=mask), mask=mask)

    inp = keras.Input((None,), dtype="int32")
    inner = keras.Model(inp, Encoder()(inp))
    outer_in = keras.Input((None,), dtype="int32", name="tokens")
    model = _randomize(keras.Model(outer_in, L.Dense(2)(inner(outer_in))))
    _export_and_check(model, {"GRU": 2, "RNN": 1})


def test_masking_layer_and_unmasked_float_inputs() -> None:
    inp = keras.Input((None, 3), name="feats")
    seq = L.GRU(4, return_sequences=True)(L.Masking(0.0)(inp))
    last = L.SimpleRNN(3)(inp)  # no mask: full length
    model = _randomize(keras.Model(inp, [seq, last]))
    proto = convert(model, [tf.TensorSpec([None, None, 3])], ["feats"], ["seq", "last"])
    assert check_fused(proto, expect_recurrent=True) == []
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(3, 5, 3)).astype("float32")
    feats[1, 2:] = 0.0
    feats[2, 4:] = 0.0
    sess = ort.InferenceSession(proto.SerializeToString())
    got_seq, got_last = sess.run(None, {"feats": feats})
    want_seq, want_last = (np.asarray(a) for a in model(feats))
    assert np.abs(got_last - want_last).max() <= TOL
    for row, length in enumerate([5, 2, 4]):
        assert np.abs(got_seq[row, :length] - want_seq[row, :length]).max() <= TOL


def test_names_and_dynamic_dims() -> None:
    model = _token_model(L.LSTM(4, return_sequences=True))
    proto = convert(
        model, TOKENS_SPEC, ["tokens"], ["states"], dynamic_axes={"tokens": {0: "B", 1: "T"}}
    )

    def dims(vi):
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    assert [(i.name, dims(i)) for i in proto.graph.input] == [("tokens", ["B", "T"])]
    assert [(o.name, dims(o)) for o in proto.graph.output] == [("states", ["B", "T", 4])]
    default = convert(model, TOKENS_SPEC, ["tokens"], ["states"])
    assert dims(default.graph.input[0]) == ["batch", "time"]
    assert dims(default.graph.output[0]) == ["batch", "time", 4]


def _gru_decoder_step():
    tok = keras.Input((1,), dtype="int32", name="token")
    h = keras.Input((6,), name="h")
    y, h_new = L.GRU(6, return_state=True)(L.Embedding(VOCAB, EMB)(tok), initial_state=h)
    return _randomize(keras.Model([tok, h], [L.Dense(VOCAB)(y), h_new]), seed=1)


def test_gru_decoder_step_greedy_decode_matches() -> None:
    """(token_t, h) -> (logits, h_new) with initial_state: parity and token-identical greedy."""
    model = _gru_decoder_step()
    proto = convert(
        model,
        [tf.TensorSpec([None, 1], tf.int32), tf.TensorSpec([None, 6])],
        ["token", "h"],
        ["logits", "h_new"],
    )
    assert op_counts(proto).get("GRU") == 1 and check_fused(proto, True) == []
    check_model(proto)
    rng = np.random.default_rng(0)
    feeds = [
        {
            "token": rng.integers(1, VOCAB, (b, 1)).astype("int32"),
            "h": rng.normal(size=(b, 6)).astype("float32"),
        }
        for b in (1, 4)
    ]
    parity(lambda f: [np.asarray(a) for a in model([f["token"], f["h"]])], proto, feeds, tol=TOL)

    sess = ort.InferenceSession(proto.SerializeToString())
    tok_k = tok_o = np.array([[3]], "int32")
    h_k = h_o = np.zeros((1, 6), "float32")
    seq_k, seq_o = [], []
    for _ in range(20):
        logits, h_k = (np.asarray(a) for a in model([tok_k, h_k]))
        tok_k = logits.argmax(-1)[:, None].astype("int32")
        logits_o, h_o = sess.run(None, {"token": tok_o, "h": h_o})
        tok_o = logits_o.argmax(-1)[:, None].astype("int32")
        seq_k.append(int(tok_k[0, 0]))
        seq_o.append(int(tok_o[0, 0]))
    assert seq_k == seq_o


def test_lstm_step_function_with_dict_outputs() -> None:
    """A plain function (not a Model) with (h, c) initial state and dict outputs."""
    rnn, emb, dense = L.LSTM(6, return_state=True), L.Embedding(VOCAB, EMB), L.Dense(VOCAB)

    def step(token, h, c):
        y, h2, c2 = rnn(emb(token), initial_state=[h, c])
        return {"logits": dense(y), "h_new": h2, "c_new": c2}

    step(tf.zeros([1, 1], tf.int32), tf.zeros([1, 6]), tf.zeros([1, 6]))  # build
    for w in rnn.weights + dense.weights:
        w.assign(np.random.default_rng(2).normal(size=w.shape).astype("float32") * 0.5)
    proto = convert(
        step,
        [tf.TensorSpec([None, 1], tf.int32), tf.TensorSpec([None, 6]), tf.TensorSpec([None, 6])],
        ["token", "h", "c"],
    )
    assert [o.name for o in proto.graph.output] == ["logits", "h_new", "c_new"]
    assert op_counts(proto).get("LSTM") == 1 and check_fused(proto, True) == []
    rng = np.random.default_rng(0)
    feeds = [
        {
            "token": rng.integers(1, VOCAB, (b, 1)).astype("int32"),
            "h": rng.normal(size=(b, 6)).astype("float32"),
            "c": rng.normal(size=(b, 6)).astype("float32"),
        }
        for b in (1, 3)
    ]
    diffs = parity(
        lambda f: {k: np.asarray(v) for k, v in step(f["token"], f["h"], f["c"]).items()},
        proto,
        feeds,
        tol=TOL,
    )
    assert set(diffs) == {"logits", "h_new", "c_new"}


class _MinimalCell(L.Layer):
    """A custom cell: no fused ONNX operator can express it."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units))
        self.recurrent = self.add_weight(shape=(self.units, self.units))

    def call(self, inputs, states):
        h = keras.ops.tanh(inputs @ self.kernel + states[0] @ self.recurrent)
        return h, [h]


@pytest.mark.parametrize(
    "layer",
    [
        lambda: L.LSTM(4, activation="selu", name="slow_rnn"),
        lambda: L.RNN(_MinimalCell(4), name="slow_rnn"),
    ],
    ids=["lstm_selu", "custom_cell"],
)
def test_non_fusable_layer_falls_back_to_loop_with_warning(layer) -> None:
    model = _token_model(layer())
    with pytest.warns(FusionFallbackWarning, match="slow_rnn"):
        proto = convert(model, TOKENS_SPEC, ["tokens"])
    counts = op_counts(proto)
    assert counts.get("Loop", 0) >= 1 and not {"LSTM", "GRU", "RNN"} & set(counts)
    assert check_fused(proto, expect_recurrent=True)  # reports the Loop
    check_model(proto)
    parity(_keras_outputs(model), proto, [{"tokens": t} for t in BATCHES], tol=TOL)
    with pytest.raises(ExportError, match="slow_rnn"):
        convert(model, TOKENS_SPEC, ["tokens"], strict=True)


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def test_fused_node_attributes() -> None:
    """reset_after=False -> linear_before_reset=0; hard_sigmoid -> HardSigmoid(1/6, 0.5)."""
    model = _token_model(
        L.GRU(4, reset_after=False, return_sequences=True),
        L.LSTM(4, recurrent_activation="hard_sigmoid", return_sequences=True),
        L.SimpleRNN(3, activation="relu"),
    )
    proto, _ = _export_and_check(model, {"GRU": 1, "LSTM": 1, "RNN": 1})
    nodes = {n.op_type: n for n in proto.graph.node if n.op_type in ("GRU", "LSTM", "RNN")}
    gru, lstm, rnn = _attrs(nodes["GRU"]), _attrs(nodes["LSTM"]), _attrs(nodes["RNN"])
    assert gru["linear_before_reset"] == 0 and "activations" not in gru
    assert lstm["activations"] == [b"HardSigmoid", b"Tanh", b"Tanh"]
    assert lstm["activation_alpha"] == pytest.approx([1 / 6])
    assert lstm["activation_beta"] == pytest.approx([0.5])
    assert rnn["activations"] == [b"Relu"]
    assert all(a["direction"] == b"forward" for a in (gru, lstm, rnn))
    # Standard LSTM input order (X, W, R, B, sequence_lens, initial_h, initial_c): quantizable.
    assert len(nodes["LSTM"].input) == 7 and all(nodes["LSTM"].input)


def test_tracing_restores_keras() -> None:
    import importlib

    backend_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
    before = (
        backend_rnn._is_gpu_available,
        keras.layers.RNN.__dict__["inner_loop"],
        keras.layers.RNN.__dict__["call"],
        keras.layers.LSTM.__dict__["inner_loop"],
    )
    layer = L.LSTM(4, dropout=0.1, recurrent_dropout=0.2)
    model = _token_model(layer)
    jit = layer.supports_jit
    with warnings.catch_warnings():
        warnings.simplefilter("error", FusionFallbackWarning)
        convert(model, TOKENS_SPEC, ["tokens"])
    after = (
        backend_rnn._is_gpu_available,
        keras.layers.RNN.__dict__["inner_loop"],
        keras.layers.RNN.__dict__["call"],
        keras.layers.LSTM.__dict__["inner_loop"],
    )
    assert before == after
    assert (layer.dropout, layer.recurrent_dropout, layer.supports_jit) == (0.1, 0.2, jit)


def test_dynamic_quantization_keeps_fused_lstm(tmp_path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = _token_model(L.Bidirectional(L.LSTM(8)), L.Dense(2))
    src, dst = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(convert(model, TOKENS_SPEC, ["tokens"], ["logits"]), src)
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    quantized = onnx.load(dst)
    assert op_counts(quantized).get("DynamicQuantizeLSTM") == 2
    assert check_fused(quantized, expect_recurrent=True) == []
    diffs = parity(
        _keras_outputs(model),
        quantized.SerializeToString(),
        [{"tokens": t} for t in BATCHES],
        tol=0.1,
    )
    assert diffs["logits"] > 0  # really quantized


def test_validation_helpers() -> None:
    batches = token_batches(VOCAB, shapes=((1, 6), (4, 5)), seed=0)
    assert [b.shape for b in batches] == [(1, 6), (4, 5)]
    for b in batches:
        assert is_post_padded(b)
        lengths = post_padded_lengths(b)
        assert lengths[0] == b.shape[1] and lengths.min() >= 1
    assert post_padded_lengths(batches[1])[1] == 1
    assert not is_post_padded(np.array([[0, 3, 4]]))

    model = _token_model(L.GRU(3))
    proto = convert(model, TOKENS_SPEC, ["tokens"])
    wrong = lambda feeds: [np.asarray(model(feeds["tokens"])) + 1e-3]  # noqa: E731
    with pytest.raises(ExportValidationError, match="tol"):
        parity(wrong, proto, [{"tokens": batches[0]}], tol=1e-5)
    with pytest.raises(ExportValidationError):
        check_model(onnx.ModelProto())


def test_time_major_cudnn_op_from_raw_graph() -> None:
    """A time-major ``CudnnRNNV3`` (as other TF code may emit) converts without transposes lost."""
    layer = L.LSTM(5, return_sequences=True)
    layer.build((None, None, EMB))
    rng = np.random.default_rng(4)
    for w in layer.weights:
        w.assign((rng.normal(size=w.shape) * 0.5).astype("float32"))
    kernel, recurrent, bias = (tf.constant(np.asarray(w)) for w in layer.weights)

    def fn(x):
        weights = tf.split(kernel, 4, axis=1) + tf.split(recurrent, 4, axis=1)
        biases = tf.split(tf.concat([tf.zeros_like(bias), bias], 0), 8)
        params = tf.concat([tf.reshape(tf.transpose(w), [-1]) for w in weights] + biases, axis=0)
        batch, time = tf.shape(x)[0], tf.shape(x)[1]
        h0 = tf.zeros([1, batch, 5])
        y, _, _, _, _ = tf.raw_ops.CudnnRNNV3(
            input=tf.transpose(x, [1, 0, 2]),
            input_h=h0,
            input_c=h0,
            params=params,
            sequence_lengths=tf.fill([batch], time),
            rnn_mode="lstm",
            time_major=True,
        )
        return tf.transpose(y, [1, 0, 2])

    proto = convert(fn, [tf.TensorSpec([None, None, EMB])], ["x"], ["y"])
    assert op_counts(proto).get("LSTM") == 1
    x = rng.normal(size=(3, 4, EMB)).astype("float32")
    parity(lambda f: [np.asarray(layer(f["x"]))], proto, [{"x": x}], tol=TOL)


def test_tf_function_is_not_poisoned() -> None:
    """Exporting a tf.function must not leave a CudnnRNNV3 trace (no CPU kernel) in its cache."""
    gru, emb = L.GRU(6, return_state=True, reset_after=False), L.Embedding(VOCAB, EMB)

    @tf.function
    def step(token, h):
        y, h_new = gru(emb(token), initial_state=h)
        return y, h_new

    step(tf.zeros([1, 1], tf.int32), tf.zeros([1, 6]))
    proto = convert(
        step, [tf.TensorSpec([None, 1], tf.int32), tf.TensorSpec([None, 6])], ["token", "h"]
    )
    assert op_counts(proto).get("GRU") == 1
    feeds = {"token": np.full((3, 1), 4, "int32"), "h": np.ones((3, 6), "float32")}
    want = [np.asarray(a) for a in step(feeds["token"], feeds["h"])]  # new shape: retrace
    parity(lambda f: want, proto, [feeds], tol=TOL)


def test_validation_module_is_tf_free() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rnnzoo.export.validate, rnnzoo.export.errors, rnnzoo.export._fused_spec; "
        "assert not {'tensorflow', 'keras', 'tf2onnx'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_masked_decoder_with_initial_state_from_encoder() -> None:
    """Teacher-forced seq2seq: masked encoder states seed masked decoders (LSTM and GRU)."""
    src = keras.Input((None,), dtype="int32", name="src")
    tgt = keras.Input((None,), dtype="int32", name="tgt")
    src_x = L.Embedding(VOCAB, EMB, mask_zero=True)(src)
    tgt_x = L.Embedding(VOCAB, EMB, mask_zero=True)(tgt)
    _, h, c = L.LSTM(5, return_state=True)(src_x)
    _, g = L.GRU(4, return_state=True, reset_after=False)(src_x)
    dec_lstm = L.LSTM(5, return_sequences=True)(tgt_x, initial_state=[h, c])
    dec_gru = L.GRU(4, return_sequences=True, reset_after=False)(tgt_x, initial_state=g)
    model = _randomize(keras.Model([src, tgt], L.Concatenate()([dec_lstm, dec_gru])))
    proto = convert(model, TOKENS_SPEC * 2, ["src", "tgt"], ["dec"])
    assert op_counts(proto).get("LSTM") == 2 and op_counts(proto).get("GRU") == 2
    assert check_fused(proto, expect_recurrent=True) == []
    srcs = token_batches(VOCAB, shapes=((1, 6), (4, 6)), seed=5)
    tgts = token_batches(VOCAB, shapes=((1, 4), (4, 5)), seed=6)
    feeds = [{"src": s, "tgt": t} for s, t in zip(srcs, tgts)]
    parity(
        lambda f: [np.asarray(model([f["src"], f["tgt"]]))],
        proto,
        feeds,
        tol=TOL,
        valid_lengths_from={"dec": "tgt"},
    )


def test_dense_on_sequences_is_one_broadcast_matmul() -> None:
    """tf2onnx spells Dense on [B, T, C] as tensordot (Shape/Gather/Concat/Reshape around a 2-D
    MatMul); the export collapses it to one MatMul with the same numbers."""
    from rnnzoo.export._simplify import simplify

    model = _token_model(L.GRU(8, return_sequences=True), L.Dense(5, activation="tanh"),
                         L.Dense(VOCAB))
    proto = convert(model, TOKENS_SPEC, ["tokens"], ["logits"])
    tensordot = [n.op_type for n in proto.graph.node if "Tensordot" in n.name]
    assert tensordot == ["MatMul", "MatMul"] and op_counts(proto)["MatMul"] == 2
    tokens = np.random.default_rng(0).integers(1, VOCAB, (3, 7)).astype("int32")
    tokens[1, 4:] = 0
    parity(lambda f: [np.asarray(model(f["tokens"]))], proto, [{"tokens": tokens}], tol=TOL,
           valid_lengths_from={"logits": "tokens"})  # padded steps are unspecified
    assert simplify(proto) == {"tensordot": 0, "moves": 0, "no_ops": 0, "removed": 0}  # idempotent
