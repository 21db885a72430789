"""Small file helpers shared by training, saving, export and the runtime (TF-free).

Everything that writes does so atomically (temporary name, then rename), so a crash or a full
disk never leaves a half-written artifact behind, and the last good version stays in place.
What is written follows the process umask (``tempfile`` alone would make it private), and a full
disk or a permission problem becomes one ``StorageError`` naming the path.

The rest guards what is read or removed: ``verify_files`` checks a manifest's paths as well as
its digests, ``unlisted_files`` finds files a manifest does not cover, ``check_removable_run_dir``
/ ``check_removable_bundle_dir`` keep ``--overwrite`` from deleting anything that is not ours,
and ``lock_directory`` keeps two writers out of one directory.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import socket
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rnnzoo.errors import RnnzooError, short_repr

__all__ = [
    "BUNDLE_DIR_NAMES",
    "LOCK_FILE",
    "LOCK_INFO_FILE",
    "LockError",
    "PRESET_DIR_NAMES",
    "RUN_DIR_MARKERS",
    "RUN_DIR_NAMES",
    "StorageError",
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_removable_bundle_dir",
    "check_removable_dir",
    "check_removable_preset_dir",
    "check_removable_run_dir",
    "current_umask",
    "empty_directory",
    "ensure_directory",
    "lock_directory",
    "read_json",
    "resolve_member",
    "sha256_file",
    "storage_errors",
    "unlisted_files",
    "verify_files",
]


class StorageError(RnnzooError, OSError):
    """The disk is full, read-only or not writable by us: the message names the path and what
    to do; what was there before is left intact. ``errno`` and ``filename`` are set."""

    def __init__(self, message: str, errno: int | None = None,
                 filename: str | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.filename = filename

    def __str__(self) -> str:  # OSError would prefix "[Errno n]" when errno is set
        return str(self.args[0]) if self.args else ""


class LockError(RnnzooError, RuntimeError):
    """Another process holds the directory's lock (the message names it)."""


# -- umask and storage errors ---------------------------------------------------------------------
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``);
    elsewhere set-and-restore under a lock (not atomic against other threads calling umask)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0o022)
        os.umask(old)
    return old


def _file_mode() -> int:
    return 0o666 & ~current_umask()


def _dir_mode() -> int:
    return 0o777 & ~current_umask()


_AGAIN = "free some space and run the command again"
_ELSEWHERE = "check the folder's permissions or write elsewhere"
_STORAGE_HINTS = {  # errno -> (what happened, what to do)
    errno_mod.ENOSPC: ("no space left on device", _AGAIN),
    errno_mod.EDQUOT: ("disk quota exceeded", _AGAIN),
    errno_mod.EFBIG: ("file too large for this file system", "write it elsewhere"),
    errno_mod.EACCES: ("permission denied", _ELSEWHERE),
    errno_mod.EPERM: ("operation not permitted", _ELSEWHERE),
    errno_mod.EROFS: ("read-only file system", "write elsewhere"),
    errno_mod.EIO: ("input/output error", "the disk may be failing"),
    errno_mod.ENOTDIR: ("a part of the path is a file, not a folder", "pick another path"),
    errno_mod.EISDIR: ("is a folder, not a file", "pick another path"),
    errno_mod.ENAMETOOLONG: ("file name too long", "pick a shorter path"),
}
_H5_ERRNO = re.compile(r"errno = (\d+)")


def _storage_error(exc: BaseException, target: Path | str,
                   staging: Path | None = None) -> StorageError | None:
    """The ``StorageError`` for a storage ``OSError`` (disk full, permissions, ...), or None
    for any other exception. ``target`` is named when the error carries no file name; a file
    name inside ``staging`` (a temporary build folder) is shown under ``target`` instead."""
    if not isinstance(exc, OSError) or isinstance(exc, RnnzooError):
        return None
    code = exc.errno
    if code is None:  # h5py puts the errno in its message only
        match = _H5_ERRNO.search(str(exc))
        code = int(match.group(1)) if match else None
    if code not in _STORAGE_HINTS:
        return None
    where = str(exc.filename) if exc.filename is not None else str(target)
    if staging is not None and where.startswith(str(staging)):
        where = str(target) + where[len(str(staging)):]
    reason, advice = _STORAGE_HINTS[code]
    name = errno_mod.errorcode.get(code, str(code))
    while_ = "" if where == str(target) else f" while writing {target}"
    return StorageError(f"{where}: {reason} [{name}]{while_}; {advice}", errno=code,
                        filename=where)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write a matplotlib figure as PNG atomically (temporary name, then rename) and close it;
    a full disk or a permission problem is a ``StorageError`` naming ``path``."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        with storage_errors(path):
            fig.savefig(tmp, dpi=dpi, format="png")
            os.replace(tmp, path)
    finally:
        plt.close(fig)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def storage_errors(target: str | os.PathLike) -> Iterator[None]:
    """Turn a storage ``OSError`` raised inside the block into a ``StorageError`` naming
    ``target`` (or the file the error names). Wrap writes the atomic helpers do not cover:
    Keras/h5py weights, CSV loggers, plots."""
    try:
        yield
    except OSError as exc:
        wrapped = _storage_error(exc, Path(target))
        if wrapped is None:
            raise
        raise wrapped from exc


def ensure_directory(path: str | os.PathLike) -> Path:
    """``mkdir -p`` that says which part of ``path`` is a file, or that the disk refuses,
    as a ``StorageError`` (not a bare ``FileExistsError`` traceback)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()),
                           path)
            raise StorageError(f"{blocker}: is a file, not a folder; pick another path",
                               errno=exc.errno, filename=str(blocker)) from None
        wrapped = _storage_error(exc, path)
        if wrapped is None:
            raise
        raise wrapped from None
    return path


# -- atomic writes --------------------------------------------------------------------------------
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write a file via a temporary file in the same folder and rename it into place.

    The file gets ``0o666 & ~umask`` (``mkstemp`` alone gives 0600, which a service account
    serving a bundle cannot read); on a full disk or a permission error the previous file is
    left intact and a ``StorageError`` names the path."""
    path = Path(path)
    ensure_directory(path.parent)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _file_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        wrapped = _storage_error(exc, path)
        if wrapped is None:
            raise
        raise wrapped from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file atomically (see ``atomic_write_bytes``)."""
    atomic_write_bytes(path, text.encode("utf-8"))


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


# -- reading and verifying ------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (weights can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path, error: type[Exception], missing_hint: str) -> Any:
    """Parse a JSON file, raising ``error`` naming the file (and line) when it is missing,
    unreadable, not UTF-8 or malformed: a hostile file gives one line, never a traceback."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path.parent}: no {path.name}; {missing_hint}")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte offset {exc.start}); is it the right "
                    "file?") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python parses
        raise error(f"{path}: invalid JSON: {exc}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None


_SHA256 = re.compile(r"[0-9a-f]{64}")


def resolve_member(directory: Path, rel: Any, error: type[Exception], listing: str) -> Path:
    """The path of manifest entry ``rel`` under ``directory``, or ``error`` naming the entry if
    it is not a plain relative path (absolute, ``..``, ``.``, ``//``, backslashes), passes
    through a symbolic link, or resolves outside ``directory``.

    A manifest is data from disk: without this, ``../../etc/passwd`` or a symlink would be
    opened (and trusted) as part of the directory."""
    bad = None
    if not isinstance(rel, str) or not rel:
        bad = "not a non-empty string"
    elif "\x00" in rel or "\\" in rel or any(ord(c) < 32 for c in rel):
        bad = "contains a backslash or a control character"
    elif rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        bad = "is an absolute path"
    elif ".." in rel.split("/"):
        bad = "leaves the directory ('..')"
    elif posixpath.normpath(rel) != rel or "." in rel.split("/"):
        bad = "is not a normalised relative path"
    if bad:
        raise error(f"{directory}: entry {_quote(rel)} in {listing} {bad}; the manifest was "
                    "modified or is not from rnnzoo")
    root = Path(directory)
    current = root
    try:
        for part in rel.split("/"):
            current = current / part
            if current.is_symlink():
                raise error(f"{directory}: entry {_quote(rel)} in {listing} is (or passes "
                            f"through) a symbolic link {current}; refusing to follow it")
        inside = current.resolve().is_relative_to(root.resolve())
    except (OSError, ValueError) as exc:  # name too long, undecodable name, ...
        raise error(f"{directory}: entry {_quote(rel)} in {listing} cannot be checked: "
                    f"{exc}") from None
    if not inside:
        raise error(f"{directory}: entry {_quote(rel)} in {listing} resolves outside the "
                    "directory")
    return current


def _quote(value: Any, limit: int = 80) -> str:
    return short_repr(value, limit)


def verify_files(directory: Path, sums: dict[str, str], listing: str, error: type[Exception],
                 fix: str) -> None:
    """Check that every file in ``sums`` (relative path -> sha256) exists under ``directory``
    with that digest; ``listing`` names the file that lists them, ``fix`` says what to do.

    Every entry must be a safe relative path (``resolve_member``) and a lowercase hex sha256;
    any problem, including an unreadable file, raises ``error`` naming the entry."""
    if not isinstance(sums, Mapping):
        raise error(f"{directory}: {listing} must map file names to sha256, found "
                    f"{type(sums).__name__}")
    for rel, digest in sums.items():
        file = resolve_member(Path(directory), rel, error, listing)
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise error(f"{directory}: entry {_quote(rel)} in {listing} has no valid sha256 "
                        f"(found {_quote(digest, 40)}); {fix}")
        try:
            is_file = file.is_file()
            actual = sha256_file(file) if is_file else ""
        except (OSError, ValueError) as exc:
            raise error(f"{file}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
        if not is_file:
            raise error(f"{directory}: file {rel} listed in {listing} is missing")
        if actual != digest:
            raise error(f"{file}: sha256 mismatch (expected {digest[:12]}..., found "
                        f"{actual[:12]}...); the file is corrupt or was modified: {fix}")


def unlisted_files(directory: str | os.PathLike, listed: Iterable[str],
                   ignore: Iterable[str] = ()) -> list[str]:
    """Files (and symbolic links) under ``directory`` that ``listed`` does not name, as sorted
    relative POSIX paths; ``ignore`` holds ``fnmatch`` patterns matched against those paths
    (``*`` also crosses ``/``: ``"backup/*"`` skips everything under ``backup``).

    A checksum file only protects what it lists: callers refuse a graph or asset that is
    present but not listed, instead of opening it unverified."""
    root = Path(directory)
    listed = set(listed)
    patterns = tuple(ignore)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        names = list(filenames) + [d for d in dirnames if (base / d).is_symlink()]
        for name in names:
            rel = (base / name).relative_to(root).as_posix()
            if rel in listed or any(fnmatch.fnmatchcase(rel, p) for p in patterns):
                continue
            found.append(rel)
    return sorted(found)


# -- what --overwrite may remove ------------------------------------------------------------------
RUN_DIR_NAMES = (
    "config.json", "model.weights.h5", "assets", "checksums.json", "checkpoints", "history.csv",
    "history.json", "training_curve.png", "metrics.json", "train.log.json", "backup",
    "diagnostics.json", "diagnostics.png",
)
RUN_DIR_MARKERS = ("checksums.json", "history.csv", "backup", "train.log.json", "checkpoints")
BUNDLE_DIR_NAMES = ("bundle.json", "*.onnx", "assets")
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
