"""The tiny ONNX graph behind beam search's per-step selection (``rnnzoo/beam_select.onnx``).

Beam search needs, per beam and step, the best ``k`` tokens by logit and the softmax normaliser
``(max, sum(exp(logit - max)))`` of a vocabulary-wide row. In numpy that is several passes and
copies over ``beams x vocabulary`` (about 60% of a batch-1 beam step's time with the int8
decoder); onnxruntime does it in one call. The graph is generated here (onnx is a build-time
dependency) and shipped as a file, because the runtime must not need the ``onnx`` package:
``tests/test_fast_decoding.py`` checks that the shipped file is this function's output.

The caller passes each row cut into blocks, ``[n, blocks, block]`` (a free numpy reshape; the
row padded with ``-inf`` when the block does not divide it). That allows two cheap passes where a
plain ``TopK`` over 8,000 logits is the slowest node: the ``k`` blocks with the highest maxima
hold the row's best ``k`` tokens (a token outside them would be beaten by ``k`` block maxima), so
``TopK`` runs over the block maxima and then over those ``k`` blocks only, taken in index order
so that ties still go to the lower index, as in a stable full sort. The normaliser sums ``exp``
per block in float32 and the block sums in float64: within ~2e-7 of numpy's float64
``log_softmax`` (a float32 ulp at |logit| ~ 2), where a float32 sum over 8,000 entries drifts by
~2e-6 and a float64 sum of every entry costs more than the rest of the graph.
"""

from __future__ import annotations

OPSET = 18


def build_select_graph() -> bytes:
    """Serialized model: ``logits`` float [n, blocks, block] and ``k`` int64 [1] (``k <=
    blocks``) -> ``top_values`` float and ``top`` int64 [n, k] (indices into the flattened row,
    best first, ties by lower index), ``max`` float [n, 1], ``sum_exp`` double [n, 1]."""
    from onnx import TensorProto, helper

    node = helper.make_node
    nodes = [
        node("ReduceMax", ["logits", "last"], ["block_max"], keepdims=0),           # [n, nb]
        node("ReduceMax", ["block_max", "last"], ["max"], keepdims=1),              # [n, 1]
        # The k best blocks, in index order (TopK of the indices, smallest first).
        node("TopK", ["block_max", "k"], ["_", "ranked_blocks"], axis=-1),
        node("TopK", ["ranked_blocks", "k"], ["blocks", "_order"], axis=-1, largest=0),
        node("Shape", ["logits"], ["_shape3"]),
        node("Slice", ["_shape3", "two", "three"], ["block"]),                      # [1]: b
        node("Shape", ["blocks"], ["_shape2"]),
        node("Concat", ["_shape2", "block"], ["_gather_shape"], axis=0),            # [n, k, b]
        node("Unsqueeze", ["blocks", "last"], ["_blocks3"]),
        node("Expand", ["_blocks3", "_gather_shape"], ["_gather_index"]),
        node("GatherElements", ["logits", "_gather_index"], ["_picked"], axis=1),   # [n, k, b]
        node("Reshape", ["_picked", "rows"], ["candidates"]),                       # [n, k * b]
        node("TopK", ["candidates", "k"], ["top_values", "_pos"], axis=-1),
        node("Div", ["_pos", "block"], ["_pos_block"]),
        node("Mod", ["_pos", "block"], ["_pos_offset"]),
        node("GatherElements", ["blocks", "_pos_block"], ["_top_block"], axis=1),
        node("Mul", ["_top_block", "block"], ["_top_base"]),
        node("Add", ["_top_base", "_pos_offset"], ["top"]),
        # Normaliser: exp in float32, summed per block in float32, then in float64.
        node("Unsqueeze", ["max", "last"], ["_max3"]),
        node("Sub", ["logits", "_max3"], ["_shifted"]),
        node("Exp", ["_shifted"], ["_exp"]),
        node("ReduceSum", ["_exp", "last"], ["_block_sum"], keepdims=0),
        node("Cast", ["_block_sum"], ["_block_sum64"], to=TensorProto.DOUBLE),
        node("ReduceSum", ["_block_sum64", "last"], ["sum_exp"], keepdims=1),
    ]
    ints = [("last", [-1]), ("two", [2]), ("three", [3]), ("rows", [0, -1])]
    graph = helper.make_graph(
        nodes, "beam_select",
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", "blocks", "block"]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("top_values", TensorProto.FLOAT, ["n", "k"]),
         helper.make_tensor_value_info("top", TensorProto.INT64, ["n", "k"]),
         helper.make_tensor_value_info("max", TensorProto.FLOAT, ["n", 1]),
         helper.make_tensor_value_info("sum_exp", TensorProto.DOUBLE, ["n", 1])],
        initializer=[helper.make_tensor(name, TensorProto.INT64, [len(v)], v)
                     for name, v in ints],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rnnzoo")
    model.ir_version = 8
    return model.SerializeToString()


if __name__ == "__main__":  # python -m rnnzoo.export.select_graph > rnnzoo/beam_select.onnx
    import sys

    sys.stdout.buffer.write(build_select_graph())
