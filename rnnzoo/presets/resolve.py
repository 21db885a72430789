"""Finding presets: list the installed and cached ones, resolve a name, path, archive or URL to a
verified directory, and load it (``from_preset``).

Presets are installed in three kinds of place: the core package (``rnnzoo/pretrained/``, one
small preset), the per-application preset distributions (``rnnzoo-presets-<application>``,
built from ``presets/<application>/`` of the repository, each well under PyPI's 100 MB), found
through the ``rnnzoo.presets`` entry-point group, and the download cache. A distribution's
folder is located with ``importlib.util.find_spec``, which does not run its code.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import importlib.resources
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

from rnnzoo.config import suggest
from rnnzoo.errors import RunDirError, UnknownModelError
from rnnzoo.presets.archives import _from_url, _install_archive, _normalise_sha, preset_cache_dir
from rnnzoo.presets.bundles import choose_backend, open_runtime
from rnnzoo.presets.metadata import (
    ARCHIVE_SUFFIXES,
    METADATA_FILE,
    NAME_RE,
    URL_SCHEMES,
    PresetError,
    verify_preset,
)


def _shipped_dir() -> Path | None:
    root = importlib.resources.files("rnnzoo") / "pretrained"
    if not isinstance(root, os.PathLike) or not root.is_dir():
        return None
    return Path(os.fspath(root))


ENTRY_POINT_GROUP = "rnnzoo.presets"


def distribution_name(task: str) -> str:
    """The preset distribution of an application: ``rnnzoo-presets-translation``."""
    return f"rnnzoo-presets-{task}"


def _distribution_dirs() -> list[tuple[str, Path]]:
    """``(distribution, folder)`` of every installed preset distribution, by name."""
    found = []
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                     key=lambda e: e.name):
        try:
            spec = importlib.util.find_spec(ep.value)
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            dist = ep.dist.name if ep.dist is not None else ep.value
            found.append((dist, Path(location)))
    return found


def preset_roots() -> list[tuple[str, Path]]:
    """Where installed presets are looked up by name, in order: the core package's, each
    preset distribution's, then the cache (``$RNNZOO_HOME/presets``)."""
    shipped = _shipped_dir()
    roots = [("rnnzoo", shipped)] if shipped is not None else []
    return roots + _distribution_dirs() + [("cache", preset_cache_dir())]


def installed_presets() -> dict[str, tuple[str, Path]]:
    """Every installed preset: name -> ``(where it comes from, its directory)``; the first
    place of :func:`preset_roots` that holds a name wins."""
    out: dict[str, tuple[str, Path]] = {}
    for source, root in preset_roots():
        for name, path in _preset_dirs(root).items():
            out.setdefault(name, (source, path))
    return out


def missing_presets() -> dict[str, str]:
    """Presets declared by the zoo's entries but not installed here: name -> the
    distribution that provides it (``pip install rnnzoo-presets-translation``)."""
    from rnnzoo.registry import get_entry, list_models

    here = installed_presets()
    return {name: distribution_name(get_entry(name).task)
            for name in list_models(pretrained=True) if name not in here}


def _natural_key(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _preset_dirs(root: Path | None) -> dict[str, Path]:
    if root is None or not root.is_dir():
        return {}
    return {p.name: p for p in root.iterdir()
            if NAME_RE.match(p.name) and p.is_dir() and (p / METADATA_FILE).is_file()}


def list_presets(pattern: str = "*") -> list[str]:
    """Names of the installed (core package, preset distributions) and cached presets
    matching a glob, naturally sorted (no file is hashed: a listed preset is verified when it
    is loaded)."""
    names = set(installed_presets())
    return sorted((n for n in names if fnmatch.fnmatchcase(n, pattern)), key=_natural_key)


def _known_names() -> list[str]:
    names = list_presets()
    try:
        from rnnzoo.registry import list_models

        names += list_models(pretrained=True)
    except (ImportError, RunDirError, ValueError, KeyError):  # suggestions are best effort
        pass
    return sorted(set(names))


def _looks_like_path(text: str) -> bool:
    return ("/" in text or os.sep in text or text.startswith(("~", "."))
            or text.endswith(ARCHIVE_SUFFIXES))


def _resolve(source: str | os.PathLike, expected_sha256: str | None = None,
             progress: bool | None = None) -> tuple[Path, dict]:
    expected = _normalise_sha(expected_sha256, "expected_sha256") if expected_sha256 else None
    text = os.fspath(source)
    if not isinstance(source, os.PathLike) and "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in URL_SCHEMES:
            raise PresetError(f"{text}: unsupported URL scheme {scheme!r}; use "
                              f"{', '.join(s + '://' for s in URL_SCHEMES)} or a local path")
        return _from_url(text, expected, progress)
    path = Path(text).expanduser()
    # A bare name is a folder here only when that folder is a preset (it has metadata.json);
    # any other folder of that name (a run directory, say) does not hide the installed preset.
    folder_only = (not isinstance(source, os.PathLike) and not _looks_like_path(text)
                   and path.is_dir() and not (path / METADATA_FILE).is_file())
    if path.exists() and not folder_only:
        if path.is_dir():
            if expected is not None:
                raise PresetError(f"{path}: expected_sha256 applies to archives, not directories "
                                  "(a directory is checked against its checksums.json)")
            path = path.resolve()
            return path, verify_preset(path)
        return _install_archive(path.resolve(), str(path), expected)
    if _looks_like_path(text):
        raise PresetError(f"{text}: no such file or directory (expected a preset directory, a "
                          ".tar.gz/.tgz/.zip archive, a URL or a preset name)")
    if expected is not None:
        raise PresetError(f"{text}: expected_sha256 applies to archives and URLs, not names")
    if NAME_RE.match(text):
        found = installed_presets().get(text)
        if found is not None:
            return found[1], verify_preset(found[1])
    missing = missing_presets() if NAME_RE.match(text) else {}
    if text in missing:
        dist = missing[text]
        folder = dist.removeprefix("rnnzoo-presets-").replace("-", "_")
        raise UnknownModelError(
            f"preset {text!r} is not installed: it is provided by the {dist} distribution; "
            f"pip install {dist} (from a checkout of rnnzoo: pip install ./presets/{folder})")
    known = _known_names()
    hint = suggest(text, known)
    declared = " It is declared by its zoo entry but not installed here: download it with " \
        "rnnzoo.from_preset(URL)." if text in known else ""
    here = list_presets()
    shown = ", ".join(here[:10]) + (", ..." if len(here) > 10 else "") if here else "none"
    here_dir = (f" (./{text} is a folder, but not a preset: it has no {METADATA_FILE})"
                if folder_only else "")
    raise UnknownModelError(f"unknown preset {text!r}{here_dir}.{declared}{hint} Available "
                            f"here: {shown} (see rnnzoo.presets.list_presets()); or pass a path "
                            "or URL.")


def resolve_preset(source: str | os.PathLike, *, expected_sha256: str | None = None,
                   progress: bool | None = None) -> Path:
    """The verified local directory of a preset given by path, archive, URL or name.

    Archives and URLs (``url#sha256=<hex>`` or ``expected_sha256=`` pins the archive) are
    unpacked into ``$RNNZOO_HOME/presets/<name>``; names are looked up in the shipped presets,
    then the cache. ``progress`` shows download progress (default: when stderr is a terminal).
    """
    return _resolve(source, expected_sha256, progress)[0]


def preset_info(source: str | os.PathLike) -> dict:
    """The (verified) metadata of a preset, without loading the model."""
    return _resolve(source)[1]


def from_preset(source: str | os.PathLike, /, *, expected_sha256: str | None = None,
                backend: str | None = None, precision: str = "fp32", **overrides: Any) -> Any:
    """Load a preset (name, directory, archive or URL) after verifying every file.

    ``backend="keras"``: the Keras task (trainable; train extra). ``backend="onnx"``: the
    preset's validated ONNX bundle through onnxruntime (``precision`` ``"fp32"`` or
    ``"int8"``), a runtime object with the same user call and no TensorFlow. ``None`` (the
    default) is Keras when the train extra is installed, else ONNX. Either carries
    ``preset_metadata``. Overrides (``num_classes=3``, ``labels=["neg", "neu", "pos"]``,
    ``freeze_backbone=True``) go to the task's ``with_new_head``, for fine-tuning (Keras only):
    the copy predicts, its new outputs named by ``labels`` or ``class_0``, ``class_1``, ...
    until training on data gives them the data's names.
    """
    import rnnzoo

    directory, meta = _resolve(source, expected_sha256)
    if choose_backend(backend, meta, needs_keras=bool(overrides)) == "onnx":
        return open_runtime(directory, meta, precision)
    if precision != "fp32":
        raise PresetError(f"precision={precision!r} applies to backend='onnx' (the Keras model "
                          "runs in float32)")
    task = rnnzoo.load(directory)
    if overrides:
        hook = getattr(task, "with_new_head", None)
        if not callable(hook):
            raise PresetError(
                f"{meta['name']}: cannot apply {', '.join(sorted(overrides))}: "
                f"{type(task).__name__} supports no overrides on a preset (it has no "
                "with_new_head); load it without overrides, or fine-tune with "
                f"rnnzoo.train(..., init_from='{directory}')")
        new = hook(**overrides)
        task = task if new is None else new
    task.preset_metadata = meta
    return task
