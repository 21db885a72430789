"""Typed, validated configs for zoo entries.

A zoo entry is a YAML file with the sections ``model``, ``data`` and ``training``. Each section is
checked against a dataclass (the family declares the first two, ``TrainingConfig`` is shared), so a
typo or a wrong type fails at load time with the file, the key, what was expected and what was
found, instead of deep inside Keras.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

from rnnzoo.errors import ConfigError

ENTRY_KEYS = ("name", "family", "task", "description", "model", "data", "training", "presets")


@dataclasses.dataclass
class TrainingConfig:
    """The training recipe shared by every family (read by ``rnnzoo.train``)."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    # Learning-rate schedule over the whole run; warmup is linear from 0.
    schedule: Literal["constant", "cosine", "exponential"] = "constant"
    warmup_steps: int = 0
    decay_rate: float = 0.5  # exponential schedule: factor per epoch
    # Gradient clipping by global norm is on by default: exploding gradients are the classic
    # RNN failure. Set to 0 to disable.
    clipnorm: float = 1.0
    early_stopping_patience: int = 3  # 0 disables early stopping
    monitor: str = "val_loss"
    seed: int = 1234
    # Speed options (see benchmarks/bench_train.py for their measured effect).
    bucketing: bool = True  # batch sentences of similar length together
    precision: Literal["float32", "mixed_bfloat16", "auto"] = "float32"
    jit_compile: bool = False
    intra_op_threads: int = 1  # 0 lets TensorFlow decide
    inter_op_threads: int = 2
    backup_every: Literal["epoch"] | int = "epoch"  # BackupAndRestore save_freq


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    if tp is type(None):
        return "null"
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true/false"}.get(
        getattr(tp, "__name__", str(tp)), getattr(tp, "__name__", str(tp))
    )


def _check_value(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, converted value) for ``value`` against the annotation ``tp``."""
    origin = get_origin(tp)
    if tp is Any:
        return True, value
    if origin is Literal:
        return (value in get_args(tp)), value
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            ok, conv = _check_value(value, arg)
            if ok:
                return True, conv
        return False, value
    if tp is type(None):
        return value is None, value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        (arg,) = get_args(tp)[:1] or (Any,)
        out = []
        for item in value:
            ok, conv = _check_value(item, arg)
            if not ok:
                return False, value
            out.append(conv)
        return True, out
    if origin in (dict, Mapping):
        return isinstance(value, Mapping), dict(value) if isinstance(value, Mapping) else value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        # YAML 1.1 reads "1e-3" as a string; accept it as a number.
        if isinstance(value, str):
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if tp is str:
        return isinstance(value, str), value
    return isinstance(value, tp), value


def suggest(name: str, choices: typing.Iterable[str]) -> str:
    """' Did you mean ...?' for the closest choices, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def build_section(cls: type, data: Mapping[str, Any] | None, where: str) -> Any:
    """Validate a mapping against dataclass ``cls``; ``where`` names the file and section."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(
                f"{where}: unknown key {key!r}.{suggest(str(key), fields)} "
                f"Valid keys: {', '.join(sorted(fields))}"
            )
        ok, conv = _check_value(value, hints[key])
        if not ok:
            raise ConfigError(
                f"{where}.{key}: expected {_type_name(hints[key])}, found {value!r}"
            )
        kwargs[key] = conv
    return cls(**kwargs)


@dataclasses.dataclass
class EntryConfig:
    """A resolved zoo entry: what ``create_model`` builds and what a run directory records."""

    name: str
    family: str
    task: str
    description: str
    model: Any
    data: Any
    training: TrainingConfig
    presets: dict = dataclasses.field(default_factory=dict)
    source: str = "<dict>"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "task": self.task,
            "description": self.description,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "training": dataclasses.asdict(self.training),
        }

    def with_overrides(self, **overrides: Any) -> EntryConfig:
        """Return a copy with overrides applied.

        Keys may be a field of any section (``units=64``, ``epochs=3``) or a whole section as a
        mapping (``training={"epochs": 3}``). A key that exists in several sections must use the
        mapping form, so an override never lands somewhere unexpected.
        """
        sections = {
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "training": dataclasses.asdict(self.training),
        }
        for key, value in overrides.items():
            if key in sections:
                if not isinstance(value, Mapping):
                    raise ConfigError(
                        f"override {key}=: expected a mapping of {key} keys, found {value!r}"
                    )
                for sub, subval in value.items():
                    if sub not in sections[key]:
                        raise ConfigError(
                            f"override {key}.{sub}: unknown key."
                            f"{suggest(str(sub), sections[key])} "
                            f"Valid keys: {', '.join(sorted(sections[key]))}"
                        )
                    sections[key][sub] = subval
                continue
            homes = [s for s, d in sections.items() if key in d]
            if not homes:
                allkeys = [k for d in sections.values() for k in d]
                raise ConfigError(
                    f"override {key!r}: not a key of model, data or training for "
                    f"{self.name!r}.{suggest(key, allkeys)}"
                )
            if len(homes) > 1:
                raise ConfigError(
                    f"override {key!r} is ambiguous (in {', '.join(homes)}); "
                    f"write e.g. {homes[0]}={{{key!r}: {value!r}}}"
                )
            sections[homes[0]][key] = value
        return entry_from_dict(
            {
                "name": self.name,
                "family": self.family,
                "task": self.task,
                "description": self.description,
                "presets": self.presets,
                **sections,
            },
            where=f"{self.source} (with overrides)",
        )


def entry_from_dict(raw: Any, where: str) -> EntryConfig:
    """Validate a whole entry mapping (from YAML or a run's config.json)."""
    from rnnzoo.families import family_spec, known_families

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
    presets = raw.get("presets") or {}
    if not isinstance(presets, Mapping):
        raise ConfigError(f"{where}.presets: expected a mapping, found {presets!r}")
    return EntryConfig(
        name=raw["name"],
        family=family,
        task=raw.get("task", spec.task),
        description=raw.get("description", ""),
        model=build_section(spec.model_config, raw.get("model"), f"{where}: model"),
        data=build_section(spec.data_config, raw.get("data"), f"{where}: data"),
        training=build_section(TrainingConfig, raw.get("training"), f"{where}: training"),
        presets=dict(presets),
        source=where,
    )
