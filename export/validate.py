"""Checks every export runs: fused ops present, ONNX checker, parity with Keras (TF-free).

Parity runs the Keras side through a plain callable returning numpy arrays, so this module
imports neither TensorFlow nor Keras and can be used by the runtime and by tests alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx

from .errors import ExportValidationError

FUSED_OPS = frozenset({"LSTM", "GRU", "RNN", "DynamicQuantizeLSTM"})
LOOP_OPS = frozenset({"Loop", "Scan"})


def _walk(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk(attr.g)
            for sub in attr.graphs:
                yield from _walk(sub)


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Op type -> count, subgraphs included."""
    counts: dict[str, int] = {}
    for node in _walk(model.graph):
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def check_fused(model: onnx.ModelProto, expect_recurrent: bool) -> list[str]:
    """Problems with the recurrent part of a graph (empty list: fine).

    A ``Loop``/``Scan`` means a recurrence was exported step by step (slow, not quantizable);
    ``expect_recurrent`` additionally requires at least one fused LSTM/GRU/RNN node.
    """
    problems = []
    loops = [f"{n.op_type} '{n.name}'" for n in _walk(model.graph) if n.op_type in LOOP_OPS]
    if loops:
        problems.append(f"graph has {len(loops)} Loop/Scan node(s): {', '.join(loops[:5])}")
    if expect_recurrent and not any(n.op_type in FUSED_OPS for n in _walk(model.graph)):
        problems.append("no fused LSTM/GRU/RNN node in a graph that should have one")
    return problems


def check_model(model: onnx.ModelProto | bytes) -> None:
    """``onnx.checker.check_model(full_check=True)``, raising :class:`ExportValidationError`."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportValidationError(f"ONNX checker failed: {e}") from e


def _session(model: Any):
    import onnxruntime as ort

    if isinstance(model, ort.InferenceSession):
        return model
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def post_padded_lengths(tokens: np.ndarray, pad_id: int = 0) -> np.ndarray:
    """Valid length of each row of a post-padded token batch [batch, time]."""
    return (np.asarray(tokens) != pad_id).sum(axis=1)


def is_post_padded(tokens: np.ndarray, pad_id: int = 0) -> bool:
    """True when every row is valid tokens followed only by padding (the fused-op contract)."""
    tokens = np.asarray(tokens)
    lengths = post_padded_lengths(tokens, pad_id)
    expected = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
    return bool(np.array_equal(tokens != pad_id, expected))


def _as_dict(result: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    if isinstance(result, Mapping):
        return {k: np.asarray(v) for k, v in result.items()}
    if not isinstance(result, (list, tuple)):
        result = [result]
    if len(result) != len(names):
        raise ExportValidationError(f"Keras gave {len(result)} outputs, ONNX has {len(names)}")
    return {n: np.asarray(v) for n, v in zip(names, result)}


def parity(
    keras_fn: Callable[[dict[str, np.ndarray]], Any],
    onnx_model: bytes | onnx.ModelProto | Any,
    input_batches: Sequence[Mapping[str, np.ndarray]],
    tol: float = 1e-4,
    *,
    valid_lengths_from: Mapping[str, str] | None = None,
    pad_id: int = 0,
) -> dict[str, float]:
    """Max |Keras - ONNX| per output over all batches; raises above ``tol``.

    ``keras_fn`` gets one batch (input name -> array) and returns a dict, list or array.
    ``valid_lengths_from`` maps a sequence output [batch, time, ...] to the post-padded token
    input whose lengths select the positions to compare: at padded steps Keras repeats the
    previous output while ONNX writes zeros, and nothing downstream reads those positions.
    """
    sess = _session(onnx_model)
    names = [o.name for o in sess.get_outputs()]
    worst = {n: 0.0 for n in names}
    for batch in input_batches:
        feeds = {k: np.asarray(v) for k, v in batch.items()}
        got = dict(zip(names, sess.run(names, feeds)))
        want = _as_dict(keras_fn(feeds), names)
        for name in names:
            a, b = np.asarray(want[name]), np.asarray(got[name])
            if a.shape != b.shape:
                raise ExportValidationError(
                    f"output {name}: Keras shape {a.shape} != ONNX shape {b.shape}"
                )
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            source = (valid_lengths_from or {}).get(name)
            if source is not None:
                tokens = np.asarray(feeds[source])
                if diff.ndim < 2 or diff.shape[:2] != tokens.shape[:2]:
                    raise ExportValidationError(
                        f"output {name} {diff.shape} is not a [batch, time, ...] sequence of "
                        f"input {source} {tokens.shape}"
                    )
                lengths = post_padded_lengths(tokens, pad_id)
                valid = np.arange(diff.shape[1])[None, :] < lengths[:, None]
                diff = diff[valid]
            worst[name] = max(worst[name], float(diff.max()) if diff.size else 0.0)
    bad = {n: d for n, d in worst.items() if not d <= tol}
    if bad:
        detail = ", ".join(f"{n}: {d:.3g}" for n, d in bad.items())
        raise ExportValidationError(f"ONNX differs from Keras above tol={tol:g}: {detail}")
    return worst
