"""The ONNX bundles a preset carries, built and validated when the preset is made (train extra).

A preset with bundles holds ``onnx/fp32/`` (always) and ``onnx/int8/`` (when the int8 graphs
pass the task type's acceptance rule, ``Task._int8_rejection``), each a complete bundle directory
as ``rnnzoo export`` writes it, listed in the preset's ``checksums.json`` with everything else.
What was checked is recorded in ``metadata.json`` under ``onnx``:

* the exporter's own validation: ONNX checker, fused recurrent operators, parity with Keras at
  several shapes (max |diff| per output);
* float32 weights that are exact float16 values (all of them, for a float16 preset) are stored
  as float16 and cast back when the session loads (``rnnzoo.export.compact``): the outputs of
  the compacted graphs must be bit-identical to those of the uncompacted ones;
* a weight that several graphs of the bundle hold byte for byte (the full-sequence ``model``
  and the one-step ``decoder`` of a language model share every weight) is stored once, in
  ``shared_weights.bin``, as ONNX external data that each graph points to; again the outputs
  must be bit-identical;
* the task's user call (``example_outputs`` on ``example_inputs``) through the bundle equals
  the Keras model's (labels, tokens and frames exactly, probabilities within 1e-5).

Each bundle's digest (``rnnzoo.export.integrity``: the sha256 of its ``SHA256SUMS``) is recorded
as ``onnx.<precision>.digest``, the value a user pins (``runtime.load(..., expected_digest=)``,
``rnnzoo serve NAME=PATH#sha256=...``).

Generic over task types: everything goes through the task contract (``_graph_specs``,
``_compare_runtimes``, ``example_inputs``/``example_outputs``, ``_int8_rejection``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps import app_cli
from rnnzoo.export.bundle import bundle_digest, write_manifest

ONNX_DIR = "onnx"
PRECISIONS = ("fp32", "int8")
# The user call through the bundle equals the Keras one within the exporter's own graph
# tolerance (export.specs.GraphSpec.tolerance): a forecaster's readout can scale float32
# rounding of its state (2e-7) to 2e-5 in the forecast, which is no export fault.
PARITY_ATOL = 1e-4


def bundle_relpath(precision: str) -> str:
    """``onnx/fp32`` or ``onnx/int8``: where a preset keeps that bundle."""
    return f"{ONNX_DIR}/{precision}"


def close(a: Any, b: Any, atol: float = PARITY_ATOL) -> bool:
    """Plain-data equality with a tolerance on floats (labels, tokens and counts exact)."""
    if isinstance(a, Mapping):
        return isinstance(b, Mapping) and a.keys() == b.keys() and all(
            close(a[k], b[k], atol) for k in a)
    if isinstance(a, (list, tuple)):
        return (isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(close(x, y, atol) for x, y in zip(a, b)))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= atol
    return a == b


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: np.asarray(v).tolist()))


def _session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _run_all(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    sess = _session(path)
    names = {i.name for i in sess.get_inputs()}
    return [sess.run(None, {k: v for k, v in f.items() if k in names}) for f in feeds]


def compact_bundle(directory: Path, specs: list[Any]) -> int:
    """Store exact-float16 weights of every graph in ``directory`` as float16, check that each
    graph's outputs are bit-identical before and after on the specs' sample inputs, and rewrite
    the sha256 lists (``bundle.json``, ``SHA256SUMS``); return the bytes saved."""
    import onnx

    from rnnzoo.export.compact import compact_initializers
    from rnnzoo.export.errors import ExportValidationError

    manifest_path = directory / "bundle.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    by_name = {s.name: s for s in specs}
    saved = 0
    for name, graph in manifest["graphs"].items():
        path = directory / graph["file"]
        model = onnx.load_model(str(path))
        gained = compact_initializers(model)
        if not gained:
            continue
        feeds = by_name[name].sample_feeds(seed=7) if name in by_name else []
        before = _run_all(path, feeds)
        tmp = path.with_name(f".{path.name}.tmp")
        onnx.save_model(model, str(tmp))
        after = _run_all(tmp, feeds)
        for b, a in zip(before, after):
            for x, y in zip(b, a):
                if not np.array_equal(x, y):
                    tmp.unlink()
                    raise ExportValidationError(
                        f"{path}: storing exact float16 weights as float16 changed the "
                        "outputs; this should not happen (report it), or save the preset "
                        "without ONNX bundles")
        os.replace(tmp, path)
        saved += gained
    manifest["weight_storage"] = ("float32 weights that are exact float16 values are stored as "
                                  "float16 and cast back on load (identical outputs)")
    write_manifest(directory, manifest)
    return saved


SHARED_FILE = "shared_weights.bin"
_ALIGN = 4096  # page-aligned offsets let onnxruntime map the data instead of copying it


def share_initializers(directory: Path, specs: list[Any], min_bytes: int = 4096) -> int:
    """Store once, in ``directory/shared_weights.bin``, every initializer of at least
    ``min_bytes`` that two or more graphs of the bundle hold with the same type, shape and
    bytes; each graph refers to it as ONNX external data (a relative file name inside the
    bundle, listed and checksummed in ``bundle.json`` like the graphs). The outputs of every
    graph must be bit-identical before and after on the specs' sample inputs. Returns the
    bytes saved (0 when the graphs share nothing, and then nothing is written)."""
    import onnx
    from onnx import TensorProto

    from rnnzoo.export.errors import ExportValidationError

    manifest_path = directory / "bundle.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    paths = {name: directory / g["file"] for name, g in manifest["graphs"].items()}
    models = {name: onnx.load_model(str(path)) for name, path in paths.items()}

    def key(init: Any) -> tuple | None:
        if init.data_location == TensorProto.EXTERNAL or len(init.raw_data) < min_bytes:
            return None
        return init.data_type, tuple(init.dims), init.raw_data

    holders: dict[tuple, set[str]] = {}
    for name, model in models.items():
        for init in model.graph.initializer:
            k = key(init)
            if k is not None:
                holders.setdefault(k, set()).add(name)
    shared = [k for k, names in holders.items() if len(names) > 1]
    if not shared:
        return 0
    by_name = {s.name: s for s in specs}
    feeds = {name: by_name[name].sample_feeds(seed=7) if name in by_name else []
             for name in models}
    before = {name: _run_all(paths[name], feeds[name]) for name in models}
    offsets: dict[tuple, int] = {}
    blob = bytearray()
    for k in shared:
        blob.extend(b"\0" * (-len(blob) % _ALIGN))
        offsets[k] = len(blob)
        blob.extend(k[2])
    (directory / SHARED_FILE).write_bytes(bytes(blob))
    saved = -len(blob)
    for name, model in models.items():
        for init in model.graph.initializer:
            k = key(init)
            if k not in offsets:
                continue
            saved += len(init.raw_data)
            init.ClearField("raw_data")
            init.data_location = TensorProto.EXTERNAL
            del init.external_data[:]
            for field, value in (("location", SHARED_FILE), ("offset", str(offsets[k])),
                                 ("length", str(len(k[2])))):
                entry = init.external_data.add()
                entry.key, entry.value = field, value
        tmp = paths[name].with_name(f".{paths[name].name}.tmp")
        tmp.write_bytes(model.SerializeToString())
        os.replace(tmp, paths[name])
    for name in models:
        after = _run_all(paths[name], feeds[name])
        if not all(np.array_equal(x, y) for b, a in zip(before[name], after)
                   for x, y in zip(b, a)):
            raise ExportValidationError(
                f"{paths[name]}: storing shared weights once changed the outputs; this should "
                "not happen (report it), or save the preset without ONNX bundles")
    manifest["weight_sharing"] = (f"weights held by several graphs are stored once in "
                                  f"{SHARED_FILE} (ONNX external data; identical outputs)")
    write_manifest(directory, manifest)
    return saved


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _user_call_parity(task: Any, bundle: Path) -> str:
    """The task's user call through the bundle equals the Keras model's, or raise."""
    from rnnzoo.export import runtime
    from rnnzoo.export.errors import ExportValidationError

    cli = app_cli(task.config.task)
    inputs = cli.example_inputs()
    want = _plain(cli.example_outputs(task, inputs))
    got = _plain(cli.example_outputs(runtime.load(bundle, verify=False), inputs))
    if not close(want, got):
        raise ExportValidationError(
            f"{bundle}: the bundle's {cli.VERB} results differ from the Keras model's on the "
            f"task's example inputs (Keras {str(want)[:200]}, bundle {str(got)[:200]})")
    return f"{cli.VERB} on {len(inputs)} example inputs: identical to Keras (floats within " \
           f"{PARITY_ATOL:g})"


def build_bundles(task: Any, preset_dir: Path, eval_data: str | os.PathLike | None = None,
                  int8: bool = True) -> dict:
    """Export ``task`` (loaded from the preset's stored weights) into ``preset_dir/onnx/fp32``
    (and ``onnx/int8`` when it passes), validated as the module docstring says; return the
    ``onnx`` metadata entry. Raises the exporter's errors when the fp32 bundle fails."""
    import onnxruntime

    from rnnzoo.export import to_onnx

    root = preset_dir / ONNX_DIR
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    fp32 = root / "fp32"
    report = to_onnx(task, fp32, quantize="int8" if int8 else None,
                     eval_data=eval_data if int8 else None)
    specs = task._graph_specs()
    saved = compact_bundle(fp32, specs)
    shared = share_initializers(fp32, specs)
    info: dict[str, Any] = {
        "onnxruntime": onnxruntime.__version__,
        "opset": report.opset,
        "fp32": {
            "path": bundle_relpath("fp32"),
            "bytes": _size(fp32),
            "bytes_saved_by_float16_storage": saved,
            "bytes_saved_by_sharing_weights_between_graphs": shared,
            "graphs": {g: {"recurrent_ops": r["recurrent_ops"], "loop_ops": r["loop_ops"],
                           "max_abs_diff_vs_keras": r["max_abs_diff"]}
                       for g, r in report.graphs.items()},
            "keras_parity": _user_call_parity(task, fp32),
            "digest": bundle_digest(fp32),
        },
    }
    if not int8:
        info["int8_rejected"] = "not built (int8=False / --no-int8)"
    if report.int8_path is not None:
        made = report.int8_path
        comparison = {k: v for k, v in (report.int8 or {}).items() if k != "op_counts"}
        rejected = task._int8_rejection(comparison)
        if rejected:
            shutil.rmtree(made)
            info["int8_rejected"] = f"{rejected} ({comparison.get('summary', '')})"
        else:
            target = root / "int8"
            os.replace(made, target)
            compact_bundle(target, specs)
            share_initializers(target, specs)
            info["int8"] = {"path": bundle_relpath("int8"), "bytes": _size(target),
                            "comparison": _plain(comparison), "digest": bundle_digest(target)}
    return info
