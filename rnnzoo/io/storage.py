"""Writing files safely: a full disk or a permission problem becomes one ``StorageError`` naming
the path, and every write is atomic (temporary name, then rename) with the process umask."""

from __future__ import annotations

import contextlib
import errno as errno_mod
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rnnzoo.errors import RnnzooError


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
def _stage(path: Path, data: bytes) -> str:
    """``data`` written and flushed to a new temporary file next to ``path`` (with the umask's
    mode); its name. The temporary file is removed if any of this fails."""
    ensure_directory(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _file_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_many(files: Mapping[str | os.PathLike, bytes],
                      before_replace: Callable[[], None] | None = None) -> None:
    """Write several files atomically together: each is written and flushed to a temporary file
    in its folder first; only when all are (and ``before_replace``, e.g. updating a checksum
    listing, has run) are they renamed into place. A full disk or a permission problem at any
    point is one ``StorageError`` naming the file, and every previous version stays as it was
    (renames in one folder need no space, so they do not fail on a full disk)."""
    staged: dict[Path, str] = {}
    current: Path | None = None
    try:
        for path, data in files.items():
            current = Path(path)
            staged[current] = _stage(current, data)
        current = None
        if before_replace is not None:
            before_replace()
        for path in list(staged):
            current = path
            os.replace(staged[path], path)
            del staged[path]
    except OSError as exc:
        wrapped = _storage_error(exc, current if current is not None else
                                 next(iter(map(Path, files)), Path(".")))
        if wrapped is None:
            raise
        raise wrapped from None
    finally:
        for tmp in staged.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write a file via a temporary file in the same folder and rename it into place.

    The file gets ``0o666 & ~umask`` (``mkstemp`` alone gives 0600, which a service account
    serving a bundle cannot read); on a full disk or a permission error the previous file is
    left intact and a ``StorageError`` names the path."""
    atomic_write_many({path: data})


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file atomically (see ``atomic_write_bytes``)."""
    atomic_write_bytes(path, text.encode("utf-8"))
