"""Video prediction, the Keras side (``TASK_CLASS``): frame predictors trained on sequences.

A family's training model maps ``frames [B, T, H, W, C]`` (floats in [0, 1]) to its
predictions of frames 2..T (the first ``input_frames`` read from the data, the rest fed back
from its own predictions), trained under MSE against the true next frames; its ``step_graph``
(one frame and the states -> the next frame and the states) is the exported graph and the one
``predict_frames``/``evaluate`` drive on both backends. Training sequences come from the data
object (generated Moving MNIST: a new stream each epoch). TensorFlow is imported inside
functions only.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.video_prediction import cli
from rnnzoo.apps.video_prediction.data import VideoData, load_video_data
from rnnzoo.apps.video_prediction.inference import (
    ASSET_FILE,
    STEP_FILE,
    STREAM_GRAPH,
    _VideoPredictor,
)
from rnnzoo.config import EntryConfig
from rnnzoo.errors import DataError
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task

#: Validation sequences on which int8 is compared with fp32.
INT8_SEQUENCES = 64
#: Validation sequences (after those) whose step inputs calibrate the static int8 step.
CALIBRATION_SEQUENCES = 16


class VideoGeometry:
    """The frame geometry a model was trained on (saved as ``assets/video.json``); nothing to
    fit, so it is always fitted."""

    is_fitted = True

    def __init__(self, facts: Mapping[str, Any]) -> None:
        self.facts = dict(facts)

    def to_json(self) -> str:
        return json.dumps(self.facts, indent=1)


class VideoPredictionTask(_VideoPredictor, Task):
    """Keras side of a frame predictor; a family adds ``build_model`` and ``step_graph``."""

    task_type = "video-prediction"
    variable_length = False
    metric_directions = {"loss": "min", "mse_per_frame": "min", "mae_per_frame": "min",
                         "ssim": "max"}
    head_layers = ("frame_out",)

    @abc.abstractmethod
    def step_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)``: ``frame [B, H, W, C]`` and ``state_<i>`` ->
        ``next_frame`` and ``new_state_<i>``."""

    @abc.abstractmethod
    def state_shape(self) -> tuple[int, ...]:
        """The shape of one state without the batch axis."""

    def _facts(self) -> dict[str, Any]:
        d = self.config.data
        return {"image_size": d.image_size, "channels": d.channels,
                "input_frames": d.input_frames, "output_frames": d.output_frames}

    def new_preprocessor(self) -> VideoGeometry:
        return VideoGeometry(self._facts())

    def save_assets(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / ASSET_FILE, self.preprocessor.to_json() + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> VideoGeometry:
        from rnnzoo.errors import RunDirError
        from rnnzoo.io import read_json

        facts = read_json(directory / ASSET_FILE, RunDirError, "re-save the model")
        return VideoGeometry(facts)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        d = self.config.data
        rng = np.random.default_rng(seed)
        x = rng.random((batch_size, d.frames, d.image_size, d.image_size, d.channels))
        x = x.astype(np.float32)
        return x, x[:, 1:].copy()

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> VideoData:
        return load_video_data(path, self.config.data)

    def limit_data(self, data: VideoData, limit: int, seed: int = 0) -> VideoData:
        """At most ``limit`` sequences per split (and per generated epoch)."""
        import dataclasses

        return dataclasses.replace(
            data, train=data.train[:limit], dev=data.dev[:limit],
            train_per_epoch=min(data.train_per_epoch, limit),
            description=f"{data.description} (at most {limit} sequences per split)")

    def adapt(self, data: VideoData) -> None:
        """Nothing to fit (pixels are divided by 255)."""

    def datasets(self, data: VideoData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        import tensorflow as tf

        d = self.config.data
        if data.num_train == 0:
            raise DataError(f"{data.description}: no training sequence")
        frames = d.frames
        shape = (None, frames, d.image_size, d.image_size, d.channels)
        epoch = [0]

        def train() -> Any:
            epoch[0] += 1
            for b in data.train_batches(batch_size, seed, epoch[0]):
                if fixed_length and len(b) < batch_size:
                    continue
                yield b[:, :frames]

        def pairs(ds: Any) -> Any:
            def cast(b: Any) -> Any:
                x = tf.cast(b, tf.float32) / 255.0
                return x, x[:, 1:]
            return ds.map(cast)

        spec = tf.TensorSpec(shape, tf.uint8)
        steps = (data.num_train // batch_size if fixed_length
                 else -(-data.num_train // batch_size))
        train_ds = tf.data.Dataset.from_generator(train, output_signature=spec)
        train_ds = pairs(train_ds.apply(tf.data.experimental.assert_cardinality(max(1, steps))))
        dev = None
        if data.num_dev:
            dev_seqs = data.dev[:d.dev_sequences, :frames]
            dev = pairs(tf.data.Dataset.from_tensor_slices(dev_seqs).batch(32))
        return train_ds.prefetch(2), dev, max(1, steps)

    def loss(self) -> Any:
        import keras

        w = float(getattr(self.config.model, "l1_weight", 0.0))
        if not w:
            return keras.losses.MeanSquaredError()

        def mse_l1(y_true: Any, y_pred: Any) -> Any:
            d = y_pred - y_true
            return keras.ops.mean(d * d) + w * keras.ops.mean(keras.ops.abs(d))

        return mse_l1

    # -- inference ------------------------------------------------------------------------------
    def _video_facts(self) -> dict[str, Any]:
        facts = self._facts()
        _, outputs = self.step_graph()
        names = [n[len("new_"):] for n in outputs[1:]]
        facts["state_shapes"] = {n: tuple(self.state_shape()) for n in names}
        return facts

    def _step_fn(self) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
        self.require_fitted()
        graphs = self.keras_graphs()
        return lambda feeds: graphs.run(STREAM_GRAPH, feeds)

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
        d = self.config.data
        step, outputs = self.step_graph()
        frame = InputSpec("frame", "features", ("batch", d.image_size, d.image_size,
                                                d.channels))
        states = [InputSpec(t.name, "state", ("batch", *self.state_shape()))
                  for t in step.inputs[1:]]
        return [GraphSpec(STREAM_GRAPH, STEP_FILE, step, [frame, *states], outputs,
                          expect_recurrent=False,
                          sizes=({"batch": 1}, {"batch": 4}, {"batch": 2}))]

    def _export_preprocessing(self) -> dict:
        return {**self._facts(), "video": f"assets/{ASSET_FILE}", "pixels": "uint8 / 255",
                "loop": (f"read input_frames frames through {STEP_FILE} from zero states, then "
                         "feed each next_frame back as the next frame")}

    def _stream_manifest(self) -> dict:
        return {STREAM_GRAPH: {"note": "feed one frame [B, H, W, C] in [0, 1]; next_frame is "
                               "the predicted following frame; feed it back to continue"}}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """MSE/frame of both on the first ``INT8_SEQUENCES`` validation sequences of
        ``eval_data`` (else on random frames: the largest pixel drift)."""
        if eval_data is not None:
            seqs = self.load_data(eval_data, self.config.training.seed).split("dev")
            seqs = seqs[:INT8_SEQUENCES]
            a = reference.evaluate(seqs, with_ssim=False)["mse_per_frame"]
            b = candidate.evaluate(seqs, with_ssim=False)["mse_per_frame"]
            return {"sequences": len(seqs), "mse_per_frame_fp32": a, "mse_per_frame_int8": b,
                    "summary": f"MSE/frame fp32 {a:.2f} -> int8 {b:.2f} on {len(seqs)} "
                               "validation sequences"}
        d = self.config.data
        x = np.random.default_rng(0).random((4, d.input_frames, d.image_size, d.image_size,
                                             d.channels)).astype(np.float32)
        drift = float(np.abs(reference.predict_frames(x, steps=d.output_frames)
                             - candidate.predict_frames(x, steps=d.output_frames)).max())
        return {"max_pixel_drift": drift,
                "summary": f"max pixel drift {drift:.4f} on 4 random sequences"}

    def _calibration_run(self, runtime: Any, eval_data: Any = None) -> bool:
        """Roll the fp32 step over validation sequences not used by ``_compare_runtimes``
        (the first ones when there are too few): the step is three convolutions, which
        onnxruntime runs about 3x faster as static int8 (QLinearConv) and 3x slower as
        dynamic int8 (ConvInteger)."""
        if eval_data is None:
            return False
        seqs = self.load_data(eval_data, self.config.training.seed).split("dev")
        rest = seqs[INT8_SEQUENCES:INT8_SEQUENCES + CALIBRATION_SEQUENCES]
        seqs = rest if len(rest) else seqs[:CALIBRATION_SEQUENCES]
        d = self.config.data
        runtime.predict_frames(seqs[:, :d.input_frames], steps=d.output_frames)
        return True

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        a, b = comparison.get("mse_per_frame_fp32"), comparison.get("mse_per_frame_int8")
        if a is None or b is None:
            return "int8 not compared on validation sequences (give eval data)"
        allowed = cli.INT8_TOLERANCE["relative"]
        if b > a * (1 + allowed):
            return f"int8 MSE/frame {b:.2f} more than {allowed:.0%} above fp32's {a:.2f}"
        return None


TASK_CLASS = VideoPredictionTask
