"""Bring bundles and presets made before ``stream`` and ``SHA256SUMS`` up to date, without
re-exporting a graph (TF-free)::

    python -m rnnzoo.export.migrate PATH [PATH ...]     # bundle or preset directories
    python -m rnnzoo.export.migrate --shipped           # every preset in this checkout

For each bundle (a preset's ``onnx/fp32`` and ``onnx/int8``): verify it, add the ``stream``
description (derived from the graphs' inputs and outputs, plus the task type's facts from
``Task._stream_manifest``, built from the bundle's own config and assets: no weights, no
TensorFlow), then rewrite ``bundle.json`` and write ``SHA256SUMS``. For a preset, also record
each bundle's digest in ``metadata.json`` (``onnx.<precision>.digest``), recompute
``checksums.json`` and verify the result. Graphs, weights, assets and every other metadata
field are left as they are; running it twice changes nothing.
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
    """The bundle's task object (config and preprocessor from the bundle; no model built)."""
    from rnnzoo.families import family_spec
    from rnnzoo.registry import entry_from_dict

    config = entry_from_dict(manifest["config"], str(bundle / BUNDLE_FILE))
    cls = family_spec(config.family).task_class
    if not callable(getattr(cls, "_stream_manifest", None)):
        return None
    return cls(config, preprocessor=cls.load_preprocessor(config, bundle / "assets"))


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
    """Migrate every bundle of one verified preset, record their digests in its metadata and
    rewrite its checksums; return ``{precision: digest}``."""
    from rnnzoo.presets import METADATA_FILE, verify_preset
    from rnnzoo.saving import write_checksums

    preset = Path(preset)
    meta = verify_preset(preset)
    raw = json.loads((preset / METADATA_FILE).read_text(encoding="utf-8"))
    digests = {}
    for precision, entry in (meta.get("onnx") or {}).items():
        if isinstance(entry, dict) and "path" in entry:
            digests[precision] = migrate_bundle(preset / entry["path"])
            raw["onnx"][precision]["digest"] = digests[precision]
    if digests:
        from rnnzoo.io import atomic_write_text

        atomic_write_text(preset / METADATA_FILE, json.dumps(raw, indent=2) + "\n")
        write_checksums(preset)
    verify_preset(preset)
    return digests


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
    args = parser.parse_args(argv)
    shipped = shipped_presets() if args.shipped else []
    if args.shipped and not shipped:
        parser.error(f"--shipped: no presets under {REPO} (it works in a source checkout)")
    paths = [Path(p) for p in args.paths] + shipped
    if not paths:
        parser.error("give bundle or preset directories, or --shipped")
    from rnnzoo.errors import RnnzooError

    try:
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
