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
import os
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from rnnzoo.config import TrainingConfig, validate_config
from rnnzoo.errors import ConfigError, DataError, RunDirError
from rnnzoo.io import atomic_write_text, lock_directory, storage_errors
from rnnzoo.registry import create_model, task_from_config
from rnnzoo.registry import load as load_task
from rnnzoo.saving import ASSETS_DIR, CHECKPOINTS_DIR, CHECKSUMS_FILE, CONFIG_FILE, verify_checksums
from rnnzoo.task import Task, out_of_memory
from rnnzoo.training_callbacks import (
    _backup_callback,
    _checkpoint_callback,
    _csv_logger,
    _progress_callback,
)
from rnnzoo.training_rundir import (
    BACKUP_DIR,
    FINISHED_MARKER,
    _check_out,
    _finished_epochs,
    _interrupted_message,
    _provenance,
    _read_history,
    _remove_backup,
    _run_dir_state,
    _start_run_dir,
    _write_reports,
    plot_history,
)
from rnnzoo.training_setup import (
    _build_and_compile,
    _check_workers_agree,
    _is_chief,
    _log,
    _log_distribution,
    _speed_options,
    configure_threads,
    cpu_supports_bf16,
    make_optimizer,
    resolve_strategy,
)

__all__ = ["TrainResult", "TrainingInterrupted", "configure_threads", "cpu_supports_bf16",
           "make_optimizer", "plot_history", "resolve_strategy", "train"]


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


def _resolve_task(model: str | Task, overrides: dict[str, Any]) -> Task:
    if isinstance(model, str):
        return create_model(model, **overrides)
    if isinstance(model, Task):
        if not overrides:
            return model
        task = task_from_config(model.config.with_overrides(**overrides), model.preprocessor)
        task._model = None if not model.is_built else model.model
        # A head being fine-tuned keeps its frozen backbone (rnnzoo.finetune(freeze_backbone=
        # True, epochs=2) trained every layer before).
        task.frozen_layers = model.frozen_layers
        if hasattr(model, "new_head_layers"):
            task.new_head_layers = model.new_head_layers
        return task
    raise ConfigError(f"model: expected an entry name or an rnnzoo task, found {model!r}")


def _given_keys(overrides: dict[str, Any]) -> set[str]:
    """The config keys a ``train`` call sets, a ``training={...}`` mapping's included."""
    section = overrides.get("training")
    return set(overrides) | (set(section) if isinstance(section, dict) else set())


def _monitor(task: Task, recipe: TrainingConfig, has_dev: bool) -> tuple[str, str]:
    """(monitored metric, its direction); without a dev split the training metric."""
    monitor = recipe.monitor
    mode = task.metric_direction(monitor)
    if not has_dev and monitor.startswith("val_"):
        monitor = monitor[4:]
        _log(f"no dev split: monitoring training {monitor!r} instead")
    return monitor, mode


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
    if recipe.ema_momentum and task.model.trainable_weights:  # (a closed-form fit has none)
        # First: validation, backups and checkpoints at an epoch's end see the averaged
        # weights (the raw ones are swapped back in when the next epoch starts).
        found.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if recipe.early_stopping_patience > 0:
        found.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=recipe.early_stopping_patience, mode=mode))
    if verbose == 2:
        found.append(_progress_callback(steps))
    return found, backup


#: A run keeps the recipe's averaging and warm-up only when it is at least this many times
#: longer than the averaging horizon 1/(1 - ema_momentum) and the warm-up: a fine-tune of a few
#: hundred steps with the from-scratch recipe (ema 0.998: a 500-step horizon) saved weights that
#: were still mostly the starting ones (0.697 accuracy against 0.978 without averaging).
RUN_TO_SCHEDULE = 10
#: Shorter averaging horizons than this (steps) turn averaging off: it would average nothing.
MIN_EMA_HORIZON = 5


def _scaled_to_run(recipe: TrainingConfig, total_steps: int, chosen: Collection[str] = ()
                   ) -> tuple[TrainingConfig, str | None]:
    """The recipe with weight averaging and warm-up fitted to a run of ``total_steps``
    optimizer steps, and a line saying what changed (None when nothing did).

    The averaging horizon is cut to ``total_steps / RUN_TO_SCHEDULE`` (off below
    ``MIN_EMA_HORIZON`` steps) and the warm-up to ``total_steps // RUN_TO_SCHEDULE``: the
    averaged weights then forget the starting ones, and most steps run at the full rate.
    Keys in ``chosen`` (``ema_momentum``, ``warmup_steps`` given by the caller) are kept."""
    budget = total_steps / RUN_TO_SCHEDULE
    ema, warmup = recipe.ema_momentum, recipe.warmup_steps
    if ema and 1.0 / (1.0 - ema) > budget and "ema_momentum" not in chosen:
        ema = 0.0 if budget < MIN_EMA_HORIZON else round(1.0 - 1.0 / budget, 6)
    if "warmup_steps" not in chosen:
        warmup = min(warmup, int(budget))
    if (ema, warmup) == (recipe.ema_momentum, recipe.warmup_steps):
        return recipe, None
    averaging = f"weight averaging {'off' if not ema else f'ema {ema:g}'}"
    if not recipe.ema_momentum:
        averaging = "no weight averaging"
    recipe_text = ", ".join(
        ([f"ema {recipe.ema_momentum:g}"] if recipe.ema_momentum else [])
        + [f"warm-up {recipe.warmup_steps}"])
    note = (f"{averaging}, warm-up {warmup} step{'s' if warmup != 1 else ''} "
            f"(recipe: {recipe_text}; scaled to the run's length, set ema_momentum and "
            "warmup_steps to choose)")
    return dataclasses.replace(recipe, ema_momentum=ema, warmup_steps=warmup), note


def _final_task(task: Task, run_dir: Path, precision: str, strategy: Any) -> Task:
    """The model as a user will load it (float32): the best checkpoint, else the last. The
    log names the epoch it comes from, so the dev line to compare is the one printed."""
    best = run_dir / CHECKPOINTS_DIR / "best.weights.h5"
    final = best if best.is_file() else run_dir / CHECKPOINTS_DIR / "last.weights.h5"
    if best.is_file():
        from rnnzoo.io import read_json

        try:
            chosen = read_json(run_dir / CHECKPOINTS_DIR / "best.json", RunDirError, "")
            _log(f"final model: the best checkpoint, epoch {chosen['epoch']} "
                 f"({chosen['monitor']} {chosen['value']:.4g})")
        except (RunDirError, KeyError, TypeError, ValueError):
            pass
    if precision != "float32" or strategy is not None:
        eval_task = task_from_config(task.config, task.preprocessor)
        eval_task.model.load_weights(final)
        return eval_task
    task.model.load_weights(final)
    return task


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
    A recipe's weight averaging (``ema_momentum``) and warm-up longer than a tenth of the run's
    optimizer steps are cut to that (averaging off under 50 steps), with one printed line, unless
    this call sets them: a from-scratch recipe on a short fine-tune otherwise saves weights that
    are still mostly the starting ones. The final model is the best checkpoint (the log names
    its epoch); the closing dev report (``metrics.json``) scores exactly those weights.
    Running the same command again on an unfinished run directory resumes it, whenever it was
    interrupted; while a run writes ``out`` the directory is locked against a second trainer.
    ``--overwrite`` replaces only an rnnzoo run directory. Ctrl-C raises
    ``TrainingInterrupted`` (a ``KeyboardInterrupt``) saying what a rerun does.
    """
    t_start = time.time()
    # Everything the caller gave (config, overrides, paths, the data itself) is checked before
    # TensorFlow is imported: a typo answers in a second, not after its ~10 s import.
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
    if not isinstance(data, (str, os.PathLike)):
        raise DataError(f"data: expected a dataset file or folder path, found "
                        f"{type(data).__name__}")
    if verbose not in (0, 1, 2, "auto") or isinstance(verbose, bool):
        raise ConfigError(f"verbose: expected 0, 1, 2 or 'auto', found {verbose!r}")
    # The data read here, TF-free, by the readers that train on it (with init_from the
    # source's: read again once the source is loaded).
    reader = task if init_from is None else _source_reader(init_from)
    dataset = reader.load_data(data, seed=recipe.seed)
    configure_threads(recipe.intra_op_threads, recipe.inter_op_threads)  # imports TF quietly

    import keras

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
                                 overwrite, verbose, callbacks, t_start, limit,
                                 _given_keys(overrides),
                                 dataset if reader is task else None)
    except KeyboardInterrupt as exc:
        if not chief or isinstance(exc, TrainingInterrupted):
            raise
        raise TrainingInterrupted(run_dir, _interrupted_message(run_dir)) from exc


def new_head_note(source_name: str, source: Task, head: dict[str, Any], new: Task
                  ) -> str | None:
    """The one line saying that fine-tuning ``source`` starts a new head, naming both label
    sets (``head``: what ``head_overrides`` asked for; ``new``: the task with the new head);
    None when every layer kept its weights."""
    if not getattr(new, "new_head_layers", None):
        return None
    before, after = source.head_labels(), head.get("labels")
    if after is not None and before is not None:
        why = f"the data's labels {after} differ from the source's {before}"
    elif head:
        why = "the data's labels differ from the source's"
    else:
        why = "the config changes their shapes"
    keep = (f" (to keep the source's head, name the data's labels {before})"
            if after is not None and before is not None and len(before) == len(after) else "")
    partly = getattr(new, "kept_weights", {})
    layers = [f"{n} (except {partly[n][0]} of its {partly[n][1]} weights)" if n in partly else n
              for n in new.new_head_layers]
    return (f"fine-tuning {source_name}: {why}; new layer(s) {', '.join(layers)} "
            f"start from scratch, the rest keeps the source's weights{keep}")


def _source_reader(init_from: str | os.PathLike) -> Task:
    """The task that reads data for a fine-tune from ``init_from`` (its config and vocabulary,
    no weights: TF-free)."""
    from rnnzoo.evaluation import reader_task

    if not isinstance(init_from, (str, os.PathLike)):
        raise RunDirError(f"init_from: expected a run or preset directory, found {init_from!r}")
    return reader_task(init_from)


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
        note = new_head_note(str(init_from), source, head, new)
        if note:
            _log(note)
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


def _train_locked(task: Task, data: Any, run_dir: Path, strategy: Any, precision: str,
                  jit: bool, init_from: Any, overwrite: bool, verbose: Any,
                  callbacks: list | None, t_start: float, limit: int | None = None,
                  chosen: Collection[str] = (), dataset: Any = None) -> TrainResult:
    """The body of ``train`` once the run directory is locked: nothing is written into it
    before the model builds, and the backup is removed only after the final checksums.
    ``chosen``: the config keys the caller gave (kept as given); ``dataset``: ``data`` as
    ``train`` read it before importing TensorFlow (None: read it here)."""
    recipe: TrainingConfig = task.config.training
    chief = _is_chief(strategy)
    if dataset is None:
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
    total_steps = recipe.epochs * steps
    schedule, note = _scaled_to_run(recipe, total_steps, chosen)
    if note:  # a task holding weights (init_from, a preset, a loaded run) is a fine-tune
        _log(f"{'fine-tune' if task.is_built else 'run'} of {total_steps} steps: {note}")

    model_ = _build_and_compile(task, strategy, precision, schedule, steps, jit, init_from)
    if chief and not resuming:
        _start_run_dir(task, run_dir, state)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    own, backup = _callbacks(task, run_dir, monitor, mode, strategy, schedule, chief, verbose,
                             steps)
    if recipe.diagnose_every and chief:  # gradient diagnostics (rnnzoo/diagnostics/)
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
            "schedule": {"optimizer_steps": total_steps, "warmup_steps": schedule.warmup_steps,
                         "ema_momentum": schedule.ema_momentum},
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
