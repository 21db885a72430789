"""The tiny ONNX graph behind beam search's per-step selection (``rnnzoo/beam_select.onnx``).

Beam search needs, per beam and step, the best ``k`` tokens by logit and the softmax normaliser
``(max, sum(exp(logit - max)))`` of a vocabulary-wide row. In numpy that is several passes and
copies over ``beams x vocabulary`` (about 60% of a batch-1 beam step's time with the int8
decoder); onnxruntime's ``TopK``, ``ReduceMax`` and ``ReduceSum(Exp)`` do it in one call. The graph
is generated here (onnx is a build-time dependency) and shipped as a file, because the runtime
must not need the ``onnx`` package: ``tests/test_fast_decoding.py`` checks that the shipped file
is this function's output.
"""

from __future__ import annotations

OPSET = 18


def build_select_graph() -> bytes:
    """Serialized model: ``logits`` float [n, v], ``k`` int64 [1] -> ``top_values`` float and
    ``top`` int64 [n, k] (best first, ties by lower index), ``max`` float [n, 1], ``sum_exp``
    double [n, 1]."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("TopK", ["logits", "k"], ["top_values", "top"], axis=-1),
        helper.make_node("ReduceMax", ["logits", "axes"], ["max"], keepdims=1),
        helper.make_node("Sub", ["logits", "max"], ["shifted"]),
        helper.make_node("Exp", ["shifted"], ["exp"]),
        # exp in float32 (vectorised), summed in float64: lse within ~1e-8 of numpy's float64
        # log_softmax (a float32 sum over 8,000 entries drifts by ~2e-6), for ~20% more time.
        helper.make_node("Cast", ["exp"], ["exp64"], to=TensorProto.DOUBLE),
        helper.make_node("ReduceSum", ["exp64", "axes"], ["sum_exp"], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes, "beam_select",
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", "v"]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("top_values", TensorProto.FLOAT, ["n", "k"]),
         helper.make_tensor_value_info("top", TensorProto.INT64, ["n", "k"]),
         helper.make_tensor_value_info("max", TensorProto.FLOAT, ["n", 1]),
         helper.make_tensor_value_info("sum_exp", TensorProto.DOUBLE, ["n", 1])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [-1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rnnzoo")
    model.ir_version = 8
    return model.SerializeToString()


if __name__ == "__main__":  # python -m rnnzoo.export.select_graph > rnnzoo/beam_select.onnx
    import sys

    sys.stdout.buffer.write(build_select_graph())
