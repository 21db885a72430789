"""Keras / tf.function -> ONNX with fused recurrent operators (export time only, imports TF).

Pipeline: trace under :func:`._tracing.fused_tracing` (recurrent layers record ``CudnnRNNV3``
placeholders) -> freeze variables (tf2onnx's loader, grappler) -> fold each op's parameter blob
to a constant -> tf2onnx with the ``CudnnRNNV3`` handler (``_cudnn_handler.py``) -> stable
input/output names and named dynamic dims -> ``onnx.checker`` and the fused-op check.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import onnx
import tensorflow as tf

from . import _cudnn_handler  # noqa: F401  (registers the CudnnRNNV3 handler with tf2onnx)
from ._simplify import simplify
from ._tracing import TraceReport, fused_tracing
from .errors import ExportError, FusionFallbackWarning
from .validate import check_fused, check_model

DynamicAxes = Mapping[str, Mapping[int, str]]

_RECURRENT_ONNX_OPS = {"LSTM", "GRU", "RNN"}


def _tensor_name(name: str) -> str:
    return name if ":" in name else name + ":0"


def _node_name(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def _fold_rnn_params(graph_def: tf.compat.v1.GraphDef) -> tf.compat.v1.GraphDef:
    """Replace the parameter input of every ``CudnnRNNV3`` by one ``Const``.

    Keras builds the blob from the (frozen) kernels with split/transpose/concat; grappler does
    not always fold that chain, and the handler needs plain numbers.
    """
    by_name = {n.name: n for n in graph_def.node}
    targets = [
        n
        for n in graph_def.node
        if n.op == "CudnnRNNV3" and by_name[_node_name(n.input[3])].op != "Const"
    ]
    if not targets:
        return graph_def
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        tensors = [graph.get_tensor_by_name(_tensor_name(n.input[3])) for n in targets]
        try:
            with tf.compat.v1.Session(graph=graph) as sess:
                values = sess.run(tensors)
        except tf.errors.OpError as e:
            names = ", ".join(n.name for n in targets)
            raise ExportError(
                f"recurrent weights of {names} are not constant after freezing: {e.message}"
            ) from e
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    existing = {n.name for n in out.node}
    for target, value in zip(targets, values):
        const_name = f"{target.name}/rnnzoo_params"
        while const_name in existing:
            const_name += "_"
        existing.add(const_name)
        const = out.node.add()
        const.name = const_name
        const.op = "Const"
        const.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
        const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        for node in out.node:
            if node.name == target.name:
                node.input[3] = const_name
    return out


def _normalize_outputs(result: Any, output_names: Sequence[str] | None) -> dict[str, tf.Tensor]:
    """Model/function outputs (tensor, list, tuple or dict) -> ordered dict name -> tensor."""
    if isinstance(result, Mapping):
        keys = list(result.keys())
        if output_names is None:
            output_names = [str(k) for k in keys]
        elif set(output_names) == {str(k) for k in keys}:
            lookup = {str(k): v for k, v in result.items()}
            return {n: tf.identity(lookup[n]) for n in output_names}
        values = [result[k] for k in keys]
    else:
        values = tf.nest.flatten(result)
    if output_names is None:
        output_names = [f"output_{i}" for i in range(len(values))]
    if len(output_names) != len(values):
        raise ExportError(
            f"{len(values)} outputs but {len(output_names)} output names: {list(output_names)}"
        )
    # tf.identity gives each output its own tensor, so renaming never collides.
    return {n: tf.identity(v) for n, v in zip(output_names, values)}


def _default_dims(input_signature: Sequence[tf.TensorSpec], names: Sequence[str]) -> dict:
    """Name unknown input dims: axis 0 ``batch`` (shared: every input has the same batch),
    axis 1 ``time`` (or ``<input>_time`` when several inputs have one: a source and a target
    sequence differ in length), else ``<input>_dim<k>``."""
    shapes = [spec.shape.as_list() if spec.shape.rank is not None else [] for spec in
              input_signature]
    n_time = sum(1 for s in shapes if len(s) > 1 and s[1] is None)
    axes: dict[str, dict[int, str]] = {}
    for shape, name in zip(shapes, names):
        for k, d in enumerate(shape):
            if d is None:
                time = "time" if n_time == 1 else f"{name}_time"
                axes.setdefault(name, {})[k] = {0: "batch", 1: time}.get(k, f"{name}_dim{k}")
    return axes


def _set_dims(vi: onnx.ValueInfoProto, axes: Mapping[int, str]) -> None:
    dims = vi.type.tensor_type.shape.dim
    for k, dim_name in axes.items():
        if k < len(dims):
            dims[k].Clear()
            dims[k].dim_param = dim_name


def _name_dims(model: onnx.ModelProto, dynamic_axes: DynamicAxes) -> None:
    """Replace tf2onnx's ``unk__N`` dims by the given names; infer output dims where possible."""
    graph = model.graph
    for vi in graph.input:
        if vi.name in dynamic_axes:
            _set_dims(vi, dynamic_axes[vi.name])
    known = {d for axes in dynamic_axes.values() for d in axes.values()}

    # Symbolic shape inference on a copy: which named dims reach the outputs.
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    for vi in probe.graph.output:
        vi.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=False, data_prop=True)
        inferred_out = {vi.name: vi for vi in inferred.graph.output}
    except Exception:  # inference is best effort
        inferred_out = {}
    batch_names = {
        vi.type.tensor_type.shape.dim[0].dim_param
        for vi in graph.input
        if len(vi.type.tensor_type.shape.dim) > 0
    }
    for vi in graph.output:
        dims = vi.type.tensor_type.shape.dim
        guess = inferred_out.get(vi.name)
        gdims = guess.type.tensor_type.shape.dim if guess is not None else []
        explicit = dynamic_axes.get(vi.name, {})
        for k, dim in enumerate(dims):
            if k in explicit:
                dim.Clear()
                dim.dim_param = explicit[k]
                continue
            if dim.HasField("dim_value"):
                continue
            g = gdims[k] if k < len(gdims) else None
            if g is not None and g.HasField("dim_value"):
                dim.Clear()
                dim.dim_value = g.dim_value
            elif g is not None and g.dim_param in known:
                dim.Clear()
                dim.dim_param = g.dim_param
            elif k == 0 and len(batch_names) == 1 and "" not in batch_names:
                dim.Clear()
                dim.dim_param = next(iter(batch_names))
            else:
                dim.Clear()
                dim.dim_param = f"{vi.name}_dim{k}"
    for vi in graph.value_info:
        for dim in vi.type.tensor_type.shape.dim:
            if dim.dim_param.startswith("unk__"):
                dim.Clear()


def _count_ops(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}

    def walk(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                for sub in attr.graphs:
                    walk(sub)

    walk(model.graph)
    return counts


def convert(
    fn_or_model: Callable[..., Any],
    input_signature: Sequence[tf.TensorSpec],
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    opset: int = 17,
    strict: bool = False,
    dynamic_axes: DynamicAxes | None = None,
    on_phase: Callable[[str], Any] | None = None,
) -> onnx.ModelProto:
    """Export a Keras model or a function of tensors to ONNX with fused LSTM/GRU/RNN ops.

    ``fn_or_model`` is called with one tensor per ``input_signature`` entry (a Keras model with
    several inputs gets them as a list) and ``training=False`` for models. Its outputs (tensor,
    list, tuple or dict) become graph outputs named ``output_names`` (default: dict keys,
    ``model.output_names`` or ``output_<i>``). Inputs are named ``input_names`` (default: spec
    names). Unknown dims are named from ``dynamic_axes`` (``{"tokens": {0: "batch", 1:
    "time"}}``), by default ``batch`` (axis 0) and ``time`` (axis 1); output dims are inferred.

    Inputs must be post-padded (masks turn into ONNX ``sequence_lens``). A recurrent layer that
    cannot be fused is exported as an ONNX ``Loop`` with a :class:`FusionFallbackWarning`
    naming it; ``strict=True`` raises :class:`ExportError` instead.

    Caveat: a ``tf.function`` nested *inside* ``fn_or_model`` that gets (re)traced during the
    export keeps a trace with ``CudnnRNNV3`` ops, which cannot run on CPU; pass plain Python
    functions or Keras models (a top-level ``tf.function`` is unwrapped automatically).
    ``on_phase`` hears ``"tracing"``, ``"converting"`` and ``"simplifying"`` as each starts
    (the exporter's progress line).
    """
    phase = on_phase or (lambda name: None)
    import keras

    if opset < 10:
        raise ExportError("opset >= 10 is needed (ReverseSequence)")
    specs = list(input_signature)
    if input_names is None:
        input_names = [s.name or f"input_{i}" for i, s in enumerate(specs)]
    input_names = list(input_names)
    if len(input_names) != len(specs):
        raise ExportError(f"{len(specs)} input specs but {len(input_names)} input names")
    specs = [tf.TensorSpec(s.shape, s.dtype, name=n) for s, n in zip(specs, input_names)]
    is_keras = isinstance(fn_or_model, keras.layers.Layer)
    if not is_keras and callable(getattr(fn_or_model, "python_function", None)):
        # A tf.function: trace its Python body in our own function. Tracing the user's function
        # under fused_tracing would cache a trace holding CudnnRNNV3 ops (no CPU kernel) in it.
        fn_or_model = fn_or_model.python_function
    if output_names is None and isinstance(fn_or_model, keras.Model):
        names = getattr(fn_or_model, "output_names", None)
        if names and len(set(names)) == len(names):
            output_names = list(names)

    traced_names: list[str] = []

    def traced(*tensors):
        if is_keras:
            arg = tensors[0] if len(tensors) == 1 else list(tensors)
            result = fn_or_model(arg, training=False)
        else:
            result = fn_or_model(*tensors)
        outputs = _normalize_outputs(result, output_names)
        traced_names[:] = list(outputs)
        return outputs

    function = tf.function(traced, input_signature=specs, autograph=False)
    report = TraceReport()
    phase("tracing")
    try:
        with fused_tracing(strict=strict) as report:
            concrete = function.get_concrete_function()
    except Exception as e:
        if report.error:  # Keras rewraps exceptions raised inside a layer call: unwrap
            raise ExportError(report.error) from None
        raise ExportError(f"tracing the model for export failed: {e}") from e
    phase("converting")
    model = _convert_concrete(concrete, opset)
    phase("simplifying")
    simplify(model)
    got_inputs = [vi.name for vi in model.graph.input]
    if got_inputs != input_names:
        raise ExportError(f"ONNX inputs {got_inputs} != requested {input_names}")
    # tf.nest sorts dict outputs by key: restore the requested order.
    by_name = {vi.name: vi for vi in model.graph.output}
    if set(by_name) != set(traced_names):
        raise ExportError(f"ONNX outputs {sorted(by_name)} != requested {traced_names}")
    ordered = [onnx.ValueInfoProto.FromString(by_name[n].SerializeToString()) for n in traced_names]
    del model.graph.output[:]
    model.graph.output.extend(ordered)

    axes = _default_dims(specs, input_names)
    for name, given in (dynamic_axes or {}).items():
        axes[name] = dict(given)
    _name_dims(model, axes)
    model.producer_name = "rnnzoo"
    check_model(model)
    _check_result(model, report, strict)
    return model


class _QuietCudnnShapes(logging.Filter):
    """tf2onnx logs 'Cannot infer shape' for the unused reserve-space outputs: expected."""

    def __init__(self, node_names: set[str]):
        super().__init__()
        self.prefixes = tuple(f"Cannot infer shape for {n}:" for n in node_names)

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.prefixes and record.getMessage().startswith(self.prefixes))


def _convert_concrete(concrete, opset: int) -> onnx.ModelProto:
    """Frozen graph of a concrete function -> ONNX via tf2onnx (with the CudnnRNNV3 handler)."""
    from tf2onnx import optimizer, tf_loader, tfonnx

    flat_in = [
        s
        for s in tf.nest.flatten(concrete.structured_input_signature)
        if isinstance(s, tf.TensorSpec)
    ]
    # User inputs come first; the rest are captures (variables, eager constants) that freezing
    # turns into constants: they must not become graph inputs.
    tf_inputs = [t.name for t in concrete.inputs[: len(flat_in)]]
    tf_outputs = [t.name for t in concrete.outputs if t.dtype != tf.resource]
    rename = {}
    rename.update(zip(tf_inputs, [s.name for s in flat_in]))
    for key, tensor in concrete.structured_outputs.items():
        rename[tensor.name] = key
    with tf.device("/cpu:0"):
        graph_def = tf_loader.from_function(concrete, tf_inputs, tf_outputs)
    graph_def = _fold_rnn_params(graph_def)
    quiet = _QuietCudnnShapes({n.name for n in graph_def.node if n.op == "CudnnRNNV3"})
    shape_logger = logging.getLogger("tf2onnx.shape_inference")
    shape_logger.addFilter(quiet)
    try:
        with tf.Graph().as_default() as tf_graph:
            tf.import_graph_def(graph_def, name="")
            g = tfonnx.process_tf_graph(
                tf_graph,
                continue_on_error=False,
                opset=opset,
                input_names=tf_inputs,
                output_names=tf_outputs,
                tensors_to_rename=rename,
            )
    finally:
        shape_logger.removeFilter(quiet)
    onnx_graph = optimizer.optimize_graph(g)
    return onnx_graph.make_model("rnnzoo export (fused recurrent ops)")


def _check_result(model: onnx.ModelProto, report: TraceReport, strict: bool) -> None:
    counts = _count_ops(model)
    n_fused = sum(counts.get(op, 0) for op in _RECURRENT_ONNX_OPS)
    if n_fused < len(report.fused):
        raise ExportError(
            f"{len(report.fused)} recurrent layers were traced as fused ops but the ONNX graph "
            f"has {n_fused} LSTM/GRU/RNN nodes"
        )
    problems = check_fused(model, expect_recurrent=bool(report.fused))
    if problems and not report.fallback:
        msg = "fused export check failed: " + "; ".join(problems)
        if strict:
            raise ExportError(msg)
        warnings.warn(msg, FusionFallbackWarning, stacklevel=3)
