"""The gradient diagnostics during training (``diagnose_every``): a Keras callback that counts
gradient norms and clipping inside the train step and probes the temporal profile every N
steps, into ``RUN/diagnostics.json`` and ``RUN/diagnostics.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.diagnostics.measure import (
    DIAGNOSTICS_FILE,
    DIAGNOSTICS_PLOT,
    layer_norms,
    probe_batch,
    temporal_profile,
)
from rnnzoo.diagnostics.plots import plot_training
from rnnzoo.errors import DataError
from rnnzoo.io import atomic_write_text, read_json


def _log(msg: str) -> None:
    print(f"rnnzoo: {msg}", flush=True)


# -- during training ----------------------------------------------------------------------------
def training_callback(task: Any, dataset: Any, run_dir: Path, every: int, clipnorm: float,
                      seed: int, strategy: Any = None, probe_size: int = 32) -> Any:
    """The Keras callback behind ``diagnose_every``; None (with a note) under a distribution
    strategy, where the probe would run on one replica's copy only."""
    if strategy is not None:
        _log("diagnostics are single-process: off under a tf.distribute strategy")
        return None
    import keras
    import tensorflow as tf

    x, y, w = probe_batch(task, dataset, probe_size, seed)
    path = run_dir / DIAGNOSTICS_FILE

    class Diagnostics(keras.callbacks.Callback):
        """Counts in TensorFlow variables on every step (inside the compiled train step, by
        wrapping the optimizer's clipping), reads and resets them every ``every`` steps."""

        def on_train_begin(self, logs: dict | None = None) -> None:
            opt = self.model.optimizer
            opt = getattr(opt, "inner_optimizer", opt)
            self.names = [v.path for v in self.model.trainable_variables]
            n = max(1, len(self.names))
            self.stats = {k: tf.Variable(0.0, trainable=False, dtype=tf.float32)
                          for k in ("steps", "clipped", "norm_sum", "norm_max", "scale_sum")}
            self.last_sq = tf.Variable(tf.zeros([n]), trainable=False)
            stats, last_sq, original = self.stats, self.last_sq, opt._clip_gradients

            def clip(grads: list) -> list:
                squares = [tf.zeros([]) if g is None else tf.reduce_sum(tf.square(
                    tf.cast(getattr(g, "values", g), tf.float32))) for g in grads]
                norm = tf.sqrt(tf.add_n(squares)) if squares else tf.zeros([])
                fired = tf.cast(norm > clipnorm, tf.float32) if clipnorm else tf.zeros([])
                scale = tf.minimum(1.0, clipnorm / tf.maximum(norm, 1e-12)) if clipnorm \
                    else tf.ones([])
                stats["steps"].assign_add(1.0)
                stats["clipped"].assign_add(fired)
                stats["norm_sum"].assign_add(norm)
                stats["norm_max"].assign(tf.maximum(stats["norm_max"], norm))
                stats["scale_sum"].assign_add(scale)
                if len(squares) == len(self.names):
                    last_sq.assign(tf.stack(squares))
                return original(grads)

            opt.__dict__["_clip_gradients"] = clip
            self._opt = opt
            # A resumed run continues its step count from the epochs already done (whether or
            # not the backup restored the optimizer's own counter).
            epochs_done = int(getattr(self.model, "_initial_epoch", 0) or 0)
            done = epochs_done * int((self.params or {}).get("steps") or 0)
            self.base = max(0, done - int(opt.iterations.numpy()))
            self.records = self._previous()
            if not self.records:
                self._probe()

        def _previous(self) -> list:
            """Records of an interrupted run up to the step it resumes from."""
            if not path.is_file():
                return []
            try:
                old = read_json(path, DataError, "")
                step = self._step()
                return [r for r in old.get("records", []) if r.get("step", 1e18) <= step]
            except (DataError, AttributeError, TypeError, ValueError):
                return []

        def _step(self) -> int:
            return self.base + int(self._opt.iterations.numpy())

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if self._step() % every == 0:
                self._probe()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self._write(plot=True)

        def on_train_end(self, logs: dict | None = None) -> None:
            self._opt.__dict__.pop("_clip_gradients", None)
            self._write(plot=True)

        def _probe(self) -> None:
            s = {k: float(v.numpy()) for k, v in self.stats.items()}
            for v in self.stats.values():
                v.assign(0.0)
            measured = temporal_profile(task, x, y, w)
            steps = max(s["steps"], 1.0)
            record = {
                "step": self._step(),
                "window_steps": int(s["steps"]),
                "grad_norm_mean": s["norm_sum"] / steps if s["steps"] else None,
                "grad_norm_max": s["norm_max"] if s["steps"] else None,
                "clip_fraction": s["clipped"] / steps if s["steps"] else None,
                "clip_scale_mean": s["scale_sum"] / steps if s["steps"] else None,
                "layer_grad_norms": (layer_norms(self.names, self.last_sq.numpy().tolist())
                                     if s["steps"] else {}),
                "probe_loss": measured["loss"],
                "profiles": {k: v["profile"] for k, v in measured["layers"].items()},
            }
            self.records.append(record)
            self._write(plot=False)

        def _write(self, plot: bool) -> None:
            content = {"entry": task.name, "every": every, "clipnorm": clipnorm,
                       "probe_examples": int(np.asarray(y).shape[0]),
                       "records": self.records}
            atomic_write_text(path, json.dumps(content) + "\n")
            if plot and self.records:
                plot_training(content, run_dir / DIAGNOSTICS_PLOT)

    return Diagnostics()
