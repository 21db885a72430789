"""A full disk during training (issue 31): one line naming ENOSPC and the file, the last good
checkpoint kept with its checksum listing, a non-zero exit and no segmentation fault.

Weights are built in memory and written as finished bytes, so HDF5 never meets a full disk
half-way through a file (which made h5py print twenty tracebacks and crash). The checkpoint,
backup and history writers are tested with ENOSPC raised at each write; one test fills a real
file system (a small tmpfs, where this process may mount one) during a real ``rnnzoo train``."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rnnzoo.io import StorageError, storage
from rnnzoo.saving import CHECKSUMS_FILE, verify_weights_file, weights_bytes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    import keras

    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    m.compile(loss="mse")
    return m


def full_disk_at(monkeypatch, name: str) -> list[str]:
    """Make writing a file called ``name`` fail with ENOSPC, as ``os.write`` would on a full
    disk (the temporary file is created, then the write fails); returns the names written."""
    stage = storage._stage
    seen: list[str] = []

    def staged(path, data):
        seen.append(Path(path).name)
        if Path(path).name == name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return stage(path, data)

    monkeypatch.setattr(storage, "_stage", staged)
    return seen


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def bump(model) -> None:
    model.set_weights([w + 1.0 for w in model.get_weights()])


@pytest.mark.parametrize("failing", ["best.weights.h5", "last.weights.h5", "best.json",
                                     CHECKSUMS_FILE])
def test_a_full_disk_keeps_the_last_good_checkpoint(tmp_path, model, monkeypatch, failing):
    from rnnzoo.training_callbacks import _checkpoint_callback

    ckpt = tmp_path / "checkpoints"
    callback = _checkpoint_callback(tmp_path, "val_loss", "min", None)
    callback.set_model(model)
    callback.on_epoch_end(0, {"val_loss": 1.0})
    before = snapshot(ckpt)
    assert set(before) == {"last.weights.h5", "best.weights.h5", "best.json", CHECKSUMS_FILE}
    bump(model)
    full_disk_at(monkeypatch, failing)
    with pytest.raises(StorageError) as caught:
        callback.on_epoch_end(1, {"val_loss": 0.5})  # better: last, best and best.json
    message = str(caught.value)
    assert "no space left on device [ENOSPC]" in message and failing in message, message
    assert caught.value.errno == errno.ENOSPC
    assert snapshot(ckpt) == before  # nothing replaced, no temporary file left
    for name in ("last.weights.h5", "best.weights.h5"):
        verify_weights_file(tmp_path, ckpt / name)
    assert callback.best == 1.0  # best.json still says 1.0: the next epoch compares with it
    monkeypatch.undo()
    callback.on_epoch_end(2, {"val_loss": 0.5})
    assert json.loads((ckpt / "best.json").read_text())["epoch"] == 3
    verify_weights_file(tmp_path, ckpt / "best.weights.h5")
    assert (ckpt / "best.weights.h5").read_bytes() != before["best.weights.h5"]


def test_a_full_disk_keeps_the_previous_backup(tmp_path, model, monkeypatch):
    from rnnzoo.training_callbacks import _backup_callback

    backup = _backup_callback(tmp_path / "backup", "epoch", None)
    backup.set_model(model)
    backup._current_epoch, backup._last_batch_seen = 1, 0
    backup._save_model()
    before = snapshot(tmp_path / "backup")
    assert len(before) == 2
    bump(model)
    backup._current_epoch = 2
    full_disk_at(monkeypatch, Path(backup._training_metadata_path).name)
    with pytest.raises(StorageError, match=r"training_metadata\.json: no space left"):
        backup._save_model()
    assert snapshot(tmp_path / "backup") == before  # weights and metadata still agree


def test_a_full_disk_on_the_history_file_closes_it(tmp_path):
    from rnnzoo.training_callbacks import _csv_logger

    class FullDisk:
        closed = False

        def write(self, text):
            return len(text)

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.closed = True

    logger = _csv_logger(tmp_path / "history.csv")
    logger.on_train_begin()
    logger.csv_file.close()
    logger.csv_file = full = FullDisk()
    with pytest.raises(StorageError, match=r"history\.csv: no space left on device \[ENOSPC\]"):
        logger.on_epoch_end(0, {"loss": 1.0})
    assert full.closed  # its buffered row cannot fail again when the file is freed


def test_weights_are_built_in_memory(tmp_path, model):
    import keras

    path = tmp_path / "w.weights.h5"
    data = weights_bytes(model, path)
    assert not path.exists() and data[:8] == b"\x89HDF\r\n\x1a\n"
    path.write_bytes(data)
    copy = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    copy.load_weights(path)
    for a, b in zip(model.get_weights(), copy.get_weights()):
        assert (a == b).all()


# == a real full disk ============================================================================
FILL_AT_EPOCH_2 = textwrap.dedent("""
    import os, sys
    import keras
    import rnnzoo.training as T

    fill = sys.argv.pop(1)

    class Fill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:  # every byte of the file system, left for the writes of epoch 2
                fd = os.open(fill, os.O_WRONLY | os.O_CREAT)
                try:
                    while True:
                        os.write(fd, b"\\0" * 65536)
                except OSError:
                    pass
                try:
                    while True:
                        os.write(fd, b"\\0")
                except OSError:
                    pass
                os.close(fd)

    callbacks = T._callbacks
    T._callbacks = lambda *a, **k: (lambda f: ([Fill()] + f[0], f[1]))(callbacks(*a, **k))
    from rnnzoo.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs, where this process may mount one (root on Linux) and the run asks for it
    with ``RNNZOO_REAL_DISK_FULL=1`` (it mounts a file system and trains: ~40 s); else skip."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.environ.get("RNNZOO_REAL_DISK_FULL") != "1":
        pytest.skip("set RNNZOO_REAL_DISK_FULL=1 to fill a real (tmpfs) file system")
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mount (root on Linux)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_a_real_full_disk_is_one_line_and_no_crash(small_disk, sentiment_csv):
    out = small_disk / "run"
    argv = ["train", "sentiment_gru", "--data", str(sentiment_csv), "--out", str(out),
            "--epochs", "2", "--set", "vocab_size=64", "--set", "embedding_dim=8",
            "--set", "units=8", "--set", "max_length=16", "--set", "warmup_steps=0",
            "--set", "early_stopping_patience=0", "--batch-size", "32"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", FILL_AT_EPOCH_2, str(small_disk / "fill"),
                           *argv], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])  # not -11 (SIGSEGV)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("rnnzoo: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "no space left on device [ENOSPC]" in errors[0] and str(out) in errors[0]
    for noise in ("Traceback", "Exception ignored", "HDF5"):
        assert noise not in proc.stderr, proc.stderr[-3000:]
    for name in ("last.weights.h5", "best.weights.h5"):  # epoch 1's, listed and intact
        verify_weights_file(out, out / "checkpoints" / name)
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and "tmp" in p.name]
