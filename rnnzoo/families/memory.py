"""Long-dependency probes: one recurrent layer of each classic cell on the adding problem and
copy memory (Bai, Kolter & Koltun 2018), to measure what each cell can remember.

Everything a user touches (the generators, data specs, scores against the memoryless baselines,
``predict``, export, runtime) comes from the ``long-dependency`` task type; this family only
builds the Keras model: features ``[B, T, F]`` -> recurrent layer(s) -> a linear read-out of the
last state (adding) or a softmax at every step (copy).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

from rnnzoo.config import rule
from rnnzoo.tasks.long_dependency import COPY_CLASSES, DataConfig, LongDependencyTask

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(128, min=1)
    num_layers: int = rule(1, min=1)
    reset_after: bool = True  # GRU only (LSTMs start with Keras' forget-gate bias of 1)


class Task(LongDependencyTask):
    """A long-dependency model. ``predict(x)`` returns sums (adding) or digits (copy)."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack

        m = self.config.model
        problem = self.config.data.problem
        x = keras.Input((None, self.num_features), name="x")
        h = RecurrentStack(m.units, cell=m.cell, num_layers=m.num_layers,
                           reset_after=m.reset_after, return_sequences=problem == "copy",
                           name="rnn")(x)
        if problem == "adding":
            y = keras.layers.Dense(1, dtype="float32", name="y")(h)
        else:
            y = keras.layers.Dense(COPY_CLASSES, activation="softmax", dtype="float32",
                                   name="y")(h)
        return keras.Model(x, y, name=self.config.name)


# -- test support: the registry-generated tests build every entry with these ---------------------
TINY_OVERRIDES = {
    "model": {"units": 8},
    "data": {"problem": "adding"},
    "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 0, "early_stopping_patience": 0},
}


def synthetic_dataset(directory: str | Path, n: int = 400, seed: int = 0) -> Path:
    """A short adding problem (T=12) as a JSON spec file."""
    path = Path(directory) / "adding_T12.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"problem": "adding", "T": 12, "train": n,
                                "dev": max(1, n // 5), "seed": seed}), encoding="utf-8")
    return path
