"""Skeleton action classifier: per-frame joint features -> (bidirectional) recurrent stack ->
pooling over the valid frames -> softmax over the actions.

The recurrent stack reads the 19 joints relative to the hip centre, the body's path and their
velocities (``rnnzoo.apps.action_recognition.data``) frame by frame, masked at the padding;
pooling (mean or max over the frames) gives one vector per sequence. Du, Wang & Wang (CVPR
2015) found a bidirectional LSTM over the whole skeleton close to their hierarchical part-based
RNN on MSR Action3D. Data, ``classify``, export and the runtime come from the
``action-recognition`` task type; this family only builds the Keras model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.apps.action_recognition.data import NUM_JOINTS, DataConfig
from rnnzoo.apps.action_recognition.model import ActionRecognitionTask
from rnnzoo.config import rule

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    num_classes: int = rule(20, min=2)
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(128, min=1)
    num_layers: int = rule(1, min=1)
    bidirectional: bool = True
    reset_after: bool = True  # GRU only
    pooling: Literal["max", "mean"] = "mean"  # over the valid frames
    input_dropout: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    dropout: float = rule(0.3, min=0.0, max=1.0, max_exclusive=True)  # also between layers
    hidden_units: int = rule(0, min=0)  # a ReLU layer before the classifier (0: none)


class Task(ActionRecognitionTask):
    """A skeleton action classifier: ``classify("a01_s01_e01_skeleton3D.txt")``."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import MaskedGlobalPooling1D, RecurrentStack

        m = self.config.model
        L = keras.layers
        features = keras.Input((None, self.preprocessor.num_features), name="features")
        mask = keras.Input((None,), name="mask")
        # Padded frames are zeroed: what the model sees does not depend on the padding.
        x = L.Multiply(name="masked_features")([features, L.Reshape((-1, 1))(mask)])
        x = L.Dropout(m.input_dropout, name="input_dropout")(x)
        frames = keras.ops.cast(mask, "bool")
        x = RecurrentStack.from_model_config(m, return_sequences=True, name="encoder")(
            x, mask=frames)
        x = MaskedGlobalPooling1D(m.pooling, name="pooling")(x, mask=frames)
        x = L.Dropout(m.dropout, name="dropout")(x)
        if m.hidden_units:
            x = L.Dense(m.hidden_units, activation="relu", name="hidden")(x)
            x = L.Dropout(m.dropout, name="hidden_dropout")(x)
        # float32 output even under a mixed-precision policy: softmax/loss need the range.
        probs = L.Dense(m.num_classes, activation="softmax", dtype="float32", name="probs")(x)
        return keras.Model([features, mask], probs, name=self.config.name)


# -- test support: the registry-generated tests build every entry with these ---------------------
TINY_OVERRIDES = {
    "model": {"units": 8, "input_dropout": 0.0, "dropout": 0.0},
    "data": {"max_frames": 16, "dev_subjects": [9]},
    "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 0, "early_stopping_patience": 0,
                 "intra_op_threads": 1},
}

#: The synthetic actions: which joint moves and how (index 11 left hand, 12 right hand, 19
#: head), so a tiny model tells them apart.
_SYNTHETIC = {1: (12, "wave"), 2: (11, "circle"), 3: (19, "bend")}


def _standing(rng: np.random.Generator) -> np.ndarray:
    """A rough standing skeleton [20, 3] in metres (y up, ~2.7 m from the camera)."""
    y = np.array([0.35, 0.35, 0.4, 0.2, 0.0, 0.0, 0.0, 0.1, 0.1, -0.15, -0.15, -0.22, -0.22,
                  -0.55, -0.55, -1.0, -1.0, -1.03, -1.03, 0.65])
    x = np.array([-0.18, 0.18, 0.0, 0.0, -0.1, 0.1, 0.0, -0.25, 0.25, -0.27, 0.27, -0.28, 0.28,
                  -0.1, 0.1, -0.1, 0.1, -0.12, 0.12, 0.0])
    body = np.stack([x, y, np.full(NUM_JOINTS, 2.7)], axis=1)
    return body * rng.uniform(0.9, 1.1) + rng.normal(0, 0.01, (NUM_JOINTS, 3))


def synthetic_sequence(action: int, rng: np.random.Generator) -> np.ndarray:
    """One synthetic ``[T, 20, 3]`` sequence of an action of ``_SYNTHETIC``, at a random place
    in the room."""
    joint, how = _SYNTHETIC[action]
    frames = int(rng.integers(8, 25))
    t = np.linspace(0, 2 * np.pi, frames)
    seq = np.repeat(_standing(rng)[None], frames, axis=0)
    if how == "wave":
        seq[:, joint, 1] += 0.3 * np.sin(2 * t) + 0.3
    elif how == "circle":
        seq[:, joint, 0] += 0.2 * np.cos(t)
        seq[:, joint, 1] += 0.2 * np.sin(t) + 0.3
    else:
        upper = [0, 1, 2, 3, 7, 8, 9, 10, 11, 12, 19]
        seq[:, upper, 2] -= 0.3 * np.sin(t / 2)[:, None]
        seq[:, upper, 1] -= 0.2 * np.sin(t / 2)[:, None]
    seq += rng.normal(0, 0.01, seq.shape) + rng.uniform(-0.5, 0.5, 3)
    return seq


def synthetic_dataset(directory: str | Path, n: int = 300, seed: int = 0) -> Path:
    """A folder of ``n`` skeleton files in the MSR Action3D layout (``aAA_sSS_eEE_skeleton3D
    .txt``, 4 columns, 20 lines per frame) of three synthetic actions, by subjects 1, 3 and 9
    (9 is the default dev subject)."""
    rng = np.random.default_rng(seed)
    folder = Path(directory) / "synthetic_skeletons"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        action = 1 + i % len(_SYNTHETIC)
        subject = (1, 3, 9)[(i // len(_SYNTHETIC)) % 3]
        rep = 1 + i // (3 * len(_SYNTHETIC))
        seq = synthetic_sequence(action, rng)
        rows = np.concatenate([seq.reshape(-1, 3), np.ones((seq.size // 3, 1))], axis=1)
        np.savetxt(folder / f"a{action:02d}_s{subject:02d}_e{rep:02d}_skeleton3D.txt", rows,
                   fmt="%.6f")
    return folder
