"""One-step recurrences as plain matrix multiplies, before int8 quantization.

onnxruntime has no quantized GRU or RNN operator, so a decoder step's recurrence stays fp32
while every ``MatMul`` around it becomes int8. For one time step the operator is nothing but
two products and a few element-wise gates; written out, the two products quantize like the
rest. At batch 5 (a beam) the step is bound by reading the weights (a 512-unit GRU's are 4.7 MB
in fp32, 1.2 MB in int8, against a 2 MB L2 cache), so this is where int8 pays. Only the int8
bundle is rewritten; its comparison with the fp32 bundle runs as for every quantized export.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._simplify import _remove_dead, _shapes


def unroll_one_step(model: onnx.ModelProto) -> int:
    """Rewrite every forward, one-step ``GRU`` (``linear_before_reset=1``, default
    activations) and ``RNN`` (tanh) with constant weights and a given initial state into
    ``MatMul`` and element-wise nodes, in place (the same function, to float rounding);
    returns how many were rewritten."""
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    shapes = _shapes(model)
    count = 0
    for node in list(graph.node):
        if node.op_type not in ("GRU", "RNN"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        inputs = list(node.input) + [""] * (6 - len(node.input))
        x, w, r, b, lens, h0 = inputs[:6]
        acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
        default = ["Sigmoid", "Tanh"] if node.op_type == "GRU" else ["Tanh"]
        if (attrs.get("direction", b"forward") not in (b"forward", "forward") or lens or not h0
                or "clip" in attrs or attrs.get("layout", 0) != 0 or acts not in ([], default)
                or (node.op_type == "GRU" and attrs.get("linear_before_reset", 0) != 1)
                or (shapes.get(x) or [None])[0] != 1 or not all(n in consts for n in (w, r))
                or (b and b not in consts)):
            continue
        W, R = numpy_helper.to_array(consts[w])[0], numpy_helper.to_array(consts[r])[0]
        hidden = R.shape[1]
        bias = (numpy_helper.to_array(consts[b])[0] if b
                else np.zeros(2 * W.shape[0], W.dtype))
        pos = list(graph.node).index(node)
        graph.node.remove(node)
        new = _gru_nodes if node.op_type == "GRU" else _rnn_nodes
        nodes, inits = new(f"{node.name or node.output[0]}_step", x, h0, W, R, bias, hidden,
                           list(node.output) + [""] * 2)
        for offset, n in enumerate(nodes):
            graph.node.insert(pos + offset, n)
        graph.initializer.extend(inits)
        count += 1
    if count:
        _remove_dead(graph)  # the operator's weights
    return count


def _tensor(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(value), name)


def _products(p: str, x: str, h0: str, W: np.ndarray, R: np.ndarray) -> tuple[list, list]:
    """What every rewritten cell starts with: ``x`` and ``h0`` without their length-1 axis and
    the step's two products ``x W -> {p}_xw`` and ``h R -> {p}_hr`` (the MatMuls int8
    quantizes); the gates of each cell follow."""
    n = helper.make_node
    inits = [_tensor(f"{p}_axis0", np.array([0], np.int64)),
             _tensor(f"{p}_axes01", np.array([0, 1], np.int64)),  # also for ``_tail``
             _tensor(f"{p}_W", W.T), _tensor(f"{p}_R", R.T)]
    return ([n("Squeeze", [x, f"{p}_axis0"], [f"{p}_x"]),
             n("Squeeze", [h0, f"{p}_axis0"], [f"{p}_h"]),
             n("MatMul", [f"{p}_x", f"{p}_W"], [f"{p}_xw"]),
             n("MatMul", [f"{p}_h", f"{p}_R"], [f"{p}_hr"])], inits)


def _tail(p: str, h_new: str, outputs: list[str]) -> list:
    y, y_h = outputs[0], outputs[1]
    nodes = []
    if y:  # [seq 1, directions 1, batch, hidden]
        nodes.append(helper.make_node("Unsqueeze", [h_new, f"{p}_axes01"], [y]))
    if y_h:  # [directions 1, batch, hidden]
        nodes.append(helper.make_node("Unsqueeze", [h_new, f"{p}_axis0"], [y_h]))
    return nodes


def _gru_nodes(p, x, h0, W, R, bias, hidden, outputs):
    """ONNX GRU (gates z, r, h; linear_before_reset): z, r = sigmoid(x Wzr + h Rzr + bzr),
    n = tanh(x Wn + bWn + r * (h Rn + bRn)), h' = n + z * (h - n)."""
    wb, rb = bias[: 3 * hidden], bias[3 * hidden:]
    x_bias = np.concatenate([wb[: 2 * hidden] + rb[: 2 * hidden], wb[2 * hidden:]])
    h_bias = np.concatenate([np.zeros(2 * hidden, W.dtype), rb[2 * hidden:]])
    nodes, inits = _products(p, x, h0, W, R)
    inits += [_tensor(f"{p}_bx", x_bias), _tensor(f"{p}_bh", h_bias),
              _tensor(f"{p}_split", np.array([2 * hidden, hidden], np.int64)),
              _tensor(f"{p}_halves", np.array([hidden, hidden], np.int64))]
    n = helper.make_node
    nodes += [
        n("Add", [f"{p}_xw", f"{p}_bx"], [f"{p}_gx"]),
        n("Add", [f"{p}_hr", f"{p}_bh"], [f"{p}_gh"]),
        n("Split", [f"{p}_gx", f"{p}_split"], [f"{p}_gx_zr", f"{p}_gx_n"], axis=1),
        n("Split", [f"{p}_gh", f"{p}_split"], [f"{p}_gh_zr", f"{p}_gh_n"], axis=1),
        n("Add", [f"{p}_gx_zr", f"{p}_gh_zr"], [f"{p}_zr_in"]),
        n("Sigmoid", [f"{p}_zr_in"], [f"{p}_zr"]),
        n("Split", [f"{p}_zr", f"{p}_halves"], [f"{p}_z", f"{p}_r"], axis=1),
        n("Mul", [f"{p}_r", f"{p}_gh_n"], [f"{p}_rh"]),
        n("Add", [f"{p}_gx_n", f"{p}_rh"], [f"{p}_n_in"]),
        n("Tanh", [f"{p}_n_in"], [f"{p}_n"]),
        n("Sub", [f"{p}_h", f"{p}_n"], [f"{p}_h_minus_n"]),
        n("Mul", [f"{p}_z", f"{p}_h_minus_n"], [f"{p}_keep"]),
        n("Add", [f"{p}_n", f"{p}_keep"], [f"{p}_h_new"]),
    ]
    return nodes + _tail(p, f"{p}_h_new", outputs), inits


def _rnn_nodes(p, x, h0, W, R, bias, hidden, outputs):
    """ONNX RNN (tanh): h' = tanh(x W + h R + bW + bR)."""
    nodes, inits = _products(p, x, h0, W, R)
    inits.append(_tensor(f"{p}_b", bias[:hidden] + bias[hidden:]))
    n = helper.make_node
    nodes += [n("Add", [f"{p}_xw", f"{p}_hr"], [f"{p}_sum"]),
              n("Add", [f"{p}_sum", f"{p}_b"], [f"{p}_pre"]),
              n("Tanh", [f"{p}_pre"], [f"{p}_h_new"])]
    return nodes + _tail(p, f"{p}_h_new", outputs), inits
