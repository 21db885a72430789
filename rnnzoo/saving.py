"""The saved-model directory format shared by run directories and presets (TF-free).

A saved model (run directory or preset) is a directory:

    config.json          the resolved entry config (name, family, model, data, training)
    model.weights.h5     the weights (weights only: loading never deserialises code)
    assets/              tokenizer JSON, label names, ... (family-specific)
    checksums.json       sha256 of every file above, verified on load
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rnnzoo.errors import RunDirError
from rnnzoo.io import (
    atomic_write_text,
    read_json,
    sha256_file,
    verify_files,
)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
CHECKSUMS_FILE = "checksums.json"
ASSETS_DIR = "assets"


def write_checksums(directory: Path, only: tuple[str, ...] | None = None) -> dict[str, str]:
    """sha256 of the artifact files in ``directory`` (all, or those under ``only``), written
    atomically as ``checksums.json``."""
    sums = {}
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if not path.is_file() or rel == CHECKSUMS_FILE or path.name.startswith("."):
            continue
        if only is None or any(rel == o or rel.startswith(f"{o}/") for o in only):
            sums[rel] = sha256_file(path)
    atomic_write_text(directory / CHECKSUMS_FILE, json.dumps(sums, indent=2, sort_keys=True))
    return sums


def verify_checksums(directory: Path, required: tuple[str, ...] = ()) -> None:
    """Raise ``RunDirError`` if a listed file is missing or its sha256 differs."""
    path = directory / CHECKSUMS_FILE
    if not path.is_file():
        return
    sums = read_json(path, RunDirError, "")
    for rel in required:
        if rel not in sums:
            raise RunDirError(f"{path}: no checksum for {rel}; the directory was modified")
    verify_files(directory, sums, CHECKSUMS_FILE, RunDirError, "re-download or re-train it")


def atomic_save_weights(model: Any, path: str | os.PathLike) -> None:
    """Keras writes HDF5 in place; write to a temporary name and rename instead."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
