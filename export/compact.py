"""Lossless size reduction of an exported graph: float32 weights that are exactly float16 values
are stored as float16 and cast back to float32 when the session loads.

A preset stores its Keras weights in float16, so every weight of the model loaded from it is a
float16 value held in float32, and the fp32 bundle exported from it carries each of them in four
bytes where two hold the same number. The ``Cast`` of a constant is folded by onnxruntime's
constant folding when the session is created, so the graph that runs holds the very same float32
values: outputs are bit-identical (checked by the caller) and the file is about half the size.
Only initializers whose every value round-trips exactly are converted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SUFFIX = "__fp16"


def compact_initializers(model: Any, min_size: int = 1024) -> int:
    """Convert in place the float32 initializers of ``model`` (an ``onnx.ModelProto``) with at
    least ``min_size`` values that are all exact float16 numbers; return how many bytes that
    saves. Initializers that are also graph inputs (overridable) are left alone."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inputs = {i.name for i in graph.input}
    taken = {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    casts, saved = [], 0
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or init.name in inputs:
            continue
        values = numpy_helper.to_array(init)
        if values.size < min_size:
            continue
        with np.errstate(over="ignore"):
            half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            continue  # not exactly representable (or NaN): keep float32
        name, stored = init.name, init.name + SUFFIX
        if stored in taken:
            continue
        init.CopyFrom(numpy_helper.from_array(half, stored))
        casts.append(helper.make_node("Cast", [stored], [name], to=TensorProto.FLOAT,
                                      name=f"{name}{SUFFIX}_cast"))
        saved += values.size * 2
    if casts:
        nodes = casts + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
    return saved
