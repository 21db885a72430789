"""Pretrained presets: weights shipped with verified metadata (TF-free until a model is loaded).

A preset is a directory::

    config.json          the entry config (what ``task.write_artifacts`` writes)
    model.weights.h5     the weights (float16 or float32; optimizer state is not kept)
    assets/              tokenizer JSON, labels, ...
    metadata.json        what was measured, on which data, with which command (schema: ``metadata``)
    README.md            the model card, generated from metadata.json
    checksums.json       sha256 of every other file

A preset comes from a local directory or archive, the presets installed with the package
(``rnnzoo/pretrained/<entry>.<tag>/``, one small preset) or with a per-application preset
distribution (``rnnzoo-presets-<application>``, entry-point group ``rnnzoo.presets``), the
cache (``$RNNZOO_HOME/presets/<name>/``, default ``~/.cache/rnnzoo``) or a URL to an archive.
Whatever the source, every file is checked against ``checksums.json`` (and no unlisted file or
symlink is accepted) before anything is deserialised, and archives are unpacked member by
member into a temporary folder of the cache, never with ``extractall``: a hostile archive
cannot write outside it or leave half a preset behind.

The package splits by role: ``metadata`` (layout, schema, validation, verification), ``card``
(the model card), ``archives`` (unpacking, the cache, downloads), ``bundles`` (ONNX bundles and
backends), ``saving`` (save, measure, add bundles, fine-tune) and ``resolve`` (list, resolve,
load). Everything public is re-exported here.
"""

from __future__ import annotations

from rnnzoo.presets.archives import (
    DOWNLOAD_TIMEOUT_S,
    extract_archive,
    preset_cache_dir,
    rnnzoo_home,
)
from rnnzoo.presets.bundles import (
    BACKENDS,
    ONNX_DIR_NAME,
    choose_backend,
    has_bundle,
    open_runtime,
)
from rnnzoo.presets.card import render_model_card
from rnnzoo.presets.metadata import (
    ARCHIVE_SUFFIXES,
    ASSETS_DIR,
    CHECKSUMS_FILE,
    CONFIG_FILE,
    FORMAT_VERSION,
    METADATA_FILE,
    METADATA_SCHEMA,
    NAME_RE,
    PRESET_FORMAT,
    README_FILE,
    SHA256_RE,
    STORAGES,
    URL_SCHEMES,
    VERSION_KEYS,
    WEIGHTS_FILE,
    MetadataField,
    PresetError,
    _write_checksums,  # noqa: F401 (tests import it from here)
    validate_metadata,
    verify_preset,
)
from rnnzoo.presets.resolve import (
    ENTRY_POINT_GROUP,
    _resolve,  # noqa: F401 (rnnzoo.serving imports it from here)
    distribution_name,
    from_preset,
    installed_presets,
    list_presets,
    missing_presets,
    preset_info,
    preset_roots,
    resolve_preset,
)
from rnnzoo.presets.saving import (
    FinetuneResult,
    add_bundle,
    finetune,
    measure,
    rewrite_weights,
    save_measured_preset,
    save_preset,
)

__all__ = [
    "ARCHIVE_SUFFIXES", "ASSETS_DIR", "BACKENDS", "CHECKSUMS_FILE", "CONFIG_FILE",
    "DOWNLOAD_TIMEOUT_S", "FORMAT_VERSION", "METADATA_FILE", "METADATA_SCHEMA", "NAME_RE",
    "ONNX_DIR_NAME", "PRESET_FORMAT", "README_FILE", "SHA256_RE", "STORAGES", "URL_SCHEMES",
    "VERSION_KEYS", "WEIGHTS_FILE", "FinetuneResult", "MetadataField", "PresetError",
    "add_bundle", "choose_backend", "extract_archive", "finetune", "from_preset", "has_bundle",
    "list_presets", "measure",
    "open_runtime", "preset_cache_dir", "preset_info", "render_model_card", "resolve_preset",
    "rewrite_weights", "rnnzoo_home", "save_measured_preset", "save_preset",
    "validate_metadata", "verify_preset", "ENTRY_POINT_GROUP", "distribution_name",
    "installed_presets", "missing_presets", "preset_roots",
]
