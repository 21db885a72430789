"""The shared training loop: one ``train()`` for every family, on top of Keras ``fit``.

What it adds to a bare ``fit``: compile defaults from the entry's recipe (optimizer, warmup +
schedule, global-norm gradient clipping), length-bucketed tf.data input, best/last checkpoints
written atomically, early stopping, resume after interruption (``BackupAndRestore``), an optional
``tf.distribute`` strategy, the speed options measured in ``benchmarks/bench_train.py``, and a run
directory:

    config.json  assets/  model.weights.h5  checksums.json     (a loadable model, see rnnzoo.load)
    checkpoints/best.weights.h5  checkpoints/last.weights.h5  checkpoints/best.json
    history.csv  history.json  training_curve.png  metrics.json  train.log.json
    backup/      (only while a run is unfinished: what a restart resumes from)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from rnnzoo.config import TrainingConfig
from rnnzoo.errors import ConfigError, DistributedError, RunDirError
from rnnzoo.io import atomic_write_text
from rnnzoo.registry import create_model, read_config, task_from_config
from rnnzoo.registry import load as load_task
from rnnzoo.saving import (
    ASSETS_DIR,
    CONFIG_FILE,
    WEIGHTS_FILE,
    atomic_save_weights,
    write_checksums,
)
from rnnzoo.tasks.base import Task


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    task: Task
    history: dict[str, list[float]]
    metrics: dict
    epochs_run: int
    resumed_from_epoch: int
    seconds: float


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
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(**kw)
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=recipe.weight_decay or 0.004, **kw)
    if recipe.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(**kw)
    return keras.optimizers.SGD(momentum=0.9, nesterov=True, **kw)


def _checkpoint_callback(run_dir: Path, monitor: str, mode: str, strategy: Any) -> Any:
    """Best and last weights, written atomically; the best score survives a restart.
    ``mode`` ("max"/"min") is the monitored metric's direction, declared by the task type."""
    import keras
    import numpy as np

    ckpt_dir = run_dir / "checkpoints"
    best_file = ckpt_dir / "best.json"

    class AtomicCheckpoint(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.mode = mode
            self.best = -np.inf if self.mode == "max" else np.inf
            if best_file.is_file():
                self.best = json.loads(best_file.read_text())["value"]

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if not _is_chief(strategy):
                return
            atomic_save_weights(self.model, ckpt_dir / "last.weights.h5")
            value = (logs or {}).get(monitor)
            if value is None:
                return
            better = value > self.best if self.mode == "max" else value < self.best
            if better:
                self.best = float(value)
                atomic_save_weights(self.model, ckpt_dir / "best.weights.h5")
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
    """
    import keras

    from rnnzoo.distributed import allgather_numbers, broadcast_from_chief, worker_info

    info = worker_info(strategy)

    class Backup(keras.callbacks.BackupAndRestore):
        restored_epoch = 0

        def on_train_begin(self, logs: dict | None = None) -> None:
            if info.is_chief:
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

        def on_train_end(self, logs: dict | None = None) -> None:
            if info.is_chief:
                super().on_train_end(logs)

    return Backup(str(backup_dir), save_freq=save_freq, delete_checkpoint=True)


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
    """history.csv (appended across restarts) -> columns, keeping the last row per epoch."""
    if not path.is_file():
        return {}
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) < 2:
        return {}
    header = lines[0].split(",")
    rows: dict[int, list[str]] = {}
    for ln in lines[1:]:
        parts = ln.split(",")
        if parts[0] == "epoch" or len(parts) != len(header):
            continue
        rows[int(parts[0])] = parts
    hist: dict[str, list[float]] = {h: [] for h in header}
    for epoch in sorted(rows):
        for h, v in zip(header, rows[epoch]):
            hist[h].append(float(v) if v not in ("", "nan") else math.nan)
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
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    import rnnzoo

    return {"rnnzoo": rnnzoo.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "python": platform.python_version()}


def _prepare_run_dir(run_dir: Path, task: Task, overwrite: bool) -> bool:
    """Create or validate the run directory; return True if resuming an unfinished run."""
    if run_dir.exists() and any(run_dir.iterdir()):
        if overwrite:
            import shutil

            shutil.rmtree(run_dir)
        elif (run_dir / "backup").exists() and (run_dir / CONFIG_FILE).is_file():
            previous = read_config(run_dir)
            if previous.to_dict() != task.config.to_dict():
                raise RunDirError(
                    f"{run_dir} holds an unfinished run with a different config; resume it with "
                    "the same command, or pass a new --out (or --overwrite)"
                )
            return True
        else:
            raise RunDirError(
                f"{run_dir} already exists and holds no unfinished run to resume; pass a new "
                "--out, or --overwrite to replace it"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    return False


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
        model.compile(optimizer=make_optimizer(recipe, steps), loss=task.loss(),
                      metrics=task.metrics(), jit_compile=jit, steps_per_execution=1)
    return model


def _callbacks(task: Task, run_dir: Path, monitor: str, mode: str, strategy: Any,
               recipe: TrainingConfig, chief: bool, verbose: Any, steps: int) -> list:
    import keras

    found = [_backup_callback(run_dir / "backup", recipe.backup_every, strategy),
             _checkpoint_callback(run_dir, monitor, mode, strategy)]
    if chief:
        found.append(keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True))
    if recipe.early_stopping_patience > 0:
        found.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=recipe.early_stopping_patience, mode=mode))
    if verbose == 2:
        found.append(_progress_callback(steps))
    return found


def _final_task(task: Task, run_dir: Path, precision: str, strategy: Any) -> Task:
    """The model as a user will load it (float32): the best checkpoint, else the last."""
    best = run_dir / "checkpoints" / "best.weights.h5"
    final = best if best.is_file() else run_dir / "checkpoints" / "last.weights.h5"
    if precision != "float32" or strategy is not None:
        eval_task = task_from_config(task.config, task.preprocessor)
        eval_task.model.load_weights(final)
        return eval_task
    task.model.load_weights(final)
    return task


def _write_reports(run_dir: Path, task: Task, dataset: Any, history: dict, log: dict) -> dict:
    """Weights, dev metrics, history, curve, train.log.json and checksums of a finished run."""
    atomic_save_weights(task.model, run_dir / WEIGHTS_FILE)
    metrics: dict = {}
    if dataset.num_dev:
        metrics = task.evaluate_data(dataset, "dev")
        _log("dev set:\n" + task.format_report(metrics))
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(run_dir / "history.json", json.dumps(history, indent=2))
    if history:
        plot_history(history, run_dir / "training_curve.png", f"{task.name}: {run_dir.name}")
    atomic_write_text(run_dir / "train.log.json", json.dumps(log, indent=2))
    write_checksums(run_dir, only=(CONFIG_FILE, WEIGHTS_FILE, ASSETS_DIR))
    return metrics


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
    **overrides: Any,
) -> TrainResult:
    """Train (or fine-tune) a zoo model on a dataset and write a run directory.

    ``model`` is an entry name or a task (e.g. from ``rnnzoo.load`` to continue training).
    ``init_from`` starts from a trained run/preset's weights and vocabulary (fine-tuning).
    ``callbacks`` are extra Keras callbacks, run after rnnzoo's own (backup, checkpoints).
    Overrides change any config key (``epochs=3``, ``units=64``, ``precision="mixed_bfloat16"``).
    Running the same command again on an unfinished run directory resumes it.
    """
    t_start = time.time()
    task = _resolve_task(model, overrides)
    recipe: TrainingConfig = task.config.training
    task.metric_direction(recipe.monitor)  # a bad monitor fails before any file is written
    configure_threads(recipe.intra_op_threads, recipe.inter_op_threads)

    import keras

    strategy = resolve_strategy(strategy)
    precision, jit = _speed_options(recipe, strategy)
    if init_from is not None:
        source = load_task(init_from)
        if source.config.family != task.config.family:
            raise ConfigError(f"init_from: {init_from} is a {source.config.family!r} model, "
                              f"not {task.config.family!r}")
        task.preprocessor = source.preprocessor

    run_dir = Path(out) if out is not None else Path("runs") / (
        f"{task.name}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    keras.utils.set_random_seed(recipe.seed)
    dataset = task.load_data(data, seed=recipe.seed)
    chief = _is_chief(strategy)
    # Non-chief workers never touch the run directory (their machine may not even have it):
    # they build the vocabulary from the same data, and _check_workers_agree compares it.
    resuming = _prepare_run_dir(run_dir, task, overwrite) if chief else False
    if resuming:
        # Same vocabulary as the interrupted run, or the restored weights mean nothing.
        task.preprocessor = type(task).load_preprocessor(task.config, run_dir / ASSETS_DIR)
    else:
        task.adapt(dataset)
        if chief:
            task.write_artifacts(run_dir, weights=False)

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
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    own = _callbacks(task, run_dir, monitor, mode, strategy, recipe, chief, verbose, steps)
    backup = own[0]
    epochs_logged = 0  # epochs in history.csv before this invocation (chief)
    if resuming:
        epochs_logged = len(_read_history(run_dir / "history.csv").get("epoch", []))
        _log(f"resuming unfinished run in {run_dir} from its backup")
    t_fit = time.time()
    fit_hist = task.fit(train_ds, dev_ds, recipe.epochs, own + list(callbacks or []), verbose)
    fit_seconds = time.time() - t_fit
    epochs_run = len(fit_hist.epoch)
    resumed_from = backup.restored_epoch
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
            "command": " ".join(sys.argv) if sys.argv and "rnnzoo" in sys.argv[0] else None,
            "versions": _versions(),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        })
    else:  # a non-chief worker: its in-memory model (identical to the chief's), no files
        history = {"epoch": [e + 1 for e in fit_hist.epoch],
                   **{k: [float(x) for x in v] for k, v in fit_hist.history.items()}}
        eval_task = task
    _log(f"done in {time.time() - t_start:.0f}s; run directory: {run_dir}")
    return TrainResult(run_dir, eval_task, history, metrics, epochs_run, resumed_from,
                       time.time() - t_start)
