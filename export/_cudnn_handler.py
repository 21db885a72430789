"""tf2onnx handler: TensorFlow ``CudnnRNNV3`` -> one forward ONNX ``LSTM`` / ``GRU`` / ``RNN``.

Stock tf2onnx has no handler for ``CudnnRNNV3`` (Keras emits it on GPU builds, and rnnzoo makes
Keras emit it during export tracing, see ``_tracing.py``). Importing this module registers the
handler with tf2onnx's ``tf_op`` registry (an addition: it overrides nothing).

What the handler writes, and why:

* The constant parameter blob is unpacked into ONNX ``W``/``R``/``B`` with the gate order
  converted (cuDNN LSTM i,f,c,o -> ONNX i,o,f,c; GRU -> ONNX z,r,h).
* Always ``direction="forward"``: Keras already wraps backward layers in explicit
  ``ReverseSequence`` ops, which is the form that is also correct on CUDA with ``sequence_lens``.
* ``sequence_lens`` comes from the op's ``sequence_lengths`` input (the Keras mask), so padded
  steps (post-padding) do not touch the state.
* GRU always gets ``linear_before_reset`` written explicitly (CUDA would silently assume 1).
* Time-major layout with ``Transpose`` (``layout=1`` is rejected by onnxruntime's CUDA kernels).
* LSTM inputs stay in the standard order (X, W, R, B, sequence_lens, initial_h, initial_c), which
  ``onnxruntime.quantization.quantize_dynamic`` needs to produce ``DynamicQuantizeLSTM``.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from onnx import TensorProto
from tf2onnx import utils
from tf2onnx.graph_builder import GraphBuilder
from tf2onnx.handler import tf_op

from ._fused_spec import DEFAULT_ACTIVATIONS, GATES, ONNX_OP, CellSpec, parse_op_name

_MODE_TO_CELL = {"lstm": "lstm", "gru": "gru", "rnn_tanh": "rnn", "rnn_relu": "rnn"}

# Permutations from the gate order stored in a parameter blob to ONNX's gate order.
_LSTM_FROM_IFCO = [0, 3, 1, 2]  # cuDNN/Keras i,f,c,o -> ONNX i,o,f,c
_LSTM_FROM_IFOC = [0, 2, 1, 3]  # ROCm MIOpen i,f,o,c -> ONNX i,o,f,c
_GRU_FROM_RZH = [1, 0, 2]  # real cuDNN r,z,h -> ONNX z,r,h
_GRU_FROM_ZRH = [0, 1, 2]  # Keras canonical z,r,h (what Keras emits on non-CUDA builds)


def _attr(node, name: str, default=None):
    value = node.get_attr_value(name, default)
    return value.decode() if isinstance(value, bytes) else value


def _cell_spec_and_order(node) -> tuple[CellSpec, list[int]]:
    """Equations and gate permutation of one op: from the rnnzoo marker, else Keras' cuDNN path."""
    mode = _attr(node, "rnn_mode", "lstm")
    if mode not in _MODE_TO_CELL:
        raise ValueError(f"CudnnRNNV3 {node.name}: unsupported rnn_mode {mode!r}")
    cell = _MODE_TO_CELL[mode]
    spec = parse_op_name(node.name)
    if spec is not None:
        # rnnzoo's emitter (_tracing.py) always writes the real cuDNN gate order.
        utils.make_sure(spec.cell == cell, "marker/rnn_mode mismatch on %s", node.name)
        order = {"lstm": _LSTM_FROM_IFCO, "gru": _GRU_FROM_RZH, "rnn": [0]}[cell]
        return spec, order
    # Emitted by Keras (keras.src.backend.tensorflow.rnn._cudnn_lstm / _cudnn_gru): Keras swaps
    # GRU gates into cuDNN order only on CUDA builds and reorders LSTM gates on ROCm builds;
    # this handler runs in the process that traced the graph, so the same build info applies.
    build = tf.sysconfig.get_build_info()
    if cell == "lstm":
        order = _LSTM_FROM_IFOC if build.get("is_rocm_build", False) else _LSTM_FROM_IFCO
    elif cell == "gru":
        order = _GRU_FROM_RZH if build.get("is_cuda_build", False) else _GRU_FROM_ZRH
    else:
        order = [0]
    acts = DEFAULT_ACTIVATIONS[cell]
    if mode == "rnn_relu":
        acts = ("relu",)
    return CellSpec(cell=cell, activations=acts, linear_before_reset=True), order


def _solve_sizes(n_params: int, gates: int, units: int, input_size: int) -> tuple[int, int]:
    """Units and input size from the blob size: gates * (H*F + H*H + 2H) == n_params."""
    per_gate, rem = divmod(n_params, gates)
    if rem:
        raise ValueError(f"parameter blob of {n_params} values is not {gates} gates")
    if units <= 0 and input_size > 0:
        # H^2 + (F + 2) H - per_gate = 0
        b = input_size + 2
        units = int(round((-b + math.sqrt(b * b + 4 * per_gate)) / 2))
    if units > 0 and input_size <= 0:
        input_size = (per_gate - units * units - 2 * units) // units
    if units <= 0 or input_size <= 0 or units * (input_size + units + 2) != per_gate:
        raise ValueError(
            f"cannot infer units/input size from {n_params} parameters "
            f"(units={units}, input_size={input_size})"
        )
    return units, input_size


def _unpack_params(blob: np.ndarray, gates: int, units: int, input_size: int, order: list[int]):
    """cuDNN canonical blob -> ONNX W [1, G*H, F], R [1, G*H, H], B [1, 2*G*H]."""
    h, f = units, input_size
    pos = 0

    def take(n: int, shape: tuple[int, ...]) -> np.ndarray:
        nonlocal pos
        out = blob[pos : pos + n].reshape(shape)
        pos += n
        return out

    w = [take(h * f, (h, f)) for _ in range(gates)]
    r = [take(h * h, (h, h)) for _ in range(gates)]
    bw = [take(h, (h,)) for _ in range(gates)]
    br = [take(h, (h,)) for _ in range(gates)]
    if pos != blob.size:
        raise ValueError(f"parameter blob has {blob.size} values, layout needs {pos}")
    w_onnx = np.concatenate([w[i] for i in order], axis=0)[None]
    r_onnx = np.concatenate([r[i] for i in order], axis=0)[None]
    b_onnx = np.concatenate([bw[i] for i in order] + [br[i] for i in order], axis=0)[None]
    return w_onnx, r_onnx, b_onnx


def convert_cudnn_rnn(ctx, node) -> None:
    """Replace one ``CudnnRNNV3`` node of the tf2onnx graph ``ctx`` by a fused ONNX op."""
    name = node.name
    utils.make_sure(
        _attr(node, "direction", "unidirectional") == "unidirectional",
        "CudnnRNNV3 %s: only unidirectional ops are supported",
        name,
    )
    utils.make_sure(_attr(node, "num_proj", 0) == 0, "CudnnRNNV3 %s: num_proj unsupported", name)
    utils.make_sure(
        _attr(node, "input_mode", "linear_input") in ("linear_input", "auto_select"),
        "CudnnRNNV3 %s: input_mode must be linear_input",
        name,
    )
    for extra in (3, 4):
        utils.make_sure(
            not ctx.find_output_consumers(node.output[extra]),
            "CudnnRNNV3 %s: reserve-space outputs are used (training graph?)",
            name,
        )
    spec, order = _cell_spec_and_order(node)
    gates = GATES[spec.cell]
    time_major = bool(_attr(node, "time_major", True))

    params_node = node.inputs[3]
    utils.make_sure(
        params_node.is_const(),
        "CudnnRNNV3 %s: the weights are not constant; export freezes variables first",
        name,
    )
    blob = np.asarray(params_node.get_tensor_value(as_list=False)).reshape(-1)
    x_shape = ctx.get_shape(node.input[0]) or []
    h_shape = ctx.get_shape(node.input[1]) or []
    input_size = x_shape[-1] if len(x_shape) == 3 and x_shape[-1] is not None else -1
    units = h_shape[-1] if len(h_shape) == 3 and h_shape[-1] is not None else -1
    num_layers = (h_shape[0] if time_major else h_shape[1]) if len(h_shape) == 3 else 1
    utils.make_sure(num_layers in (1, -1), "CudnnRNNV3 %s: only one layer supported", name)
    units, input_size = _solve_sizes(blob.size, gates, units, input_size)
    w, r, b = _unpack_params(blob, gates, units, input_size, order)

    dtype = ctx.get_dtype(node.input[0])
    np_dtype = utils.map_onnx_to_numpy_type(dtype)
    out_shapes = [ctx.get_shape(o) for o in node.output]
    out_dtypes = [ctx.get_dtype(o) for o in node.output]
    utils.make_sure(
        spec.cell == "lstm" or not ctx.find_output_consumers(node.output[2]),
        "CudnnRNNV3 %s: output_c of a %s is used",
        name,
        spec.cell,
    )
    x, h0, c0, seq = node.input[0], node.input[1], node.input[2], node.input[4]
    ctx.remove_node(name)

    def transpose(inp: str, **kw) -> str:
        return ctx.make_node("Transpose", [inp], attr={"perm": [1, 0, 2]}, **kw).output[0]

    # Inputs: ONNX wants time-major X and [num_directions, batch, units] states.
    x_tm = x if time_major else transpose(x, op_name_scope=name)
    h0_onnx = h0 if time_major else transpose(h0, op_name_scope=name)
    if ctx.get_dtype(seq) != TensorProto.INT32:
        seq = ctx.make_node(
            "Cast", [seq], attr={"to": TensorProto.INT32}, op_name_scope=name
        ).output[0]
    w_c = ctx.make_const(utils.make_name(f"{name}_W"), w.astype(np_dtype)).output[0]
    r_c = ctx.make_const(utils.make_name(f"{name}_R"), r.astype(np_dtype)).output[0]
    b_c = ctx.make_const(utils.make_name(f"{name}_B"), b.astype(np_dtype)).output[0]
    inputs = [x_tm, w_c, r_c, b_c, seq, h0_onnx]
    if spec.cell == "lstm":
        inputs.append(c0 if time_major else transpose(c0, op_name_scope=name))
    attr = {"direction": "forward", "hidden_size": int(units)}
    if spec.cell == "gru":
        attr["linear_before_reset"] = int(spec.linear_before_reset)
    attr.update(spec.onnx_activation_attrs())
    n_out = 3 if spec.cell == "lstm" else 2
    fused = ctx.make_node(
        ONNX_OP[spec.cell],
        inputs,
        attr=attr,
        output_count=n_out,
        name=utils.make_name(f"{name}_{ONNX_OP[spec.cell]}"),
    )

    # Outputs: Y [T, 1, B, H] -> [T, B, H] (-> [B, T, H]); Y_h/Y_c [1, B, H] (-> [B, 1, H]).
    y = GraphBuilder(ctx).make_squeeze({"data": fused.output[0], "axes": [1]}, op_name_scope=name)
    final = [y, fused.output[1]] + ([fused.output[2]] if spec.cell == "lstm" else [])
    for k, src in enumerate(final):
        kwargs = {"outputs": [node.output[k]], "shapes": [out_shapes[k]], "dtypes": [out_dtypes[k]]}
        if time_major:
            ctx.make_node("Identity", [src], **kwargs)
        else:
            ctx.make_node("Transpose", [src], attr={"perm": [1, 0, 2]}, **kwargs)


@tf_op("CudnnRNNV3")
class CudnnRNNV3:
    """Registered with tf2onnx on import; ONNX ReverseSequence (Keras backward layers) needs 10."""

    @classmethod
    def version_10(cls, ctx, node, **kwargs):
        convert_cudnn_rnn(ctx, node)
