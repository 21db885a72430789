"""Reading what others wrote: JSON files that fail with one line, manifest entries resolved
inside their directory, digests checked, files a manifest does not list."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rnnzoo.errors import short_repr


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
                 fix: str) -> dict[str, str]:
    """Check that every file in ``sums`` (relative path -> sha256) exists under ``directory``
    with that digest; ``listing`` names the file that lists them, ``fix`` says what to do.
    Returns the verified digests (a copy of ``sums``), so a caller that needs them (a whole
    bundle's digest) does not read the files twice.

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
    return dict(sums)


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
