"""Directories: built whole or not at all (``atomic_directory``), what ``--overwrite`` may
remove (only rnnzoo's own run, bundle and preset folders), one writer per directory
(``lock_directory``)."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import secrets
import shutil
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from rnnzoo.errors import RnnzooError
from rnnzoo.io.storage import (
    _dir_mode,
    _storage_error,
    atomic_write_text,
    ensure_directory,
    storage_errors,
)


class LockError(RnnzooError, RuntimeError):
    """Another process holds the directory's lock (the message names it)."""


# -- replacing a directory ----------------------------------------------------------------------
def atomic_directory(final: Path, fill: Callable[[Path], None], overwrite: bool,
                     error: type[Exception],
                     removable: Callable[[Path], None] | None = None) -> Path:
    """Build a directory with ``fill(tmp)`` in a sibling temporary folder, then rename it to
    ``final``; on any failure nothing is left behind and an existing ``final`` is untouched.

    ``error`` is raised if ``final`` exists and ``overwrite`` is false, if it is not a folder,
    or if it is the current directory, an ancestor of it, the home directory or ``/``.
    ``removable(final)``, when given, is called before any work to refuse replacing a folder
    that is not ours (``check_removable_run_dir`` / ``check_removable_bundle_dir``). The
    folder gets ``0o777 & ~umask``; storage failures become ``StorageError``."""
    final = Path(final)
    existing = final.exists() or final.is_symlink()
    if existing:
        if not overwrite:
            raise error(f"{final} already exists; pass overwrite=True (--overwrite) or pick "
                        "another path")
        if final.is_symlink() or not final.is_dir():
            raise error(f"{final} is not a folder (a file or a symbolic link); not replacing "
                        "it: remove it yourself or pick another path")
        _refuse_precious(final, error)
        if removable is not None:
            removable(final)
    ensure_directory(final.parent)
    tmp: Path | None = None
    aside: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        os.chmod(tmp, _dir_mode())
        fill(tmp)
        if existing:
            # Move the old folder aside first: if the rename of the new one fails, put it back.
            aside = final.parent / f".{final.name}.old-{secrets.token_hex(4)}"
            os.replace(final, aside)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(aside, final)
                aside = None
                raise
        else:
            os.replace(tmp, final)
        tmp = None
    except OSError as exc:
        wrapped = _storage_error(exc, final, staging=tmp)
        if wrapped is None:
            raise
        raise wrapped from None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    return final


# -- what --overwrite may remove ------------------------------------------------------------------
RUN_DIR_NAMES = (
    "config.json", "model.weights.h5", "assets", "checksums.json", "checkpoints", "history.csv",
    "history.json", "training_curve.png", "metrics.json", "train.log.json", "backup",
    "diagnostics.json", "diagnostics.png",
)
RUN_DIR_MARKERS = ("checksums.json", "history.csv", "backup", "train.log.json", "checkpoints")
BUNDLE_DIR_NAMES = ("bundle.json", "SHA256SUMS", "*.onnx", "shared_weights.bin", "assets")
PRESET_DIR_NAMES = ("config.json", "model.weights.h5", "assets", "metadata.json", "README.md",
                    "checksums.json", "onnx")
LOCK_FILE = ".lock"
LOCK_INFO_FILE = ".lock.json"


def _refuse_precious(path: Path, error: type[Exception]) -> None:
    """Refuse the current directory, its ancestors, the home directory (and its ancestors) and
    the file-system root, whatever symbolic links lead there."""
    try:
        target = Path(path).resolve()
        cwd = Path.cwd().resolve()
    except (OSError, RuntimeError) as exc:
        raise error(f"{path}: cannot resolve the path ({exc}); not removing it") from None
    if target == Path(target.anchor):
        raise error(f"{path}: is the file-system root; refusing to remove it")
    if target == cwd or target in cwd.parents:
        what = "the current directory" if target == cwd else "an ancestor of the current directory"
        raise error(f"{path}: is {what}; refusing to remove it (pick a new --out folder)")
    try:
        home = Path.home().resolve()
    except (OSError, RuntimeError, KeyError):
        home = None
    if home is not None and (target == home or target in home.parents):
        what = "the home directory" if target == home else "an ancestor of the home directory"
        raise error(f"{path}: is {what}; refusing to remove it")


def check_removable_dir(path: str | os.PathLike, error: type[Exception], *, what: str,
                        required: Iterable[str], markers: Iterable[str] = (),
                        allowed: Iterable[str] = ()) -> None:
    """Raise ``error`` unless removing ``path`` can only lose something rnnzoo wrote there.

    ``path`` must not be a symbolic link, the current directory, an ancestor of it, the home
    directory or ``/``; it must hold every name in ``required`` (files), at least one of
    ``markers`` (when given), and nothing but ``required``/``markers``/``allowed`` names
    (``fnmatch`` patterns), the lock files and hidden temporary files. A missing path or an
    empty folder passes the content checks (nothing would be lost)."""
    path = Path(path)
    if path.is_symlink():
        raise error(f"{path}: is a symbolic link; not removing it (remove it yourself or pick "
                    "another path)")
    if not path.exists():
        return
    _refuse_precious(path, error)
    if not path.is_dir():
        raise error(f"{path}: is a file, not a {what}; not removing it (pick another path)")
    try:
        entries = list(os.scandir(path))
    except OSError as exc:
        raise error(f"{path}: cannot list it ({exc.strerror or exc}); not removing it") from None
    if not entries:
        return
    required, markers = tuple(required), tuple(markers)
    patterns = (*required, *markers, *tuple(allowed), LOCK_FILE, LOCK_INFO_FILE)
    names = {e.name for e in entries}
    unexpected = sorted(
        e.name + ("/" if e.is_dir(follow_symlinks=False) else "")
        for e in entries
        if not any(fnmatch.fnmatchcase(e.name, p) for p in patterns)
        and not (e.name.startswith(".") and e.is_file(follow_symlinks=False))
    )
    missing = [r for r in required if not (path / r).is_file()]
    problem = None
    if unexpected:
        shown = ", ".join(unexpected[:5]) + (", ..." if len(unexpected) > 5 else "")
        problem = f"it holds files an rnnzoo {what} does not ({shown})"
    elif missing:
        problem = f"it has no {', '.join(missing)}"
    elif markers and not names.intersection(markers):
        problem = f"it has none of {', '.join(markers)}"
    if problem:
        raise error(f"{path}: does not look like an rnnzoo {what}: {problem}; not removing it "
                    "(remove it yourself or pick another path)")


def check_removable_run_dir(path: Path, error: type[Exception]) -> None:
    """Raise ``error`` unless ``path`` is an rnnzoo run directory that ``--overwrite`` may
    delete (``config.json`` plus a run's marker files, nothing else; see
    ``check_removable_dir``): ``--out .`` must never empty the current directory."""
    check_removable_dir(path, error, what="run directory", required=("config.json",),
                        markers=RUN_DIR_MARKERS, allowed=RUN_DIR_NAMES)


def check_removable_bundle_dir(path: Path, error: type[Exception]) -> None:
    """Raise ``error`` unless ``path`` is an exported bundle (``bundle.json``, ``*.onnx``,
    ``assets/``) that ``--overwrite`` may replace."""
    check_removable_dir(path, error, what="bundle directory", required=("bundle.json",),
                        allowed=BUNDLE_DIR_NAMES)


def empty_directory(path: str | os.PathLike,
                    keep: Iterable[str] = (LOCK_FILE, LOCK_INFO_FILE)) -> None:
    """Remove everything in ``path`` except the names in ``keep`` (by default the lock files).

    For ``--overwrite`` under ``lock_directory``: removing the whole folder would delete the
    lock file while it is held and let a second writer in. Call a ``check_removable_*`` first."""
    path = Path(path)
    keep = set(keep)
    for entry in list(os.scandir(path)):
        if entry.name in keep:
            continue
        with storage_errors(entry.path):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def check_removable_preset_dir(path: Path, error: type[Exception]) -> None:
    """Raise ``error`` unless ``path`` is a preset directory (``rnnzoo.presets``:
    ``config.json``, ``checksums.json``, ``metadata.json``, weights, assets, README)."""
    check_removable_dir(path, error, what="preset directory",
                        required=("config.json", "checksums.json", "metadata.json"),
                        allowed=PRESET_DIR_NAMES)


# -- one writer per directory ---------------------------------------------------------------------
def _holder_description(directory: Path) -> str:
    """What the lock's sidecar says about its holder, for the error message."""
    try:
        info = json.loads((directory / LOCK_INFO_FILE).read_text(encoding="utf-8"))
        command = str(info.get("command", ""))
        if len(command) > 160:
            command = command[:157] + "..."
        return (f"another {info.get('what', 'process')} (pid {int(info['pid'])} on "
                f"{info.get('host', '?')}, since {info.get('started', '?')}: {command})")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "another process (it has not said which yet)"


@contextlib.contextmanager
def lock_directory(path: str | os.PathLike, what: str,
                   error: type[Exception] = LockError) -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock on ``path/.lock`` for the block.

    A second holder fails at once with ``error`` naming the first (pid, host, command line,
    read from the ``.lock.json`` sidecar written on acquiring; ``what`` says what the holder
    is doing, e.g. ``"rnnzoo train"``). The lock is the OS's (``filelock``): it dies with its
    process, so a crash or ``kill -9`` never leaves a stale lock. The directory is created if
    needed; on release the sidecar is removed, and a directory this call created that holds
    nothing else is removed again, so a failed start leaves nothing behind."""
    import filelock

    directory = Path(path)
    created = not directory.exists()
    ensure_directory(directory)
    lock = filelock.FileLock(str(directory / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise error(f"{directory}: in use by {_holder_description(directory)}; wait for it to "
                    "finish (or stop it), or use another directory") from None
    except OSError as exc:
        wrapped = _storage_error(exc, directory / LOCK_FILE)
        if wrapped is None:
            raise
        raise wrapped from None
    try:
        info = {
            "what": what,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv) or sys.executable,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_text(directory / LOCK_INFO_FILE, json.dumps(info) + "\n")
        yield directory
    finally:
        with contextlib.suppress(OSError):
            (directory / LOCK_INFO_FILE).unlink()
        if created:  # still holding the lock, so no one else can be using the directory
            _remove_if_only_lock(directory)
        lock.release()


def _remove_if_only_lock(directory: Path) -> None:
    """Remove a directory that holds nothing but its lock file."""
    with contextlib.suppress(OSError):
        if set(os.listdir(directory)) <= {LOCK_FILE}:
            lock_file = directory / LOCK_FILE
            if lock_file.exists() and stat.S_ISREG(lock_file.lstat().st_mode):
                lock_file.unlink()
            directory.rmdir()
