"""Typed, validated configs for zoo entries.

A zoo entry is a YAML file with the sections ``model``, ``data`` and ``training``. Each section is
checked against a dataclass (the family declares the first two, ``TrainingConfig`` is shared), so a
typo, a wrong type or a value out of range fails at load time with the file, the key, what was
expected and what was found, instead of deep inside Keras after a run directory was created.

Every path into a config goes through ``build_section`` (zoo YAML, a run's ``config.json``,
``with_overrides`` / CLI options), so a rule declared once on a field holds everywhere.

Value rules live in the field's ``metadata``::

    units: int = dataclasses.field(default=128, metadata={"min": 1})
    dropout: float = dataclasses.field(
        default=0.2, metadata={"min": 0.0, "max": 1.0, "max_exclusive": True})
    learning_rate: float = dataclasses.field(default=1e-3, metadata={"gt": 0})

Keys (bounds apply to numbers; for a list field, to each number in it; a non-number matched by
another part of a union, such as ``"epoch"`` in ``Literal["epoch"] | int``, is not bounded):

* ``min`` / ``max``: inclusive bounds; ``min_exclusive`` / ``max_exclusive`` (bool) make them
  strict. ``gt`` / ``lt`` are shorthands for a strict lower / upper bound.
* ``finite`` (default true): float values must not be NaN or infinite.
* ``nonempty`` (bool): a string or list must not be empty (a blank string counts as empty).
* ``help``: free text, ignored by the checks.

Any other key is a programming error (``TypeError`` naming the class and field), so a misspelt
rule cannot silently switch a check off.

Cross-field rules: a config dataclass may define ``check(self) -> list[str]`` returning
problems (empty when fine). ``build_section`` raises the first as ``ConfigError`` prefixed with
the file and section; a problem starting with ``"<field>: "`` reads as ``section.field: ...``.
No ``__post_init__`` is involved, so constructing a dataclass in code never raises.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

from rnnzoo.errors import ConfigError, short_repr

ENTRY_KEYS = ("name", "family", "task", "description", "model", "data", "training", "presets")


def rule(default: Any, **metadata: Any) -> Any:
    """A dataclass field with a default and value rules (see the module docstring); families
    use it for their ``ModelConfig`` / ``DataConfig`` fields."""
    return dataclasses.field(default=default, metadata=metadata)


_rule = rule


@dataclasses.dataclass
class TrainingConfig:
    """The training recipe shared by every family (read by ``rnnzoo.train``)."""

    epochs: int = _rule(10, min=1)
    batch_size: int = _rule(64, min=1)
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    # A negative rate would train by gradient ascent and still report success.
    learning_rate: float = _rule(1e-3, gt=0)
    weight_decay: float = _rule(0.0, min=0)
    # Learning-rate schedule over the whole run; warmup is linear from 0.
    schedule: Literal["constant", "cosine", "exponential"] = "constant"
    warmup_steps: int = _rule(0, min=0)
    decay_rate: float = _rule(0.5, gt=0, max=1)  # exponential schedule: factor per epoch
    # Gradient clipping by global norm is on by default: exploding gradients are the classic
    # RNN failure. Set to 0 to disable.
    clipnorm: float = _rule(1.0, min=0)
    # Exponential moving average of the weights (0: off). Validation, checkpoints and the final
    # model use the averaged weights, which are smoother than the last step's on small data.
    ema_momentum: float = _rule(0.0, min=0, max=1, max_exclusive=True)
    early_stopping_patience: int = _rule(3, min=0)  # 0 disables early stopping
    monitor: str = _rule("val_loss", nonempty=True)
    # numpy (keras.utils.set_random_seed) only takes seeds in [0, 2**32).
    seed: int = _rule(1234, min=0, max=2**32 - 1)
    # Speed options (see benchmarks/bench_train.py for their measured effect).
    bucketing: bool = True  # batch sentences of similar length together
    precision: Literal["float32", "mixed_bfloat16", "auto"] = "float32"
    jit_compile: bool = False
    intra_op_threads: int = _rule(1, min=0)  # 0 lets TensorFlow decide
    inter_op_threads: int = _rule(2, min=0)
    backup_every: Literal["epoch"] | int = _rule("epoch", min=1)  # BackupAndRestore save_freq
    # Gradient diagnostics every N optimizer steps (0: off): gradient norms per layer, clipping,
    # the temporal profile ||dL/dh_t|| of a probe batch -> RUN/diagnostics.{json,png}.
    diagnose_every: int = _rule(0, min=0)

    def check(self) -> list[str]:
        """Cross-field rules (see ``build_section``)."""
        problems = []
        if any(c.isspace() for c in self.monitor):
            problems.append(f"monitor: expected a metric name such as 'val_loss' (no spaces), "
                            f"found {self.monitor!r}")
        return problems


_NUMBER_NAMES = {"int": "an integer", "float": "a number"}


def _type_name(tp: Any, bound: str = "") -> str:
    """How an annotation reads in a message; ``bound`` (" >= 1") is appended to numbers."""
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a, bound) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        if not args:
            return "a list"
        inner = _type_name(args[0], bound)
        plural = {"an integer": "integers", "a number": "numbers"}
        for single, many in plural.items():
            if inner.startswith(single):
                inner = many + inner[len(single):]
        return f"a list of {inner}"
    if origin in (dict, Mapping):
        return "a mapping"
    if tp is type(None):
        return "null"
    name = getattr(tp, "__name__", str(tp))
    if name in _NUMBER_NAMES:
        return _NUMBER_NAMES[name] + bound
    return {"str": "a string", "bool": "true/false"}.get(name, name)


def _check_value(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, converted value) for ``value`` against the annotation ``tp``."""
    origin = get_origin(tp)
    if tp is Any:
        return True, value
    if origin is Literal:
        try:
            return (value in get_args(tp)), value
        except TypeError:  # unhashable/uncomparable values are simply not one of the choices
            return False, value
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
            try:
                return True, float(value)
            except OverflowError:  # an integer beyond float range; the finite rule reports it
                return True, math.inf if value > 0 else -math.inf
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


_RULE_KEYS = frozenset(
    {"min", "max", "min_exclusive", "max_exclusive", "gt", "lt", "finite", "nonempty", "help"}
)


def _short(value: Any, limit: int = 80) -> str:
    return short_repr(value, limit)


def _bounds(meta: Mapping[str, Any]) -> tuple[Any, bool, Any, bool]:
    """(low, low_strict, high, high_strict) from a field's metadata (None: unbounded)."""
    low, low_strict = meta.get("min"), bool(meta.get("min_exclusive", False))
    high, high_strict = meta.get("max"), bool(meta.get("max_exclusive", False))
    if "gt" in meta:
        low, low_strict = meta["gt"], True
    if "lt" in meta:
        high, high_strict = meta["lt"], True
    return low, low_strict, high, high_strict


def _num(x: Any) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _bound_text(meta: Mapping[str, Any]) -> str:
    """' >= 1', ' > 0', ' in [0, 1)', or '' for a field's bounds."""
    low, low_strict, high, high_strict = _bounds(meta)
    if low is not None and high is not None:
        return (f" in {'(' if low_strict else '['}{_num(low)}, {_num(high)}"
                f"{')' if high_strict else ']'}")
    if low is not None:
        return f" {'>' if low_strict else '>='} {_num(low)}"
    if high is not None:
        return f" {'<' if high_strict else '<='} {_num(high)}"
    return ""


def _in_bounds(x: float, meta: Mapping[str, Any]) -> bool:
    low, low_strict, high, high_strict = _bounds(meta)
    if math.isnan(x):
        return low is None and high is None
    if low is not None and (x <= low if low_strict else x < low):
        return False
    if high is not None and (x >= high if high_strict else x > high):
        return False
    return True


def _numbers(value: Any) -> list[Any]:
    """The numbers a bound applies to: the value itself, or the numbers in a list."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _field_problem(cls: type, field: dataclasses.Field, value: Any, tp: Any) -> str | None:
    """The first broken rule of ``field`` for ``value`` as ``"expected ..., found ..."``."""
    meta = field.metadata
    unknown = set(meta) - _RULE_KEYS
    if unknown:
        raise TypeError(f"{cls.__name__}.{field.name}: unknown metadata key(s) "
                        f"{sorted(unknown)}; valid keys: {sorted(_RULE_KEYS)}")
    ok, _ = _check_value(value, tp)
    if not ok:
        return f"expected {_type_name(tp)}, found {_short(value)}"
    bound = _bound_text(meta)
    numbers = _numbers(value)
    if meta.get("finite", True) and any(
        isinstance(x, float) and not math.isfinite(x) for x in numbers
    ):
        return f"expected {_type_name(tp, bound).replace('a number', 'a finite number')}, " \
               f"found {_short(value)}"
    if bound and not all(_in_bounds(x, meta) for x in numbers):
        return f"expected {_type_name(tp, bound)}, found {_short(value)}"
    if meta.get("nonempty") and isinstance(value, (str, list, tuple)) and (
        not value or (isinstance(value, str) and not value.strip())
    ):
        return f"expected a non-empty {'string' if isinstance(value, str) else 'list'}, " \
               f"found {_short(value)}"
    return None


def config_problems(obj: Any) -> list[str]:
    """Every broken rule of a config dataclass instance, as ``"key: expected ..., found ..."``
    (field rules first, then the class's ``check()``). Empty when the config is valid."""
    cls = type(obj)
    hints = typing.get_type_hints(cls)
    problems = []
    for field in dataclasses.fields(cls):
        problem = _field_problem(cls, field, getattr(obj, field.name), hints[field.name])
        if problem:
            problems.append(f"{field.name}: {problem}")
    if not problems and callable(getattr(obj, "check", None)):
        problems.extend(str(p) for p in obj.check() or ())
    return problems


def validate_config(obj: Any, where: str) -> Any:
    """Raise ``ConfigError`` for the first broken rule of ``obj`` (``where`` names the file and
    section, as in ``build_section``); return ``obj`` so calls can be chained.

    For configs built or changed in code (``dataclasses.replace``), which skip
    ``build_section``."""
    problems = config_problems(obj)
    if problems:
        raise ConfigError(_located(where, problems[0], {f.name for f in dataclasses.fields(obj)}))
    return obj


def _located(where: str, problem: str, fields: set[str]) -> str:
    """``where.key: ...`` when the problem starts with a field name, else ``where: ...``."""
    key = problem.split(":", 1)[0]
    return f"{where}.{problem}" if key in fields else f"{where}: {problem}"


def suggest(name: str, choices: typing.Iterable[str]) -> str:
    """' Did you mean ...?' for the closest choices, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def build_section(cls: type, data: Mapping[str, Any] | None, where: str) -> Any:
    """Validate a mapping against dataclass ``cls``; ``where`` names the file and section.

    Checks keys, types, the fields' value rules and the class's ``check()`` (module docstring),
    so a bad value fails here, before anything is built or written."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(
                f"{where}: unknown key {_short(key)}.{suggest(str(key), fields)} "
                f"Valid keys: {', '.join(sorted(fields))}"
            )
        ok, conv = _check_value(value, hints[key])
        if not ok:
            raise ConfigError(
                f"{where}.{key}: expected {_type_name(hints[key])}, found {_short(value)}"
            )
        kwargs[key] = conv
    missing = [
        name for name, f in fields.items()
        if name not in kwargs and f.init and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")
    return validate_config(cls(**kwargs), where)


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
        where = f"{self.source} (with overrides)"
        return dataclasses.replace(
            self,
            model=build_section(type(self.model), sections["model"], f"{where}: model"),
            data=build_section(type(self.data), sections["data"], f"{where}: data"),
            training=build_section(TrainingConfig, sections["training"], f"{where}: training"),
            source=where,
        )
