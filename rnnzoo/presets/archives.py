"""Where presets come from besides a directory: archives unpacked member by member, the cache
under ``$RNNZOO_HOME/presets`` and downloads (TF-free)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from rnnzoo.io import atomic_write_text, sha256_file
from rnnzoo.presets.card import _size
from rnnzoo.presets.metadata import (
    CHECKSUMS_FILE,
    METADATA_FILE,
    NAME_RE,
    SHA256_RE,
    PresetError,
    verify_preset,
)

DOWNLOAD_TIMEOUT_S = 60.0
_SOURCES_INDEX = ".sources.json"  # archive sha256 -> cached preset (skips re-downloads)


# -- archives ----------------------------------------------------------------------------------


def _member_path(name: str, label: str) -> PurePosixPath | None:
    """The safe relative path of an archive member, None for the archive root ('./')."""
    if (not name or name.startswith("/") or "\\" in name or "\x00" in name
            or re.match(r"^[A-Za-z]:", name)):
        raise PresetError(f"{label}: refused archive member {name!r}: absolute or non-portable "
                          "path; a preset archive holds only relative paths")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if ".." in parts:
        raise PresetError(f"{label}: refused archive member {name!r}: '..' would write outside "
                          "the preset; the archive is malformed or hostile")
    return PurePosixPath(*parts) if parts else None


_Plan = list[tuple[PurePosixPath | None, bool, Callable[[], Any]]]  # (path, is a folder, open)
MAX_CHECKSUMS_BYTES = 4 << 20  # a preset's checksums.json lists a few dozen files


def _refuse_kind(label: str, name: str, what: str) -> PresetError:
    """The one refusal of a link or special member, whichever archive format holds it."""
    return PresetError(f"{label}: refused archive member {name!r}: it is {what}; a preset "
                       "archive holds only regular files and folders")


class _Budget:
    """The archive limits (``rnnzoo.limits``), counted as members are listed and as bytes are
    written: a refusal comes at the limit, never after it."""

    def __init__(self, label: str) -> None:
        from rnnzoo import limits

        self.label, self.limits = label, limits
        self.members = self.declared = self.written = 0

    def member(self, size: int) -> None:
        """One more member, declaring ``size`` bytes (checked before anything is written)."""
        self.members += 1
        self.limits.check("max_archive_members", self.members,
                          f"{self.label}: members in the archive (counted while listing)")
        self.declared += max(0, int(size))
        self.limits.check("max_archive_bytes", self.declared,
                          f"{self.label}: bytes its members declare (counted while listing)")

    def write(self, n: int) -> None:
        """``n`` more bytes about to be written."""
        self.limits.check("max_archive_bytes", self.written + n,
                          f"{self.label}: bytes extracted (counted while extracting)")
        self.written += n


def _copy_counted(src: Any, out: Any, budget: _Budget, block: int = 1 << 20) -> None:
    """Copy ``src`` to ``out``; each block is counted before it is written."""
    while data := src.read(block):
        budget.write(len(data))
        out.write(data)


def _require_listed(plan: _Plan, label: str) -> None:
    """A preset archive's members against its own ``checksums.json``, before anything is
    written: a member the preset would refuse after unpacking (an unlisted file, however
    large) is refused now, and so is an archive without checksums."""
    from rnnzoo.presets.metadata import _safe_relative

    files = {rel.as_posix(): read for rel, is_dir, read in plan if rel is not None and not is_dir}
    tops = {rel.parts[0] for rel, _, _ in plan if rel is not None}
    prefix = ""
    if CHECKSUMS_FILE not in files and METADATA_FILE not in files and len(tops) == 1:
        prefix = f"{next(iter(tops))}/"
    if f"{prefix}{METADATA_FILE}" not in files:
        raise PresetError(f"{label}: not a preset archive (no {METADATA_FILE} at its top level "
                          "or in a single top folder)")
    sums_name = f"{prefix}{CHECKSUMS_FILE}"
    if sums_name not in files:
        raise PresetError(f"{label}: no {CHECKSUMS_FILE}; a preset without checksums is refused "
                          "(re-download it, or re-create it with save_preset)")
    with files[sums_name]() as f:
        raw = f.read(MAX_CHECKSUMS_BYTES + 1)
    try:
        sums = json.loads(raw.decode("utf-8")) if len(raw) <= MAX_CHECKSUMS_BYTES else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        sums = None
    if not isinstance(sums, dict) or not all(isinstance(k, str) and _safe_relative(k)
                                             for k in sums):
        raise PresetError(f"{label}/{sums_name}: not a JSON object of file -> sha256 (at most "
                          f"{MAX_CHECKSUMS_BYTES} bytes); re-download the preset")
    listed = {f"{prefix}{rel}" for rel in sums} | {sums_name}
    for name in sorted(files):
        if name not in listed:
            raise PresetError(f"{label}/{name}: file not listed in {CHECKSUMS_FILE}; a preset "
                              "holds only listed files: remove it (or re-create the preset)")


def _make_folders(folder: Path, dest: Path, created: list[Path]) -> None:
    """Create ``folder`` and its missing parents below ``dest``, noting each one created."""
    missing = []
    while folder != dest and not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
        created.append(path)


def _write_members(dest: Path, plan: _Plan, label: str, budget: _Budget) -> None:
    """Write an archive's members once all of them passed the checks (so a refused archive
    writes nothing), the same way for tar and zip, counting bytes as they are written; on any
    failure (the byte limit, a full disk) what was written is removed again."""
    created: list[Path] = []
    try:
        for rel, is_dir, read in plan:
            if rel is None:
                continue
            target = dest.joinpath(*rel.parts)
            if not target.resolve().is_relative_to(dest.resolve()):  # cannot happen after checks
                raise PresetError(f"{label}: refused archive member {rel.as_posix()!r}")
            _make_folders(target if is_dir else target.parent, dest, created)
            if is_dir:
                continue
            existed = target.exists()
            with read() as src, open(target, "wb") as out:
                if not existed:
                    created.append(target)
                _copy_counted(src, out, budget)
    except BaseException:
        for path in reversed(created):
            try:
                path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
            except OSError:
                pass
        raise


def _extract_tar(archive: Path, dest: Path, label: str, listed_only: bool) -> None:
    budget = _Budget(label)
    with tarfile.open(archive, "r:*") as tar:
        plan: _Plan = []
        # Member by member (not getmembers()): a header over a limit stops the listing before
        # the member's data is read, let alone decompressed.
        while (m := tar.next()) is not None:
            rel = _member_path(m.name, label)
            if not (m.isfile() or m.isdir()):
                raise _refuse_kind(label, m.name, "a symbolic link" if m.issym() else
                                   "a hard link" if m.islnk() else "a device or special file")
            budget.member(m.size if m.isfile() else 0)
            plan.append((rel, m.isdir(), lambda m=m: tar.extractfile(m)))
        if listed_only:
            _require_listed(plan, label)
        _write_members(dest, plan, label, budget)


def _extract_zip(archive: Path, dest: Path, label: str, listed_only: bool) -> None:
    budget = _Budget(label)
    with zipfile.ZipFile(archive) as zf:
        plan: _Plan = []
        for info in zf.infolist():
            rel = _member_path(info.filename, label)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _refuse_kind(label, info.filename, "a symbolic link"
                                   if kind == stat.S_IFLNK else "a special file")
            budget.member(0 if info.is_dir() else info.file_size)
            plan.append((rel, info.is_dir(), lambda info=info: zf.open(info)))
        if listed_only:
            _require_listed(plan, label)
        _write_members(dest, plan, label, budget)


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike,
                    label: str | None = None, *, listed_only: bool = False) -> None:
    """Unpack a ``.tar.gz``/``.tgz``/``.tar``/``.zip`` into the existing folder ``dest``, member
    by member: absolute paths, '..', links and devices are refused before anything is written,
    and so are more members or more declared bytes than ``rnnzoo.limits`` allows
    (``max_archive_members``, ``max_archive_bytes``); the bytes are counted again while they
    are written, and writing stops at the limit (``LimitError``) with what was written removed.
    ``listed_only``: a preset archive, whose members must all be listed in its own
    ``checksums.json`` (checked before writing). The type is read from the content, so a
    server's HTML error page is reported as such."""
    archive, dest = Path(archive), Path(dest)
    label = label or str(archive)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, dest, label, listed_only)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, dest, label, listed_only)
        else:
            raise PresetError(f"{label}: not a preset archive (expected a .tar.gz, .tgz or .zip "
                              "file); check the path or URL")
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise PresetError(f"{label}: corrupt archive ({exc}); re-download it") from None
    except PresetError:
        raise
    except OSError as exc:
        raise PresetError(f"{label}: cannot unpack ({exc.strerror or exc}); the archive is "
                          "malformed or the disk is full") from None


# -- the cache ---------------------------------------------------------------------------------


def rnnzoo_home() -> Path:
    """``$RNNZOO_HOME``, default ``~/.cache/rnnzoo``."""
    return Path(os.environ.get("RNNZOO_HOME") or "~/.cache/rnnzoo").expanduser()


def preset_cache_dir() -> Path:
    """Where downloaded and unpacked presets live: ``$RNNZOO_HOME/presets``."""
    return rnnzoo_home() / "presets"


def _dir_mode() -> int:
    """``0o777 & ~umask``: ``mkdtemp`` makes private folders, a shared cache must not be."""
    try:
        from rnnzoo.io import current_umask
    except ImportError:
        mask = os.umask(0o022)
        os.umask(mask)
    else:
        mask = current_umask()
    return 0o777 & ~mask


def _read_index(cache: Path) -> dict:
    try:
        index = json.loads((cache / _SOURCES_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def _cached_by_digest(cache: Path, digest: str) -> tuple[Path, dict] | None:
    """The cached preset unpacked from the archive with this sha256, if it is intact."""
    hit = _read_index(cache).get(digest)
    if not isinstance(hit, dict) or not NAME_RE.match(str(hit.get("name", ""))):
        return None
    path = cache / hit["name"]
    sums = path / CHECKSUMS_FILE
    if not sums.is_file() or sha256_file(sums) != hit.get("checksums"):
        return None  # replaced by another archive of the same name since
    try:
        return path, verify_preset(path)
    except PresetError:
        return None  # damaged: unpack the archive again


def _install_archive(archive: Path, label: str, expected_sha256: str | None,
                     digest: str | None = None) -> tuple[Path, dict]:
    """Check an archive's sha256, unpack it into a temporary folder of the cache, verify it,
    then rename it to ``<cache>/<name>``; on any failure nothing is left in the cache."""
    digest = digest or sha256_file(archive)
    if expected_sha256 is not None and digest != expected_sha256:
        raise PresetError(f"{label}: sha256 mismatch (expected {expected_sha256[:12]}..., found "
                          f"{digest[:12]}...); the download is corrupt or the archive changed: "
                          "check the URL and the hash")
    cache = preset_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    hit = _cached_by_digest(cache, digest)
    if hit is not None:
        return hit
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache))
    try:
        extract_archive(archive, tmp, label, listed_only=True)
        top = tmp
        if not (tmp / METADATA_FILE).exists():
            entries = list(tmp.iterdir())
            if len(entries) == 1 and (entries[0] / METADATA_FILE).is_file():
                top = entries[0]
            else:
                raise PresetError(f"{label}: not a preset archive (no {METADATA_FILE} at its top "
                                  "level or in a single top folder)")
        try:
            meta = verify_preset(top)
        except PresetError as exc:
            raise PresetError(str(exc).replace(str(tmp), label)) from None
        os.chmod(top, _dir_mode())
        final = cache / meta["name"]
        old = cache / f".old-{meta['name']}-{uuid.uuid4().hex}"
        if final.exists():  # an older copy: set it aside, and put it back if the rename fails
            os.replace(final, old)
        try:
            os.replace(top, final)
        except BaseException:
            if old.exists():
                os.replace(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    index = _read_index(cache)
    index[digest] = {"name": meta["name"], "checksums": sha256_file(final / CHECKSUMS_FILE)}
    atomic_write_text(cache / _SOURCES_INDEX, json.dumps(index, indent=2, sort_keys=True))
    return final, meta


# -- downloads ---------------------------------------------------------------------------------


def _offline() -> bool:
    return os.environ.get("RNNZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _split_sha_fragment(url: str) -> tuple[str, str | None]:
    base, fragment = urllib.parse.urldefrag(url)
    if not fragment:
        return base, None
    key, _, value = fragment.partition("=")
    if key != "sha256":
        raise PresetError(f"{url}: unknown URL fragment #{fragment}; the only one understood is "
                          "#sha256=<64 hex digits>")
    return base, _normalise_sha(value, url)


def _normalise_sha(value: str, where: str) -> str:
    value = value.strip().lower()
    if not SHA256_RE.match(value):
        raise PresetError(f"{where}: expected sha256 {value!r} is not 64 hex digits")
    return value


class _Progress:
    """A one-line percentage on stderr (only when it is a terminal, unless forced)."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label, self.total, self.enabled, self.last = label, total, enabled, -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if self.total:
            pct = min(100, done * 100 // self.total)
            if pct != self.last:
                self.last = pct
                print(f"\rdownloading {self.label}: {pct:3d}% of {_size(self.total)}", end="",
                      file=sys.stderr, flush=True)
        else:
            print(f"\rdownloading {self.label}: {_size(done)}", end="", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)


def _download(url: str, dest: Path, progress: bool | None) -> None:
    """Stream ``url`` into ``dest``; every failure is a one-line PresetError."""
    from rnnzoo import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"rnnzoo/{__version__}"})
    shown = url.rsplit("/", 1)[-1] or url
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = _Progress(shown, total, sys.stderr.isatty() if progress is None else progress)
            done = 0
            with open(dest, "wb") as out:
                while block := resp.read(1 << 20):
                    out.write(block)
                    done += len(block)
                    bar.update(done)
            bar.close()
    except urllib.error.HTTPError as exc:
        raise PresetError(f"{url}: download failed: HTTP {exc.code} {exc.reason}; check the "
                          "URL") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise PresetError(f"{url}: download failed: {reason}; check the URL and the network "
                          "(or download the archive yourself and pass its path)") from None
    if total is not None and done != total:
        raise PresetError(f"{url}: download truncated ({done} of {total} bytes); try again")


def _from_url(url: str, expected_sha256: str | None, progress: bool | None) -> tuple[Path, dict]:
    base, fragment_sha = _split_sha_fragment(url)
    if fragment_sha and expected_sha256 and fragment_sha != expected_sha256:
        raise PresetError(f"{url}: the #sha256 fragment and expected_sha256 disagree; keep one")
    expected = expected_sha256 or fragment_sha
    cache = preset_cache_dir()
    if expected is not None and cache.is_dir():
        hit = _cached_by_digest(cache, expected)
        if hit is not None:
            return hit
    scheme = urllib.parse.urlsplit(base).scheme.lower()
    if scheme != "file" and _offline():
        raise PresetError(f"{base}: RNNZOO_OFFLINE=1 forbids downloads; unset RNNZOO_OFFLINE, or "
                          "download the archive yourself and pass its local path")
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=cache)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _download(base, tmp, progress)
        return _install_archive(tmp, base, expected)
    finally:
        tmp.unlink(missing_ok=True)
