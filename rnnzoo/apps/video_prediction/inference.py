"""Video-prediction inference: ``predict_frames``, ``evaluate`` and the per-frame stream, written
once over both backends, and the onnxruntime model (``RUNTIME_CLASS``). TF-free.

ConvLSTM has no ONNX operator, so the bundle holds the per-frame step as a graph (``step``:
``frame [B, H, W, C]`` in [0, 1] and the states ``state_<i>`` ``[B, h, w, filters]`` ->
``next_frame`` and ``new_state_<i>``, built from Conv and the gate arithmetic), and the
10-in / 10-out loop runs here in numpy: read the given frames from the zero state, then feed
each prediction back as the next input. Keras runs the same loop over the same step (its
``tf.function``), so both backends compute the same thing by construction.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rnnzoo import limits
from rnnzoo.apps.video_prediction.data import baselines, frame_metrics, summarize
from rnnzoo.engines.stream import Stream
from rnnzoo.errors import DataError, short_repr
from rnnzoo.export.bundle import BundleRuntime
from rnnzoo.progress import model_label, reporting

STREAM_GRAPH = "step"
STEP_FILE = "step_model.onnx"
ASSET_FILE = "video.json"
EVAL_BATCH = 32  # sequences per step call when evaluating


def _frames_array(frames: Any, size: int, channels: int, where: str = "frames"
                  ) -> tuple[np.ndarray, bool]:
    """``([N, T, H, W, C] float32 in [0, 1], was one sequence)`` from uint8 (0-255) or float
    (0-1) frames shaped ``[T, H, W]``, ``[T, H, W, C]``, ``[N, T, H, W]`` or
    ``[N, T, H, W, C]``."""
    try:
        a = np.asarray(frames)
    except (ValueError, TypeError):
        raise DataError(f"{where}: expected an array of frames, found {short_repr(frames)}"
                        ) from None
    expected = (f"expected [T, H, W], [T, H, W, C], [N, T, H, W] or [N, T, H, W, C] with "
                f"H = W = {size}, C = {channels}, uint8 0-255 or floats in [0, 1]")
    if a.dtype == object or not (a.dtype == np.uint8 or np.issubdtype(a.dtype, np.floating)
                                 or np.issubdtype(a.dtype, np.integer)):
        raise DataError(f"{where}: found dtype {a.dtype}; {expected}")
    single = False
    if a.ndim == 3 or (a.ndim == 4 and a.shape[1:] == (size, size, channels)):
        a, single = a[None], True
    if a.ndim == 4:
        a = a[..., None] if channels == 1 else a
    if a.ndim != 5 or a.shape[2:] != (size, size, channels):
        raise DataError(f"{where}: found shape {list(np.shape(frames))}; {expected}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{where}: no frames (shape {list(np.shape(frames))}); {expected}")
    limits.check("max_video_frames", a.shape[0] * a.shape[1], f"{where}: frames")
    if a.dtype == np.uint8 or np.issubdtype(a.dtype, np.integer):
        if a.min() < 0 or a.max() > 255:
            raise DataError(f"{where}: integer frames must lie in 0..255")
        return a.astype(np.float32) / 255.0, single
    a = a.astype(np.float32)
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise DataError(f"{where}: float frames must be finite and in [0, 1] (uint8 frames "
                        "are divided by 255)")
    return a, single


def _check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise DataError(f"steps: expected an integer >= 1 (frames to predict), found "
                        f"{short_repr(steps)}")
    limits.check("max_generation_steps", int(steps), "steps: frames to predict")
    return int(steps)


class _VideoPredictor(abc.ABC):
    """The user calls over a backend's step: subclasses give ``_step_fn()`` (feeds -> outputs)
    and ``_video_facts()`` (image size, channels, frames in/out, state shapes)."""

    @abc.abstractmethod
    def _step_fn(self) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
        """The backend's one-frame step (Keras graph or ONNX session)."""

    @abc.abstractmethod
    def _video_facts(self) -> dict[str, Any]:
        """Image size, channels, frames in/out and state shapes, from the config or bundle."""

    # -- the loop -------------------------------------------------------------------------------
    def _zero_state(self, batch: int) -> dict[str, np.ndarray]:
        shapes = self._video_facts()["state_shapes"]
        return {n: np.zeros((batch, *s), np.float32) for n, s in shapes.items()}

    def _rollout(self, context: np.ndarray, steps: int,
                 state: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """``[B, T, H, W, C]`` context in [0, 1] -> ``[B, steps, H, W, C]`` predictions: the
        context read from ``state`` (zeros), then each prediction fed back."""
        run = self._step_fn()
        state = self._zero_state(len(context)) if state is None else state
        preds = []
        y = None
        for t in range(context.shape[1]):
            y, state = self._one(run, context[:, t], state)
        for _ in range(steps):
            preds.append(y)
            if len(preds) < steps:
                y, state = self._one(run, y, state)
        return np.stack(preds, axis=1)

    @staticmethod
    def _one(run: Callable, frame: np.ndarray, state: dict[str, np.ndarray]
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        out = run({"frame": np.ascontiguousarray(frame, np.float32), **state})
        return out["next_frame"], {n: out[f"new_{n}"] for n in state}

    # -- user calls -----------------------------------------------------------------------------
    def predict_frames(self, frames: Any, steps: int = 10, batch_size: int = 16) -> np.ndarray:
        """The ``steps`` frames that follow ``frames`` (uint8 0-255 or floats in [0, 1];
        ``[T, H, W(, C)]`` for one sequence or ``[N, T, H, W(, C)]``), as floats in [0, 1]
        shaped like the input (``[steps, H, W]`` for a ``[T, H, W]`` input). Every given frame
        is read as context; the model was trained on ``input_frames`` of them."""
        f = self._video_facts()
        steps = _check_steps(steps)
        x, single = _frames_array(frames, f["image_size"], f["channels"])
        batch_size = max(1, min(int(batch_size), limits.current().max_batch_size))
        out = np.concatenate([self._rollout(x[i:i + batch_size], steps)
                              for i in range(0, len(x), batch_size)])
        if np.ndim(frames) in (3, 4) and f["channels"] == 1 and np.shape(frames)[-1] != 1:
            out = out[..., 0]
        return out[0] if single else out

    def evaluate(self, sequences: Any, batch_size: int = EVAL_BATCH, with_ssim: bool = True,
                 with_baselines: bool = False, progress: Any = False) -> dict[str, Any]:
        """Scores on ``sequences`` ``[N, T, H, W(, C)]`` (T >= input + output frames): the first
        ``input_frames`` are read, the next ``output_frames`` predicted. ``mse_per_frame`` /
        ``mae_per_frame``: squared / absolute error summed over a frame's pixels (in [0, 1]),
        averaged over predicted frames and sequences (the Moving MNIST tables); ``ssim``; the
        per-step curves; with ``with_baselines`` the all-black and copy-last predictors on the
        same frames."""
        f = self._video_facts()
        n_in, n_out = f["input_frames"], f["output_frames"]
        x, _ = _frames_array(sequences, f["image_size"], f["channels"], "sequences")
        if x.ndim != 5 or x.shape[1] < n_in + n_out:
            raise DataError(f"sequences: {x.shape[1]} frames; expected at least {n_in + n_out} "
                            f"({n_in} read, {n_out} predicted)")
        per: dict[str, list] = {"se": [], "ae": [], "ssim": []}
        with reporting(progress, model_label(self, "evaluate"), len(x), "sequences") as bar:
            for i in range(0, len(x), batch_size):
                seq = x[i:i + batch_size]
                pred = self._rollout(seq[:, :n_in], n_out)
                m = frame_metrics(pred, seq[:, n_in:n_in + n_out], with_ssim)
                for k, v in m.items():
                    per[k].append(v)
                bar.update(len(seq))
        report = summarize(per)
        if with_baselines:
            u8 = np.round(x * 255).astype(np.uint8)
            report["baselines"] = {k: {m: v[m] for m in ("mse_per_frame", "mae_per_frame",
                                                           "ssim")}
                                   for k, v in baselines(u8, n_in, n_out).items()}
        return report

    # -- streaming ------------------------------------------------------------------------------
    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """The zero state of ``batch`` streams: ``state_<i>`` ``[batch, h, w, filters]``."""
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise DataError(f"batch: expected an integer >= 1, found {short_repr(batch)}")
        limits.check("max_batch_size", int(batch), "batch: streams")
        return self._zero_state(int(batch))

    def step(self, frame: Any, state: Mapping[str, Any]) -> tuple[np.ndarray, dict]:
        """Feed one frame per stream (``[B, H, W(, C)]``, or ``[H, W(, C)]`` for one stream)
        from ``state``: ``(the predicted next frame [B, H, W, C] in [0, 1], the new state)``."""
        f = self._video_facts()
        zero = self._zero_state(1)
        if not isinstance(state, Mapping) or set(state) != set(zero):
            raise DataError(f"step: state must be a dict with keys {sorted(zero)} (from "
                            "initial_state)")
        size, channels = f["image_size"], f["channels"]
        a = np.asarray(frame)
        if a.ndim == 2 or (a.ndim == 3 and a.shape == (size, size, channels)):
            a = a[None]  # one stream
        if a.ndim == 3 and channels == 1:
            a = a[..., None]
        x, _ = _frames_array(a[:, None] if a.ndim == 4 else a, size, channels, "frame")
        batch = len(x)
        feeds = {}
        for n, z in zero.items():
            v = np.asarray(state[n], np.float32)
            if v.shape != (batch, *z.shape[1:]):
                raise DataError(f"step: state[{n!r}] must have shape {[batch, *z.shape[1:]]}, "
                                f"found {list(v.shape)}")
            feeds[n] = v
        y, new = self._one(self._step_fn(), x[:, 0], feeds)
        return y, new

    def stream(self, batch: int = 1) -> Stream:
        """A :class:`rnnzoo.engines.stream.Stream`: ``s.step(frame)`` feeds one frame and
        returns the predicted next frame; feeding the prediction back continues the video."""
        return Stream(self.step, self.initial_state(batch))


class VideoPredictorRuntime(_VideoPredictor, BundleRuntime):
    """A frame predictor on onnxruntime: ``predict_frames``, ``evaluate``, ``stream``."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        pre = self.manifest["preprocessing"]
        self._facts = {k: pre[k] for k in ("image_size", "channels", "input_frames",
                                          "output_frames")}
        sess = self.sessions[STREAM_GRAPH]
        self._facts["state_shapes"] = {i.name: tuple(int(d) for d in i.shape[1:])
                                       for i in sess.get_inputs() if i.name != "frame"}

    def _video_facts(self) -> dict[str, Any]:
        return self._facts

    def _step_fn(self) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
        return lambda feeds: self.run(STREAM_GRAPH, feeds)


RUNTIME_CLASS = VideoPredictorRuntime
