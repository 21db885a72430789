"""Graph clean-ups after conversion: fewer nodes, the same arithmetic.

At batch 1 an ONNX Runtime node costs a few microseconds of dispatch whatever it computes, and
tf2onnx spells every Keras ``Dense`` on a 3-D input the way ``tf.tensordot`` does: ``Shape``,
``Cast``, ``Gather``, ``Concat``, ``Cast``, ``Reshape``, ``MatMul``, ``Reshape``. ONNX ``MatMul``
broadcasts over leading axes, so one node computes the same product from the same weights. In a
translator's decoder step that removes 21 of 74 nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper


def simplify(model: onnx.ModelProto) -> dict[str, int]:
    """Rewrite ``model`` in place; returns what was done (``{"tensordot": n, "moves": k,
    "no_ops": j, "removed": m}``)."""
    shapes = _shapes(model)
    collapsed = _collapse_tensordot(model.graph, shapes)
    moves = _cancel_moves(model.graph)
    no_ops = _drop_no_ops(model.graph, shapes)
    removed = _remove_dead(model.graph) if collapsed or moves or no_ops else 0
    return {"tensordot": collapsed, "moves": moves, "no_ops": no_ops, "removed": removed}


# -- data movement around recurrent layers -----------------------------------------------------
#
# A backward direction exported from Keras' cuDNN path reads: reverse the valid steps of the
# batch-major input, transpose to time-major, run the forward operator, transpose back, reverse
# the valid steps again, and then Keras' ``go_backwards`` flip (a full-length ReverseV2, which
# tf2onnx writes as Transpose + ReverseSequence + Transpose) that the Bidirectional wrapper
# undoes with a second one. Every one of these copies the whole [T, B, H] sequence. Three
# rewrites that only move data (so outputs are bit-identical, and the export's parity check
# still runs) remove most of them:
#   1. Transpose(Transpose(x, p), q) with q undoing p  ->  x
#   2. Transpose_q(ReverseSequence(Transpose_p(x))) with q undoing p  ->  ReverseSequence(x)
#      on x's axes (the lengths are the same per batch entry)
#   3. two full-length reversals of the same axes in a row  ->  x
# Padded rows keep their meaning: rule 2 keeps the real lengths and rule 3 only pairs
# reversals whose lengths are the full time axis, proven from the graph (Expand of the time
# dimension read by Shape from the reversed tensor or its transpose).


def _perm(node: onnx.NodeProto) -> list[int] | None:
    for attr in node.attribute:
        if attr.name == "perm":
            return list(attr.ints)
    return None


def _axes(node: onnx.NodeProto) -> tuple[int, int]:
    got = {a.name: a.i for a in node.attribute}
    return got.get("batch_axis", 1), got.get("time_axis", 0)


def _undoes(p: list[int] | None, q: list[int] | None) -> bool:
    """Transpose q applied after transpose p gives back the original layout."""
    return p is not None and q is not None and len(p) == len(q) and all(
        p[q[j]] == j for j in range(len(p)))


def _full_length_reversals(graph: onnx.GraphProto) -> set[str]:
    """Names of ReverseSequence nodes whose lengths are provably the whole time axis."""
    producer = {out: node for node in graph.node for out in node.output}
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    full = set()
    for node in graph.node:
        if node.op_type != "ReverseSequence" or len(node.input) < 2:
            continue
        _, time_axis = _axes(node)
        expand = producer.get(node.input[1])
        if expand is None or expand.op_type != "Expand":
            continue
        gather = producer.get(expand.input[0])
        if gather is None or gather.op_type != "Gather" or any(
                a.name == "axis" and a.i != 0 for a in gather.attribute):
            continue
        idx = consts.get(gather.input[1])
        shape = producer.get(gather.input[0])
        if idx is None or idx.size != 1 or shape is None or shape.op_type != "Shape" \
                or shape.attribute:
            continue
        i, u, x = int(idx.reshape(-1)[0]), shape.input[0], node.input[0]
        x_node, u_node = producer.get(x), producer.get(u)
        if (u == x and i == time_axis) or (
                x_node is not None and x_node.op_type == "Transpose" and x_node.input[0] == u
                and (_perm(x_node) or [None] * 99)[time_axis] == i) or (
                u_node is not None and u_node.op_type == "Transpose" and u_node.input[0] == x
                and (_perm(u_node) or [None] * 99)[i] == time_axis):
            full.add(node.name)
    return full


def _cancel_moves(graph: onnx.GraphProto) -> int:
    full = _full_length_reversals(graph)
    outputs = {o.name for o in graph.output}
    for node in graph.node:  # names read inside a Loop/If/Scan body are left alone
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                outputs |= _used_names(sub)
    count = 0

    changed = True
    while changed:
        changed = False
        producer = {out: node for node in graph.node for out in node.output}
        for node in list(graph.node):
            out = node.output[0] if node.output else None
            if out is None or out in outputs:
                continue
            src = producer.get(node.input[0]) if node.input else None
            if src is None:
                continue
            if node.op_type == "Transpose" and src.op_type == "Transpose" and _undoes(
                    _perm(src), _perm(node)):  # rule 1
                _rewire(graph, out, src.input[0])
                graph.node.remove(node)
                changed = True
            elif node.op_type == "Transpose" and src.op_type == "ReverseSequence":  # rule 2
                inner = producer.get(src.input[0])
                p, q = (_perm(inner) if inner is not None and inner.op_type == "Transpose"
                        else None), _perm(node)
                if not _undoes(p, q):
                    continue
                batch_axis, time_axis = _axes(src)
                name = f"{src.name}_on_{inner.input[0]}"[-120:]
                rev = helper.make_node("ReverseSequence", [inner.input[0], src.input[1]], [out],
                                       name=name, batch_axis=p[batch_axis],
                                       time_axis=p[time_axis])
                if src.name in full:
                    full.add(name)
                pos = list(graph.node).index(node)
                graph.node.remove(node)
                graph.node.insert(pos, rev)
                changed = True
            elif node.op_type == "ReverseSequence" and src.op_type == "ReverseSequence" \
                    and node.name in full and src.name in full and _axes(node) == _axes(src):
                _rewire(graph, out, src.input[0])  # rule 3
                graph.node.remove(node)
                changed = True
            if changed:
                count += 1
                break
    return count


# -- work that computes nothing -----------------------------------------------------------------
#
# Three patterns of a converted decoder step that cost a node dispatch (and for Slice a copy)
# per step and change no value (the export's parity check still runs):
#   1. Slice from 0 to 1e9 (TensorFlow's "to the end") with step 1 on every axis it names:
#      a copy of its input (``x[:, None]`` in the attention).
#   2. The ``sequence_lens`` of a recurrent node that is a constant expanded over the batch and
#      equals the input's static time length (a one-step decoder's GRU): every row is full
#      length, which is what an absent ``sequence_lens`` means.
#   3. TensorFlow's wrapping of negative ``Gather`` indices (``where(i < 0, i + n, i)``, nine
#      nodes after conversion) in front of an ONNX ``Gather``, which wraps negative indices
#      itself.

_TO_THE_END = 10**9


def _drop_no_ops(graph: onnx.GraphProto, shapes: dict[str, list]) -> int:
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    protected = {o.name for o in graph.output}
    for node in graph.node:  # names read inside a Loop/If/Scan body are left alone
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                protected |= _used_names(sub)

    def const(name: str) -> np.ndarray | None:
        node = producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
        return consts.get(name)

    def op(name: str, op_type: str) -> Any:
        node = producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    count = 0
    for node in list(graph.node):
        if node.op_type == "Slice" and len(node.input) >= 3 and node.output[0] not in protected:
            starts, ends = const(node.input[1]), const(node.input[2])
            steps = const(node.input[4]) if len(node.input) > 4 and node.input[4] else None
            if starts is None or ends is None or (len(node.input) > 4 and node.input[4]
                                                  and steps is None):
                continue
            if (starts == 0).all() and (ends >= _TO_THE_END).all() and (
                    steps is None or (steps == 1).all()):
                _rewire(graph, node.output[0], node.input[0])  # rule 1
                graph.node.remove(node)
                count += 1
        elif node.op_type in ("RNN", "GRU", "LSTM") and len(node.input) > 4 and node.input[4]:
            expand = op(node.input[4], "Expand")
            value = const(expand.input[0]) if expand is not None else None
            steps = (shapes.get(node.input[0]) or [None])[0]
            if value is not None and steps and (value == steps).all():
                node.input[4] = ""  # rule 2
                count += 1
        elif node.op_type == "Gather":
            index = _unwrapped_index(node, op, const)
            if index is not None:
                node.input[1] = index  # rule 3
                count += 1
    return count


def _unwrapped_index(gather: onnx.NodeProto, op: Any, const: Any) -> str | None:
    """``i`` when ``gather``'s indices are ``Less(i, 0) * (i + n) + i * Not(Less(i, 0))`` with
    ``n`` the gathered axis' length (casts allowed around the condition), else None."""
    axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
    data = const(gather.input[0])
    add = op(gather.input[1], "Add")
    if data is None or add is None or axis != 0:
        return None
    muls = [op(name, "Mul") for name in add.input]
    if None in muls:
        return None

    def condition(name: str, negate: bool) -> str | None:
        """The ``x`` of ``Cast(Less(Cast?(x), 0))`` (``Cast(Not(...))`` when ``negate``)."""
        cast = op(name, "Cast")
        inner = op(cast.input[0], "Not" if negate else "Less") if cast is not None else None
        if inner is not None and negate:
            inner = op(inner.input[0], "Less")
        zero = const(inner.input[1]) if inner is not None else None
        if zero is None or zero.size != 1 or float(zero) != 0.0:
            return None
        x = inner.input[0]
        cast_x = op(x, "Cast")
        return cast_x.input[0] if cast_x is not None else x

    for neg, pos in (muls, muls[::-1]):
        for c_name, shifted in (neg.input, neg.input[::-1]):
            for i_name, not_name in (pos.input, pos.input[::-1]):
                plus = op(shifted, "Add")
                if plus is None or condition(c_name, False) != i_name \
                        or condition(not_name, True) != i_name:
                    continue
                n = next((const(v) for v in plus.input if v != i_name), None)
                if i_name in plus.input and n is not None and n.size == 1 \
                        and int(n) == data.shape[0]:
                    return i_name
    return None


def _shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Tensor name -> its dimensions (None where not constant), from shape inference."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is a convenience here: no shapes, no rewrites
        return {}
    g = inferred.graph
    return {vi.name: [d.dim_value if d.dim_value > 0 else None
                      for d in vi.type.tensor_type.shape.dim]
            for vi in list(g.value_info) + list(g.input) + list(g.output)
            if vi.type.tensor_type.HasField("shape")}


def _collapse_tensordot(graph: onnx.GraphProto, shapes: dict[str, list]) -> int:
    producer = {out: node for node in graph.node for out in node.output}
    consts = {t.name: t for t in graph.initializer}

    def const(name: str) -> np.ndarray | None:
        if name in consts:
            return numpy_helper.to_array(consts[name])
        node = producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
        return None

    def through_casts(name: str) -> Any:
        node = producer.get(name)
        while node is not None and node.op_type == "Cast":
            node = producer.get(node.input[0])
        return node

    count = 0
    for node in list(graph.node):
        if node.op_type != "Reshape":
            continue
        matmul = producer.get(node.input[0])
        if matmul is None or matmul.op_type != "MatMul":
            continue
        weight = const(matmul.input[1])
        flat = producer.get(matmul.input[0])
        if weight is None or weight.ndim != 2 or flat is None or flat.op_type != "Reshape":
            continue
        # Whatever shape ``flat`` reshapes x to, the final reshape to x.shape[:-1] + [n] only
        # holds as many elements as the product if x's last axis is the weight's k: then every
        # row of ``flat`` is one x[..., :] vector and the three nodes are x @ weight.
        n = weight.shape[1]
        x = flat.input[0]
        concat = through_casts(node.input[1])
        if concat is None or concat.op_type != "Concat" or len(concat.input) != 2:
            continue
        tail = const(concat.input[1])
        gather = through_casts(concat.input[0])
        if tail is None or tail.tolist() != [n] or gather is None or gather.op_type != "Gather":
            continue
        shape = through_casts(gather.input[0])
        idx = const(gather.input[1])
        if shape is None or shape.op_type != "Shape" or shape.input[0] != x or idx is None:
            continue
        if shape.attribute or idx.tolist() != list(range(len(shapes.get(x, [])) - 1)):
            continue  # the free axes must be every axis but the last
        pos = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(pos, helper.make_node("MatMul", [x, matmul.input[1]], list(node.output),
                                                name=f"{matmul.name}_broadcast"))
        count += 1
    return count


def _rewire(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every node that reads ``old`` reads ``new`` instead."""
    for node in graph.node:
        for j, name in enumerate(node.input):
            if name == old:
                node.input[j] = new


def _used_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name read by a node, including from inside subgraphs (Loop, If, Scan)."""
    used = set()
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                used |= _used_names(sub)
    return used


def _remove_dead(graph: onnx.GraphProto) -> int:
    outputs = {o.name for o in graph.output}
    removed = 0
    while True:
        used = _used_names(graph) | outputs
        dead = [node for node in graph.node if not any(o in used for o in node.output if o)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
        removed += len(dead)
    used = _used_names(graph) | outputs | {i.name for i in graph.input}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)
    return removed
