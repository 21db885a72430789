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
    """Rewrite ``model`` in place; returns what was done (``{"tensordot": n, "removed": m}``)."""
    ranks = _ranks(model)
    collapsed = _collapse_tensordot(model.graph, ranks)
    removed = _remove_dead(model.graph) if collapsed else 0
    return {"tensordot": collapsed, "removed": removed}


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is a convenience here: no ranks, no rewrites
        return {}
    ranks = {}
    g = inferred.graph
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            ranks[vi.name] = len(t.shape.dim)
    return ranks


def _collapse_tensordot(graph: onnx.GraphProto, ranks: dict[str, int]) -> int:
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
        if shape.attribute or idx.tolist() != list(range(ranks.get(x, -1) - 1)):
            continue  # the free axes must be every axis but the last
        pos = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(pos, helper.make_node("MatMul", [x, matmul.input[1]], list(node.output),
                                                name=f"{matmul.name}_broadcast"))
        count += 1
    return count


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
