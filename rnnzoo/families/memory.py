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

from rnnzoo.apps.long_dependency.data import COPY_CLASSES, DataConfig
from rnnzoo.apps.long_dependency.model import LongDependencyTask
from rnnzoo.config import rule

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(128, min=1)
    num_layers: int = rule(1, min=1)
    reset_after: bool = True  # GRU only (LSTMs start with Keras' forget-gate bias of 1)
    # Chrono initialisation (Tallec & Ollivier 2018) for dependencies up to this many steps
    # (0: off): LSTM forget-gate biases log(U[1, N-1]) and input-gate biases their negative;
    # GRU update-gate biases log(U[1, N-1]) (the gate that keeps the old state). With Keras'
    # forget bias of 1 a fresh LSTM keeps ~0.73 of its state per step: 0.73^200 ~ 1e-27.
    chrono_init: int = rule(0, min=0)


class Task(LongDependencyTask):
    """A long-dependency model. ``predict(x)`` returns sums (adding) or digits (copy)."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack

        m = self.config.model
        problem = self.config.data.problem
        x = keras.Input((None, self.num_features), name="x")
        # All-zero frames are padding (a real frame always has a value or a one-hot digit), so
        # a post-padded batch gives the same outputs as the rows alone (the export turns the
        # mask into ONNX sequence_lens).
        masked = keras.layers.Masking(0.0, name="padding")(x)
        h = RecurrentStack.from_model_config(m, return_sequences=problem == "copy",
                                             name="rnn")(masked)
        if m.chrono_init > 1 and m.cell != "simple":
            _chrono(h._keras_history.operation, m.chrono_init, self.config.training.seed)
        if problem == "adding":
            y = keras.layers.Dense(1, dtype="float32", name="y")(h)
        else:
            y = keras.layers.Dense(COPY_CLASSES, activation="softmax", dtype="float32",
                                   name="y")(h)
        return keras.Model(x, y, name=self.config.name)

    streams = True  # one unidirectional stack: every output follows from the state so far

    def stream_graph(self) -> tuple[Any, list[str]] | None:
        """The stack from given states over the steps (padding frames masked, as in the
        model), then the read-out: the sum from the last state (adding), the digit
        probabilities at every fed step (copy)."""
        model = self.model
        cached = getattr(self, "_stream", None)
        if cached is None or cached[0] is not model:
            import keras

            from rnnzoo.families.sentiment import stateful_twin

            m = self.config.model
            rnn = model.get_layer("rnn")
            x = keras.Input((None, self.num_features), dtype="float32", name="x")
            states = [keras.Input((m.units,), dtype="float32", name=f"state_{i}")
                      for i in range(rnn.states_per_layer * m.num_layers)]
            masked = model.get_layer("padding")(x)
            h, new = stateful_twin(rnn, rnn.return_sequences)(masked, initial_state=states)
            y = model.get_layer("y")(h)
            graph = keras.Model([x, *states], [y, *new], name="memory_step")
            self._stream = cached = (model, graph, len(states))
        return cached[1], ["y", *[f"new_state_{i}" for i in range(cached[2])]]


def _chrono(stack: Any, horizon: int, seed: int) -> None:
    """Set the gate biases of every layer of a ``RecurrentStack`` by the chrono rule."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for rnn in stack.rnns:
        cell = rnn.cell
        u = int(cell.units)
        bias = np.asarray(cell.bias).copy()
        keep = np.log(rng.uniform(1.0, horizon - 1.0, size=u))
        if bias.ndim == 2:  # GRU reset_after: [input bias, recurrent bias]
            bias[0, :u], bias[1, :u] = keep, 0.0
        elif cell_is_lstm(cell):
            bias[u:2 * u], bias[:u] = keep, -keep
        else:
            bias[:u] = keep
        cell.bias.assign(bias.astype(np.asarray(cell.bias).dtype))


def cell_is_lstm(cell: Any) -> bool:
    return "lstm" in type(cell).__name__.lower()


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
