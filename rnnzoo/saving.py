"""The saved-model directory format shared by run directories and presets (TF-free).

A saved model (run directory or preset) is a directory:

    config.json          the resolved entry config (name, family, model, data, training)
    model.weights.h5     the weights (weights only: loading never deserialises code)
    assets/              tokenizer JSON, label names, ... (family-specific)
    checksums.json       sha256 of every file above, verified on load

``checksums.json`` cannot be switched off by deleting it: ``verify_checksums`` refuses a directory
without one, a file of the integrity scope (config, weights, assets) that it does not list, and a
listed file that is missing or differs; only an explicit ``verify=False`` skips it. Checkpoints
have their own ``checkpoints/checksums.json``, updated with every checkpoint written.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rnnzoo.errors import RunDirError
from rnnzoo.io import (
    atomic_write_many,
    atomic_write_text,
    read_json,
    sha256_file,
    storage_errors,
    unlisted_files,
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


# What a loader opens by its name: each such file must be listed in checksums.json.
INTEGRITY_SCOPE = (CONFIG_FILE, WEIGHTS_FILE, f"{ASSETS_DIR}/*")
# Hidden temporary files of an interrupted atomic write: never opened, so never refused.
_TEMPORARY = (".*.tmp", "*/.*.tmp", "*/.tmp-*", ".tmp-*")
NO_VERIFY_HINT = ("pass verify=False (rnnzoo.load) or --no-verify (the CLI) to use it "
                  "unverified")


def verify_checksums(directory: Path, required: tuple[str, ...] = (),
                     scope: tuple[str, ...] = INTEGRITY_SCOPE) -> dict[str, str]:
    """Check ``directory`` against its ``checksums.json``; return the listing.

    Raises ``RunDirError`` when the file is missing (deleting it must not switch the check off),
    when it does not list one of ``required`` or a file present in ``scope`` (``fnmatch``
    patterns), or when a listed file is missing, unsafe (``..``, a symbolic link) or differs."""
    directory = Path(directory)
    path = directory / CHECKSUMS_FILE
    if not path.is_file():
        raise RunDirError(f"{directory}: no {CHECKSUMS_FILE}, so its files cannot be verified "
                          f"(a run that has not finished, or a copy missing a file); "
                          f"{NO_VERIFY_HINT}")
    sums = read_json(path, RunDirError, "")
    if not isinstance(sums, dict):
        raise RunDirError(f"{path}: must map file names to sha256, found {type(sums).__name__}")
    for rel in required:
        if rel not in sums:
            raise RunDirError(f"{path}: no checksum for {rel}; the directory was modified "
                              f"(re-download or re-train it, or {NO_VERIFY_HINT})")
    verify_files(directory, sums, CHECKSUMS_FILE, RunDirError, "re-download or re-train it")
    scoped = [rel for rel in unlisted_files(directory, sums, ignore=_TEMPORARY)
              if any(fnmatch.fnmatchcase(rel, pattern) for pattern in scope)]
    if scoped:
        raise RunDirError(f"{directory}: {scoped[0]} is not listed in {CHECKSUMS_FILE}, so it "
                          "cannot be verified; remove it, or re-train / re-download the model")
    return sums


# -- checkpoints ------------------------------------------------------------------------------
CHECKPOINTS_DIR = "checkpoints"


def record_checkpoint(directory: Path, *files: Path,
                      digests: Mapping[Path, str] | None = None) -> None:
    """Add the sha256 of checkpoint ``files`` to ``directory/checksums.json`` (replaced
    atomically), so that ``--weights RUN/checkpoints/best.weights.h5`` is verified like the
    final weights. ``digests`` gives them for files not in place yet (the listing is written
    before the new files are renamed into place, see ``_checkpoint_callback``); otherwise the
    files are read."""
    directory = Path(directory)
    listing = directory / CHECKSUMS_FILE
    sums: dict[str, str] = {}
    if listing.is_file():
        with contextlib.suppress(RunDirError):
            found = read_json(listing, RunDirError, "")
            if isinstance(found, dict):
                sums = {k: v for k, v in found.items() if (directory / k).is_file()}
    for file in files:
        sums[Path(file).relative_to(directory).as_posix()] = sha256_file(file)
    for file, digest in (digests or {}).items():
        sums[Path(file).relative_to(directory).as_posix()] = digest
    atomic_write_text(listing, json.dumps(sums, indent=2, sort_keys=True))


def verify_weights_file(directory: Path, weights: Path) -> None:
    """Raise ``RunDirError`` unless ``weights`` (a file other than the run's final weights) is
    listed, with a matching sha256, in the checksums of the folder it is in: the run's
    ``checksums.json`` or ``checkpoints/checksums.json``."""
    directory = Path(directory)
    weights = Path(weights)
    try:
        rel = weights.resolve().relative_to(directory.resolve())
    except (ValueError, OSError):
        raise RunDirError(f"{weights}: not inside {directory}, so it cannot be verified; "
                          f"{NO_VERIFY_HINT}") from None
    for base in (directory / rel.parent, directory):
        listing = base / CHECKSUMS_FILE
        if not listing.is_file():
            continue
        sums = read_json(listing, RunDirError, "")
        key = (directory / rel).relative_to(base).as_posix()
        if isinstance(sums, dict) and key in sums:
            verify_files(base, {key: sums[key]}, CHECKSUMS_FILE, RunDirError,
                         "use another checkpoint, or re-train")
            return
    raise RunDirError(f"{weights}: no checksum lists this weights file (checkpoints are listed "
                      f"in {directory / CHECKPOINTS_DIR / CHECKSUMS_FILE}); {NO_VERIFY_HINT}")


class _WeightsBuffer(io.BytesIO):
    """Where Keras writes ``.weights.h5`` in memory (its HDF5 store takes an ``io.BytesIO``);
    ``str()`` is the destination's name, which Keras checks ends in ``.weights.h5`` and which a
    storage error names."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    def __str__(self) -> str:
        return self._name


def weights_bytes(model: Any, path: str | os.PathLike) -> bytes:
    """The ``.weights.h5`` file of ``model`` as bytes, built in memory, to be written to
    ``path`` (named in errors). HDF5 never writes to the disk here: when a full disk fails
    HDF5 half-way through a file, h5py leaves objects that fail again as they are freed
    (a screen of tracebacks, then a segmentation fault); plain file writes of finished bytes
    fail cleanly instead."""
    buffer = _WeightsBuffer(str(path))
    try:
        with storage_errors(path):
            model.save_weights(buffer)
        return buffer.getvalue()
    except (TypeError, ValueError):  # a Keras that takes only paths: via a temporary file
        pass
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        with storage_errors(path):
            model.save_weights(tmp)
            return tmp.read_bytes()
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_save_weights(model: Any, path: str | os.PathLike,
                        before_replace: Callable[[], None] | None = None) -> str:
    """Write ``model``'s weights to ``path`` atomically (built in memory by ``weights_bytes``,
    then a temporary file renamed into place); returns their sha256. A full disk or a
    permission problem is a ``StorageError`` naming ``path``; the previous file stays.
    ``before_replace`` runs once the new file is on disk, before it replaces the old one."""
    path = Path(path)
    data = weights_bytes(model, path)
    atomic_write_many({path: data}, before_replace)
    return hashlib.sha256(data).hexdigest()
