"""The model registry, read from the YAML files in ``zoo_configs/``, and loading saved models.

Registration is data: every ``zoo_configs/<family>/<entry>.yaml`` is one entry, validated when the
registry is first used. Listing takes globs and sorts naturally (``x_2`` before ``x_10``). This
module sits above the families in the import order: it is where a config (from YAML or a saved
``config.json``) is resolved to its family's classes.
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import functools
import importlib.resources
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from rnnzoo.config import ENTRY_KEYS, EntryConfig, TrainingConfig, build_section, suggest
from rnnzoo.errors import ConfigError, DuplicateModelError, RunDirError, UnknownModelError
from rnnzoo.families import family_spec, known_families
from rnnzoo.io import read_json
from rnnzoo.saving import (
    ASSETS_DIR,
    CONFIG_FILE,
    WEIGHTS_FILE,
    verify_checksums,
    verify_weights_file,
)


def _natural_key(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _yaml_load(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}{line}: invalid YAML: {problem}") from None


def entry_from_dict(raw: Any, where: str) -> EntryConfig:
    """Validate a whole entry mapping (from YAML or a run's config.json)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping at top level, found {type(raw).__name__}")
    for key in raw:
        if key not in ENTRY_KEYS:
            raise ConfigError(
                f"{where}: unknown top-level key {key!r}.{suggest(str(key), ENTRY_KEYS)} "
                f"Valid keys: {', '.join(ENTRY_KEYS)}"
            )
    for key in ("name", "family"):
        if key not in raw:
            raise ConfigError(f"{where}: missing required key {key!r}")
        if not isinstance(raw[key], str) or not raw[key]:
            raise ConfigError(f"{where}.{key}: expected a non-empty string, found {raw[key]!r}")
    family = raw["family"]
    if family not in known_families():
        raise ConfigError(
            f"{where}.family: unknown family {family!r}.{suggest(family, known_families())} "
            f"Known families: {', '.join(known_families())}"
        )
    spec = family_spec(family)
    for key in ("task", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{where}.{key}: expected a string, found {raw[key]!r}")
    task = raw.get("task", spec.task)
    if task != spec.task:
        raise ConfigError(f"{where}.task: the {family!r} family is a {spec.task!r} family, "
                          f"found {task!r}")
    presets = raw.get("presets") or {}
    if not isinstance(presets, Mapping):
        raise ConfigError(f"{where}.presets: expected a mapping, found {presets!r}")
    return EntryConfig(
        name=raw["name"],
        family=family,
        task=task,
        description=raw.get("description", ""),
        model=build_section(spec.model_config, raw.get("model"), f"{where}: model"),
        data=build_section(spec.data_config, raw.get("data"), f"{where}: data"),
        training=build_section(TrainingConfig, raw.get("training"), f"{where}: training"),
        presets=dict(presets),
        source=where,
    )


def load_entry_file(path: Any, where: str | None = None) -> EntryConfig:
    """Read and validate one entry YAML file (a path or an importlib resource)."""
    where = where or str(path)
    raw = _yaml_load(path.read_text(encoding="utf-8"), where)
    entry = entry_from_dict(raw, where)
    stem = path.name.rsplit(".", 1)[0]
    if entry.name != stem:
        raise ConfigError(
            f"{where}.name: expected {stem!r} (the file name), found {entry.name!r}; "
            "rename the file or fix the name"
        )
    return entry


def _config_files() -> Iterable[tuple[Any, str, str | None]]:
    """``zoo_configs/<application>/<entry>.yaml``: the folder is the entry's task type (with
    underscores, as its ``rnnzoo/apps`` folder)."""
    root = importlib.resources.files("rnnzoo.zoo_configs")
    for app_dir in sorted(root.iterdir(), key=lambda p: p.name):
        if not app_dir.is_dir() or app_dir.name.startswith(("_", ".")):
            continue
        for path in sorted(app_dir.iterdir(), key=lambda p: p.name):
            if path.name.endswith((".yaml", ".yml")):
                yield path, f"zoo_configs/{app_dir.name}/{path.name}", app_dir.name


def build_registry(files: Iterable[tuple[Any, str, str | None]]) -> dict[str, EntryConfig]:
    """Validate entry files ``(path, display name, folder)`` into a name -> config mapping
    (the folder names the entry's task type); duplicate names raise."""
    entries: dict[str, EntryConfig] = {}
    for path, where, folder in files:
        entry = load_entry_file(path, where)
        if entry.name in entries:
            raise DuplicateModelError(
                f"duplicate model name {entry.name!r}: declared in {entries[entry.name].source} "
                f"and in {where}"
            )
        if folder is not None and entry.task.replace("-", "_") != folder:
            raise ConfigError(
                f"{where}: a {entry.task} entry (family {entry.family!r}) belongs in "
                f"zoo_configs/{entry.task.replace('-', '_')}/, not in {folder}/"
            )
        entries[entry.name] = entry
    return entries


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, EntryConfig]:
    return build_registry(_config_files())


def get_entry(name: str) -> EntryConfig:
    """The validated config of a registered entry; unknown names suggest close matches."""
    if not isinstance(name, str):
        raise UnknownModelError(f"model name: expected a string such as 'sentiment_gru', found "
                                f"{type(name).__name__}. See `rnnzoo list` for all models.")
    reg = _registry()
    base = name.split(".", 1)[0]
    if base not in reg:
        raise UnknownModelError(
            f"unknown model {name!r}.{suggest(base, reg)} See `rnnzoo list` for all models."
        )
    return reg[base]


def list_models(
    pattern: str | Iterable[str] = "*", task: str | None = None, pretrained: bool = False
) -> list[str]:
    """Names of registered entries matching glob(s), naturally sorted.

    With ``pretrained=True`` the result lists preset names (``<entry>.<tag>``) instead.
    """
    patterns = [pattern] if isinstance(pattern, str) else (
        list(pattern) if isinstance(pattern, (list, tuple, set, frozenset)) else [pattern])
    if not all(isinstance(p, str) for p in patterns):
        raise ConfigError(f"pattern: expected a glob string or a list of them, found {pattern!r}")
    names = []
    for name, entry in _registry().items():
        if task is not None and entry.task != task:
            continue
        candidates = [f"{name}.{tag}" for tag in entry.presets] if pretrained else [name]
        for cand in candidates:
            if any(fnmatch.fnmatchcase(cand, p) for p in patterns):
                names.append(cand)
    return sorted(names, key=_natural_key)


def model_info(name: str) -> dict:
    """Everything the registry knows about an entry, as plain data."""
    entry = get_entry(name)
    info = entry.to_dict()
    info["source"] = entry.source
    info["presets"] = sorted(entry.presets)
    return info


def create_model(name: str, /, **overrides: Any) -> Any:
    """Build a fresh (untrained) zoo model: a family task holding ``.model`` (Keras) and
    ``.preprocessor``. Overrides change any config key, e.g. ``units=64`` or ``epochs=3``."""
    entry = get_entry(name)
    if overrides:
        entry = entry.with_overrides(**overrides)
    return task_from_config(entry)


def task_from_config(entry: EntryConfig, preprocessor: Any = None) -> Any:
    """The family's task object for a resolved config (model built on first use)."""
    return family_spec(entry.family).task_class(entry, preprocessor=preprocessor)


def read_config(directory: Path) -> EntryConfig:
    """The entry config stored in a run or preset directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RunDirError(f"not a directory: {directory}")
    path = directory / CONFIG_FILE
    raw = read_json(path, RunDirError, "expected a run directory from `rnnzoo train` or a "
                    "saved model/preset directory")
    return entry_from_dict(raw, str(path))


_VERIFY: contextvars.ContextVar[bool] = contextvars.ContextVar("rnnzoo_verify", default=True)


@contextlib.contextmanager
def verification(enabled: bool) -> Iterator[None]:
    """Set the default of ``load(verify=...)`` inside the block: what the CLI's ``--no-verify``
    uses, so every load a command makes follows the user's explicit choice. In code, prefer
    ``load(directory, verify=False)``."""
    token = _VERIFY.set(bool(enabled))
    try:
        yield
    finally:
        _VERIFY.reset(token)


def load(
    directory: str | os.PathLike, weights: str | os.PathLike | None = None,
    name: str | None = None, verify: bool | None = None,
) -> Any:
    """Load a saved model (run directory or preset): config, assets, then weights.

    Every file is checked against ``checksums.json`` before it is read: a directory without it,
    a config/weights/asset file it does not list, or a file that differs is refused.
    ``weights`` picks another weights file (e.g. ``checkpoints/last.weights.h5``), verified
    against ``checkpoints/checksums.json``. ``verify=False`` skips all of this, for a directory
    you trust (default: on, or as set by ``verification``). ``name``, when given, must match
    the entry.
    """
    if not isinstance(directory, (str, os.PathLike)):
        raise RunDirError(f"load: expected a directory path, found {type(directory).__name__}")
    directory = Path(directory)
    if not directory.is_dir():
        raise RunDirError(f"not a directory: {directory}")
    if verify is None:
        verify = _VERIFY.get()
    weights_path = Path(weights) if weights is not None else directory / WEIGHTS_FILE
    if not (directory / CONFIG_FILE).is_file():
        read_config(directory)  # the error naming what this directory should be
    if not weights_path.is_file():
        raise RunDirError(
            f"weights file not found: {weights_path} (training may not have finished; "
            f"try {directory / 'checkpoints' / 'last.weights.h5'})"
        )
    if verify:
        final = weights is None or weights_path.resolve() == (directory / WEIGHTS_FILE).resolve()
        verify_checksums(directory, required=(CONFIG_FILE, WEIGHTS_FILE) if final
                         else (CONFIG_FILE,))
        if not final:
            verify_weights_file(directory, weights_path)
    config = read_config(directory)
    if name is not None and name.split(".", 1)[0] != config.name:
        raise RunDirError(
            f"{directory} holds a {config.name!r} model, not {name!r}; "
            f"use `{config.name}` or another directory"
        )
    cls = family_spec(config.family).task_class
    task = cls(config, preprocessor=cls.load_preprocessor(config, directory / ASSETS_DIR))
    from rnnzoo.extras import import_tensorflow

    import_tensorflow(f"loading {directory} with Keras (a preset with an ONNX bundle runs "
                      "without it: rnnzoo.from_preset(NAME, backend='onnx'))")
    try:
        task.model.load_weights(weights_path)
    except (ValueError, OSError) as exc:
        raise RunDirError(
            f"{weights_path}: cannot load weights into {config.name!r}: {exc}"
        ) from None
    return task
