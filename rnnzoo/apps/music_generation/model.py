"""Music generation, the Keras side: polyphonic piano-roll models trained frame by frame.

Teacher forcing on windows of at most ``max_length`` frames (the input of frame t is frame t-1,
the all-zero start frame for t = 0), 88 independent sigmoids per frame (or, for a family with
``frame_distribution = "nade"``, 88 key-by-key conditionals, the frame's keys fed as
``targets``) under the frame NLL loss (``rnnzoo.layers.losses.FrameNLL``), optional random
transposition per epoch. Export writes the
``model`` graph (scoring) and the one-step ``decoder`` graph (generation), plus for a NADE the
``nade`` graph (its weights ``W``, ``V``, read once by the key-by-key sampler). A family implements
``build_model`` and ``step_graph()``. TensorFlow and Keras are imported inside the functions
that need them.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.music_generation import cli
from rnnzoo.apps.music_generation.data import (
    ASSET_FILE,
    LOWEST_PITCH,
    NUM_KEYS,
    MusicData,
    MusicPreprocessor,
    load_music,
)
from rnnzoo.apps.music_generation.inference import _MusicGenerator
from rnnzoo.apps.music_generation.nade import NADE_FILE
from rnnzoo.config import EntryConfig
from rnnzoo.engines.decoding import GraphRunner
from rnnzoo.engines.primed import held_out, int8_gate, int8_report
from rnnzoo.errors import DataError
from rnnzoo.export.bundle import DECODER_FILE, MODEL_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task


class MusicGenerationTask(_MusicGenerator, Task):
    """Keras side of a music generator; a family adds ``build_model`` and ``step_graph``."""

    task_type = "music-generation"
    metric_directions = {"loss": "min", "nll": "min"}
    #: ``"independent"``: 88 sigmoids per frame; ``"nade"``: the keys of a frame key by key
    #: (``rnnzoo.apps.music_generation.nade``), the ``model`` graph then also takes the frame's
    #: keys as ``targets`` and the decoder's ``logits`` are the NADE biases ``[b_v | b_h]``.
    frame_distribution = "independent"

    @abc.abstractmethod
    def step_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)`` of one step: inputs ``frame`` (int32 ``[B, 88]``)
        and the states ``state_<i>``; outputs ``logits`` and ``new_state_<i>``."""

    def new_preprocessor(self) -> MusicPreprocessor:
        return MusicPreprocessor(self.config.data.steps_per_quarter, self.config.data.program)

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / ASSET_FILE, self.preprocessor.to_json() + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> MusicPreprocessor:
        return MusicPreprocessor(config.data.steps_per_quarter, config.data.program)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        roll = (rng.random((batch_size, 9, NUM_KEYS)) < 0.05).astype(np.float32)
        x = np.concatenate([np.zeros((batch_size, 1, NUM_KEYS), np.float32), roll[:, :-1]], 1)
        lengths = rng.integers(1, 10, size=batch_size)
        lengths[0] = 9
        if batch_size > 1:
            lengths[1] = 1
        pad = np.arange(9)[None, :] >= lengths[:, None]
        x[pad] = 0.0
        if self.frame_distribution == "nade":  # the keys of each frame are an input too
            keys = roll.astype(np.int32)
            roll[pad] = -1.0
            return (x, keys), roll
        roll[pad] = -1.0  # padding targets: ignored by the loss
        return x, roll

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> MusicData:
        return load_music(path, self.config.data, seed)

    def adapt(self, data: MusicData) -> None:
        """Nothing to fit: a roll has no vocabulary."""
        if not data.train:
            raise DataError(f"{data.description}: no training pieces")

    def windows(self, pieces: Sequence[np.ndarray]) -> tuple[list, list]:
        """Teacher-forcing ``(inputs, targets)`` per window of at most ``max_length`` frames:
        the input of frame t is frame t-1 (the start frame for t = 0)."""
        limit = self.config.data.max_length
        xs, ys = [], []
        for roll in pieces:
            shifted = np.concatenate([np.zeros((1, NUM_KEYS), np.uint8), roll[:-1]])
            for s in range(0, len(roll), limit):
                xs.append(shifted[s:s + limit])
                ys.append(roll[s:s + limit])
        return xs, ys

    def datasets(self, data: MusicData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        if not data.train:
            raise DataError(f"{data.description}: no training pieces")
        kw = {"batch_size": batch_size, "max_length": self.config.data.max_length,
              "bucketing": bucketing, "fixed_length": fixed_length}
        xs, ys = self.windows(data.train)
        train, steps = frame_dataset(xs, ys, shuffle=True, seed=seed,
                                     transpose=self.config.data.transpose, **kw)
        dev = frame_dataset(*self.windows(data.dev), **kw)[0] if data.dev else None
        if self.frame_distribution == "nade":  # teacher forcing over the keys of each frame
            import tensorflow as tf

            train, dev = (None if ds is None else ds.map(lambda x, y: ((x, tf.cast(y, tf.int32)),
                                                                       y))
                          for ds in (train, dev))
        return train, dev, steps

    def loss(self) -> Any:
        from rnnzoo.layers.losses import FrameNLL

        return FrameNLL()

    # -- inference and evaluation ---------------------------------------------------------------
    def _runner(self) -> GraphRunner:
        return self.keras_graphs()

    def _state_sizes(self) -> dict[str, int]:
        spec = {s.name: s for s in self._graph_specs()}["decoder"]
        return {i.name: int(i.shape[1]) for i in spec.inputs if i.kind == "state"}

    # -- export ---------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
        step, step_outputs = self.step_graph()
        frames = [InputSpec("frames", "features", ("batch", "time", NUM_KEYS))]
        if self.frame_distribution == "nade":
            # int32 keys (0/1; random features cast to int32 give 0 and +-1 for parity)
            frames.append(InputSpec("targets", "features", ("batch", "time", NUM_KEYS), "int32"))
        # int32 multi-hot; random features cast to int32 give a mix of 0 and +-1 for parity.
        inputs = [InputSpec("frame", "features", ("batch", NUM_KEYS), "int32")]
        inputs += [InputSpec(t.name, "state", ("batch", int(t.shape[-1])))
                   for t in step.inputs[1:]]
        specs = [
            GraphSpec("model", MODEL_FILE, self.model, frames, ["logits"]),
            GraphSpec("decoder", DECODER_FILE, step, inputs, step_outputs,
                      sizes=({"batch": 1}, {"batch": 6}, {"batch": 2})),
        ]
        if self.frame_distribution == "nade":  # the NADE's weights, read once by the sampler
            keys = InputSpec("keys", "tokens", ("keys",), "int32", NUM_KEYS)
            specs.append(GraphSpec("nade", NADE_FILE, self.nade_graph(), [keys], ["W", "V"],
                                   expect_recurrent=False,
                                   sizes=({"keys": 1}, {"keys": 6}, {"keys": 2})))
        return specs

    def _export_preprocessing(self) -> dict:
        out = {"music": f"assets/{ASSET_FILE}", "num_keys": NUM_KEYS,
               "lowest_pitch": LOWEST_PITCH, "start_frame": "zeros",
               "steps_per_quarter": self.preprocessor.steps_per_quarter,
               "program": self.preprocessor.program}
        if self.frame_distribution == "nade":
            out["frame_distribution"] = "nade"
        return out

    def _stream_manifest(self) -> dict:
        """Facts for ``bundle.json``'s ``stream`` (rnnzoo.export.streamspec): a piece starts
        from the all-zero frame, and each logit is one key's own sigmoid (not a softmax); for a
        NADE model the logits are the NADE's biases, sampled key by key."""
        if self.frame_distribution == "nade":
            return {"decoder": {
                "start": {"input": "frame", "feed": "zeros",
                          "note": "from the initial state, feed the all-zero start frame, then "
                                  "each frame (multi-hot, 1 = key held)"},
                "keys": {"input": "frame", "output": "logits", "count": NUM_KEYS,
                         "lowest_pitch": LOWEST_PITCH, "activation": "nade",
                         "weights": "graph nade: keys [n] (0..87) -> rows W, V [n, H]",
                         "note": "logits = [b_v (88) | b_h (H)]: the NADE biases of the next "
                                 "frame; with W, V [88, H] from the nade graph, key k "
                                 "(MIDI lowest_pitch + k, lowest first) is on with probability "
                                 "sigmoid(b_v[k] + V[k] . sigmoid(b_h + sum_{j<k} v_j W[j]))"},
            }}
        return {"decoder": {
            "start": {"input": "frame", "feed": "zeros",
                      "note": "from the initial state, feed the all-zero start frame, then "
                              "each frame (multi-hot, 1 = key held)"},
            "keys": {"input": "frame", "output": "logits", "count": NUM_KEYS,
                     "lowest_pitch": LOWEST_PITCH, "activation": "sigmoid",
                     "note": "position k is MIDI pitch lowest_pitch + k; sigmoid(logit) is the "
                             "probability that the key is held in the next frame"},
        }}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes the model: frame NLL of both (on ``eval_data``'s test split
        when given, else on random sparse rolls) and the largest probability drift."""
        pieces = held_out(self, eval_data, 50)
        if pieces is None:
            rng = np.random.default_rng(0)
            pieces = [(rng.random((n, NUM_KEYS)) < 0.05).astype(np.uint8) for n in (17, 9, 1)]
        a, b = reference.nll(pieces), candidate.nll(pieces)
        drift = max(float(np.abs(reference.frame_probabilities(p)
                                 - candidate.frame_probabilities(p)).max()) for p in pieces[:5])
        return int8_report("nll", "frame NLL", a["nll"], b["nll"], drift,
                           ("pieces", len(pieces), "pieces"))

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when its frame NLL is at most 0.5% above fp32's."""
        return int8_gate(comparison, "nll", "frame NLL", cli.INT8_TOLERANCE["relative"])


def transpose_ranges(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray],
                     transpose: int) -> np.ndarray:
    """``[n, 2]`` lowest and highest semitone shift of each window that keeps every note of
    its inputs and targets on the keyboard, within ``[-transpose, transpose]``."""
    out = np.zeros((len(xs), 2), np.int32)
    for i, (x, y) in enumerate(zip(xs, ys)):
        keys = np.flatnonzero(np.asarray(x).any(0) | np.asarray(y).any(0))
        if keys.size:
            out[i] = (max(-transpose, -int(keys[0])), min(transpose, NUM_KEYS - 1 - int(keys[-1])))
    return out


def frame_dataset(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], batch_size: int,
                  max_length: int, shuffle: bool = False, seed: int = 0, bucketing: bool = True,
                  fixed_length: bool = False, transpose: int = 0) -> tuple[Any, int]:
    """``(tf.data of (frames [B, T, 88] float32, targets [B, T, 88] with -1 at padding),
    batches per epoch)``, post-padded, bucketed by length like the token pipelines;
    ``transpose`` shifts each window by a fresh random number of semitones per epoch."""
    import tensorflow as tf

    from rnnzoo.data.pipeline import count_batches, dataset_rows, finish_dataset, padded_batches

    lengths = np.array([len(x) for x in xs], dtype=np.int64)
    width = int(lengths.max())
    x_arr = np.zeros((len(xs), width, NUM_KEYS), np.uint8)
    y_arr = np.zeros((len(xs), width, NUM_KEYS), np.uint8)
    for i, (x, y) in enumerate(zip(xs, ys)):
        x_arr[i, : len(x)], y_arr[i, : len(y)] = x, y
    ranges = transpose_ranges(xs, ys, transpose)
    ds = dataset_rows((x_arr, y_arr, lengths, ranges), shuffle, seed)

    # A generator whose state advances across elements and epochs (a seeded stateless op in a
    # map function would draw the same shift every time).
    rng = tf.random.Generator.from_seed(seed) if transpose else None

    def window(x: Any, y: Any, n: Any, shifts: Any) -> tuple[Any, Any]:
        x, y = tf.cast(x[:n], tf.float32), tf.cast(y[:n], tf.float32)
        if rng is not None:  # a roll along the keys: no note wraps, the range was checked
            k = rng.uniform([], shifts[0], shifts[1] + 1, dtype=tf.int32)
            x, y = tf.roll(x, k, axis=1), tf.roll(y, k, axis=1)
        return x, y

    ds = ds.map(window)
    bucketed = bucketing and not fixed_length
    shape = [max_length if fixed_length else None, NUM_KEYS]
    ds = padded_batches(ds, batch_size, (shape, shape), lambda x, y: tf.shape(x)[0],
                        max_length if bucketed else None,
                        padding_values=(tf.constant(0.0), tf.constant(-1.0)))
    n_batches = count_batches(lengths, batch_size, max_length, bucketing, fixed_length)
    return finish_dataset(ds, n_batches), n_batches


TASK_CLASS = MusicGenerationTask
