"""Model families. A family is code (how to build, train, evaluate, export); an entry is data.

Family modules keep TensorFlow imports inside functions, so that reading configs, listing models
and the ONNX runtime stay TF-free.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

# family name -> module path. Adding a family adds one line here and one module.
_FAMILIES = {
    "sentiment": "rnnzoo.families.sentiment",
    "translator": "rnnzoo.families.translator",
}


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    name: str
    task: str
    model_config: type
    data_config: type
    module: ModuleType


def known_families() -> list[str]:
    return sorted(_FAMILIES)


def family_spec(name: str) -> FamilySpec:
    module = importlib.import_module(_FAMILIES[name])
    return FamilySpec(
        name=name,
        task=module.TASK,
        model_config=module.ModelConfig,
        data_config=module.DataConfig,
        module=module,
    )
