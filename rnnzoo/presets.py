"""Pretrained presets: weights shipped with verified metadata (TF-free until a model is loaded).

A preset is a directory::

    config.json          the entry config (what ``task.write_artifacts`` writes)
    model.weights.h5     the weights (float16 or float32; optimizer state is not kept)
    assets/              tokenizer JSON, labels, ...
    metadata.json        what was measured, on which data, with which command (schema below)
    README.md            the model card, generated from metadata.json
    checksums.json       sha256 of every other file

A preset comes from a local directory or archive, the presets shipped in the package
(``rnnzoo/pretrained/<entry>.<tag>/``), the cache (``$RNNZOO_HOME/presets/<name>/``, default
``~/.cache/rnnzoo``) or a URL to an archive. Whatever the source, every file is checked against
``checksums.json`` (and no unlisted file or symlink is accepted) before anything is deserialised,
and archives are unpacked member by member into a temporary folder of the cache, never with
``extractall``: a hostile archive cannot write outside it or leave half a preset behind.
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import http.client
import importlib.resources
import json
import math
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from rnnzoo.config import suggest
from rnnzoo.errors import RunDirError, UnknownModelError
from rnnzoo.evaluation import evaluate_reports, report_metrics
from rnnzoo.io import atomic_directory, atomic_write_text, read_json, sha256_file, verify_files

PRESET_FORMAT = "rnnzoo.preset.v1"
FORMAT_VERSION = 1

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
ASSETS_DIR = "assets"
METADATA_FILE = "metadata.json"
README_FILE = "README.md"
CHECKSUMS_FILE = "checksums.json"

STORAGES = ("float16", "float32")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
URL_SCHEMES = ("file", "http", "https")
DOWNLOAD_TIMEOUT_S = 60.0

# ``<entry>.<tag>``: also the cache folder name, so nothing that could climb out of it.
NAME_RE = re.compile(r"^[A-Za-z0-9_]+\.[A-Za-z0-9_-]+$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_FORMAT_RE = re.compile(r"^rnnzoo\.preset\.v(\d+)$")
_SOURCES_INDEX = ".sources.json"  # archive sha256 -> cached preset (skips re-downloads)


class PresetError(RunDirError, ValueError):
    """A preset is malformed, fails verification, or cannot be fetched (the message says how to
    fix it). A ``RunDirError``, so callers that handle unloadable directories handle it too."""


# -- metadata schema ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MetadataField:
    """One ``metadata.json`` field: its kind (how it is checked), whether it is required, and
    what it means (quoted in error messages)."""

    kind: str
    required: bool
    doc: str


METADATA_SCHEMA: dict[str, MetadataField] = {
    "format": MetadataField("format", True, f"the preset format, {PRESET_FORMAT!r}"),
    "name": MetadataField("name", True, "'<entry>.<tag>', e.g. 'sentiment_gru.sst2'"),
    "entry": MetadataField("text", True, "the zoo entry the weights belong to"),
    "family": MetadataField("text", True, "the model family"),
    "task": MetadataField("text", True, "the task type"),
    "description": MetadataField("text", True, "one paragraph for the model card"),
    "num_params": MetadataField("count", True, "the model's count_params()"),
    "dataset": MetadataField("text", True, "the dataset the metrics were measured on"),
    "split": MetadataField("text", True, "the split the metrics were measured on"),
    "metrics": MetadataField("metrics", True, "measured metrics, name -> number"),
    "metrics_command": MetadataField("text", True, "the exact command that measured them"),
    "training_command": MetadataField("text", True, "the exact command that trained the model"),
    "training_wall_time_s": MetadataField("seconds", True, "training wall time in seconds"),
    "data_license": MetadataField("text", True, "the training data's licence"),
    "versions": MetadataField("versions", True, "{'rnnzoo': ..., 'keras': ..., 'tensorflow': ...}"),
    "date": MetadataField("date", True, "ISO 8601 date of the save"),
    "storage": MetadataField("storage", True, f"weights dtype on disk: {' or '.join(STORAGES)}"),
    "tradeoffs": MetadataField("string", True, "what was traded for size or speed (may be '')"),
    "published": MetadataField("numbers", False, "published anchors, name -> number"),
    "check": MetadataField("check", False, "{'limit': N, 'metrics': {...}}: metrics on the "
                           "first N examples of the split, re-measured by the test suite"),
    "notes": MetadataField("string", False, "free text for the model card"),
    "onnx": MetadataField("onnx", False, "{'fp32': {'path': 'onnx/fp32', ...}, 'int8': ...}: "
                          "the validated ONNX bundles the preset carries (rnnzoo.preset_bundle)"),
}
VERSION_KEYS = ("rnnzoo", "keras", "tensorflow")


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_kind(kind: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``kind``, or None."""
    if kind in ("text", "name", "format"):
        if not isinstance(value, str) or not value.strip():
            return "expected a non-empty string"
        if kind == "name" and not NAME_RE.match(value):
            return "expected '<entry>.<tag>' (letters, digits, '_' and '-' in the tag)"
        return None
    if kind == "string":
        return None if isinstance(value, str) else "expected a string"
    if kind == "count":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "expected a non-negative integer"
    if kind == "seconds":
        return None if _is_number(value) and value >= 0 else "expected a non-negative number"
    if kind in ("numbers", "metrics"):
        if not isinstance(value, Mapping) or (kind == "metrics" and not value):
            return "expected a non-empty mapping of name -> number"
        bad = [k for k, v in value.items() if not isinstance(k, str) or not _is_number(v)]
        return f"{bad[0]!r} is not a finite number" if bad else None
    if kind == "versions":
        if not isinstance(value, Mapping):
            return f"expected a mapping with keys {', '.join(VERSION_KEYS)}"
        missing = [k for k in VERSION_KEYS if not isinstance(value.get(k), str)]
        return f"missing version string for {missing[0]!r}" if missing else None
    if kind == "date":
        try:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except (AttributeError, ValueError):
            return "expected an ISO 8601 date such as '2025-01-31T12:00:00+00:00'"
        return None
    if kind == "check":
        if not isinstance(value, Mapping) or set(value) != {"limit", "metrics"}:
            return "expected {'limit': N, 'metrics': {name: number}}"
        if not isinstance(value["limit"], int) or value["limit"] < 1:
            return "limit: expected an integer >= 1"
        return _check_kind("metrics", value["metrics"])
    if kind == "storage":
        return None if value in STORAGES else f"expected {' or '.join(map(repr, STORAGES))}"
    if kind == "onnx":
        if not isinstance(value, Mapping) or not isinstance(value.get("fp32"), Mapping):
            return "expected {'fp32': {'path': 'onnx/fp32', ...}, optionally 'int8': {...}}"
        for precision in ("fp32", "int8"):
            entry = value.get(precision)
            if entry is not None and (not isinstance(entry, Mapping)
                                      or entry.get("path") != f"onnx/{precision}"):
                return f"{precision}: expected {{'path': 'onnx/{precision}', ...}}"
        return None
    raise AssertionError(f"unknown metadata kind {kind!r}")


def _check_format(value: Any, where: str) -> None:
    match = _FORMAT_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise PresetError(f"{where}: field 'format': expected {PRESET_FORMAT!r}, found {value!r}; "
                          "this is not an rnnzoo preset")
    if int(match.group(1)) > FORMAT_VERSION:
        from rnnzoo import __version__

        raise PresetError(f"{where}: preset format {value!r} is newer than this rnnzoo "
                          f"({__version__}) reads ({PRESET_FORMAT!r}); upgrade rnnzoo "
                          "(pip install -U rnnzoo)")
    if value != PRESET_FORMAT:
        raise PresetError(f"{where}: field 'format': expected {PRESET_FORMAT!r}, found {value!r}")


def validate_metadata(meta: Any, where: str) -> dict:
    """Check ``meta`` against ``METADATA_SCHEMA`` and return it as a dict; raise ``PresetError``
    naming ``where`` (the file) and the first missing, unknown or malformed field."""
    if not isinstance(meta, Mapping):
        raise PresetError(f"{where}: expected a JSON object of metadata fields, found "
                          f"{type(meta).__name__}")
    if "format" not in meta:
        raise PresetError(f"{where}: missing field 'format' ({METADATA_SCHEMA['format'].doc})")
    _check_format(meta["format"], where)
    for key in meta:
        if key not in METADATA_SCHEMA:
            raise PresetError(f"{where}: unknown field {key!r}.{suggest(str(key), METADATA_SCHEMA)}"
                              f" Valid fields: {', '.join(METADATA_SCHEMA)}")
    for key, spec in METADATA_SCHEMA.items():
        if key not in meta:
            if spec.required:
                raise PresetError(f"{where}: missing field {key!r} ({spec.doc}); add it")
            continue
        problem = _check_kind(spec.kind, meta[key])
        if problem:
            found = repr(meta[key])
            found = found if len(found) <= 80 else found[:77] + "..."
            raise PresetError(f"{where}: field {key!r}: {problem}, found {found} ({spec.doc})")
    if meta["name"].split(".", 1)[0] != meta["entry"]:
        raise PresetError(f"{where}: field 'name': {meta['name']!r} must start with the entry "
                          f"name, e.g. '{meta['entry']}.{meta['name'].split('.', 1)[-1]}'")
    return dict(meta)


# -- saving ------------------------------------------------------------------------------------


def _write_checksums(directory: Path) -> None:
    """``write_checksums`` lives in ``rnnzoo.saving`` (or ``rnnzoo.task`` before that split)."""
    try:
        from rnnzoo.saving import write_checksums
    except ImportError:
        from rnnzoo.task import write_checksums
    write_checksums(directory)


def rewrite_weights(path: Path, storage: str) -> None:
    """Rewrite a Keras ``.weights.h5`` file keeping its layout (groups, dataset names, attrs),
    without the optimizer state, and with float32 datasets as float16 when ``storage`` says so.

    The file is rebuilt rather than edited in place because HDF5 never reclaims the space of
    deleted datasets. Keras casts on assignment, so float16 files load into float32 models.
    """
    import h5py
    import numpy as np

    def copy(src: Any, dst: Any, prefix: str) -> None:
        dst.attrs.update(dict(src.attrs))
        for key, item in src.items():
            name = f"{prefix}{key}"
            if isinstance(item, h5py.Group):
                if name == "optimizer":  # training state: useless for inference, 2x the size
                    continue
                copy(item, dst.create_group(key), f"{name}/")
                continue
            data = item[()]
            if storage == "float16" and item.dtype == np.float32:
                with np.errstate(over="ignore"):  # overflow is reported below, by name
                    half = np.asarray(data).astype(np.float16)
                if not np.array_equal(np.isfinite(half), np.isfinite(data)):
                    raise PresetError(
                        f"{path}: weight {name!r} has values beyond the float16 range "
                        f"(max |x| = {np.nanmax(np.abs(data)):.3g}); save with storage='float32'")
                data = half
            out = dst.create_dataset(key, data=data)
            out.attrs.update(dict(item.attrs))

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
            copy(src, dst, "")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _check_weights_round_trip(task: Any, directory: Path, storage: str) -> None:
    """Load the written preset with the public loader and compare every variable with the
    original: exact for float32, exact up to float16 rounding for float16."""
    import numpy as np

    import rnnzoo

    loaded = rnnzoo.load(directory)
    before, after = task.model.weights, loaded.model.weights
    if len(before) != len(after):
        raise PresetError(f"{directory}: the saved preset reloads with {len(after)} weights "
                          f"instead of {len(before)}; the entry config does not rebuild the model")
    for old, new in zip(before, after):
        want = np.asarray(old.numpy())
        if storage == "float16" and want.dtype == np.float32:
            want = want.astype(np.float16).astype(np.float32)
        got = np.asarray(new.numpy())
        if want.shape != got.shape or not np.array_equal(want, got):
            raise PresetError(f"{directory}: weight {getattr(old, 'path', old.name)!r} does not "
                              "round-trip through the saved preset")


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    from rnnzoo import __version__

    return {"rnnzoo": __version__, "keras": keras.__version__, "tensorflow": tf.__version__}


def _complete_metadata(task: Any, metadata: Mapping[str, Any], storage: str) -> dict:
    """``metadata`` plus what save_preset knows better than the caller (entry, family, task,
    num_params, format, versions, date, storage), validated."""
    where = "save_preset(metadata=...)"
    if storage not in STORAGES:
        raise PresetError(f"save_preset(storage={storage!r}): expected "
                          f"{' or '.join(map(repr, STORAGES))}")
    meta = dict(metadata)
    facts = {
        "format": PRESET_FORMAT,
        "entry": task.config.name,
        "family": task.config.family,
        "task": task.config.task,
        "num_params": int(task.model.count_params()),
    }
    for key, value in facts.items():
        if key in meta and meta[key] != value:
            raise PresetError(f"{where}: field {key!r} is {meta[key]!r} but the model says "
                              f"{value!r}; leave it out, save_preset fills it in")
    meta.update(facts)
    meta.update(versions=_versions(), storage=storage,
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("description", task.config.description)
    meta.setdefault("tradeoffs", "weights stored as float16 (half the size; outputs differ from "
                    "float32 by rounding only)" if storage == "float16" else "")
    return validate_metadata(meta, where)


def save_preset(task: Any, directory: str | os.PathLike, metadata: Mapping[str, Any],
                storage: str = "float16", overwrite: bool = False, onnx: bool = False,
                eval_data: str | os.PathLike | None = None, int8: bool = True) -> Path:
    """Write ``task`` as a preset directory (whole or not at all) and return its path.

    ``metadata`` gives what only the caller knows (name, dataset, split, metrics and the commands
    that produced them, wall time, data licence, optionally published anchors and notes); the
    rest is filled in. The saved weights are reloaded and compared before the directory appears.
    ``onnx=True`` also builds the validated ONNX bundles from the stored weights
    (``rnnzoo.preset_bundle``: fp32, and int8 when it passes on ``eval_data``).
    """
    meta = _complete_metadata(task, metadata, storage)
    final = Path(directory)

    def fill(tmp: Path) -> None:
        try:
            task.write_artifacts(tmp)
            rewrite_weights(tmp / WEIGHTS_FILE, storage)
            if onnx:
                _add_bundles(tmp, meta, eval_data, int8)
            atomic_write_text(tmp / METADATA_FILE, json.dumps(meta, indent=2) + "\n")
            atomic_write_text(tmp / README_FILE, render_model_card(meta, tmp))
            _write_checksums(tmp)
            _check_weights_round_trip(task, tmp, storage)
        except PresetError as exc:  # name the destination, not the hidden temporary folder
            raise PresetError(str(exc).replace(str(tmp), str(final))) from None

    return atomic_directory(final, fill, overwrite, PresetError)


def _add_bundles(directory: Path, meta: dict, eval_data: Any, int8: bool) -> None:
    """Build the ONNX bundles of the preset being written in ``directory`` from its stored
    weights and record them in ``meta`` (validated again)."""
    import rnnzoo
    from rnnzoo.preset_bundle import build_bundles

    stored = rnnzoo.load(directory, verify=False)  # being written: no checksums yet
    meta["onnx"] = build_bundles(stored, directory, eval_data=eval_data, int8=int8)
    validate_metadata(meta, f"{directory / METADATA_FILE}")


def add_bundle(source: str | os.PathLike, out: str | os.PathLike, *,
               eval_data: str | os.PathLike | None = None, int8: bool = True,
               overwrite: bool = False) -> Path:
    """Give an existing preset its validated ONNX bundles: a copy of the verified preset with
    ``onnx/`` (any old one replaced), its metadata, model card and checksums, written to
    ``out`` whole or not at all (``out`` may be the preset itself, with ``overwrite``)."""
    directory, meta = _resolve(source)
    meta = {k: v for k, v in meta.items() if k != "onnx"}

    def fill(tmp: Path) -> None:
        for item in directory.iterdir():
            if item.name in (ONNX_DIR_NAME, CHECKSUMS_FILE, METADATA_FILE, README_FILE):
                continue
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copy2(item, tmp / item.name)
        try:
            _add_bundles(tmp, meta, eval_data, int8)
            atomic_write_text(tmp / METADATA_FILE, json.dumps(meta, indent=2) + "\n")
            atomic_write_text(tmp / README_FILE, render_model_card(meta, tmp))
            _write_checksums(tmp)
        except PresetError as exc:
            raise PresetError(str(exc).replace(str(tmp), str(out))) from None

    return atomic_directory(Path(out), fill, overwrite, PresetError)


ONNX_DIR_NAME = "onnx"
BACKENDS = ("keras", "onnx")


def has_bundle(meta: Mapping[str, Any], precision: str = "fp32") -> bool:
    """Whether a preset (its verified metadata) carries an ONNX bundle of ``precision``."""
    return isinstance(meta.get("onnx"), Mapping) and isinstance(meta["onnx"].get(precision),
                                                                Mapping)


def open_runtime(directory: str | os.PathLike, meta: Mapping[str, Any],
                 precision: str = "fp32", **runtime_options: Any) -> Any:
    """The onnxruntime model of a verified preset's bundle (TF-free): the runtime class of its
    task type, with the same user call as the Keras model, and ``preset_metadata``.
    ``runtime_options`` go to ``rnnzoo.export.runtime.load`` (threads, providers)."""
    from rnnzoo.export import runtime

    if precision not in ("fp32", "int8"):
        raise PresetError(f"precision: expected 'fp32' or 'int8', found {precision!r}")
    if not has_bundle(meta, precision):
        why = ""
        if precision == "int8" and has_bundle(meta):
            why = f" ({meta['onnx'].get('int8_rejected', 'not built')}); use precision='fp32'"
        elif not has_bundle(meta):
            why = (f"; add one with: rnnzoo preset-bundle {meta['name']} --out DIR (needs the "
                   "train extra), or load it with Keras")
        raise PresetError(f"{meta['name']}: this preset carries no {precision} ONNX bundle{why}")
    # The preset was verified file by file (bundles included) before this point.
    runtime_options.setdefault("verify", False)
    model = runtime.load(Path(directory) / meta["onnx"][precision]["path"], **runtime_options)
    model.preset_metadata = dict(meta)
    return model


def task_on_bundle(directory: str | os.PathLike, meta: Mapping[str, Any],
                   precision: str = "fp32") -> Any:
    """The task object of a verified preset (config, preprocessor, data readers, evaluation,
    reports) with its graphs run by the preset's ONNX bundle instead of Keras: what
    ``rnnzoo evaluate`` uses without the train extra. A code path that needs the Keras model
    itself stops with the train-extra error."""
    from rnnzoo.registry import read_config, task_from_config

    directory = Path(directory)
    config = read_config(directory)
    cls = task_from_config(config).__class__
    task = cls(config, preprocessor=cls.load_preprocessor(config, directory / ASSETS_DIR))
    task.graph_runner = open_runtime(directory, meta, precision)
    task.preset_metadata = dict(meta)
    return task


def choose_backend(backend: str | None, meta: Mapping[str, Any], needs_keras: bool) -> str:
    """``"keras"`` or ``"onnx"`` for a preset: ``None`` is Keras when the train extra is
    installed (a trainable model), else the preset's ONNX bundle."""
    from rnnzoo.extras import has_training, require_training

    if backend is not None and backend not in BACKENDS:
        raise PresetError(f"backend: expected 'keras', 'onnx' or None (Keras if installed, else "
                          f"ONNX), found {backend!r}")
    if backend is None:
        backend = "keras" if needs_keras or has_training() or not has_bundle(meta) else "onnx"
    if backend == "onnx" and needs_keras:
        raise PresetError(f"{meta['name']}: overrides (a new head) need the Keras model: use "
                          "backend='keras' (train extra)")
    if backend == "keras":
        require_training(f"loading preset {meta['name']} with Keras"
                         + ("" if not has_bundle(meta) else " (or use backend='onnx')"))
    return backend


def measure(model: Any, data: str | os.PathLike, split: str, limit: int | None = None
            ) -> dict[str, float]:
    """The task's metrics on ``split`` of ``data`` (first ``limit`` examples), as recorded:
    the numbers ``rnnzoo evaluate`` prints for the same model."""
    loaded = model.load_data(data, seed=model.config.training.seed)
    return report_metrics(evaluate_reports(model, loaded, split, {"limit": limit}))


def save_measured_preset(task: Any, directory: str | os.PathLike, metadata: Mapping[str, Any],
                         data: str | os.PathLike, split: str, storage: str = "float16",
                         overwrite: bool = False, check_limit: int | None = None,
                         onnx: bool = True, int8: bool = True) -> Path:
    """Save ``task`` as a preset whose metrics are measured on exactly what ships: the weights
    are stored (float16 rounding included), loaded back and evaluated on ``split`` of
    ``data``. ``check_limit`` also records the metrics on the first N examples of the split,
    the fixed subset the test suite re-measures when the full split is too slow for CI.
    ``onnx`` builds the validated bundles (int8 compared on ``data``)."""
    import tempfile

    import rnnzoo

    with tempfile.TemporaryDirectory(prefix=".rnnzoo-measure-") as work:
        probe = Path(work) / "preset"
        save_preset(task, probe, {**metadata, "split": split, "metrics": {"pending": 0.0}},
                    storage)
        shipped = rnnzoo.load(probe)
        meta = {**metadata, "metrics": measure(shipped, data, split), "split": split}
        if check_limit:
            meta["check"] = {"limit": int(check_limit),
                             "metrics": measure(shipped, data, split, check_limit)}
        return save_preset(shipped, directory, meta, storage, overwrite, onnx=onnx,
                           eval_data=data, int8=int8)


def finetune(source: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
             tag: str = "finetuned", freeze_backbone: bool = False,
             run_dir: str | os.PathLike | None = None, data_license: str = "unknown",
             storage: str = "float16", command: str = "", overwrite: bool = False,
             onnx: bool = True, **overrides: Any) -> Path:
    """Fine-tune a preset on ``data`` with the shared loop and write the result as a new preset
    at ``out`` (the run directory goes to ``run_dir``, default ``<out>-run``). A dataset whose
    labels differ from the preset's gets a new head (``Task.head_overrides``);
    ``freeze_backbone`` trains only the head. Metrics are measured on the dev split."""
    import time

    from rnnzoo.training import train

    start = time.time()
    directory, meta = _resolve(source)
    import rnnzoo

    task = rnnzoo.load(directory)
    dataset = task.load_data(data, seed=task.config.training.seed)
    head = task.head_overrides(dataset)
    if head or freeze_backbone:
        task = task.with_new_head(freeze_backbone=freeze_backbone, **head)
    out = Path(out)
    run_dir = Path(run_dir) if run_dir is not None else out.with_name(out.name + "-run")
    result = train(task, data, out=run_dir, overwrite=overwrite, **overrides)
    if not dataset.num_dev:
        raise PresetError(f"{data}: no dev split to measure the fine-tuned model on")
    name = f"{task.name}.{tag}"
    return save_measured_preset(result.task, out, {
        "name": name,
        "description": f"{meta['description']} Fine-tuned from {meta['name']} on {data}.",
        "dataset": dataset.description,
        "metrics_command": f"rnnzoo evaluate {out} --data {data} --split dev",
        "training_command": command or f"rnnzoo finetune {meta['name']} --data {data} "
                                       f"--out {out}",
        "training_wall_time_s": round(time.time() - start, 1),
        "data_license": data_license,
        "notes": f"fine-tuned from {meta['name']}"
                 + (" with the backbone frozen" if freeze_backbone else ""),
    }, data, "dev", storage=storage, overwrite=overwrite, onnx=onnx)


# -- model card --------------------------------------------------------------------------------


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


_CLI_BY_TASK = {
    "text-classification": 'rnnzoo predict {name} "a quietly moving film"',
    "translation": 'rnnzoo translate {name} "¿Dónde está la estación?"',
    "music-generation": "rnnzoo generate {name} --out piece.mid",
}


def render_model_card(meta: Mapping[str, Any], directory: Path | None = None) -> str:
    """The README.md of a preset: everything in its metadata, readable, with how to load it.

    ``directory`` (the preset being written) gives the sizes on disk."""
    name = meta["name"]
    lines = [f"# {name}", "", meta["description"].strip(), ""]
    rows = [
        ("entry", f"`{meta['entry']}` (family `{meta['family']}`, task `{meta['task']}`)"),
        ("parameters", f"{meta['num_params']:,}"),
    ]
    if directory is not None:
        weights = (directory / WEIGHTS_FILE).stat().st_size
        total = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
        rows.append(("size on disk", f"{_size(weights)} weights ({meta['storage']}), "
                                     f"{_size(total)} with config, assets and metadata"))
    else:
        rows.append(("storage", meta["storage"]))
    rows += [
        ("dataset", f"{meta['dataset']} (split: {meta['split']})"),
        ("data licence", meta["data_license"]),
        ("saved", meta["date"]),
        ("versions", ", ".join(f"{k} {v}" for k, v in meta["versions"].items())),
    ]
    lines += ["| | |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in rows), ""]

    published = dict(meta.get("published") or {})
    column = any(key in published for key in meta["metrics"])  # anchors named like a metric
    lines += ["## Metrics", "", f"Measured on {meta['dataset']} ({meta['split']} split) with:", "",
              "```", meta["metrics_command"], "```", ""]
    header = "| metric | value | published |" if column else "| metric | value |"
    lines += [header, "|---|---|---|" if column else "|---|---|"]
    for key, value in meta["metrics"].items():
        row = f"| {_cell(key)} | {_num(value)} |"
        if column:
            row += f" {_num(published.pop(key))} |" if key in published else " |"
        lines.append(row)
    if published:
        lines += ["", "Other published anchors:" if column else "Published anchors:", ""]
        lines += [f"- {anchor}: {_num(value)}" for anchor, value in published.items()]
    lines += ["", "## Training", "", "```", meta["training_command"], "```", "",
              f"Wall time: {_duration(meta['training_wall_time_s'])} "
              f"({meta['training_wall_time_s']:.0f} s).", ""]
    lines += ["## Trade-offs", "", meta["tradeoffs"].strip() or "None.", ""]
    if meta.get("notes"):
        lines += ["## Notes", "", meta["notes"].strip(), ""]
    lines += _onnx_card(meta)
    cli = _CLI_BY_TASK.get(meta["task"], "rnnzoo info {name}").format(name=name)
    lines += [
        "## Usage", "", "```python", "import rnnzoo", "",
        f'task = rnnzoo.from_preset("{name}")', "```", "", "```sh", cli, "```", "",
        "## Integrity", "",
        f"`{CHECKSUMS_FILE}` lists the sha256 of every file; rnnzoo verifies all of them (and "
        "refuses unlisted files) before loading anything.", "",
    ]
    return "\n".join(lines)


def _onnx_card(meta: Mapping[str, Any]) -> list[str]:
    """The model card's ONNX section: which bundles ship and what was checked."""
    info = meta.get("onnx")
    if not isinstance(info, Mapping):
        return []
    lines = ["## ONNX bundles (no TensorFlow needed)", "",
             f"Built and validated from the stored weights when the preset was made "
             f"(onnxruntime {info.get('onnxruntime', '?')}, opset {info.get('opset', '?')}); "
             "used by the CLI's inference commands and by "
             f"`rnnzoo.from_preset(\"{meta['name']}\", backend=\"onnx\")`.", ""]
    for precision in ("fp32", "int8"):
        entry = info.get(precision)
        if not isinstance(entry, Mapping):
            continue
        lines.append(f"- `{entry['path']}` ({_size(int(entry.get('bytes', 0)))})")
        for graph, g in (entry.get("graphs") or {}).items():
            diffs = ", ".join(f"{k} {v:.1e}" for k, v in g.get("max_abs_diff_vs_keras",
                                                                 {}).items())
            lines.append(f"  - {graph}: fused {g.get('recurrent_ops')}, loops "
                         f"{g.get('loop_ops')}, max abs diff vs Keras: {diffs}")
        if entry.get("keras_parity"):
            lines.append(f"  - {entry['keras_parity']}")
        if isinstance(entry.get("comparison"), Mapping):
            lines.append(f"  - vs fp32: {entry['comparison'].get('summary', '')}")
    if info.get("int8_rejected"):
        lines.append(f"- int8 not shipped: {info['int8_rejected']}")
    return lines + [""]


# -- verification ------------------------------------------------------------------------------


def _safe_relative(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return bool(parts) and not rel.startswith("/") and "\\" not in rel and ".." not in parts


def verify_preset(directory: str | os.PathLike) -> dict:
    """Verify a preset directory before anything in it is deserialised and return its metadata.

    ``checksums.json`` must exist and list every other file, each with a matching sha256; no
    symlinks or special files; metadata valid; config and metadata name the same entry.
    """
    directory = Path(directory)
    meta_path = directory / METADATA_FILE
    if not meta_path.is_file():
        raise PresetError(f"{directory}: no {METADATA_FILE}, so not a preset (a run directory "
                          "loads with rnnzoo.load; make a preset with rnnzoo.presets.save_preset)")
    raw_meta = read_json(meta_path, PresetError, "")
    if isinstance(raw_meta, Mapping) and "format" in raw_meta:
        _check_format(raw_meta["format"], str(meta_path))  # newer format: say "upgrade" first
    sums_path = directory / CHECKSUMS_FILE
    if not sums_path.is_file() or sums_path.is_symlink():
        raise PresetError(f"{directory}: no {CHECKSUMS_FILE}; a preset without checksums is "
                          "refused (re-download it, or re-create it with save_preset)")
    sums = read_json(sums_path, PresetError, "")
    if not isinstance(sums, Mapping):
        raise PresetError(f"{sums_path}: expected a JSON object of file -> sha256")
    for rel, digest in sums.items():
        if not _safe_relative(rel) or rel == CHECKSUMS_FILE:
            raise PresetError(f"{sums_path}: refused entry {rel!r} (not a file inside the preset)")
        if not isinstance(digest, str) or not SHA256_RE.match(digest):
            raise PresetError(f"{sums_path}: entry {rel!r}: expected a sha256 hex digest, "
                              f"found {digest!r}")
    def unreadable(exc: OSError) -> None:
        raise PresetError(f"{exc.filename}: cannot list it ({exc.strerror}); check permissions")

    for root, dirs, files in os.walk(directory, onerror=unreadable):
        for item in [*dirs, *files]:
            path = Path(root, item)
            rel = path.relative_to(directory).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise PresetError(f"{path}: symbolic links are refused in a preset; replace it "
                                  "with the file itself and re-create the checksums")
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise PresetError(f"{path}: not a regular file; remove it")
            if stat.S_ISREG(mode) and rel != CHECKSUMS_FILE and rel not in sums:
                raise PresetError(f"{path}: file not listed in {CHECKSUMS_FILE}; a preset holds "
                                  "only listed files: remove it (or re-create the preset)")
    for rel in (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE):
        if rel not in sums:
            raise PresetError(f"{sums_path}: {rel} is not listed; the preset is incomplete "
                              "(re-download it, or re-create it with save_preset)")
    verify_files(directory, dict(sums), CHECKSUMS_FILE, PresetError,
                 "re-download the preset (or delete this copy and fetch it again)")
    meta = validate_metadata(raw_meta, str(meta_path))
    config = read_json(directory / CONFIG_FILE, PresetError, "")
    entry = config.get("name") if isinstance(config, Mapping) else None
    if entry != meta["entry"]:
        raise PresetError(f"{meta_path}: field 'entry' is {meta['entry']!r} but {CONFIG_FILE} "
                          f"holds {entry!r}; the preset was assembled from different models")
    return meta


# -- archives ----------------------------------------------------------------------------------


def _member_path(name: str, label: str) -> PurePosixPath | None:
    """The safe relative path of an archive member, None for the archive root ('./')."""
    if (not name or name.startswith("/") or "\\" in name or "\x00" in name
            or re.match(r"^[A-Za-z]:", name)):
        raise PresetError(f"{label}: refused archive member {name!r}: absolute or non-portable "
                          "path; a preset archive holds only relative paths")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if ".." in parts:
        raise PresetError(f"{label}: refused archive member {name!r}: '..' would write outside "
                          "the preset; the archive is malformed or hostile")
    return PurePosixPath(*parts) if parts else None


def _write_member(dest: Path, rel: PurePosixPath, read: Callable[[], Any], label: str) -> None:
    target = dest.joinpath(*rel.parts)
    if not target.resolve().is_relative_to(dest.resolve()):  # cannot happen after the checks
        raise PresetError(f"{label}: refused archive member {rel.as_posix()!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with read() as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _extract_tar(archive: Path, dest: Path, label: str) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        plan = []
        for m in members:
            rel = _member_path(m.name, label)
            if not (m.isfile() or m.isdir()):
                kind = ("a symbolic link" if m.issym() else "a hard link" if m.islnk()
                        else "a device or special file")
                raise PresetError(f"{label}: refused archive member {m.name!r}: it is {kind}; "
                                  "a preset archive holds only regular files and folders")
            plan.append((m, rel))
        for m, rel in plan:
            if rel is None:
                continue
            if m.isdir():
                dest.joinpath(*rel.parts).mkdir(parents=True, exist_ok=True)
            else:
                _write_member(dest, rel, lambda m=m: tar.extractfile(m), label)


def _extract_zip(archive: Path, dest: Path, label: str) -> None:
    with zipfile.ZipFile(archive) as zf:
        plan = []
        for info in zf.infolist():
            rel = _member_path(info.filename, label)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                what = "a symbolic link" if kind == stat.S_IFLNK else "a special file"
                raise PresetError(f"{label}: refused archive member {info.filename!r}: it is "
                                  f"{what}; a preset archive holds only regular files and folders")
            plan.append((info, rel))
        for info, rel in plan:
            if rel is None:
                continue
            if info.is_dir():
                dest.joinpath(*rel.parts).mkdir(parents=True, exist_ok=True)
            else:
                _write_member(dest, rel, lambda info=info: zf.open(info), label)


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike,
                    label: str | None = None) -> None:
    """Unpack a ``.tar.gz``/``.tgz``/``.tar``/``.zip`` into the existing folder ``dest``, member
    by member: absolute paths, '..', links and devices are refused before anything is written.
    The type is read from the content, so a server's HTML error page is reported as such."""
    archive, dest = Path(archive), Path(dest)
    label = label or str(archive)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, dest, label)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, dest, label)
        else:
            raise PresetError(f"{label}: not a preset archive (expected a .tar.gz, .tgz or .zip "
                              "file); check the path or URL")
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise PresetError(f"{label}: corrupt archive ({exc}); re-download it") from None
    except PresetError:
        raise
    except OSError as exc:
        raise PresetError(f"{label}: cannot unpack ({exc.strerror or exc}); the archive is "
                          "malformed or the disk is full") from None


# -- the cache ---------------------------------------------------------------------------------


def rnnzoo_home() -> Path:
    """``$RNNZOO_HOME``, default ``~/.cache/rnnzoo``."""
    return Path(os.environ.get("RNNZOO_HOME") or "~/.cache/rnnzoo").expanduser()


def preset_cache_dir() -> Path:
    """Where downloaded and unpacked presets live: ``$RNNZOO_HOME/presets``."""
    return rnnzoo_home() / "presets"


def _shipped_dir() -> Path | None:
    root = importlib.resources.files("rnnzoo") / "pretrained"
    if not isinstance(root, os.PathLike) or not root.is_dir():
        return None
    return Path(os.fspath(root))


def _dir_mode() -> int:
    """``0o777 & ~umask``: ``mkdtemp`` makes private folders, a shared cache must not be."""
    try:
        from rnnzoo.io import current_umask
    except ImportError:
        mask = os.umask(0o022)
        os.umask(mask)
    else:
        mask = current_umask()
    return 0o777 & ~mask


def _read_index(cache: Path) -> dict:
    try:
        index = json.loads((cache / _SOURCES_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def _cached_by_digest(cache: Path, digest: str) -> tuple[Path, dict] | None:
    """The cached preset unpacked from the archive with this sha256, if it is intact."""
    hit = _read_index(cache).get(digest)
    if not isinstance(hit, dict) or not NAME_RE.match(str(hit.get("name", ""))):
        return None
    path = cache / hit["name"]
    sums = path / CHECKSUMS_FILE
    if not sums.is_file() or sha256_file(sums) != hit.get("checksums"):
        return None  # replaced by another archive of the same name since
    try:
        return path, verify_preset(path)
    except PresetError:
        return None  # damaged: unpack the archive again


def _install_archive(archive: Path, label: str, expected_sha256: str | None,
                     digest: str | None = None) -> tuple[Path, dict]:
    """Check an archive's sha256, unpack it into a temporary folder of the cache, verify it,
    then rename it to ``<cache>/<name>``; on any failure nothing is left in the cache."""
    digest = digest or sha256_file(archive)
    if expected_sha256 is not None and digest != expected_sha256:
        raise PresetError(f"{label}: sha256 mismatch (expected {expected_sha256[:12]}..., found "
                          f"{digest[:12]}...); the download is corrupt or the archive changed: "
                          "check the URL and the hash")
    cache = preset_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    hit = _cached_by_digest(cache, digest)
    if hit is not None:
        return hit
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache))
    try:
        extract_archive(archive, tmp, label)
        top = tmp
        if not (tmp / METADATA_FILE).exists():
            entries = list(tmp.iterdir())
            if len(entries) == 1 and (entries[0] / METADATA_FILE).is_file():
                top = entries[0]
            else:
                raise PresetError(f"{label}: not a preset archive (no {METADATA_FILE} at its top "
                                  "level or in a single top folder)")
        try:
            meta = verify_preset(top)
        except PresetError as exc:
            raise PresetError(str(exc).replace(str(tmp), label)) from None
        os.chmod(top, _dir_mode())
        final = cache / meta["name"]
        old = cache / f".old-{meta['name']}-{uuid.uuid4().hex}"
        if final.exists():  # an older copy: set it aside, and put it back if the rename fails
            os.replace(final, old)
        try:
            os.replace(top, final)
        except BaseException:
            if old.exists():
                os.replace(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    index = _read_index(cache)
    index[digest] = {"name": meta["name"], "checksums": sha256_file(final / CHECKSUMS_FILE)}
    atomic_write_text(cache / _SOURCES_INDEX, json.dumps(index, indent=2, sort_keys=True))
    return final, meta


# -- downloads ---------------------------------------------------------------------------------


def _offline() -> bool:
    return os.environ.get("RNNZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _split_sha_fragment(url: str) -> tuple[str, str | None]:
    base, fragment = urllib.parse.urldefrag(url)
    if not fragment:
        return base, None
    key, _, value = fragment.partition("=")
    if key != "sha256":
        raise PresetError(f"{url}: unknown URL fragment #{fragment}; the only one understood is "
                          "#sha256=<64 hex digits>")
    return base, _normalise_sha(value, url)


def _normalise_sha(value: str, where: str) -> str:
    value = value.strip().lower()
    if not SHA256_RE.match(value):
        raise PresetError(f"{where}: expected sha256 {value!r} is not 64 hex digits")
    return value


class _Progress:
    """A one-line percentage on stderr (only when it is a terminal, unless forced)."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label, self.total, self.enabled, self.last = label, total, enabled, -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if self.total:
            pct = min(100, done * 100 // self.total)
            if pct != self.last:
                self.last = pct
                print(f"\rdownloading {self.label}: {pct:3d}% of {_size(self.total)}", end="",
                      file=sys.stderr, flush=True)
        else:
            print(f"\rdownloading {self.label}: {_size(done)}", end="", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)


def _download(url: str, dest: Path, progress: bool | None) -> None:
    """Stream ``url`` into ``dest``; every failure is a one-line PresetError."""
    from rnnzoo import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"rnnzoo/{__version__}"})
    shown = url.rsplit("/", 1)[-1] or url
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = _Progress(shown, total, sys.stderr.isatty() if progress is None else progress)
            done = 0
            with open(dest, "wb") as out:
                while block := resp.read(1 << 20):
                    out.write(block)
                    done += len(block)
                    bar.update(done)
            bar.close()
    except urllib.error.HTTPError as exc:
        raise PresetError(f"{url}: download failed: HTTP {exc.code} {exc.reason}; check the "
                          "URL") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise PresetError(f"{url}: download failed: {reason}; check the URL and the network "
                          "(or download the archive yourself and pass its path)") from None
    if total is not None and done != total:
        raise PresetError(f"{url}: download truncated ({done} of {total} bytes); try again")


def _from_url(url: str, expected_sha256: str | None, progress: bool | None) -> tuple[Path, dict]:
    base, fragment_sha = _split_sha_fragment(url)
    if fragment_sha and expected_sha256 and fragment_sha != expected_sha256:
        raise PresetError(f"{url}: the #sha256 fragment and expected_sha256 disagree; keep one")
    expected = expected_sha256 or fragment_sha
    cache = preset_cache_dir()
    if expected is not None and cache.is_dir():
        hit = _cached_by_digest(cache, expected)
        if hit is not None:
            return hit
    scheme = urllib.parse.urlsplit(base).scheme.lower()
    if scheme != "file" and _offline():
        raise PresetError(f"{base}: RNNZOO_OFFLINE=1 forbids downloads; unset RNNZOO_OFFLINE, or "
                          "download the archive yourself and pass its local path")
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=cache)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _download(base, tmp, progress)
        return _install_archive(tmp, base, expected)
    finally:
        tmp.unlink(missing_ok=True)


# -- resolving ---------------------------------------------------------------------------------


def _natural_key(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _preset_dirs(root: Path | None) -> dict[str, Path]:
    if root is None or not root.is_dir():
        return {}
    return {p.name: p for p in root.iterdir()
            if NAME_RE.match(p.name) and p.is_dir() and (p / METADATA_FILE).is_file()}


def list_presets(pattern: str = "*") -> list[str]:
    """Names of the shipped and cached presets matching a glob, naturally sorted (no file is
    hashed: a listed preset is verified when it is loaded)."""
    names = set(_preset_dirs(_shipped_dir())) | set(_preset_dirs(preset_cache_dir()))
    return sorted((n for n in names if fnmatch.fnmatchcase(n, pattern)), key=_natural_key)


def _known_names() -> list[str]:
    names = list_presets()
    try:
        from rnnzoo.registry import list_models

        names += list_models(pretrained=True)
    except (ImportError, RunDirError, ValueError, KeyError):  # suggestions are best effort
        pass
    return sorted(set(names))


def _looks_like_path(text: str) -> bool:
    return ("/" in text or os.sep in text or text.startswith(("~", "."))
            or text.endswith(ARCHIVE_SUFFIXES))


def _resolve(source: str | os.PathLike, expected_sha256: str | None = None,
             progress: bool | None = None) -> tuple[Path, dict]:
    expected = _normalise_sha(expected_sha256, "expected_sha256") if expected_sha256 else None
    text = os.fspath(source)
    if not isinstance(source, os.PathLike) and "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in URL_SCHEMES:
            raise PresetError(f"{text}: unsupported URL scheme {scheme!r}; use "
                              f"{', '.join(s + '://' for s in URL_SCHEMES)} or a local path")
        return _from_url(text, expected, progress)
    path = Path(text).expanduser()
    if path.exists():
        if path.is_dir():
            if expected is not None:
                raise PresetError(f"{path}: expected_sha256 applies to archives, not directories "
                                  "(a directory is checked against its checksums.json)")
            path = path.resolve()
            return path, verify_preset(path)
        return _install_archive(path.resolve(), str(path), expected)
    if _looks_like_path(text):
        raise PresetError(f"{text}: no such file or directory (expected a preset directory, a "
                          ".tar.gz/.tgz/.zip archive, a URL or a preset name)")
    if expected is not None:
        raise PresetError(f"{text}: expected_sha256 applies to archives and URLs, not names")
    if NAME_RE.match(text):
        for root in (_shipped_dir(), preset_cache_dir()):
            if root is not None and (root / text).is_dir():
                return root / text, verify_preset(root / text)
    known = _known_names()
    hint = suggest(text, known)
    declared = " It is declared by its zoo entry but not installed here: download it with " \
        "rnnzoo.from_preset(URL)." if text in known else ""
    here = list_presets()
    shown = ", ".join(here[:10]) + (", ..." if len(here) > 10 else "") if here else "none"
    raise UnknownModelError(f"unknown preset {text!r}.{declared}{hint} Available here: {shown} "
                            "(see rnnzoo.presets.list_presets()); or pass a path or URL.")


def resolve_preset(source: str | os.PathLike, *, expected_sha256: str | None = None,
                   progress: bool | None = None) -> Path:
    """The verified local directory of a preset given by path, archive, URL or name.

    Archives and URLs (``url#sha256=<hex>`` or ``expected_sha256=`` pins the archive) are
    unpacked into ``$RNNZOO_HOME/presets/<name>``; names are looked up in the shipped presets,
    then the cache. ``progress`` shows download progress (default: when stderr is a terminal).
    """
    return _resolve(source, expected_sha256, progress)[0]


def preset_info(source: str | os.PathLike) -> dict:
    """The (verified) metadata of a preset, without loading the model."""
    return _resolve(source)[1]


def from_preset(source: str | os.PathLike, /, *, expected_sha256: str | None = None,
                backend: str | None = None, precision: str = "fp32", **overrides: Any) -> Any:
    """Load a preset (name, directory, archive or URL) after verifying every file.

    ``backend="keras"``: the Keras task (trainable; train extra). ``backend="onnx"``: the
    preset's validated ONNX bundle through onnxruntime (``precision`` ``"fp32"`` or
    ``"int8"``), a runtime object with the same user call and no TensorFlow. ``None`` (the
    default) is Keras when the train extra is installed, else ONNX. Either carries
    ``preset_metadata``. Overrides (e.g. a new number of classes) go to the task's
    ``with_new_head`` hook, for fine-tuning (Keras only); tasks without it accept none.
    """
    import rnnzoo

    directory, meta = _resolve(source, expected_sha256)
    if choose_backend(backend, meta, needs_keras=bool(overrides)) == "onnx":
        return open_runtime(directory, meta, precision)
    if precision != "fp32":
        raise PresetError(f"precision={precision!r} applies to backend='onnx' (the Keras model "
                          "runs in float32)")
    task = rnnzoo.load(directory)
    if overrides:
        hook = getattr(task, "with_new_head", None)
        if not callable(hook):
            raise PresetError(
                f"{meta['name']}: cannot apply {', '.join(sorted(overrides))}: "
                f"{type(task).__name__} supports no overrides on a preset (it has no "
                "with_new_head); load it without overrides, or fine-tune with "
                f"rnnzoo.train(..., init_from='{directory}')")
        new = hook(**overrides)
        task = task if new is None else new
    task.preset_metadata = meta
    return task
