"""The model registry, read from the YAML files in ``zoo_configs/``.

Registration is data: every ``zoo_configs/<family>/<entry>.yaml`` is one entry, validated when the
registry is first used. Listing takes globs and sorts naturally (``x_2`` before ``x_10``).
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.resources
import re
from collections.abc import Iterable
from typing import Any

import yaml

from rnnzoo.config import EntryConfig, entry_from_dict, suggest
from rnnzoo.errors import ConfigError, DuplicateModelError, UnknownModelError


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
    root = importlib.resources.files("rnnzoo.zoo_configs")
    for family_dir in sorted(root.iterdir(), key=lambda p: p.name):
        if not family_dir.is_dir() or family_dir.name.startswith(("_", ".")):
            continue
        for path in sorted(family_dir.iterdir(), key=lambda p: p.name):
            if path.name.endswith((".yaml", ".yml")):
                yield path, f"zoo_configs/{family_dir.name}/{path.name}", family_dir.name


def build_registry(files: Iterable[tuple[Any, str, str | None]]) -> dict[str, EntryConfig]:
    """Validate entry files ``(path, display name, folder family)`` into a name -> config
    mapping; duplicate names raise."""
    entries: dict[str, EntryConfig] = {}
    for path, where, folder in files:
        entry = load_entry_file(path, where)
        if entry.name in entries:
            raise DuplicateModelError(
                f"duplicate model name {entry.name!r}: declared in {entries[entry.name].source} "
                f"and in {where}"
            )
        if folder is not None and entry.family != folder:
            raise ConfigError(
                f"{where}.family: expected {folder!r} (the folder), found {entry.family!r}"
            )
        entries[entry.name] = entry
    return entries


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, EntryConfig]:
    return build_registry(_config_files())


def get_entry(name: str) -> EntryConfig:
    """The validated config of a registered entry; unknown names suggest close matches."""
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
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
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
    from rnnzoo.families import family_spec

    return family_spec(entry.family).module.Task(entry, preprocessor=preprocessor)
