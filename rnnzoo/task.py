"""The base class of a zoo model: a Keras model plus its preprocessor, config and artifacts.

A saved model (run directory or preset) is a directory:

    config.json          the resolved entry config (name, family, model, data, training)
    model.weights.h5     the weights (weights only: loading never deserialises code)
    assets/              tokenizer JSON, label names, ... (family-specific)
    checksums.json       sha256 of every file above, verified on load
"""

from __future__ import annotations

import abc
import json
import os
from pathlib import Path
from typing import Any

from rnnzoo.config import EntryConfig, entry_from_dict
from rnnzoo.errors import RunDirError
from rnnzoo.io import (
    atomic_directory,
    atomic_write_text,
    read_json,
    sha256_file,
    verify_files,
)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
CHECKSUMS_FILE = "checksums.json"
ASSETS_DIR = "assets"


def random_tokens(rng: Any, batch: int, time: int, vocab: int) -> Any:
    """Random post-padded int32 token ids [batch, time]: row 0 full length, last row length 1."""
    import numpy as np

    lengths = rng.integers(1, time + 1, size=batch)
    lengths[0], lengths[-1] = time, 1
    x = rng.integers(2, vocab, size=(batch, time)).astype(np.int32)
    x[np.arange(time)[None, :] >= lengths[:, None]] = 0
    return x


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


class Task(abc.ABC):
    """A zoo model: ``.model`` (Keras, built on first use), ``.preprocessor``, ``.config``."""

    def __init__(self, config: EntryConfig, preprocessor: Any = None) -> None:
        self.config = config
        self.preprocessor = preprocessor if preprocessor is not None else self.new_preprocessor()
        self._model = None

    # -- family hooks ------------------------------------------------------------------------
    @abc.abstractmethod
    def new_preprocessor(self) -> Any:
        """A fresh (unfitted) preprocessor for this config."""

    @abc.abstractmethod
    def build_model(self) -> Any:
        """Build the Keras model from ``self.config`` (under the caller's strategy scope)."""

    @abc.abstractmethod
    def save_assets(self, directory: Path) -> None:
        """Write the preprocessor's files (tokenizer JSON, labels) into ``directory``."""

    @classmethod
    @abc.abstractmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> Any:
        """Read what ``save_assets`` wrote."""

    @abc.abstractmethod
    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[Any, Any]:
        """Random ``(inputs, targets)`` for ``self.model`` (post-padded, with a full-length and a
        length-1 row): the registry-generated tests train and round-trip every entry on it."""

    # -- shared behaviour --------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self.build_model()
        return self._model

    @property
    def is_built(self) -> bool:
        return self._model is not None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} family={self.config.family!r}>"

    def write_artifacts(self, directory: Path, weights: bool = True) -> None:
        """Write config, assets (and weights) into an existing directory, file by file."""
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            directory / CONFIG_FILE, json.dumps(self.config.to_dict(), indent=2) + "\n"
        )
        self.save_assets(directory / ASSETS_DIR)
        if weights:
            atomic_save_weights(self.model, directory / WEIGHTS_FILE)

    def save(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Save config, weights and assets to a new directory (written whole, then renamed)."""
        def fill(tmp: Path) -> None:
            self.write_artifacts(tmp)
            write_checksums(tmp)

        return atomic_directory(Path(directory), fill, overwrite, RunDirError)


def read_config(directory: Path) -> EntryConfig:
    path = directory / CONFIG_FILE
    raw = read_json(path, RunDirError, "expected a run directory from `rnnzoo train` or a "
                    "saved model/preset directory")
    return entry_from_dict(raw, str(path))


def load(
    directory: str | os.PathLike, weights: str | os.PathLike | None = None, name: str | None = None
) -> Task:
    """Load a saved model (run directory or preset): config, assets, then weights.

    ``weights`` picks another weights file (e.g. ``checkpoints/last.weights.h5``); checksums are
    verified for every file the directory lists. ``name``, when given, must match the entry.
    """
    from rnnzoo.families import family_spec

    directory = Path(directory)
    if not directory.is_dir():
        raise RunDirError(f"not a directory: {directory}")
    config = read_config(directory)
    if name is not None and name.split(".", 1)[0] != config.name:
        raise RunDirError(
            f"{directory} holds a {config.name!r} model, not {name!r}; "
            f"use `{config.name}` or another directory"
        )
    verify_checksums(directory)
    weights_path = Path(weights) if weights is not None else directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise RunDirError(
            f"weights file not found: {weights_path} (training may not have finished; "
            f"try {directory / 'checkpoints' / 'last.weights.h5'})"
        )
    module = family_spec(config.family).module
    preprocessor = module.Task.load_preprocessor(config, directory / ASSETS_DIR)
    task = module.Task(config, preprocessor=preprocessor)
    try:
        task.model.load_weights(weights_path)
    except (ValueError, OSError) as exc:
        raise RunDirError(
            f"{weights_path}: cannot load weights into {config.name!r}: {exc}"
        ) from None
    return task
