"""The Open Inference Protocol v2 (tensor level): model metadata, checked feeds, outputs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rnnzoo.errors import short_repr
from rnnzoo.io.inputs import first_bad_number
from rnnzoo.serving.config import MODEL_VERSION, ServeError
from rnnzoo.serving.data import plain
from rnnzoo.serving.models import ServedModel

# -- the v2 tensor protocol --------------------------------------------------------------------

_V2_TYPES = {"tensor(int32)": "INT32", "tensor(int64)": "INT64", "tensor(float)": "FP32",
             "tensor(double)": "FP64", "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8",
             "tensor(float16)": "FP16", "tensor(int8)": "INT8"}
_NUMPY = {"INT32": np.int32, "INT64": np.int64, "FP32": np.float32, "FP64": np.float64,
          "BOOL": np.bool_, "UINT8": np.uint8, "FP16": np.float16, "INT8": np.int8}


def _v2_tensors(values: Sequence[Any]) -> list[dict]:
    return [{"name": v.name, "datatype": _V2_TYPES.get(v.type, v.type),
             "shape": [d if isinstance(d, int) else -1 for d in v.shape]} for v in values]


def main_graph(runtime: Any) -> str:
    return "model" if "model" in runtime.sessions else next(iter(runtime.sessions))


def v2_metadata(model: ServedModel) -> dict:
    rt = model.runtime
    graphs = {g: {"inputs": _v2_tensors(s.get_inputs()), "outputs": _v2_tensors(s.get_outputs())}
              for g, s in rt.sessions.items()}
    main = main_graph(rt)
    return {"name": model.name, "versions": [MODEL_VERSION], "platform": "onnxruntime_onnx",
            "inputs": graphs[main]["inputs"], "outputs": graphs[main]["outputs"],
            "parameters": {"task": model.task, "family": rt.family, "graph": main,
                           "graphs": graphs}}


def _time_limit(model: ServedModel, graph: str, name: str) -> int | None:
    """The most time steps an input may have: ``preprocessing.max_length`` for an input whose
    exported shape names a ``time`` axis (what the model was trained and validated on)."""
    pre = model.runtime.manifest.get("preprocessing", {})
    limit = pre.get("max_length")
    if not isinstance(limit, int) or isinstance(limit, bool):
        return None
    for spec in model.runtime.manifest["graphs"].get(graph, {}).get("inputs", []):
        if isinstance(spec, Mapping) and spec.get("name") == name \
                and "time" in [d for d in spec.get("shape", []) if isinstance(d, str)]:
            return limit
    return None


def v2_feeds(model: ServedModel, body: Any) -> tuple[str, dict[str, np.ndarray], list[str]]:
    """``(graph, feeds, requested outputs)`` of an infer request, or a 400 naming the tensor."""
    if not isinstance(body, dict):
        raise ServeError(400, "invalid_request", "expected a JSON object with 'inputs'")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise ServeError(400, "invalid_request", "'parameters' must be an object")
    graph = params.get("graph", main_graph(model.runtime))
    if graph not in model.runtime.sessions:
        raise ServeError(400, "unknown_graph", f"{model.name}: no graph {short_repr(graph)}; "
                         f"graphs: {', '.join(model.runtime.sessions)}")
    specs = {i.name: i for i in model.runtime.sessions[graph].get_inputs()}
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ServeError(400, "invalid_request", f"'inputs' must be a non-empty list of tensors "
                         f"({', '.join(specs)})")
    feeds: dict[str, np.ndarray] = {}
    for k, t in enumerate(inputs):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise ServeError(400, "invalid_request", f"inputs[{k}]: expected an object with "
                             "name, shape, datatype and data")
        name = t["name"]
        if name not in specs:
            raise ServeError(400, "unknown_input", f"inputs[{k}]: {short_repr(name)} is not an "
                             f"input of graph {graph!r} ({', '.join(specs)})")
        spec = specs[name]
        want = _V2_TYPES.get(spec.type)
        if t.get("datatype") != want:
            raise ServeError(400, "wrong_datatype", f"input {name!r}: datatype must be {want}, "
                             f"found {short_repr(t.get('datatype'))}")
        shape = t.get("shape")
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ServeError(400, "wrong_shape", f"input {name!r}: shape must be a list of "
                             f"integers >= 0, found {short_repr(shape)}")
        if len(shape) != len(spec.shape):
            raise ServeError(400, "wrong_shape", f"input {name!r}: expected rank "
                             f"{len(spec.shape)} {list(spec.shape)}, found shape {shape}")
        for axis, (got, fixed) in enumerate(zip(shape, spec.shape)):
            if isinstance(fixed, int) and got != fixed:
                raise ServeError(400, "wrong_shape", f"input {name!r}: axis {axis} must be "
                                 f"{fixed} {list(spec.shape)}, found shape {shape}")
        limit = _time_limit(model, graph, name)
        if limit is not None and len(shape) > 1 and shape[1] > limit:
            raise ServeError(400, "too_long", f"input {name!r}: {shape[1]} time steps exceed "
                             f"this model's max_length {limit}; cut the input")
        try:
            data = np.asarray(t.get("data"))
        except (ValueError, TypeError):
            data = np.asarray([], dtype=object)
        kind = {"BOOL": "b", "FP32": "biuf", "FP64": "biuf", "FP16": "biuf"}.get(want, "iu")
        if data.dtype.kind not in kind or data.dtype == object:
            raise ServeError(400, "wrong_datatype", f"input {name!r}: 'data' must be a (flat or "
                             f"nested) list of {want} values, found "
                             f"{short_repr(t.get('data'), 60)}")
        if data.size != math.prod(shape):
            raise ServeError(400, "wrong_shape", f"input {name!r}: shape {shape} needs "
                             f"{math.prod(shape)} values, found {data.size}")
        np_type = _NUMPY[want]
        # NaN, infinities and values the tensor's type cannot hold (1e308 as FP32 is inf).
        bad = first_bad_number(data.reshape(shape),
                               np_type if np.dtype(np_type).kind == "f" else None)
        if bad is not None:
            index, value = bad
            what = "not a finite number" if not math.isfinite(value) else \
                f"outside the {want} range"
            raise ServeError(400, "invalid_input", f"input {name!r}: the value at index "
                             f"{list(index)} is {value:g}, {what}; values must be finite")
        if np.dtype(np_type).kind in "iu" and data.size and data.min() < 0:
            # onnxruntime's Gather reads negative token ids from the end of the table.
            raise ServeError(400, "invalid_input", f"input {name!r}: integer inputs (token ids, "
                             f"flags) must be >= 0, found {int(data.min())}")
        if data.dtype.kind in "iu" and np.dtype(np_type).kind in "iu":
            info = np.iinfo(np_type)
            if data.size and (data.min() < info.min or data.max() > info.max):
                raise ServeError(400, "invalid_input", f"input {name!r}: values out of the "
                                 f"{want} range")
        feeds[name] = data.reshape(shape).astype(np_type)
    missing = [n for n in specs if n not in feeds]
    if missing:
        raise ServeError(400, "missing_input", f"graph {graph!r} also needs "
                         f"{', '.join(missing)}")
    outs = body.get("outputs")
    names = [o.name for o in model.runtime.sessions[graph].get_outputs()]
    wanted = names
    if outs is not None:
        if not isinstance(outs, list) or not all(isinstance(o, dict) for o in outs):
            raise ServeError(400, "invalid_request", "'outputs' must be a list of {\"name\": ...}")
        wanted = [o.get("name") for o in outs]
        bad = [str(o) for o in wanted if o not in names]
        if bad:
            raise ServeError(400, "unknown_output", f"no output {', '.join(bad)} in graph "
                             f"{graph!r} ({', '.join(names)})")
    return graph, feeds, wanted


def v2_outputs(results: Mapping[str, np.ndarray], wanted: list[str]) -> list[dict]:
    out = []
    for name in wanted:
        arr = np.asarray(results[name])
        dtype = {np.dtype(v): k for k, v in _NUMPY.items()}.get(arr.dtype, "FP32")
        out.append({"name": name, "datatype": dtype, "shape": list(arr.shape),
                    "data": plain(arr.reshape(-1))})
    return out
