"""A preset's ONNX bundles and backends: open the bundle with onnxruntime (TF-free), put a task on
it, and choose Keras or ONNX for a preset."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rnnzoo.presets.metadata import PresetError

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
    entry = meta["onnx"][precision]
    if entry.get("digest"):
        check_recorded_digest(Path(directory), entry["path"], entry["digest"])
    model = runtime.load(Path(directory) / entry["path"], **runtime_options)
    model.preset_metadata = dict(meta)
    return model


def preset_bundle_digest(directory: Path, rel: str) -> str:
    """The digest of the preset's bundle at ``rel`` from the preset's ``checksums.json`` (which
    lists every bundle file, ``bundle.json`` included): no file is read twice."""
    from rnnzoo.export.integrity import CHECKSUMS_FILE as BUNDLE_SUMS
    from rnnzoo.export.integrity import digest_of
    from rnnzoo.io import read_json
    from rnnzoo.presets.metadata import CHECKSUMS_FILE

    sums = read_json(directory / CHECKSUMS_FILE, PresetError, "re-download the preset")
    prefix = f"{rel}/"
    listed = {k[len(prefix):]: v for k, v in sums.items()
              if k.startswith(prefix) and k != prefix + BUNDLE_SUMS}
    return digest_of(listed)


def check_recorded_digest(directory: Path, rel: str, recorded: str) -> None:
    """Refuse a verified preset whose bundle is not the one ``metadata.json`` records (the
    digest a user pins comes from there, so it must be what loads)."""
    found = preset_bundle_digest(directory, rel)
    if found != recorded:
        raise PresetError(f"{directory}: metadata.json records bundle digest {recorded[:12]}... "
                          f"for {rel}, but its files give {found[:12]}...; the preset was "
                          "assembled from different bundles (re-create it, or re-download it)")


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
