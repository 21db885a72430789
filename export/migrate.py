"""Bring bundles and presets made before ``stream`` and ``SHA256SUMS`` up to date, without
re-exporting a graph (TF-free)::

    python -m rnnzoo.export.migrate PATH [PATH ...]     # bundle or preset directories
    python -m rnnzoo.export.migrate --shipped           # every preset in this checkout
    python -m rnnzoo.export.migrate PRESET --bundles-from REBUILT   # adopt re-exported bundles

For each bundle (a preset's ``onnx/fp32`` and ``onnx/int8``): verify it, add the ``stream``
description (derived from the graphs' inputs and outputs, plus the task type's facts from
``Task._stream_manifest``, built from the bundle's own config and assets: no weights, no
TensorFlow), then rewrite ``bundle.json`` and write ``SHA256SUMS``. For a preset, also record
each bundle's digest in ``metadata.json`` (``onnx.<precision>.digest``), regenerate its model
card (``README.md``, ``rnnzoo.presets.render_model_card``), recompute ``checksums.json`` and
verify the result. Graphs, weights, assets and every other metadata field are left as they
are; running it twice changes nothing.

``--bundles-from REBUILT`` replaces a preset's bundles with those of ``REBUILT``, a copy of the
same preset whose bundles were exported again from its stored weights (``rnnzoo preset-bundle
PRESET --out REBUILT --data DATA``, train extra), e.g. to ship a graph the exporter did not
write when the preset was made. Both are verified first; the config, weights, assets and every
metadata field but ``onnx`` must be identical (so the weights never change); then ``onnx/`` and
``metadata.onnx`` are taken from ``REBUILT`` and the preset is migrated as above.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnzoo.export.bundle import BUNDLE_FILE, read_manifest, write_manifest
from rnnzoo.export.streamspec import describe_stream

REPO = Path(__file__).resolve().parent.parent


def _task_for(manifest: dict, bundle: Path) -> Any:
    """The bundle's task object (config and preprocessor from the bundle; no model built), or
    None when its task type adds no stream facts. Reached through the task-type and registry
    APIs (``rnnzoo.apps.task_class``, ``rnnzoo.registry.task_from_config``), as the rest of the
    shared code is: only ``rnnzoo.families`` names a family."""
    from rnnzoo.apps import task_class
    from rnnzoo.registry import entry_from_dict, task_from_config

    config = entry_from_dict(manifest["config"], str(bundle / BUNDLE_FILE))
    base = task_class(config.task)
    task = task_from_config(config, base.load_preprocessor(config, bundle / "assets"))
    return task if callable(getattr(task, "_stream_manifest", None)) else None


def migrate_bundle(bundle: str | os.PathLike) -> str:
    """Add ``stream`` and ``SHA256SUMS`` to one verified bundle; return its digest."""
    from rnnzoo.export.exporter import stream_hints

    bundle = Path(bundle)
    manifest = read_manifest(bundle, verify=True)
    task = _task_for(manifest, bundle)
    manifest["stream"] = describe_stream(manifest["graphs"],
                                         stream_hints(task) if task is not None else {})
    digest = write_manifest(bundle, manifest)
    read_manifest(bundle, verify=True, expected_digest=digest)
    return digest


def migrate_preset(preset: str | os.PathLike) -> dict[str, str]:
    """Migrate every bundle of one verified preset, record their digests in its metadata,
    regenerate its model card and rewrite its checksums; return ``{precision: digest}``."""
    from rnnzoo.presets import METADATA_FILE, verify_preset

    preset = Path(preset)
    verify_preset(preset)
    return _finish(preset, json.loads((preset / METADATA_FILE).read_text(encoding="utf-8")))


def _finish(preset: Path, raw: dict) -> dict[str, str]:
    """Migrate the bundles ``raw["onnx"]`` lists, then write ``raw`` (digests recorded), the
    card and the checksums (each only when it changes), and verify the preset."""
    from rnnzoo.io import atomic_write_text
    from rnnzoo.presets import METADATA_FILE, README_FILE, render_model_card, verify_preset
    from rnnzoo.saving import write_checksums

    digests = {}
    for precision, entry in (raw.get("onnx") or {}).items():
        if isinstance(entry, dict) and "path" in entry:
            digests[precision] = migrate_bundle(preset / entry["path"])
            entry["digest"] = digests[precision]
    changed = _write_if_changed(preset / METADATA_FILE, json.dumps(raw, indent=2) + "\n",
                                atomic_write_text)
    card = render_model_card(raw, preset)  # sizes on disk: after the metadata is written
    changed = _write_if_changed(preset / README_FILE, card, atomic_write_text) or changed
    if changed or digests:
        write_checksums(preset)
    verify_preset(preset)
    return digests


def _write_if_changed(path: Path, text: str, write: Any) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write(path, text)
    return True


def adopt_bundles(preset: str | os.PathLike, rebuilt: str | os.PathLike) -> dict[str, str]:
    """Give ``preset`` the bundles of ``rebuilt`` (the same preset with its bundles exported
    again from its stored weights) and migrate it; return ``{precision: digest}``. Refused
    (``PresetError``, nothing changed) unless both verify and everything but ``onnx/``, the
    metadata's ``onnx`` entry, the card and the checksums is identical."""
    import shutil

    from rnnzoo.presets import (
        CHECKSUMS_FILE,
        METADATA_FILE,
        ONNX_DIR_NAME,
        README_FILE,
        PresetError,
        verify_preset,
    )

    preset, rebuilt = Path(preset), Path(rebuilt)
    verify_preset(preset)
    verify_preset(rebuilt)
    onnx_dir = ONNX_DIR_NAME
    rewritten = (CHECKSUMS_FILE, METADATA_FILE, README_FILE)  # what _finish writes again

    def listing(directory: Path) -> dict[str, str]:
        sums = json.loads((directory / CHECKSUMS_FILE).read_text(encoding="utf-8"))
        return {rel: sha for rel, sha in sums.items()
                if rel not in rewritten and not rel.startswith(f"{onnx_dir}/")}

    def metadata(directory: Path) -> dict:
        return json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))

    ours, theirs = listing(preset), listing(rebuilt)
    if ours != theirs:
        differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        raise PresetError(f"{rebuilt}: not a re-export of {preset}: {', '.join(differ)} differ "
                          f"(only {onnx_dir}/ may; make it with rnnzoo preset-bundle {preset} "
                          f"--out {rebuilt})")
    raw, new = metadata(preset), metadata(rebuilt)
    differ = sorted(k for k in raw.keys() | new.keys()
                    if k != onnx_dir and raw.get(k) != new.get(k))
    if differ:
        raise PresetError(f"{rebuilt}: metadata fields {', '.join(differ)} differ from "
                          f"{preset}'s (only '{onnx_dir}' may)")
    if not isinstance(new.get(onnx_dir), dict):
        raise PresetError(f"{rebuilt}: carries no ONNX bundles to adopt")
    incoming, retired = preset / f".{onnx_dir}.adopt", preset / f".{onnx_dir}.retired"
    for leftover in (incoming, retired):
        if leftover.exists():
            shutil.rmtree(leftover)
    shutil.copytree(rebuilt / onnx_dir, incoming)
    if (preset / onnx_dir).exists():
        os.replace(preset / onnx_dir, retired)
    os.replace(incoming, preset / onnx_dir)
    if retired.exists():
        shutil.rmtree(retired)
    raw[onnx_dir] = new[onnx_dir]
    return _finish(preset, raw)


def shipped_presets(repo: Path = REPO) -> list[Path]:
    """Every preset directory of this checkout: ``rnnzoo/pretrained/*`` and the preset
    distributions under ``presets/*/``."""
    found = [p.parent for p in sorted((repo / "rnnzoo" / "pretrained").glob("*/metadata.json"))]
    found += [p.parent for p in sorted((repo / "presets").glob("*/*/*/metadata.json"))]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnzoo.export.migrate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="bundle or preset directories")
    parser.add_argument("--shipped", action="store_true",
                        help="every preset of this checkout (rnnzoo/pretrained, presets/*)")
    parser.add_argument("--bundles-from", metavar="REBUILT",
                        help="a copy of the one PRESET given whose bundles were exported again "
                             "(rnnzoo preset-bundle PRESET --out REBUILT): take its onnx/")
    args = parser.parse_args(argv)
    if args.bundles_from is not None and (args.shipped or len(args.paths) != 1):
        parser.error("--bundles-from: give exactly one preset directory")
    shipped = shipped_presets() if args.shipped else []
    if args.shipped and not shipped:
        parser.error(f"--shipped: no presets under {REPO} (it works in a source checkout)")
    paths = [Path(p) for p in args.paths] + shipped
    if not paths:
        parser.error("give bundle or preset directories, or --shipped")
    from rnnzoo.errors import RnnzooError

    try:
        if args.bundles_from is not None:
            for precision, digest in adopt_bundles(paths[0], args.bundles_from).items():
                print(f"{paths[0]} [{precision}]: sha256={digest}")
            return 0
        for path in paths:
            if (path / BUNDLE_FILE).is_file():
                print(f"{path}: sha256={migrate_bundle(path)}")
            else:
                for precision, digest in migrate_preset(path).items():
                    print(f"{path} [{precision}]: sha256={digest}")
    except RnnzooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
