"""Export-time tracing: make every Keras recurrent layer record one ``CudnnRNNV3`` op.

Inside :func:`fused_tracing` (and only there; everything is restored on exit):

1. Keras' TensorFlow backend is told a GPU is present, so ``LSTM``/``GRU`` layers whose
   configuration cuDNN supports take Keras' own cuDNN path: one ``CudnnRNNV3`` op with the mask
   turned into ``sequence_lengths`` and ``ReverseSequence`` around backward directions.
   (Private: ``keras.src.backend.tensorflow.rnn._is_gpu_available``.)
2. ``keras.layers.RNN.inner_loop`` is wrapped. Everything that does not take the cuDNN path ends
   up there (``SimpleRNN``, GRU ``reset_after=False``, ``hard_sigmoid`` and other activations,
   ``recurrent_dropout``, ``use_cudnn=False``, ``unroll=True``, ``RNN(LSTMCell(...))``). If the
   cell is a stock ``LSTMCell``/``GRUCell``/``SimpleRNNCell`` with activations ONNX can express,
   the wrapper emits the same op shape as Keras' cuDNN path, with the real equations encoded in
   the op name (see ``_fused_spec.py``). Otherwise it warns (names the layer) and falls back to
   Keras' generic loop, which tf2onnx exports as ONNX ``Loop``; ``strict=True`` raises instead.

The export traces inference only: dropout masks are not applied (``training=False``).
The ops are never executed here: the CPU build has no ``CudnnRNNV3`` kernel, it is only a graph
node that ``_cudnn_handler.py`` converts.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import keras
import tensorflow as tf

from ._fused_spec import CellSpec
from .errors import ExportError, FusionFallbackWarning

_BACKEND_RNN_MODULE = "keras.src.backend.tensorflow.rnn"
_LOCK = threading.RLock()

#: Set to False (tests do) to route LSTM/GRU through rnnzoo's emitter instead of Keras' cuDNN
#: path. Both must give the same graph semantics; the emitter is the fallback if Keras changes.
USE_KERAS_CUDNN_PATH = True


def _activation_table() -> dict:
    """Map activation callables (Keras, keras.ops, tf) to their names in ONNX_ACTIVATIONS."""
    table: dict = {}
    candidates = {
        "tanh": [keras.activations.tanh, getattr(keras.ops, "tanh", None), tf.tanh, tf.math.tanh],
        "sigmoid": [
            keras.activations.sigmoid,
            getattr(keras.ops, "sigmoid", None),
            tf.sigmoid,
            tf.math.sigmoid,
        ],
        "relu": [keras.activations.relu, getattr(keras.ops, "relu", None), tf.nn.relu],
        "hard_sigmoid": [keras.activations.hard_sigmoid, getattr(keras.ops, "hard_sigmoid", None)],
        "linear": [keras.activations.linear],
        "softsign": [keras.activations.softsign, getattr(keras.ops, "softsign", None)],
        "softplus": [keras.activations.softplus, getattr(keras.ops, "softplus", None)],
        "elu": [keras.activations.elu, tf.nn.elu],
    }
    for name, fns in candidates.items():
        for fn in fns:
            if fn is not None:
                table[fn] = name
    return table


def _activation_name(fn) -> str | None:
    try:
        return _activation_table().get(fn)
    except TypeError:  # unhashable callable
        return None


def fusion_spec(layer) -> tuple[CellSpec | None, str]:
    """The fused-op spec for a Keras RNN layer, or ``(None, reason)`` when ONNX cannot express it.

    Only the stock cells are accepted (exact type: a subclass may change the equations).
    """
    cell = getattr(layer, "cell", None)
    kind = {
        keras.layers.LSTMCell: "lstm",
        keras.layers.GRUCell: "gru",
        keras.layers.SimpleRNNCell: "rnn",
    }.get(type(cell))
    if kind is None:
        return None, f"cell {type(cell).__name__} is not LSTMCell/GRUCell/SimpleRNNCell"
    if getattr(layer, "stateful", False):
        return None, "stateful=True (state lives in variables, not in graph inputs)"
    if getattr(cell, "compute_dtype", "float32") != "float32":
        return None, f"compute dtype {cell.compute_dtype} (only float32 is fused)"
    act = _activation_name(cell.activation)
    if act is None:
        return None, f"activation {getattr(cell.activation, '__name__', cell.activation)!r}"
    if kind == "rnn":
        return CellSpec("rnn", (act,)), ""
    rec = _activation_name(cell.recurrent_activation)
    if rec is None:
        name = getattr(cell.recurrent_activation, "__name__", cell.recurrent_activation)
        return None, f"recurrent_activation {name!r}"
    if kind == "lstm":
        return CellSpec("lstm", (rec, act, act)), ""
    return CellSpec("gru", (rec, act), linear_before_reset=bool(cell.reset_after)), ""


def _emit_fused(layer, spec: CellSpec, sequences, initial_state, mask):
    """Same contract as ``RNN.inner_loop``: returns ``(last_output, outputs, states)``.

    Mirrors Keras' ``_cudnn_lstm`` graph (batch-major): padded steps give zero outputs and leave
    the state alone; ``go_backwards`` reverses the valid part of each row, runs forward, reverses
    back and flips, exactly like Keras' cuDNN path.
    """
    cell = layer.cell
    units = int(cell.units)
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[spec.cell]
    x = tf.convert_to_tensor(sequences)
    dtype = x.dtype
    if tf.nest.is_nested(initial_state):
        states_in = list(tf.nest.flatten(initial_state))
    else:
        states_in = [initial_state]
    if tf.nest.is_nested(mask):
        mask = tf.nest.flatten(mask)[0]

    if mask is not None:
        seq_len = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    else:
        seq_len = tf.fill([tf.shape(x)[0]], tf.shape(x)[1])
    if layer.go_backwards:
        x = tf.reverse_sequence(x, seq_len, seq_axis=1, batch_axis=0)

    kernel = tf.convert_to_tensor(cell.kernel)
    recurrent = tf.convert_to_tensor(cell.recurrent_kernel)
    w = tf.split(kernel, gates, axis=1)
    r = tf.split(recurrent, gates, axis=1)
    zeros = [tf.zeros([units], dtype) for _ in range(gates)]
    bias = tf.convert_to_tensor(cell.bias) if cell.use_bias else None
    if bias is None:
        bw, br = zeros, list(zeros)
    elif spec.cell == "gru" and spec.linear_before_reset:
        bias = tf.reshape(bias, [2, gates * units])
        bw, br = tf.split(bias[0], gates), tf.split(bias[1], gates)
    else:
        bw, br = tf.split(tf.reshape(bias, [-1]), gates), zeros
    if spec.cell == "gru":  # Keras z,r,h -> cuDNN r,z,h (what the handler expects when marked)
        w, r, bw, br = ([t[1], t[0], t[2]] for t in (w, r, bw, br))
    params = tf.concat(
        [tf.reshape(tf.transpose(t), [-1]) for t in w + r] + [tf.reshape(t, [-1]) for t in bw + br],
        axis=0,
    )

    h0 = tf.expand_dims(tf.convert_to_tensor(states_in[0], dtype), axis=1)
    if spec.cell == "lstm":
        c0 = tf.expand_dims(tf.convert_to_tensor(states_in[1], dtype), axis=1)
    else:
        c0 = tf.zeros([], dtype)
    mode = {
        "lstm": "lstm",
        "gru": "gru",
        "rnn": "rnn_relu" if spec.activations[0] == "relu" else "rnn_tanh",
    }[spec.cell]
    outputs, h, c, _, _ = tf.raw_ops.CudnnRNNV3(
        input=x,
        input_h=h0,
        input_c=c0,
        params=params,
        sequence_lengths=seq_len,
        rnn_mode=mode,
        input_mode="linear_input",
        direction="unidirectional",
        dropout=0.0,
        is_training=False,
        time_major=False,
        name=spec.op_name(),
    )
    if layer.go_backwards:
        outputs = tf.reverse_sequence(outputs, seq_len, seq_axis=1, batch_axis=0)
        outputs = tf.reverse(outputs, axis=[1])
    h = tf.squeeze(h, axis=1)
    states = [h, tf.squeeze(c, axis=1)] if spec.cell == "lstm" else [h]
    if not layer.return_sequences:
        outputs = tf.expand_dims(h, axis=1)
    return h, outputs, states


@dataclass
class TraceReport:
    """What happened to each recurrent layer during one trace."""

    fused: list[str] = field(default_factory=list)
    fallback: list[tuple[str, str]] = field(default_factory=list)  # (layer name, reason)
    error: str = ""  # set when strict mode refused a layer (Keras rewraps the exception)


def _check_internals() -> tuple[object | None, str]:
    """Locate the private Keras hooks; return (backend rnn module or None, problem)."""
    problems = []
    backend_rnn = None
    try:
        backend_rnn = importlib.import_module(_BACKEND_RNN_MODULE)
    except ImportError as e:  # pragma: no cover - depends on the Keras version
        problems.append(f"{_BACKEND_RNN_MODULE} not importable ({e})")
    if backend_rnn is not None and not callable(getattr(backend_rnn, "_is_gpu_available", None)):
        problems.append(f"{_BACKEND_RNN_MODULE}._is_gpu_available is gone")
        backend_rnn = None
    return backend_rnn, "; ".join(problems)


def _inner_loop_ok() -> str:
    """Check the (semi-private) hooks on ``keras.layers.RNN`` that the wrapper relies on."""
    own = keras.layers.RNN.__dict__
    for name in ("inner_loop", "call"):
        if not callable(own.get(name)):
            return f"keras.layers.RNN.{name} is gone"
    params = list(inspect.signature(own["inner_loop"]).parameters)
    if params[:4] != ["self", "sequences", "initial_state", "mask"]:
        return f"keras.layers.RNN.inner_loop has an unexpected signature {params}"
    return ""


@contextlib.contextmanager
def fused_tracing(strict: bool = False) -> Iterator[TraceReport]:
    """Patch Keras so recurrent layers traced inside record fused-op placeholders.

    Thread-unsafe by nature (patches classes): a lock serialises exports in this process.
    """
    if keras.backend.backend() != "tensorflow":
        raise ExportError("fused ONNX export needs the TensorFlow Keras backend")
    report = TraceReport()
    with _LOCK:
        problem = _inner_loop_ok()
        if problem:
            msg = f"Keras internals changed, cannot fuse recurrent layers: {problem}"
            if strict:
                raise ExportError(msg)
            warnings.warn(msg, FusionFallbackWarning, stacklevel=3)
            yield report
            return
        backend_rnn, _problem = _check_internals()
        # If the private GPU probe is gone, rnnzoo's emitter still fuses LSTM/GRU (same graph).
        use_keras = USE_KERAS_CUDNN_PATH and backend_rnn is not None

        rnn_cls = keras.layers.RNN
        orig_inner_loop = rnn_cls.__dict__["inner_loop"]
        orig_gpu = backend_rnn._is_gpu_available if use_keras else None
        fast_classes = (keras.layers.LSTM, keras.layers.GRU)
        orig_fast = {cls: cls.__dict__.get("inner_loop") for cls in fast_classes}

        def inner_loop(self, sequences, initial_state, mask, training=False):
            spec, reason = fusion_spec(self)
            if spec is not None:
                report.fused.append(self.name)
                return _emit_fused(self, spec, sequences, initial_state, mask)
            report.fallback.append((self.name, reason))
            msg = (
                f"recurrent layer '{self.name}' ({type(self).__name__}) cannot be exported as a "
                f"fused ONNX op: {reason}; it is exported as an ONNX Loop (much slower)"
            )
            if strict:
                report.error = msg.replace("it is exported as", "it would be exported as")
                report.error += ". Pass strict=False to accept the Loop."
                raise ExportError(report.error)
            warnings.warn(msg, FusionFallbackWarning, stacklevel=2)
            return orig_inner_loop(self, sequences, initial_state, mask, training=training)

        def make_fast(cls):
            orig = orig_fast[cls]

            def fast_inner_loop(self, sequences, initial_state, mask, training=False):
                # Keras' cuDNN path sets supports_jit=False on the layer: keep the user's model
                # unchanged. A layer that takes the path is reported as fused here; one that does
                # not falls through to the wrapped RNN.inner_loop above.
                jit = getattr(self, "supports_jit", None)
                graph = tf.compat.v1.get_default_graph()
                n_ops, n_fused = len(graph.get_operations()), len(report.fused)
                try:
                    out = orig(self, sequences, initial_state, mask, training=training)
                finally:
                    if jit is not None:
                        self.supports_jit = jit
                new_ops = graph.get_operations()[n_ops:]
                if len(report.fused) == n_fused and any(op.type == "CudnnRNNV3" for op in new_ops):
                    report.fused.append(self.name)  # Keras' own cuDNN path was taken
                return out

            return fast_inner_loop

        orig_call = rnn_cls.__dict__["call"]

        def call(self, *args, **kwargs):
            # Dropout is inert at inference, but Keras still builds dropout masks (seeded random
            # ops with state) and skips cuDNN when recurrent_dropout > 0: zero both while tracing.
            cell = getattr(self, "cell", None)
            saved = {}
            for attr in ("dropout", "recurrent_dropout"):
                value = getattr(cell, attr, None)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value:
                    try:
                        setattr(cell, attr, 0.0)
                    except AttributeError:  # read-only property on an exotic cell
                        continue
                    saved[attr] = value
            try:
                return orig_call(self, *args, **kwargs)
            finally:
                for attr, value in saved.items():
                    setattr(cell, attr, value)

        try:
            rnn_cls.inner_loop = inner_loop
            rnn_cls.call = call
            if use_keras:
                backend_rnn._is_gpu_available = lambda: True
                for cls in fast_classes:
                    if orig_fast[cls] is not None:
                        cls.inner_loop = make_fast(cls)
            yield report
        finally:
            rnn_cls.inner_loop = orig_inner_loop
            rnn_cls.call = orig_call
            if use_keras:
                backend_rnn._is_gpu_available = orig_gpu
                for cls, orig in orig_fast.items():
                    if orig is not None:
                        cls.inner_loop = orig


__all__ = ["TraceReport", "fused_tracing", "fusion_spec"]
