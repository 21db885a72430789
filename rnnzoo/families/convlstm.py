"""ConvLSTM frame predictor (Shi et al., NeurIPS 2015) with PredRNN's patch reshaping.

Each 64x64x1 frame is cut into 4x4 patches stacked as channels (16x16x16, Wang et al. 2017), so
the convolutions run on a 16x16 grid: what lets two CPU cores train it. A stack of ConvLSTM
cells (gates from one convolution over ``[input, h]``; forget-gate bias +1) reads the frames;
a 1x1 convolution of the top cell's ``h`` gives the next frame (sigmoid, pixels in [0, 1]),
reshaped back to 64x64. One cell stack serves encoding and forecasting (the encoder-forecaster
with shared weights, as PredRNN's training does): the first ``input_frames`` steps read the
given frames, the later ones the model's own previous prediction (closed loop, trained through
it). The loss is the MSE of every next-frame prediction (frames 2..20, PredRNN's), optionally
plus L1.

Two Keras models share the layers: ``model`` (training: ``frames [B, T, H, W, C]`` ->
predictions of frames 2..T) and ``step`` (exported: one frame and the states ``state_<i>`` ->
the next frame and ``new_state_<i>``); the runtime drives the 10-in/10-out loop over ``step``.
``patch_size: 1`` is the full-resolution ConvLSTM.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.video_prediction.data import DataConfig
from rnnzoo.apps.video_prediction.model import VideoPredictionTask
from rnnzoo.config import rule

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    # Frames are cut into patch_size x patch_size patches stacked as channels (4: 64x64x1 ->
    # 16x16x16); 1 keeps full resolution.
    patch_size: int = rule(4, min=1)
    filters: int = rule(64, min=1)  # channels of each cell's h and c
    num_layers: int = rule(2, min=1)
    kernel_size: int = rule(3, min=1)
    # Loss: MSE of every next-frame prediction, plus l1_weight x mean absolute error.
    l1_weight: float = rule(0.0, min=0.0)

    def check(self) -> list[str]:
        return [] if self.kernel_size % 2 else [
            f"kernel_size: expected an odd size ('same' padding keeps the grid), found "
            f"{self.kernel_size}"]


def state_names(cfg: ModelConfig) -> list[str]:
    """``state_<i>``: layer ``l``'s ``h`` is ``2l``, its ``c`` ``2l + 1``."""
    return [f"state_{i}" for i in range(2 * cfg.num_layers)]


class Task(VideoPredictionTask):
    """A ConvLSTM frame predictor: ``predict_frames(frames, steps=10)``, ``evaluate``,
    ``stream()``."""

    def _check_geometry(self) -> tuple[int, int]:
        """(grid side, patch channels)."""
        m, d = self.config.model, self.config.data
        if d.image_size % m.patch_size:
            from rnnzoo.errors import ConfigError

            raise ConfigError(f"patch_size: {m.patch_size} does not divide image_size "
                              f"{d.image_size}")
        return d.image_size // m.patch_size, m.patch_size ** 2 * d.channels

    def state_shape(self) -> tuple[int, int, int]:
        grid, _ = self._check_geometry()
        return grid, grid, self.config.model.filters

    def build_model(self) -> Any:
        import keras

        m, d = self.config.model, self.config.data
        grid, patch_channels = self._check_geometry()
        L = keras.layers
        self.layers_ = {
            **{f"gates_{i}": L.Conv2D(4 * m.filters, m.kernel_size, padding="same",
                                      name=f"gates_{i}") for i in range(m.num_layers)},
            "frame_out": L.Conv2D(patch_channels, 1, name="frame_out", dtype="float32"),
        }
        self._graphs: dict[str, Any] = {}
        size = d.image_size
        frames = keras.Input((d.frames, size, size, d.channels), name="frames")
        zero = keras.ops.zeros_like(self._patches(frames[:, 0]))[..., :1]
        states = [keras.ops.tile(zero, [1, 1, 1, m.filters])
                  for _ in range(2 * m.num_layers)]
        preds = []
        for t in range(d.frames - 1):
            x = frames[:, t] if t < d.input_frames else preds[-1]
            y, states = self._step(x, states)
            preds.append(y)
        out = keras.ops.stack(preds, axis=1)
        return keras.Model(frames, out, name=self.config.name)

    # -- the cell -----------------------------------------------------------------------------
    def _patches(self, x: Any, inverse: bool = False) -> Any:
        """``[B, H, W, C]`` <-> ``[B, H/p, W/p, p*p*C]`` (PredRNN's patch reshaping: the same
        swap of the two middle axes both ways)."""
        import keras

        p, d = self.config.model.patch_size, self.config.data
        if p == 1:
            return x
        g, c = d.image_size // p, d.channels
        x = keras.ops.reshape(x, (-1, g, g, p, p, c) if inverse else (-1, g, p, g, p, c))
        x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
        out = (-1, d.image_size, d.image_size, c) if inverse else (-1, g, g, p * p * c)
        return keras.ops.reshape(x, out)

    def _step(self, frame: Any, states: list) -> tuple[Any, list]:
        """One frame ``[B, H, W, C]`` and the states -> the predicted next frame and the new
        states."""
        import keras

        ops = keras.ops
        inp = self._patches(frame)
        new = []
        for i in range(self.config.model.num_layers):
            h, c = states[2 * i], states[2 * i + 1]
            z = self.layers_[f"gates_{i}"](ops.concatenate([inp, h], axis=-1))
            gi, gf, gg, go = ops.split(z, 4, axis=-1)
            c = ops.sigmoid(gf + 1.0) * c + ops.sigmoid(gi) * ops.tanh(gg)
            h = ops.sigmoid(go) * ops.tanh(c)
            new += [h, c]
            inp = h
        frame_out = ops.sigmoid(self.layers_["frame_out"](inp))
        return self._patches(frame_out, inverse=True), new

    def step_graph(self) -> tuple[Any, list[str]]:
        model = self.model
        cached = getattr(self, "_graphs", {}).get("step")
        if cached is None or cached[0] is not model:
            import keras

            d = self.config.data
            names = state_names(self.config.model)
            frame = keras.Input((d.image_size, d.image_size, d.channels), name="frame")
            states = [keras.Input(self.state_shape(), name=n) for n in names]
            y, new = self._step(frame, states)
            graph = keras.Model([frame, *states], [y, *new], name="convlstm_step")
            cached = (model, graph, ["next_frame", *[f"new_{n}" for n in names]])
            self._graphs["step"] = cached
        return cached[1], cached[2]


# -- test support -------------------------------------------------------------------------------
TINY_OVERRIDES = {
    "model": {"patch_size": 4, "filters": 4, "num_layers": 1, "kernel_size": 3},
    "data": {"image_size": 16, "input_frames": 3, "output_frames": 2, "train_sequences": 8,
             "val_sequences": 4, "dev_sequences": 4},
    "training": {"epochs": 1, "batch_size": 4, "warmup_steps": 0,
                 "early_stopping_patience": 0},
}


def synthetic_dataset(directory: str | Path, n: int = 24, seed: int = 0) -> Path:
    """``n`` sequences of a 4x4 square moving one pixel right per frame on a 16x16 canvas
    (``[N, 5, 16, 16]`` uint8 .npy): the next frame is always learnable."""
    rng = np.random.default_rng(seed)
    seqs = np.zeros((n, 5, 16, 16), np.uint8)
    for i in range(n):
        top, left = rng.integers(0, 12), rng.integers(0, 7)
        for t in range(5):
            seqs[i, t, top:top + 4, left + t:left + t + 4] = 255
    path = Path(directory) / "synthetic_frames.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, seqs)
    return path
