"""Model families. A family is code (how to build the Keras model); an entry is data (YAML).

The family ``translator`` is the module ``rnnzoo.families.translator``, found by name: adding a
family is adding one module (plus its YAML entries), nothing else. A family module defines
``ModelConfig`` and ``DataConfig`` (dataclasses validated against the YAML), ``Task`` (a
subclass of its application's task class, ``rnnzoo/apps/<task>/model.py``), and for the
lifecycle harness ``TINY_OVERRIDES`` and ``synthetic_dataset(directory, n, seed)``. Family
modules keep TensorFlow imports inside functions, so reading configs and listing models stay
TF-free.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from types import ModuleType
from typing import Any


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    name: str
    task: str
    model_config: type
    data_config: type
    task_class: type
    module: ModuleType

    @property
    def tiny_overrides(self) -> dict[str, Any]:
        """Config overrides that make every entry of the family tiny (for tests)."""
        return self.module.TINY_OVERRIDES

    def synthetic_dataset(self, directory: Any, n: int | None = None, seed: int = 0) -> Any:
        """A small learnable dataset in one of the task's file layouts (for tests)."""
        kwargs = {"seed": seed} if n is None else {"n": n, "seed": seed}
        return self.module.synthetic_dataset(directory, **kwargs)


@functools.lru_cache(maxsize=1)
def known_families() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


@functools.cache
def family_spec(name: str) -> FamilySpec:
    module = importlib.import_module(f"{__name__}.{name}")
    return FamilySpec(
        name=name,
        task=module.Task.task_type,
        model_config=module.ModelConfig,
        data_config=module.DataConfig,
        task_class=module.Task,
        module=module,
    )
