"""rnnzoo's Keras callbacks for the training loop: atomic best/last checkpoints, a backup that only
the chief writes and every worker resumes from, the history CSV, progress lines for logs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

from rnnzoo.errors import RunDirError
from rnnzoo.io import StorageError, atomic_write_many, read_json, storage_errors
from rnnzoo.saving import CHECKPOINTS_DIR, record_checkpoint, weights_bytes
from rnnzoo.training_setup import _is_chief, _log


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
            value = (logs or {}).get(monitor)
            better = value is not None and (
                value > self.best if self.mode == "max" else value < self.best)
            # Weights built in memory; the files of this epoch are written together: each to a
            # temporary file, then the checksum listing, then renames. A full disk at any point
            # leaves the previous checkpoints, their listing and best.json as they were.
            names = ["last"] + (["best"] if better else [])
            files = {ckpt_dir / f"{n}.weights.h5": weights_bytes(self.model,
                                                               ckpt_dir / f"{n}.weights.h5")
                     for n in names}
            digests = {p: hashlib.sha256(data).hexdigest() for p, data in files.items()}
            if better:
                files[best_file] = json.dumps({"monitor": monitor, "value": float(value),
                                               "epoch": epoch + 1}).encode("utf-8")
            atomic_write_many(files, lambda: record_checkpoint(ckpt_dir, digests=digests))
            if better:
                self.best = float(value)

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
            # Weights and metadata written together (both to temporary files, then renamed):
            # a kill or a full disk mid-write leaves the previous backup loadable (Keras writes
            # both files in place).
            weights = Path(self._weights_path)
            atomic_write_many({
                weights: weights_bytes(self.model, weights),
                Path(self._training_metadata_path): json.dumps(
                    {"epoch": self._current_epoch, "batch": self._last_batch_seen}
                ).encode("utf-8")})

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
            try:
                with storage_errors(path):
                    super().on_epoch_end(epoch, logs)
            except StorageError:
                # Close now: the row left in the file's buffer would fail again when the
                # file is freed, after the one-line error (training stops here anyway).
                with contextlib.suppress(OSError, AttributeError, ValueError):
                    self.csv_file.close()
                raise

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
