"""Preset metadata: the file layout, the ``metadata.json`` schema and its validation, and the
verification of a preset directory against its ``checksums.json`` (TF-free)."""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from rnnzoo.config import suggest
from rnnzoo.errors import RunDirError
from rnnzoo.io import read_json, verify_files

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

# ``<entry>.<tag>``: also the cache folder name, so nothing that could climb out of it.
NAME_RE = re.compile(r"^[A-Za-z0-9_]+\.[A-Za-z0-9_-]+$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_FORMAT_RE = re.compile(r"^rnnzoo\.preset\.v(\d+)$")


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
            digest = entry.get("digest") if entry is not None else None
            if digest is not None and (not isinstance(digest, str)
                                       or not SHA256_RE.match(digest)):
                return f"{precision}.digest: expected the bundle digest (64 hex digits)"
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


def _write_checksums(directory: Path) -> None:
    """Write the ``checksums.json`` of a preset being assembled (``rnnzoo.saving``)."""
    from rnnzoo.saving import write_checksums

    write_checksums(directory)


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
