"""Opening what ``rnnzoo serve`` is given: bundles, presets with their ONNX bundle, and presets
without one (exported once, in a child process)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rnnzoo.errors import ConfigError
from rnnzoo.serving.config import ServeConfig
from rnnzoo.serving.models import ServedModel

# -- loading -----------------------------------------------------------------------------------


def split_pin(spec: str, source: str) -> tuple[str, str | None]:
    """``(source, digest)`` of ``SOURCE#sha256=DIGEST``: the whole-bundle digest the bundle must
    have (``rnnzoo export`` prints it; presets record it), or None without a pin."""
    base, sep, fragment = source.rpartition("#")
    if not sep or not fragment.lower().startswith(("sha256=", "sha256:")):
        return source, None
    from rnnzoo.export.integrity import normalise_digest

    return base, normalise_digest(fragment, where=f"serve {spec}: #sha256=DIGEST")


def load_model(spec: str, config: ServeConfig) -> tuple[str, Any, str]:
    """``(name, runtime, source)`` for ``[NAME=]PRESET_OR_BUNDLE[#sha256=DIGEST]``: a directory
    holding ``bundle.json`` is opened as a bundle (named by its entry), anything else as a
    preset (name, directory, archive or URL; its own validated ONNX bundle, named as the
    preset). With ``#sha256=DIGEST`` the bundle must have that whole-bundle digest (its
    manifest included): a bundle edited or replaced together with its file hashes is refused
    (``BundleDigestError``)."""
    head, sep, tail = spec.partition("=")
    if sep and re.fullmatch(r"[A-Za-z0-9_.-]+", head) and not Path(spec).exists():
        name, source = head, tail
    else:
        name, source = "", spec
    source, digest = split_pin(spec, source)
    pin = {"expected_digest": digest} if digest is not None else {}
    from rnnzoo.export import runtime as rt
    from rnnzoo.export.bundle import BUNDLE_FILE

    path = Path(source).expanduser()
    if path.is_dir() and (path / BUNDLE_FILE).is_file():
        model = rt.load(path, intra_op_threads=config.intra_op_threads, **pin)
        return name or model.entry, model, str(path)
    from rnnzoo.presets import _resolve, has_bundle, open_runtime, preset_info

    meta = preset_info(source)
    opened = source if has_bundle(meta) else str(bundled_preset(source, meta))
    directory, verified = _resolve(opened)  # every file's sha256 checked
    model = open_runtime(directory, verified, config.precision,
                         intra_op_threads=config.intra_op_threads, **pin)
    return name or str(meta.get("name") or source), model, source


def bundled_preset(source: str, meta: Mapping[str, Any]) -> Path:
    """A copy of a preset that carries no ONNX bundle, with its bundle exported and validated
    (``rnnzoo preset-bundle --no-int8``), cached under ``$RNNZOO_HOME/serve/`` by the preset's
    checksums: exported on first use, reused afterwards. The export runs in a child process
    (it needs the train extra), so the server itself never imports TensorFlow."""
    import hashlib
    import subprocess
    import sys

    from rnnzoo.extras import TRAIN_EXTRA, has_training
    from rnnzoo.presets import CHECKSUMS_FILE, PresetError, resolve_preset, rnnzoo_home

    directory = resolve_preset(source)
    digest = hashlib.sha256((directory / CHECKSUMS_FILE).read_bytes()).hexdigest()[:16]
    cached = rnnzoo_home() / "serve" / f"{meta.get('name', directory.name)}-{digest}"
    if (cached / CHECKSUMS_FILE).is_file():
        return cached
    if not has_training():
        raise PresetError(f"{source}: this preset carries no ONNX bundle; rnnzoo serve exports "
                          f"one on first use with the train extra ({TRAIN_EXTRA}), or add it "
                          f"elsewhere: rnnzoo preset-bundle {source} --out DIR")
    print(f"{source}: no ONNX bundle in the preset; exporting one to {cached} (once)",
          flush=True)
    cached.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "rnnzoo.cli", "preset-bundle", str(directory),
                           "--out", str(cached), "--no-int8"], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise PresetError(f"{source}: exporting its ONNX bundle failed: {last}")
    return cached


def load_models(specs: Sequence[str], config: ServeConfig) -> dict[str, ServedModel]:
    """Every model, by unique name (names are URL path segments)."""
    if not specs:
        raise ConfigError("serve: give at least one preset or bundle, e.g. rnnzoo serve "
                          "sentiment_bilstm.sst2")
    models: dict[str, ServedModel] = {}
    for spec in specs:
        name, runtime, source = load_model(spec, config)
        if not name or "/" in name or ":" in name or name.strip() != name:
            raise ConfigError(f"serve: {spec}: model name {name!r} cannot be a URL segment "
                              "(no '/', ':' or surrounding spaces); name it NAME=SOURCE")
        if name in models:
            raise ConfigError(f"serve: two models are named {name!r}; name one NAME=SOURCE")
        models[name] = ServedModel(name, runtime, source, config)
    return models
