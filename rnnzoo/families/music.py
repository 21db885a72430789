"""Polyphonic music generator: 88-key piano-roll frames -> recurrent stack -> 88 sigmoids.

Two Keras models share one set of layers:

* ``model`` (training and scoring): frames ``[B, T, 88]`` (the start frame, then the piece shifted
  by one) -> ``logits [B, T, 88]`` of frame t+1 given frames <= t
* ``step``: ``(frame [B, 88] int32 multi-hot, state_0, ...) -> (logits [B, 88], new_state_0, ...)``

Data, ``generate``, the frame NLL, MIDI/PNG/WAV output, export and the runtime come from the
``music-generation`` task type; this family only builds the models. ``cell: simple | lstm | gru``
gives the three models of the published comparison (Bai et al. 2018: vanilla RNN, LSTM, GRU).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

from rnnzoo.apps.music_generation.data import NUM_KEYS, DataConfig
from rnnzoo.apps.music_generation.model import MusicGenerationTask
from rnnzoo.config import rule
from rnnzoo.engines.stream import state_names as stream_state_names

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(256, min=1)
    num_layers: int = rule(1, min=1)
    reset_after: bool = True  # GRU only
    # Dropout on the input frames (whole notes vanish from the context: the strongest
    # regulariser on the small chorale sets), between recurrent layers and before the output.
    input_dropout: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)
    dropout: float = rule(0.3, min=0.0, max=1.0, max_exclusive=True)
    # Initial bias of the 88 outputs: about log(4 / 84), as ~4 of 88 keys sound per frame, so
    # training does not start by unlearning 50% probabilities.
    output_bias_init: float = -3.0


def state_names(cfg: ModelConfig) -> list[str]:
    return stream_state_names(cfg.cell, cfg.num_layers)


class Task(MusicGenerationTask):
    """A music generator. ``generate(64, primer="in.mid", temperature=0.9, seed=0)`` returns a
    piano roll ``[64, 88]``; ``rnnzoo.apps.music_generation.data.write_midi`` writes it."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack

        m = self.config.model
        L = keras.layers
        self.layers_ = {
            "input_dropout": L.Dropout(m.input_dropout, name="input_dropout"),
            "rnn": RecurrentStack.from_model_config(m, return_sequences=True, return_state=True,
                                                    name="rnn"),
            "output_dropout": L.Dropout(m.dropout, name="output_dropout"),
            # float32 output even under a mixed-precision policy: the loss needs the range.
            "logits": L.Dense(NUM_KEYS, name="logits", dtype="float32",
                              bias_initializer=keras.initializers.Constant(m.output_bias_init)),
        }
        self._step = None
        frames = keras.Input((None, NUM_KEYS), name="frames")
        x, _ = self.layers_["rnn"](self.layers_["input_dropout"](frames))
        logits = self.layers_["logits"](self.layers_["output_dropout"](x))
        return keras.Model(frames, logits, name=self.config.name)

    def step_graph(self) -> tuple[Any, list[str]]:
        if getattr(self, "_step", None) is None or self._step[0] is not self.model:
            import keras

            ops = keras.ops
            m = self.config.model
            lay = self.layers_
            frame = keras.Input((NUM_KEYS,), dtype="int32", name="frame")
            states = [keras.Input((m.units,), name=n) for n in state_names(m)]
            x = ops.expand_dims(ops.cast(frame, "float32"), 1)
            out, new_states = lay["rnn"](lay["input_dropout"](x), initial_state=states)
            logits = ops.squeeze(lay["logits"](lay["output_dropout"](out)), 1)
            step = keras.Model([frame, *states], [logits, *new_states], name="music_step")
            self._step = (self.model, step)
        return self._step[1], ["logits", *[f"new_{n}" for n in state_names(self.config.model)]]


# -- test support -------------------------------------------------------------------------------
TINY_OVERRIDES = {
    "model": {"units": 16, "num_layers": 1, "input_dropout": 0.0, "dropout": 0.0},
    "data": {"max_length": 32},
    "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 0, "early_stopping_patience": 0},
}

# Four-chord progressions (MIDI pitches): each chord is followed by one chord only, so a small
# model can learn to continue any piece exactly.
PROGRESSIONS = (
    ((60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67, 72)),
    ((57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 61, 64, 69)),
)


def pattern_piece(progression: int, offset: int, length: int) -> list[list[int]]:
    """``length`` steps of progression ``progression`` from chord ``offset``, each chord held
    for two steps (pitch lists, the JSON layout)."""
    chords = PROGRESSIONS[progression]
    return [list(chords[((offset + t) // 2) % len(chords)]) for t in range(length)]


def synthetic_dataset(directory: str | Path, n: int = 300, seed: int = 0) -> Path:
    """A learnable dataset in the ``jsb-chorales-quarter.json`` layout: pieces that repeat one
    of two chord progressions (each chord held two steps) from a random chord, 8-24 steps long;
    80% train, 10% valid, 10% test."""
    import random

    rng = random.Random(seed)
    pieces = [pattern_piece(rng.randrange(len(PROGRESSIONS)), rng.randrange(8),
                            rng.randint(8, 24)) for _ in range(n)]
    n_dev = n_test = max(1, n // 10)
    data = {"train": pieces[n_dev + n_test:], "valid": pieces[:n_dev],
            "test": pieces[n_dev:n_dev + n_test]}
    path = Path(directory) / "synthetic_music.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
