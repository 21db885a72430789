"""The run directory of ``train``: what state it is in (new, resume, restart, replace), what an
interruption left there, and the files a finished run writes (history, curve, reports)."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from rnnzoo.errors import RunDirError
from rnnzoo.io import (
    LOCK_FILE,
    LOCK_INFO_FILE,
    RUN_DIR_NAMES,
    atomic_write_text,
    check_removable_run_dir,
    empty_directory,
    read_json,
    save_figure,
    storage_errors,
)
from rnnzoo.registry import read_config
from rnnzoo.saving import (
    ASSETS_DIR,
    CHECKPOINTS_DIR,
    CHECKSUMS_FILE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    atomic_save_weights,
    write_checksums,
)
from rnnzoo.task import Task
from rnnzoo.training_setup import _log

BACKUP_DIR = "backup"
BACKUP_METADATA = "training_metadata.json"  # what keras' BackupAndRestore resumes from
FINISHED_MARKER = "finished.json"  # in backup/: training ended, final files being written


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
