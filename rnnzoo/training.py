"""The shared training loop: one ``train()`` for every family, on top of Keras ``fit``.

What it adds to a bare ``fit``: compile defaults from the entry's recipe (optimizer, warmup +
schedule, global-norm gradient clipping), length-bucketed tf.data input, best/last checkpoints
written atomically, early stopping, resume after interruption (``BackupAndRestore``), an optional
``tf.distribute`` strategy, the speed options measured in ``benchmarks/bench_train.py``, and a run
directory:

    config.json  assets/  model.weights.h5  checksums.json     (a loadable model, see rnnzoo.load)
    checkpoints/best.weights.h5  checkpoints/last.weights.h5  checkpoints/best.json
    checkpoints/checksums.json   (sha256 of the checkpoints, updated with each one written)
    history.csv  history.json  training_curve.png  metrics.json  train.log.json
    backup/      (only while a run is unfinished: what a restart resumes from)
    .lock  .lock.json            (held by the process writing the directory)

Interruptions: the directory appears (locked) only once the model builds; a run stopped before
its first backup starts again, one stopped later resumes from ``backup/``, and one killed after
its last epoch writes its missing final files (``checksums.json`` is written last, and
``backup/`` removed after it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from rnnzoo.config import TrainingConfig, validate_config
from rnnzoo.errors import ConfigError, DataError, DistributedError, RunDirError
from rnnzoo.io import (
    LOCK_FILE,
    LOCK_INFO_FILE,
    RUN_DIR_NAMES,
    atomic_write_text,
    check_removable_run_dir,
    empty_directory,
    lock_directory,
    read_json,
    save_figure,
    storage_errors,
)
from rnnzoo.registry import create_model, read_config, task_from_config
from rnnzoo.registry import load as load_task
from rnnzoo.saving import (
    ASSETS_DIR,
    CHECKPOINTS_DIR,
    CHECKSUMS_FILE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    atomic_save_weights,
    record_checkpoint,
    verify_checksums,
    write_checksums,
)
from rnnzoo.task import Task, out_of_memory

BACKUP_DIR = "backup"
BACKUP_METADATA = "training_metadata.json"  # what keras' BackupAndRestore resumes from
FINISHED_MARKER = "finished.json"  # in backup/: training ended, final files being written


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    task: Task
    history: dict[str, list[float]]
    metrics: dict
    epochs_run: int
    resumed_from_epoch: int
    seconds: float


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a callback raising ``KeyboardInterrupt``) stopped ``train``; ``str()`` says
    what is on disk and what running the same command again does."""

    def __init__(self, run_dir: Path, message: str) -> None:
        super().__init__(message)
        self.run_dir = run_dir
        self.message = message

    def __str__(self) -> str:
        return self.message


def _log(msg: str) -> None:
    print(f"rnnzoo: {msg}", flush=True)


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bfloat16 arithmetic (AVX512_BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


_THREAD_WARNING_SHOWN: list[bool] = []  # warn once per process, not on every train() call


def configure_threads(intra_op: int, inter_op: int) -> bool:
    """Set TensorFlow's thread pools; only possible before TensorFlow runs its first op.

    Returns False (with a warning) when it is too late; the CLI calls this first thing.
    """
    import tensorflow as tf

    cur = (tf.config.threading.get_intra_op_parallelism_threads(),
           tf.config.threading.get_inter_op_parallelism_threads())
    if cur == (intra_op, inter_op):
        return True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
        return True
    except RuntimeError:
        if _THREAD_WARNING_SHOWN:
            return False
        _THREAD_WARNING_SHOWN.append(True)
        warnings.warn(
            f"TensorFlow is already initialised; thread settings intra_op={intra_op}, "
            f"inter_op={inter_op} not applied (call rnnzoo.train before other TF work).",
            stacklevel=3,
        )
        return False


def resolve_strategy(strategy: Any) -> Any:
    """None, "mirrored", "multiworker", or a ``tf.distribute.Strategy`` instance.

    "multiworker" reads the cluster from ``TF_CONFIG`` (as TensorFlow does; without it the job
    is a single worker) and must be created before TensorFlow runs its first op. For
    MultiWorkerMirroredStrategy, Keras' trainer is patched (``rnnzoo.distributed``): Keras 3
    ``fit`` fails under it otherwise.
    """
    if strategy is None or strategy == "none":
        return None
    import tensorflow as tf

    from rnnzoo.distributed import apply_keras_multiworker_patch, read_tf_config

    if isinstance(strategy, tf.distribute.Strategy):
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            apply_keras_multiworker_patch()
        return strategy
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if strategy == "multiworker":
        if read_tf_config() is None:
            _log("strategy multiworker without TF_CONFIG: this process is the only worker "
                 "(start workers with `rnnzoo launch` or set TF_CONFIG on every host)")
        apply_keras_multiworker_patch()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as exc:
            raise DistributedError(
                f"cannot start MultiWorkerMirroredStrategy ({exc}); create it before any other "
                "TensorFlow work in the process (the CLI does)"
            ) from None
    raise ConfigError(
        f"strategy: expected None, 'mirrored', 'multiworker' or a tf.distribute.Strategy, "
        f"found {strategy!r}"
    )


def make_optimizer(recipe: TrainingConfig, steps_per_epoch: int) -> Any:
    """Optimizer with linear warmup, the recipe's schedule, and global-norm clipping."""
    import keras

    total = max(1, recipe.epochs * steps_per_epoch)
    warmup = min(recipe.warmup_steps, max(0, total - 1))
    lr: Any = recipe.learning_rate
    if recipe.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else recipe.learning_rate, decay_steps=max(1, total - warmup),
            alpha=0.0, warmup_target=recipe.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    elif recipe.schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(
            recipe.learning_rate, decay_steps=max(1, steps_per_epoch),
            decay_rate=recipe.decay_rate,
        )
    elif warmup:
        lr = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=1, alpha=1.0, warmup_target=recipe.learning_rate,
            warmup_steps=warmup,
        )
    kw: dict[str, Any] = {"learning_rate": lr}
    if recipe.clipnorm:
        kw["global_clipnorm"] = recipe.clipnorm
    if recipe.ema_momentum:
        kw.update(use_ema=True, ema_momentum=recipe.ema_momentum)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(**kw)
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=recipe.weight_decay or 0.004, **kw)
    if recipe.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(**kw)
    return keras.optimizers.SGD(momentum=0.9, nesterov=True, **kw)


def _read_best(path: Path, default: float) -> float:
    """The best monitored value of ``checkpoints/best.json``; a damaged file (a kill while it
    was replaced cannot cause one, an editor can) counts as no best yet."""
    try:
        value = read_json(path, RunDirError, "").get("value")
    except (RunDirError, AttributeError):
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


def _checkpoint_callback(run_dir: Path, monitor: str, mode: str, strategy: Any) -> Any:
    """Best and last weights, written atomically and listed with their sha256 in
    ``checkpoints/checksums.json`` (``--weights`` verifies them); the best score survives a
    restart. ``mode`` ("max"/"min") is the monitored metric's direction, declared by the task
    type."""
    import keras
    import numpy as np

    ckpt_dir = run_dir / CHECKPOINTS_DIR
    best_file = ckpt_dir / "best.json"

    class AtomicCheckpoint(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.mode = mode
            self.best = -np.inf if self.mode == "max" else np.inf
            if best_file.is_file():
                self.best = _read_best(best_file, self.best)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if not _is_chief(strategy):
                return
            written = [ckpt_dir / "last.weights.h5"]
            atomic_save_weights(self.model, written[0])
            value = (logs or {}).get(monitor)
            better = value is not None and (
                value > self.best if self.mode == "max" else value < self.best)
            if better:
                self.best = float(value)
                written.append(ckpt_dir / "best.weights.h5")
                atomic_save_weights(self.model, written[1])
            record_checkpoint(ckpt_dir, *written)
            if better:
                atomic_write_text(best_file, json.dumps(
                    {"monitor": monitor, "value": self.best, "epoch": epoch + 1}))

    return AtomicCheckpoint()


def _backup_callback(backup_dir: Path, save_freq: Any, strategy: Any) -> Any:
    """``BackupAndRestore`` that only the chief writes (atomically) and that resumes every worker.

    One writer: workers sharing a backup file crashed on an HDF5 lock, and non-chief workers must
    not write into the run directory. On a restart the chief restores ``RUN/backup`` and the other
    workers take weights, optimizer state and epoch from it by a collective broadcast, so a worker
    restarted on another machine (with no local state) resumes exactly like the chief.
    ``restored_epoch`` is the number of epochs the run resumed after (0 for a fresh run).
    The backup outlives ``fit``: ``train`` removes it only once the final files are written, so
    a kill between the last epoch and the checksums still leaves a run that resumes.
    """
    import keras

    from rnnzoo.distributed import allgather_numbers, broadcast_from_chief, worker_info

    info = worker_info(strategy)

    class Backup(keras.callbacks.BackupAndRestore):
        restored_epoch = 0

        def on_train_begin(self, logs: dict | None = None) -> None:
            if info.is_chief:
                with storage_errors(backup_dir):
                    super().on_train_begin(logs)
            epoch = int(self.model._initial_epoch or 0)
            if info.multi_worker:
                epoch = int(allgather_numbers(strategy, [epoch])[0][0])  # the chief's
                if epoch:
                    optimizer = self.model.optimizer
                    if not optimizer.built:
                        optimizer.build(self.model.trainable_variables)
                    broadcast_from_chief(strategy, [*self.model.weights, *optimizer.variables])
                self.model._initial_epoch = epoch
            self.restored_epoch = epoch

        def _save_model(self) -> None:
            if not info.is_chief:
                return
            # Weights, then metadata, each replaced atomically: a kill mid-write leaves the
            # previous backup loadable (Keras writes both files in place).
            atomic_save_weights(self.model, self._weights_path)
            atomic_write_text(Path(self._training_metadata_path), json.dumps(
                {"epoch": self._current_epoch, "batch": self._last_batch_seen}))

    return Backup(str(backup_dir), save_freq=save_freq, delete_checkpoint=False)


def _csv_logger(path: Path) -> Any:
    """Keras' ``CSVLogger`` (appending across restarts) whose full-disk or permission errors
    are one ``StorageError`` naming the file."""
    import keras

    class CSVLogger(keras.callbacks.CSVLogger):
        def on_train_begin(self, logs: dict | None = None) -> None:
            with storage_errors(path):
                super().on_train_begin(logs)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            with storage_errors(path):
                super().on_epoch_end(epoch, logs)

    return CSVLogger(str(path), append=True)


def _progress_callback(steps: int, every_seconds: float = 60.0) -> Any:
    """One line per minute in non-interactive runs (logs), where Keras prints only at epoch end."""
    import keras

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch, self.start, self.last = epoch, time.time(), time.time()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            now = time.time()
            if now - self.last >= every_seconds:
                self.last = now
                rate = (batch + 1) / (now - self.start)
                eta = (steps - batch - 1) / max(rate, 1e-9)
                loss = (logs or {}).get("loss")
                loss_text = f", loss {float(loss):.4f}" if loss is not None else ""
                _log(f"epoch {self.epoch + 1} step {batch + 1}/{steps} ({rate:.1f} steps/s, "
                     f"epoch ETA {eta:.0f}s{loss_text})")

    return Progress()


def _is_chief(strategy: Any) -> bool:
    if strategy is None:
        return True
    extended = getattr(strategy, "extended", None)
    return bool(getattr(extended, "should_checkpoint", True))


def _read_history(path: Path) -> dict[str, list[float]]:
    """history.csv (appended across restarts) -> columns, keeping the last row per epoch; a row
    cut short by a kill is skipped."""
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return {}
    header = lines[0].split(",")
    if header[0] != "epoch":
        return {}
    rows: dict[int, list[float]] = {}
    for ln in lines[1:]:
        parts = ln.split(",")
        if parts[0] == "epoch" or len(parts) != len(header):
            continue
        try:
            rows[int(parts[0])] = [float(v) if v not in ("", "nan") else math.nan
                                   for v in parts]
        except ValueError:
            continue
    hist: dict[str, list[float]] = {h: [] for h in header}
    for epoch in sorted(rows):
        for h, v in zip(header, rows[epoch]):
            hist[h].append(v)
    hist["epoch"] = [int(e) + 1 for e in hist["epoch"]]
    return hist


def plot_history(history: dict[str, list[float]], path: Path, title: str) -> None:
    """Loss and metric curves (train and validation) to a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [k for k in history if k not in ("epoch", "learning_rate")
               and not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    epochs = history.get("epoch") or list(range(1, len(next(iter(history.values()))) + 1))
    for ax, key in zip(axes[0], metrics):
        ax.plot(epochs, history[key], "o-", label=f"train {key}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s-", label=f"dev {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    import rnnzoo

    return {"rnnzoo": rnnzoo.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "python": platform.python_version()}


def _listing(run_dir: Path) -> set[str]:
    """Names in ``run_dir`` less the lock files and hidden temporary files (empty if absent)."""
    try:
        entries = list(os.scandir(run_dir))
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return {e.name for e in entries if e.name not in (LOCK_FILE, LOCK_INFO_FILE)
            and not (e.name.startswith(".") and e.is_file(follow_symlinks=False))}


def _check_out(run_dir: Path, overwrite: bool) -> None:
    """Before anything is written: ``--out`` must be a folder (or not exist yet), and a folder
    that holds anything must be an rnnzoo run directory (``--overwrite``: one it may remove)."""
    with storage_errors(run_dir):
        blocker = next((p for p in [run_dir, *run_dir.parents]
                        if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise RunDirError(f"--out {run_dir}: {blocker} is a file, not a folder; pick another "
                              "path")
        names = _listing(run_dir)
    if not names:
        return
    if overwrite:
        if not _never_started(run_dir, names):
            check_removable_run_dir(run_dir, RunDirError)
    elif CONFIG_FILE not in names:
        raise RunDirError(f"{run_dir} already exists and is not an rnnzoo run directory (no "
                          f"{CONFIG_FILE}); pass a new --out")


def _never_started(run_dir: Path, names: set[str]) -> bool:
    """A run directory whose training never reached a backup (a failed or interrupted start):
    ``config.json`` and only other run files, none holding progress (weights, checkpoints,
    a backup to resume from). Starting it again loses nothing."""
    checkpoints = run_dir / CHECKPOINTS_DIR
    progress = ((run_dir / WEIGHTS_FILE).exists()
                or (run_dir / BACKUP_DIR / BACKUP_METADATA).exists()
                or (checkpoints.is_dir() and any(checkpoints.glob("*.weights.h5"))))
    return CONFIG_FILE in names and names <= set(RUN_DIR_NAMES) and not progress


def _empty_run_dir(run_dir: Path) -> None:
    """Empty ``run_dir`` (keeping its lock) for a fresh start. The backup's metadata goes first
    and ``config.json`` last: an interruption leaves a directory that is still recognised as a
    run, and never half a backup to resume from."""
    with storage_errors(run_dir):
        (run_dir / BACKUP_DIR / BACKUP_METADATA).unlink(missing_ok=True)
        empty_directory(run_dir, keep=(LOCK_FILE, LOCK_INFO_FILE, CONFIG_FILE))
        (run_dir / CONFIG_FILE).unlink(missing_ok=True)


def _finished(run_dir: Path) -> bool:
    """Whether the run wrote its final checksums (the last file of a finished run)."""
    try:
        sums = read_json(run_dir / CHECKSUMS_FILE, RunDirError, "")
    except RunDirError:
        return False
    return isinstance(sums, dict) and WEIGHTS_FILE in sums


def _run_dir_state(run_dir: Path, task: Task, overwrite: bool) -> str:
    """What to do with the run directory, decided under its lock, changing nothing:
    ``"new"``; ``"resume"`` (from its backup); ``"restart"`` (a start that stopped before its
    first backup: nothing there is worth keeping); ``"replace"`` (``--overwrite``). A
    directory is emptied only once the new model builds."""
    names = _listing(run_dir)
    if not names:
        return "new"
    if overwrite:
        if not _never_started(run_dir, names):
            check_removable_run_dir(run_dir, RunDirError)
        return "replace"
    if CONFIG_FILE not in names:
        raise RunDirError(f"{run_dir} already exists and is not an rnnzoo run directory (no "
                          f"{CONFIG_FILE}); pass a new --out")
    if (run_dir / BACKUP_DIR / BACKUP_METADATA).is_file():
        previous = read_config(run_dir)
        if previous.to_dict() != task.config.to_dict():
            raise RunDirError(
                f"{run_dir} holds an unfinished run with a different config; resume it with "
                "the same command, or pass a new --out (or --overwrite)"
            )
        return "resume"
    if _finished(run_dir):
        raise RunDirError(f"{run_dir} already exists and holds no unfinished run to resume (its "
                          "training finished); pass a new --out, or --overwrite to replace it")
    if _never_started(run_dir, names):
        return "restart"
    raise RunDirError(
        f"{run_dir} already exists and holds no unfinished run to resume (no backup); pass a "
        "new --out, or --overwrite to replace it"
    )


def _log_distribution(strategy: Any, recipe: TrainingConfig) -> Any:
    """Say how the recipe's batch is split; return this process's ``WorkerInfo``."""
    from rnnzoo.distributed import worker_info

    info = worker_info(strategy)
    if strategy is None:
        return info
    replicas = strategy.num_replicas_in_sync
    role = "chief" if info.is_chief else "writes no files"
    _log(f"{type(strategy).__name__}: worker {info.index} of {info.count} ({role}), {replicas} "
         f"replica(s) in sync; global batch {recipe.batch_size} (the recipe's) = {replicas} x "
         f"{recipe.batch_size / replicas:g} per replica; learning rate {recipe.learning_rate:g} "
         "as in the recipe (gradients are averaged over the global batch)")
    if recipe.batch_size % replicas:
        warnings.warn(f"batch_size {recipe.batch_size} is not a multiple of the {replicas} "
                      "replicas: replicas get unequal batches", stacklevel=3)
    return info


def _check_workers_agree(strategy: Any, task: Task, dataset: Any, steps: int) -> None:
    """Fail before training if workers differ in config, vocabulary/labels or data size."""
    import tempfile

    from rnnzoo.distributed import check_workers_agree, fingerprint
    from rnnzoo.io import sha256_file

    with tempfile.TemporaryDirectory(prefix="rnnzoo-assets-") as tmp:
        task.save_assets(Path(tmp))
        assets = {p.relative_to(tmp).as_posix(): sha256_file(p)
                  for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
    sizes = (dataset.num_train, dataset.num_dev, steps)
    check_workers_agree(strategy, "the config, vocabulary or data",
                        fingerprint(task.config.to_dict(), assets, sizes))


def _resolve_task(model: str | Task, overrides: dict[str, Any]) -> Task:
    if isinstance(model, str):
        return create_model(model, **overrides)
    if isinstance(model, Task):
        if not overrides:
            return model
        task = task_from_config(model.config.with_overrides(**overrides), model.preprocessor)
        task._model = None if not model.is_built else model.model
        return task
    raise ConfigError(f"model: expected an entry name or an rnnzoo task, found {model!r}")


def _speed_options(recipe: TrainingConfig, strategy: Any) -> tuple[str, bool]:
    """(precision, jit) actually used: ``auto`` precision resolved for this machine."""
    import tensorflow as tf

    precision = recipe.precision
    if precision == "auto":
        gpu = tf.config.list_physical_devices("GPU")
        precision = "mixed_bfloat16" if cpu_supports_bf16() and not gpu else "float32"
    jit = recipe.jit_compile
    if strategy is not None and jit:
        _log("jit_compile disabled under a tf.distribute strategy (fails on CPU)")
        jit = False
    return precision, jit


def _monitor(task: Task, recipe: TrainingConfig, has_dev: bool) -> tuple[str, str]:
    """(monitored metric, its direction); without a dev split the training metric."""
    monitor = recipe.monitor
    mode = task.metric_direction(monitor)
    if not has_dev and monitor.startswith("val_"):
        monitor = monitor[4:]
        _log(f"no dev split: monitoring training {monitor!r} instead")
    return monitor, mode


def _build_and_compile(task: Task, strategy: Any, precision: str, recipe: TrainingConfig,
                       steps: int, jit: bool, init_from: Any) -> Any:
    """Build the model under the strategy scope and dtype policy, load fine-tuning weights,
    compile with the recipe's optimizer."""
    import keras

    # A task that already holds weights (loaded, or given a new head) keeps them: the model is
    # rebuilt under the strategy scope and dtype policy, then they are copied in.
    weights = task.model.get_weights() if task.is_built and init_from is None else None
    previous_policy = keras.config.dtype_policy()
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        keras.config.set_dtype_policy(precision)
        try:
            task._model = None
            model = task.model
        finally:
            keras.config.set_dtype_policy(previous_policy)
        if init_from is not None:
            model.load_weights(Path(init_from) / WEIGHTS_FILE)
        elif weights is not None:
            model.set_weights(weights)
        for layer in model.layers:
            if layer.name in task.frozen_layers:
                layer.trainable = False
        model.compile(optimizer=make_optimizer(recipe, steps), loss=task.loss(),
                      metrics=task.metrics(), jit_compile=jit, steps_per_execution=1)
    return model


def _callbacks(task: Task, run_dir: Path, monitor: str, mode: str, strategy: Any,
               recipe: TrainingConfig, chief: bool, verbose: Any, steps: int
               ) -> tuple[list, Any]:
    """rnnzoo's callbacks and the backup among them. At an epoch's end the history row is
    written before the backup, and the backup before the checkpoints: a kill between two of
    them redoes the epoch (its row is replaced), and a checkpoint never exists without a
    backup to resume from."""
    import keras

    backup = _backup_callback(run_dir / BACKUP_DIR, recipe.backup_every, strategy)
    found = [_csv_logger(run_dir / "history.csv")] if chief else []
    found += [backup, _checkpoint_callback(run_dir, monitor, mode, strategy)]
    if recipe.ema_momentum:
        # First: validation, backups and checkpoints at an epoch's end see the averaged
        # weights (the raw ones are swapped back in when the next epoch starts).
        found.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if recipe.early_stopping_patience > 0:
        found.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=recipe.early_stopping_patience, mode=mode))
    if verbose == 2:
        found.append(_progress_callback(steps))
    return found, backup


def _final_task(task: Task, run_dir: Path, precision: str, strategy: Any) -> Task:
    """The model as a user will load it (float32): the best checkpoint, else the last."""
    best = run_dir / CHECKPOINTS_DIR / "best.weights.h5"
    final = best if best.is_file() else run_dir / CHECKPOINTS_DIR / "last.weights.h5"
    if precision != "float32" or strategy is not None:
        eval_task = task_from_config(task.config, task.preprocessor)
        eval_task.model.load_weights(final)
        return eval_task
    task.model.load_weights(final)
    return task


def _write_reports(run_dir: Path, task: Task, dataset: Any, history: dict, log: dict) -> dict:
    """Weights, dev metrics, history, curve, train.log.json and checksums of a finished run;
    the checksums come last, so a run that lists its weights has all its files."""
    atomic_save_weights(task.model, run_dir / WEIGHTS_FILE)
    metrics: dict = {}
    if dataset.num_dev:
        from rnnzoo.apps import app_cli
        from rnnzoo.evaluation import evaluate_reports

        # The first report (greedy decoding; beam 0: no beam-search pass at the end of training).
        metrics = evaluate_reports(task, dataset, "dev", {"beam": 0})[0]
        _log("dev set:\n" + app_cli(task.config.task).format_report(metrics))
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(run_dir / "history.json", json.dumps(history, indent=2))
    if history:
        plot_history(history, run_dir / "training_curve.png", f"{task.name}: {run_dir.name}")
    atomic_write_text(run_dir / "train.log.json", json.dumps(log, indent=2))
    write_checksums(run_dir, only=(CONFIG_FILE, WEIGHTS_FILE, ASSETS_DIR))
    return metrics


def _interrupted_message(run_dir: Path) -> str:
    """What an interruption left in ``run_dir``, and what the same command does next."""
    metadata = run_dir / BACKUP_DIR / BACKUP_METADATA
    if metadata.is_file():
        try:
            epoch = int(read_json(metadata, RunDirError, "")["epoch"])
            after = f"after epoch {epoch}" if epoch else "in the first epoch"
        except (RunDirError, KeyError, TypeError, ValueError):
            after = "of the last epoch"
        return (f"interrupted; {run_dir} keeps its backup ({after}): run the same command "
                f"with --out {run_dir} to resume from it")
    if not _listing(run_dir):
        return "interrupted before training started; nothing was written"
    return (f"interrupted before the first backup of {run_dir}; run the same command with "
            f"--out {run_dir} to start it again")


def _remove_backup(run_dir: Path) -> None:
    """Delete the backup of a finished run (its final files and checksums are written)."""
    backup = run_dir / BACKUP_DIR
    if backup.is_dir():
        with storage_errors(backup):
            shutil.rmtree(backup)


def _finished_epochs(run_dir: Path) -> int | None:
    """Epochs of a run whose training ended (last epoch or early stopping) before it was
    killed while writing its final files, from ``backup/finished.json``; else None."""
    try:
        done = read_json(run_dir / BACKUP_DIR / FINISHED_MARKER, RunDirError, "")["epochs"]
    except (RunDirError, KeyError, TypeError):
        return None
    return done if isinstance(done, int) and not isinstance(done, bool) and done >= 0 else None


def train(
    model: str | Task,
    data: str | os.PathLike,
    /,
    out: str | os.PathLike | None = None,
    *,
    strategy: Any = None,
    init_from: str | os.PathLike | None = None,
    overwrite: bool = False,
    verbose: int | str = "auto",
    callbacks: list | None = None,
    limit: int | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train (or fine-tune) a zoo model on a dataset and write a run directory.

    ``model`` is an entry name or a task (e.g. from ``rnnzoo.load`` to continue training).
    ``init_from`` starts from a trained run/preset's weights and vocabulary (fine-tuning): its
    architecture (model and data sections) is inherited, so only what you override changes, and
    data whose labels differ from the source's get a new head (with a note, never a silent
    remap). ``limit`` keeps at most that many examples per split (a seeded sample), for quick
    trials.
    ``callbacks`` are extra Keras callbacks, run after rnnzoo's own (backup, checkpoints).
    Overrides change any config key (``epochs=3``, ``units=64``, ``precision="mixed_bfloat16"``).
    Running the same command again on an unfinished run directory resumes it, whenever it was
    interrupted; while a run writes ``out`` the directory is locked against a second trainer.
    ``--overwrite`` replaces only an rnnzoo run directory. Ctrl-C raises
    ``TrainingInterrupted`` (a ``KeyboardInterrupt``) saying what a rerun does.
    """
    t_start = time.time()
    from rnnzoo.extras import require_training

    require_training("training")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                              or limit < 1):
        raise ConfigError(f"limit: expected an integer >= 1 (examples per split), found "
                          f"{limit!r}")
    task = _resolve_task(model, overrides)
    for section in ("model", "data", "training"):  # a task made in code skipped build_section
        validate_config(getattr(task.config, section), f"{task.name}: {section}")
    recipe: TrainingConfig = task.config.training
    task.metric_direction(recipe.monitor)  # a bad monitor fails before any file is written
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise RunDirError(f"out: expected a directory path, found {type(out).__name__}")
    run_dir = Path(out) if out is not None else Path("runs") / (
        f"{task.name}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    _check_out(run_dir, overwrite)
    configure_threads(recipe.intra_op_threads, recipe.inter_op_threads)

    import keras

    if not isinstance(data, (str, os.PathLike)):
        raise DataError(f"data: expected a dataset file or folder path, found "
                        f"{type(data).__name__}")
    if verbose not in (0, 1, 2, "auto") or isinstance(verbose, bool):
        raise ConfigError(f"verbose: expected 0, 1, 2 or 'auto', found {verbose!r}")
    if callbacks is not None and (not isinstance(callbacks, (list, tuple)) or not all(
            isinstance(c, keras.callbacks.Callback) for c in callbacks)):
        raise ConfigError(f"callbacks: expected a list of keras.callbacks.Callback, found "
                          f"{callbacks!r}"[:200])
    strategy = resolve_strategy(strategy)
    precision, jit = _speed_options(recipe, strategy)
    if init_from is not None:
        task = _inherit(task, init_from, data, overrides)
        init_from = None  # the task now holds the source's weights (and any new head)

    keras.utils.set_random_seed(recipe.seed)
    chief = _is_chief(strategy)
    # One writer per run directory (the chief): a second `rnnzoo train` on the same --out fails
    # here at once, naming this process. Non-chief workers never touch the run directory.
    lock = (lock_directory(run_dir, "rnnzoo train", RunDirError) if chief
            else contextlib.nullcontext())
    try:
        with lock:
            return _train_locked(task, data, run_dir, strategy, precision, jit, init_from,
                                 overwrite, verbose, callbacks, t_start, limit)
    except KeyboardInterrupt as exc:
        if not chief or isinstance(exc, TrainingInterrupted):
            raise
        raise TrainingInterrupted(run_dir, _interrupted_message(run_dir)) from exc


def _inherit(task: Task, init_from: str | os.PathLike, data: str | os.PathLike,
             overrides: dict[str, Any]) -> Task:
    """The task to fine-tune: the source's architecture, vocabulary and weights, with the
    architecture keys the caller overrode, a new head when ``data`` has other labels (a note
    says so), and the recipe (training section) of ``task``."""
    source = load_task(init_from)
    if source.config.family != task.config.family:
        raise ConfigError(f"init_from: {init_from} is a {source.config.family!r} model, "
                          f"not {task.config.family!r}")
    sections = {"model": dataclasses.asdict(source.config.model),
                "data": dataclasses.asdict(source.config.data)}
    arch = {k: v for k, v in overrides.items()
            if k in sections or any(k in keys for keys in sections.values())}
    dataset = source.load_data(data, seed=task.config.training.seed)
    head = source.head_overrides(dataset)
    if head or arch:
        new = source.with_new_head(**{**arch, **head})
        if new.new_head_layers:
            before = getattr(source, "label_names", None)
            after = getattr(dataset, "label_names", None)
            why = (f"the data's labels {after} differ from the source's {before}"
                   if head and after is not None else "the config changes their shapes")
            _log(f"init_from {init_from}: {why}; new layer(s) {', '.join(new.new_head_layers)} "
                 "start from scratch, the rest keeps the source's weights"
                 + (f" (to keep the source's head, name the labels {before})"
                    if head and before is not None and after is not None
                    and len(before) == len(after) else ""))
    else:
        new = source
    config = dataclasses.replace(new.config, training=task.config.training)
    inherited = task_from_config(config, new.preprocessor)
    inherited._model = new.model
    inherited.frozen_layers = new.frozen_layers
    return inherited


def _restore_or_adapt(task: Task, dataset: Any, run_dir: Path, resuming: bool) -> None:
    """A resumed run takes the interrupted run's vocabulary (checked against the checksums
    written when it started: the restored weights mean nothing with another); a new run fits
    the preprocessor on the training split."""
    if not resuming:
        task.adapt(dataset)
        return
    if not (run_dir / CHECKSUMS_FILE).is_file():
        raise RunDirError(f"{run_dir}: no {CHECKSUMS_FILE} to check its config and "
                          "vocabulary against before resuming; start it again with "
                          "--overwrite (or pass a new --out)")
    verify_checksums(run_dir, required=(CONFIG_FILE,), scope=(CONFIG_FILE, f"{ASSETS_DIR}/*"))
    task.preprocessor = type(task).load_preprocessor(task.config, run_dir / ASSETS_DIR)


def _epochs_left(run_dir: Path, epochs: int, resuming: bool, multi_worker: bool
                 ) -> tuple[int, int]:
    """(epochs to pass to fit, epochs already in history.csv). A run whose training had ended
    (last epoch or early stopping) before a kill only writes its final files."""
    if not resuming:
        return epochs, 0
    logged = len(_read_history(run_dir / "history.csv").get("epoch", []))
    done = _finished_epochs(run_dir)
    if done is not None and not multi_worker:
        _log(f"{run_dir}: training had finished after epoch {done}; writing its final files")
        return min(epochs, done), logged
    _log(f"resuming unfinished run in {run_dir} from its backup")
    return epochs, logged


def _fit(task: Task, run_dir: Path, train_ds: Any, dev_ds: Any, epochs: int, callbacks: list,
         verbose: Any) -> Any:
    """``task.fit`` with storage and out-of-memory failures as one-line rnnzoo errors."""
    try:
        with storage_errors(run_dir):
            return task.fit(train_ds, dev_ds, epochs, callbacks, verbose)
    except Exception as exc:  # noqa: BLE001 - only memory exhaustion is translated
        problem = out_of_memory(exc)
        if problem is None:
            raise
        raise ConfigError(f"training does not fit in memory ({problem}); lower batch_size or "
                          "max_length, or make the model smaller") from None


def _provenance() -> dict[str, Any]:
    return {"command": " ".join(sys.argv) if sys.argv and "rnnzoo" in sys.argv[0] else None,
            "versions": _versions(),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat()}


def _start_run_dir(task: Task, run_dir: Path, state: str) -> None:
    """Write the config and vocabulary (with their checksums) into a new run directory, only
    once the model has built, so a failed start leaves nothing that blocks the next one."""
    if state == "restart":
        _log(f"{run_dir}: the previous start stopped before its first backup; starting over")
    if state in ("replace", "restart"):
        _empty_run_dir(run_dir)
    task.write_artifacts(run_dir, weights=False)
    write_checksums(run_dir, only=(CONFIG_FILE, ASSETS_DIR))


def _train_locked(task: Task, data: Any, run_dir: Path, strategy: Any, precision: str,
                  jit: bool, init_from: Any, overwrite: bool, verbose: Any,
                  callbacks: list | None, t_start: float, limit: int | None = None
                  ) -> TrainResult:
    """The body of ``train`` once the run directory is locked: nothing is written into it
    before the model builds, and the backup is removed only after the final checksums."""
    recipe: TrainingConfig = task.config.training
    chief = _is_chief(strategy)
    dataset = task.load_data(data, seed=recipe.seed)
    if limit is not None:
        dataset = task.limit_data(dataset, limit, seed=recipe.seed)
    # Non-chief workers never touch the run directory (their machine may not even have it):
    # they build the vocabulary from the same data, and _check_workers_agree compares it.
    state = _run_dir_state(run_dir, task, overwrite) if chief else "new"
    resuming = state == "resume"
    _restore_or_adapt(task, dataset, run_dir, resuming)

    train_ds, dev_ds, steps = task.datasets(
        dataset, batch_size=recipe.batch_size, seed=recipe.seed,
        bucketing=recipe.bucketing, fixed_length=strategy is not None)
    monitor, mode = _monitor(task, recipe, dev_ds is not None)
    _log(f"training {task.name} on {dataset.description}")
    _log(f"{dataset.num_train} train / {dataset.num_dev} dev examples, "
         f"{steps} steps/epoch x {recipe.epochs} epochs, batch {recipe.batch_size}, "
         f"precision {precision}, jit {jit}, run dir {run_dir}")
    workers = _log_distribution(strategy, recipe)
    if workers.multi_worker:
        _check_workers_agree(strategy, task, dataset, steps)

    model_ = _build_and_compile(task, strategy, precision, recipe, steps, jit, init_from)
    if chief and not resuming:
        _start_run_dir(task, run_dir, state)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    own, backup = _callbacks(task, run_dir, monitor, mode, strategy, recipe, chief, verbose,
                             steps)
    if recipe.diagnose_every and chief:  # gradient diagnostics (rnnzoo/diagnostics.py)
        from rnnzoo.diagnostics import training_callback

        hook = training_callback(task, dataset, run_dir, recipe.diagnose_every,
                                 recipe.clipnorm, recipe.seed, strategy)
        own += [hook] if hook is not None else []
    epochs, epochs_logged = _epochs_left(run_dir, recipe.epochs, resuming,
                                         workers.multi_worker)
    t_fit = time.time()
    fit_hist = _fit(task, run_dir, train_ds, dev_ds, epochs, own + list(callbacks or []),
                    verbose)
    fit_seconds = time.time() - t_fit
    epochs_run = len(fit_hist.epoch)
    resumed_from = backup.restored_epoch
    if chief:
        atomic_write_text(run_dir / BACKUP_DIR / FINISHED_MARKER,
                          json.dumps({"epochs": resumed_from + epochs_run}))
    # Epochs finished (and logged) before the interruption but after the last backup: trained
    # twice. With backup_every=N steps the steps of the interrupted epoch are replayed as well.
    epochs_redone = max(0, epochs_logged - resumed_from)
    if resumed_from:
        _log(f"resumed after epoch {resumed_from}; epochs redone: {epochs_redone}")
    if workers.multi_worker:
        from rnnzoo.distributed import weights_digest

        _log(f"worker {workers.index}/{workers.count}: weights after training "
             f"{weights_digest(model_)}")

    metrics: dict = {}
    if chief:
        history = _read_history(run_dir / "history.csv")
        eval_task = _final_task(task, run_dir, precision, strategy)
        metrics = _write_reports(run_dir, eval_task, dataset, history, {
            "entry": task.name,
            "data": str(data),
            "data_description": dataset.description,
            "precision": precision,
            "jit_compile": jit,
            "strategy": type(strategy).__name__ if strategy is not None else None,
            "workers": workers.count,
            "replicas": strategy.num_replicas_in_sync if strategy is not None else 1,
            "global_batch_size": recipe.batch_size,
            "steps_per_epoch": steps,
            "epochs_run_this_invocation": epochs_run,
            "resumed_after_epoch": resumed_from,
            "epochs_redone": epochs_redone,
            "fit_seconds": round(fit_seconds, 2),
            **_provenance(),
        })
        _remove_backup(run_dir)
    else:  # a non-chief worker: its in-memory model (identical to the chief's), no files
        history = {"epoch": [e + 1 for e in fit_hist.epoch],
                   **{k: [float(x) for x in v] for k, v in fit_hist.history.items()}}
        eval_task = task
    _log(f"done in {time.time() - t_start:.0f}s; run directory: {run_dir}")
    return TrainResult(run_dir, eval_task, history, metrics, epochs_run, resumed_from,
                       time.time() - t_start)
