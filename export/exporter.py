"""``to_onnx``: a trained zoo model -> a validated ONNX bundle with fused recurrent operators.

Each task type says what to export (``Task._graph_specs()``: typed :class:`GraphSpec` s, one
graph or an encoder plus a one-step decoder, with input kinds from which validation inputs are
drawn); this module converts, checks
(ONNX checker, no ``Loop``/``Scan`` where recurrences were fused, parity with Keras at several
shapes), optionally quantizes to int8 and re-validates on the task metric, and writes the bundle
directory atomically.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rnnzoo.io import (
    atomic_directory,
    check_removable_bundle_dir,
)
from rnnzoo.progress import Progress, check_progress, model_label, reporting

from .bundle import BUNDLE_FORMAT, write_manifest
from .errors import ExportError, ExportValidationError
from .specs import GraphSpec
from .streamspec import describe_stream
from .validate import check_fused, op_counts, parity


@dataclasses.dataclass
class ExportReport:
    """What ``to_onnx`` did and measured; also stored in ``bundle.json`` under ``validation``."""

    path: Path
    entry: str
    family: str
    opset: int
    graphs: dict[str, dict]
    int8_path: Path | None = None
    int8: dict | None = None
    digest: str | None = None
    int8_digest: str | None = None

    @property
    def max_abs_diff(self) -> dict[str, dict[str, float]]:
        return {g: info["max_abs_diff"] for g, info in self.graphs.items()}

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "entry": self.entry,
            "family": self.family,
            "opset": self.opset,
            "graphs": self.graphs,
            "int8_path": str(self.int8_path) if self.int8_path else None,
            "int8": self.int8,
            "digest": self.digest,
            "int8_digest": self.int8_digest,
        }

    def summary(self) -> str:
        lines = [f"exported {self.entry} -> {self.path} (opset {self.opset})"]
        for info in self.graphs.values():
            fused = ", ".join(f"{k} x{v}" for k, v in info["recurrent_ops"].items()) or "none"
            diffs = ", ".join(f"{k} {v:.1e}" for k, v in info["max_abs_diff"].items())
            lines.append(
                f"  {info['file']}: fused recurrent ops: {fused}; loops: "
                f"{info['loop_ops']}; max |diff| vs Keras: {diffs}"
            )
        if self.digest:
            lines.append(f"  bundle digest: sha256={self.digest} (pin it: "
                         "runtime.load(path, expected_digest=...))")
        if self.int8:
            lines.append(f"  int8 -> {self.int8_path}: {self.int8['summary']}")
        if self.int8_digest:
            lines.append(f"  int8 bundle digest: sha256={self.int8_digest}")
        return "\n".join(lines)


def _resolve_task(source: Any) -> Any:
    from rnnzoo.registry import load
    from rnnzoo.task import Task

    if isinstance(source, Task):
        return source
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        return load(source)
    raise ExportError(
        f"to_onnx: expected a trained rnnzoo model (rnnzoo.load(...)) or a run/preset directory, "
        f"found {source!r}"
    )


def _export_copy(task: Any) -> Any:
    """A float32 copy of the Keras model for tracing: recurrent dropout zeroed (it is inert at
    inference but keeps Keras off the fused path), the same weights."""
    import keras

    from rnnzoo.registry import task_from_config

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = task_from_config(task.config, task.preprocessor)
        copy.model.set_weights(task.model.get_weights())
    finally:
        keras.config.set_dtype_policy(previous)
    for layer in copy.model._flatten_layers(include_self=False, recursive=True):
        cell = getattr(layer, "cell", None)
        if cell is not None and getattr(cell, "recurrent_dropout", 0):
            cell.recurrent_dropout = 0.0
    return copy


def _write_bundle(tmp: Path, task: Any, graphs: dict[str, Any], meta: dict) -> str:
    """Graph files, assets, bundle.json (with the sha256 of every file and the ``stream``
    description) and SHA256SUMS into ``tmp``; returns the bundle digest."""
    import onnx

    for spec_name, (spec, model) in graphs.items():
        onnx.save_model(model, str(tmp / spec.file))
        meta["graphs"][spec_name]["file"] = spec.file
    task.save_assets(tmp / "assets")
    meta["stream"] = describe_stream(meta["graphs"], stream_hints(task))
    return write_manifest(tmp, meta)


def stream_hints(task: Any) -> dict:
    """The task type's per-graph facts for the ``stream`` description (how to start, which
    output positions are symbols): ``Task._stream_manifest()`` where a task type defines it."""
    hook = getattr(task, "_stream_manifest", None)
    hints = hook() if callable(hook) else None
    if hints is not None and not isinstance(hints, dict):
        raise ExportError(f"{type(task).__name__}._stream_manifest() must return a dict of "
                          f"graph name -> facts, found {type(hints).__name__}")
    return hints or {}


def _io_meta(model: Any) -> tuple[list[dict], list[dict]]:
    import onnx

    def describe(vi: Any) -> dict:
        t = vi.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return {
            "name": vi.name,
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
            "shape": dims,
        }

    return [describe(v) for v in model.graph.input], [describe(v) for v in model.graph.output]


def _versions() -> dict[str, str]:
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    import rnnzoo

    return {
        "rnnzoo": rnnzoo.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _convert_graph(spec: GraphSpec, opset: int, strict: bool, validate: bool,
                   tolerance: float | None,
                   on_phase: Callable[[str], Any] | None = None) -> tuple[Any, dict]:
    """Convert one graph spec and validate it: fused-op check and parity at its sizes.
    ``on_phase`` hears each step (tracing, converting, simplifying, validating) as it starts."""
    import tensorflow as tf

    from ._convert import convert

    signature = [tf.TensorSpec([None if isinstance(d, str) else d for d in i.shape], i.dtype,
                               name=i.name) for i in spec.inputs]
    model = convert(spec.fn, signature, input_names=spec.input_names,
                    output_names=spec.outputs, opset=opset, strict=strict,
                    dynamic_axes=spec.dynamic_axes(), on_phase=on_phase)
    counts = op_counts(model)
    info: dict[str, Any] = {
        "file": spec.file,
        "recurrent_ops": {k: v for k, v in counts.items() if k in ("LSTM", "GRU", "RNN")},
        "loop_ops": sum(counts.get(k, 0) for k in ("Loop", "Scan")),
        "max_abs_diff": {},
        "checked_shapes": [],
    }
    if not validate:
        return model, info
    if on_phase is not None:
        on_phase("validating")
    problems = check_fused(model, expect_recurrent=spec.expect_recurrent)
    if problems and strict:
        raise ExportValidationError(f"{spec.file}: " + "; ".join(problems))
    for problem in problems:
        warnings.warn(f"{spec.file}: {problem}", stacklevel=3)
    feeds = spec.sample_feeds()
    tol = spec.tolerance if tolerance is None else tolerance
    info["max_abs_diff"] = parity(spec.keras_outputs, model, feeds, tol=tol,
                                  valid_lengths_from=spec.sequence_outputs)
    info["checked_shapes"] = [{k: list(v.shape) for k, v in f.items()} for f in feeds]
    info["tolerance"] = tol
    return model, info


def _bundle_meta(task: Any, copy: Any, opset: int) -> dict[str, Any]:
    return {
        "format": BUNDLE_FORMAT,
        "family": task.config.family,
        "entry": task.name,
        "task": task.config.task,
        "precision": "fp32",
        "opset": opset,
        "graphs": {},
        "preprocessing": copy._export_preprocessing(),
        "config": task.config.to_dict(),
        "versions": _versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }


def _check_arguments(opset: Any, quantize: Any, tolerance: Any, eval_data: Any) -> None:
    """Argument checks that run before any tracing (minutes for a large model)."""
    import tf2onnx.constants

    newest = max(tf2onnx.constants.OPSET_TO_IR_VERSION)
    if not isinstance(opset, int) or isinstance(opset, bool) or not 10 <= opset <= newest:
        raise ExportError(f"opset: expected an integer in [10, {newest}] (the ONNX opsets this "
                          f"tf2onnx writes; 17 is tested), found {opset!r}")
    if quantize not in (None, "int8"):
        raise ExportError(f"quantize: expected None or 'int8', found {quantize!r}")
    if tolerance is not None and (
            not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool)
            or not tolerance > 0 or tolerance == float("inf")):
        raise ExportError(f"tolerance: expected a finite number > 0, found {tolerance!r}")
    if eval_data is not None and quantize is None:
        raise ExportError("eval_data (--data) compares int8 against fp32 accuracy: it needs "
                          "quantize='int8' (--quantize int8)")


def to_onnx(
    model_or_run_or_preset: Any,
    out_dir: str | os.PathLike,
    opset: int = 17,
    quantize: str | None = None,
    validate: bool = True,
    strict: bool = False,
    tolerance: float | None = None,
    eval_data: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> ExportReport:
    """Export a trained zoo model to an ONNX bundle directory (fp32), validated by default.

    ``quantize="int8"`` also writes ``<out_dir>-int8`` (onnxruntime dynamic quantization: fused
    LSTMs become ``DynamicQuantizeLSTM``; GRU and SimpleRNN recurrences stay fp32 because no
    quantized operator exists; a task that calibrates, the video predictor, gets static int8
    convolutions instead, see ``Task._calibration_run``) and re-validates it against the fp32
    bundle on the task's own comparison (``Task._compare_runtimes``), on ``eval_data`` when
    given. ``tolerance`` is the largest |Keras - ONNX| accepted (default: each graph spec's,
    1e-4).
    Validation failures raise :class:`ExportValidationError`; nothing is written then: with
    ``quantize``, both bundles appear together or neither does. ``overwrite`` replaces only
    bundle directories (checked before any tracing), never another folder. ``progress=True``
    draws a progress line on stderr naming each step (tracing, converting, simplifying,
    validating, writing, quantizing) as it starts: a large model takes minutes.
    """
    from rnnzoo.extras import import_tensorflow

    import_tensorflow("ONNX export")  # quietly, before tf2onnx imports it
    progress = check_progress(progress)
    _check_arguments(opset, quantize, tolerance, eval_data)
    if not isinstance(out_dir, (str, os.PathLike)):
        raise ExportError(f"out_dir: expected a directory path, found {type(out_dir).__name__}")
    out_dir = Path(out_dir)
    targets = [out_dir] + ([out_dir.with_name(out_dir.name + "-int8")] if quantize else [])
    for target in targets:  # fail before minutes of tracing, not after
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise ExportError(f"{target} already exists; pass overwrite=True (--overwrite) "
                                  "or pick another output directory")
            check_removable_bundle_dir(target, ExportError)
        else:
            blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
            if blocker is not None:
                raise ExportError(f"{target}: {blocker} is a file, not a folder; pick another "
                                  "output directory")
    task = _resolve_task(model_or_run_or_preset)
    if not task.is_fitted:
        raise ExportError(f"{task.name!r} has no vocabulary: export a trained model")
    with reporting(progress, model_label(task, "export")) as bar:
        return _export(task, targets, opset, quantize, validate, strict, tolerance, eval_data,
                       overwrite, bar)


def _export(task: Any, targets: list[Path], opset: int, quantize: str | None, validate: bool,
            strict: bool, tolerance: float | None, eval_data: Any, overwrite: bool,
            bar: Progress) -> ExportReport:
    """``to_onnx`` once its arguments are checked: convert, validate, write (and quantize)
    into ``targets`` (the fp32 bundle, then the int8 one), each step named on ``bar``."""
    out_dir = targets[0]
    if eval_data is not None:  # a bad --data fails now, not after both bundles are built
        bar.stage("reading the evaluation data")
        task.load_data(eval_data, seed=task.config.training.seed)
    bar.stage("preparing")
    copy = _export_copy(task)
    specs = copy._graph_specs()
    meta = _bundle_meta(task, copy, opset)
    converted: dict[str, Any] = {}
    graph_reports: dict[str, dict] = {}
    for k, spec in enumerate(specs, 1):
        def on_phase(step: str, spec: GraphSpec = spec, k: int = k) -> None:
            bar.stage(f"{step} {spec.file} ({k}/{len(specs)})")

        model, graph_reports[spec.name] = _convert_graph(spec, opset, strict, validate,
                                                         tolerance, on_phase)
        inputs, outputs = _io_meta(model)
        meta["graphs"][spec.name] = {"file": spec.file, "inputs": inputs, "outputs": outputs}
        converted[spec.name] = (spec, model)
    meta["validation"] = {"validated": validate, "onnx_checker": "passed (full_check)",
                          "graphs": graph_reports}

    report = ExportReport(out_dir, task.name, task.config.family, opset, graph_reports)

    def fill(tmp: Path) -> None:
        bar.stage("writing the bundle")
        report.digest = _write_bundle(tmp, copy, converted, meta)
        if quantize == "int8":
            # Built and checked from the fp32 bundle's temporary folder: if quantization or
            # its comparison fails, neither bundle appears.
            report.int8_path = targets[1]
            report.int8 = _quantize_bundle(copy, tmp, targets[1], specs, meta, eval_data,
                                           overwrite, fp32_name=out_dir.name, bar=bar)
            report.int8_digest = report.int8.pop("digest")

    removable = functools.partial(check_removable_bundle_dir, error=ExportError)
    try:
        atomic_directory(out_dir, fill, overwrite, ExportError, removable=removable)
    except BaseException:
        # The int8 bundle is renamed into place just before the fp32 one; should that last
        # rename fail, do not leave the int8 bundle alone.
        if report.int8 is not None and targets[-1].is_dir():
            shutil.rmtree(targets[-1], ignore_errors=True)
        raise
    return report


#: Operators quantized statically in a calibrated graph: onnxruntime runs them as QLinearConv,
#: integer kernels that beat float32; as ConvInteger (dynamic) they are slower than float32.
STATIC_INT8_OPS = ("Conv",)


def _calibration_feeds(task: Any, fp32_dir: Path, eval_data: Any,
                       stage: Callable[[str], None]) -> dict[str, list[dict]]:
    """The inputs each graph of the fp32 bundle is fed while the task runs it on
    representative data (``Task._calibration_run``), by graph name; empty: dynamic int8."""
    import numpy as np

    from rnnzoo.task import Task

    from .runtime import load as load_runtime

    if eval_data is None or type(task)._calibration_run is Task._calibration_run:
        return {}  # the default hook calibrates nothing: no bundle to open
    runtime = load_runtime(fp32_dir)
    run = runtime.run_unchecked
    seen: dict[str, list[dict]] = {}

    def recording(graph: str, feeds: Any) -> Any:
        seen.setdefault(graph, []).append({k: np.array(v) for k, v in feeds.items()})
        return run(graph, feeds)

    stage("calibrating int8 on the fp32 bundle")
    runtime.run_unchecked = recording  # every run of a bundle runtime goes through it
    if not task._calibration_run(runtime, eval_data):
        return {}
    return seen


def _quantize_static(src: Path, dst: Path, feeds: list[dict], work: Path) -> None:
    """Static int8 of ``STATIC_INT8_OPS`` in one graph, calibrated on ``feeds``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    pre = work / f"pre_{src.name}"
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QOperator,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=list(STATIC_INT8_OPS))


def _quantize_bundle(
    task: Any,
    fp32_dir: Path,
    int8_dir: Path,
    specs: list,
    meta: dict,
    eval_data: Any,
    overwrite: bool,
    fp32_name: str,
    bar: Progress | None = None,
) -> dict:
    """int8 quantization of every graph, compared with the fp32 bundle in ``fp32_dir`` before
    the int8 directory is renamed into place (its manifest holds the comparison); each step
    named on ``bar``. Dynamic, unless the task calibrates a graph (``Task._calibration_run``):
    then its convolutions are static int8 on the ranges of the inputs it was fed."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from ._one_step import unroll_one_step
    from .runtime import load as load_runtime

    def stage(name: str) -> None:
        if bar is not None:
            bar.stage(name)

    result: dict = {}

    def fill(tmp: Path) -> None:
        quantized = {}
        calibration = _calibration_feeds(task, fp32_dir, eval_data, stage)
        with tempfile.TemporaryDirectory() as work:
            for spec in specs:
                stage(f"quantizing {spec.file} to int8")
                src = fp32_dir / spec.file
                dst = Path(work) / spec.file
                model = onnx.load_model(str(src))
                if unroll_one_step(model):  # one-step GRU/RNN: int8 products, see _one_step
                    src = Path(work) / f"unrolled_{spec.file}"
                    onnx.save_model(model, str(src))
                # onnxruntime logs generic pre-processing advice on the root logger; the
                # re-validation below is what tells whether this model quantized well.
                root = logging.getLogger()
                level = root.level
                root.setLevel(logging.ERROR)
                try:
                    if spec.name in calibration:
                        _quantize_static(src, dst, calibration[spec.name], Path(work))
                    else:
                        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
                finally:
                    root.setLevel(level)
                quantized[spec.name] = (spec, onnx.load_model(str(dst)))
            m = json.loads(json.dumps(meta))
            m["precision"] = "int8"
            m["quantization"] = {
                "method": "onnxruntime.quantization.quantize_dynamic",
                "weight_type": "QInt8",
                "fp32_bundle": fp32_name,
            }
            if calibration:
                m["quantization"]["static"] = {
                    "method": "onnxruntime.quantization.quantize_static",
                    "graphs": sorted(calibration),
                    "ops": list(STATIC_INT8_OPS),
                    "format": "QOperator, weights QInt8 per channel, activations QUInt8 "
                              "(MinMax)",
                    "calibration_feeds": {k: len(v) for k, v in sorted(calibration.items())},
                }
            for name, (_, model) in quantized.items():
                counts = op_counts(model)
                m["graphs"][name]["op_counts"] = {
                    k: v
                    for k, v in counts.items()
                    if k in ("LSTM", "GRU", "RNN", "DynamicQuantizeLSTM", "Loop", "Scan")
                }
            stage("writing the int8 bundle")
            _write_bundle(tmp, task, quantized, m)
        stage("comparing int8 with fp32")
        result.update(task._compare_runtimes(load_runtime(fp32_dir), load_runtime(tmp),
                                            eval_data))
        ops = {k: v for g in m["graphs"].values() for k, v in g.get("op_counts", {}).items()}
        result["op_counts"] = ops
        if ops.get("GRU") or ops.get("RNN"):
            result["note"] = (
                "GRU/RNN recurrences over sequences stay fp32: onnxruntime has no quantized "
                "GRU or RNN operator; only matrix multiplies and embeddings are int8 (one-step "
                "decoder recurrences are written as matrix multiplies and are int8)"
            )
        m["validation_int8"] = dict(result)
        result["digest"] = write_manifest(tmp, m)

    removable = functools.partial(check_removable_bundle_dir, error=ExportError)
    atomic_directory(int8_dir, fill, overwrite, ExportError, removable=removable)
    return result
