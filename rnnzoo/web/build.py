"""Build the static site of ``rnnzoo web PRESET... --out DIR`` (TF-free: files are copied and
checked, nothing is run).

Layout of the site::

    index.html            pick a model and run it; ?model=NAME&input=TEXT runs once on load
    app.mjs, style.css    the page
    rnnzoo.mjs            the ES module with each task's pre/post-processing (embed it)
    models.json           the models: name, task, precision, path, bundle digest, example
    models/<name>/        each preset's ONNX bundle, verified, as exported (SHA256SUMS kept)
    ort/                  onnxruntime-web's wasm build (from npm, copied at build time)
    lib/Midi.js           @tonejs/midi (from npm), with a music model: the page writes MIDI

onnxruntime-web and @tonejs/midi come from npm at build time (``npm ci`` in ``rnnzoo/web/js``):
about 15 MB of wasm that the wheel does not carry; a build without them fails saying how to
install them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnzoo.errors import ConfigError

HERE = Path(__file__).resolve().parent
JS_DIR = HERE / "js"  # package.json pinning onnxruntime-web; node_modules after `npm ci`
STATIC_DIR = HERE / "static"
STATIC_FILES = ("index.html", "app.mjs", "style.css", "rnnzoo.mjs")
# The wasm build: the ES module, its loader and the SIMD+threads binary (also run on 1 thread).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
# @tonejs/midi's browser build (UMD: sets globalThis.Midi) and its licence, copied to lib/.
MIDI_FILES = {"build/Midi.js": "Midi.js", "LICENSE.md": "Midi.LICENSE.md"}
SITE_FORMAT = "rnnzoo.web_site.v1"
SITE_MANIFEST = "models.json"

#: What the page and rnnzoo.mjs run, with the input a person sees first.
SUPPORTED_TASKS: dict[str, str] = {
    "text-classification": "a gorgeous , witty , seductive movie .",
    "text-generation": "ROMEO:",
    "token-classification": "John Smith flew from London to Paris to meet Airbus executives .",
    "translation": "¿Dónde está la estación de tren?",
    "forecasting": "",  # a window of the model's look-back: _example writes one
    "music-generation": "[[60, 64, 67], [62, 65, 69]]",  # a primer: pitches per step
    "speech-recognition": "",  # the page reads a WAV file the person chooses
}


class WebBuildError(ConfigError):
    """The site cannot be built as asked (missing onnxruntime-web, an unsupported preset, an
    output folder that is not a site)."""


def find_onnxruntime_web(package_dir: str | os.PathLike | None = None) -> Path:
    """onnxruntime-web's ``dist`` folder: under ``package_dir`` (an installed
    ``onnxruntime-web`` package folder) or ``$RNNZOO_ONNXRUNTIME_WEB``, else the one
    ``npm ci`` installs in ``rnnzoo/web/js``. ``WebBuildError`` saying how to install it."""
    given = package_dir or os.environ.get("RNNZOO_ONNXRUNTIME_WEB")
    root = Path(given) if given else JS_DIR / "node_modules" / "onnxruntime-web"
    dist = root / "dist"
    missing = [f for f in ORT_FILES if not (dist / f).is_file()]
    if missing:
        if given:
            raise WebBuildError(f"{root} is not an onnxruntime-web package folder ({dist} lacks "
                                f"{', '.join(missing)}); name the folder npm installed it in, "
                                "e.g. node_modules/onnxruntime-web")
        raise WebBuildError(f"onnxruntime-web is not installed ({dist} lacks "
                            f"{', '.join(missing)}): the site bundles it from npm; install it "
                            f"with: cd {JS_DIR} && npm ci")
    return dist


def find_tonejs_midi() -> Path:
    """@tonejs/midi's package folder, as ``npm ci`` installs it in ``rnnzoo/web/js``;
    ``WebBuildError`` saying how to install it."""
    root = JS_DIR / "node_modules" / "@tonejs" / "midi"
    missing = [f for f in MIDI_FILES if not (root / f).is_file()]
    if missing:
        raise WebBuildError(f"@tonejs/midi is not installed ({root} lacks {', '.join(missing)}):"
                            f" the site bundles it from npm; install it with: cd {JS_DIR} && "
                            "npm ci")
    return root


def _ort_version(dist: Path) -> str:
    try:
        return str(json.loads((dist.parent / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def _example(task: str, path: Path, manifest: dict) -> str:
    """The input the page shows first; a forecaster's is a daily cycle around its training
    mean over its look-back, as ``rnnzoo serve``'s demo has (JSON rows)."""
    if task != "forecasting":
        return SUPPORTED_TASKS[task]
    pre = json.loads((path / manifest["preprocessing"]["preprocessor"]).read_text("utf-8"))
    rows = [[round(m + s * math.sin(2 * math.pi * t / 24.0), 3)
             for m, s in zip(pre["mean"], pre["std"])] for t in range(pre["lookback"])]
    return json.dumps(rows if len(pre["columns"]) > 1 else [r[0] for r in rows])


def _choose_bundle(name: str, precision: str) -> dict[str, Any]:
    """The verified bundle of preset ``name``: its directory, task, precision and digest."""
    from rnnzoo.export.bundle import bundle_digest, read_manifest
    from rnnzoo.presets import preset_info, resolve_preset

    directory = resolve_preset(name)  # every file checked against checksums.json
    meta = preset_info(directory)
    task = meta.get("task")
    if task not in SUPPORTED_TASKS:
        raise WebBuildError(f"{name}: task {task!r} has no web runtime yet (supported: "
                            f"{', '.join(SUPPORTED_TASKS)})")
    bundles = meta.get("onnx") or {}
    if precision == "auto":
        precision = "int8" if "int8" in bundles else "fp32"
    if precision not in bundles:
        raise WebBuildError(f"{name}: no {precision} ONNX bundle in this preset (it has: "
                            f"{', '.join(k for k in ('fp32', 'int8') if k in bundles) or 'none'}"
                            "); use --precision auto")
    path = directory / bundles[precision]["path"]
    digest = bundle_digest(path)  # every bundle file against SHA256SUMS
    manifest = read_manifest(path, verify=False)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {"name": meta.get("name", name), "task": task, "precision": precision,
            "description": meta.get("description", ""), "digest": digest, "bytes": size,
            "source": path, "entry": manifest.get("entry"),
            "example": _example(task, path, manifest)}


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise WebBuildError(f"--out {out}: a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / SITE_MANIFEST).is_file():
            raise WebBuildError(f"--out {out}: a folder that is not empty and not an rnnzoo "
                                "site; choose a new folder")
        if not overwrite:
            raise WebBuildError(f"--out {out}: a site is already there; add --overwrite to "
                                "replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def build_site(presets: Sequence[str], out: str | os.PathLike, *, precision: str = "auto",
               overwrite: bool = False,
               onnxruntime_web: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write the static site for ``presets`` (names, directories, archives or URLs) to
    ``out``; returns what ``models.json`` holds. ``precision``: ``"auto"`` (int8 where the
    preset ships it, else fp32), ``"fp32"`` or ``"int8"``. Everything is checked before the
    output folder is touched."""
    if precision not in ("auto", "fp32", "int8"):
        raise WebBuildError(f"precision {precision!r}: expected auto, fp32 or int8")
    if not presets:
        raise WebBuildError("no presets given; e.g. rnnzoo web sentiment_bilstm.sst2 --out site")
    dist = find_onnxruntime_web(onnxruntime_web)
    chosen = [_choose_bundle(str(p), precision) for p in presets]
    # The page writes MIDI only for music models: the library is needed only with one.
    midi = find_tonejs_midi() if any(c["task"] == "music-generation" for c in chosen) else None
    names = [c["name"] for c in chosen]
    if len(set(names)) != len(names):
        raise WebBuildError(f"a preset is named twice: {', '.join(names)}")
    out = Path(out)
    _prepare_out(out, overwrite)
    for name in STATIC_FILES:
        shutil.copyfile(STATIC_DIR / name, out / name)
    (out / "ort").mkdir()
    for name in ORT_FILES:
        shutil.copyfile(dist / name, out / "ort" / name)
    if midi is not None:
        (out / "lib").mkdir()
        for name, target in MIDI_FILES.items():
            shutil.copyfile(midi / name, out / "lib" / target)
    models = []
    for c in chosen:
        shutil.copytree(c["source"], out / "models" / c["name"])
        models.append({"name": c["name"], "task": c["task"], "precision": c["precision"],
                       "path": f"models/{c['name']}/", "digest": c["digest"],
                       "bytes": c["bytes"], "description": c["description"],
                       "example": c["example"]})
    site = {"format": SITE_FORMAT, "onnxruntime_web": _ort_version(dist), "models": models}
    (out / SITE_MANIFEST).write_text(json.dumps(site, indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    return site
