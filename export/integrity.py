"""Whole-bundle integrity: ``SHA256SUMS`` and the bundle digest (TF-free, numpy-free).

``bundle.json`` lists the sha256 of every other file, but nothing lists the sha256 of
``bundle.json`` itself, so an edited ``max_length`` changed answers silently. Every bundle now
carries ``SHA256SUMS``: one line ``<sha256>  <path>`` per file of the bundle, ``bundle.json``
included, sorted by path, in the format ``sha256sum -c SHA256SUMS`` checks. The **bundle
digest** is the sha256 of that listing (so ``sha256sum SHA256SUMS`` prints it): one value that
names the whole bundle. Checksums catch corruption and edits; only a digest pinned by the user
(``runtime.load(path, expected_digest=...)``) catches a bundle replaced file and hashes together.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rnnzoo.export.errors import BundleDigestError, BundleError

from rnnzoo.errors import short_repr

CHECKSUMS_FILE = "SHA256SUMS"
MAX_CHECKSUMS_BYTES = 1 << 20  # 10,000 files' lines fit many times over
_LINE = re.compile(r"([0-9a-f]{64})  ([^\n]+)")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def canonical_listing(sums: Mapping[str, str]) -> str:
    """``<sha256>  <path>`` lines sorted by path (code point order, which is byte order for the
    ASCII names rnnzoo writes): the content of ``SHA256SUMS``."""
    return "".join(f"{sums[rel]}  {rel}\n" for rel in sorted(sums))


def digest_of(sums: Mapping[str, str]) -> str:
    """The bundle digest of a listing (path -> sha256 of every file, ``bundle.json``
    included, ``SHA256SUMS`` excluded): sha256 of its canonical listing."""
    return hashlib.sha256(canonical_listing(sums).encode("utf-8")).hexdigest()


def normalise_digest(value: Any, where: str = "expected_digest") -> str:
    """A pinned digest as 64 lowercase hex digits; ``sha256:`` / ``sha256=`` prefixes are
    accepted (``rnnzoo serve NAME=PATH#sha256=...`` passes what follows the ``#``)."""
    text = value.strip().lower() if isinstance(value, str) else None
    if text is not None:
        for prefix in ("sha256:", "sha256="):
            if text.startswith(prefix):
                text = text[len(prefix):]
    if text is None or not _DIGEST.fullmatch(text):
        raise BundleError(f"{where}: expected a bundle digest (64 hex digits, as `rnnzoo "
                          f"export` prints it or `sha256sum SHA256SUMS` computes it), found "
                          f"{short_repr(value, 80)}")
    return text


def read_checksums(path: Path) -> dict[str, str]:
    """Parse ``SHA256SUMS`` (``path`` is the bundle directory): it must be in canonical form,
    so the bundle digest is also ``sha256sum SHA256SUMS``."""
    file = Path(path) / CHECKSUMS_FILE
    if file.is_symlink() or not file.is_file():
        raise BundleError(f"{path}: {CHECKSUMS_FILE} is missing or not a regular file; "
                          "re-export the bundle")
    try:
        size = file.stat().st_size
        if size > MAX_CHECKSUMS_BYTES:
            raise BundleError(f"{file}: {size} bytes, more than a bundle's listing can be "
                              f"({MAX_CHECKSUMS_BYTES}); the file is not from rnnzoo")
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"{file}: not UTF-8 text; re-export the bundle") from None
    except OSError as exc:
        raise BundleError(f"{file}: cannot read: {exc.strerror or exc}") from None
    sums: dict[str, str] = {}
    for number, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else
                                  text.split("\n"), 1):
        match = _LINE.fullmatch(line)
        if match is None or match.group(2) in sums:
            raise BundleError(f"{file}: line {number} is not '<sha256>  <path>' (64 lowercase "
                              f"hex digits, two spaces, a path listed once), found "
                              f"{short_repr(line, 60)}; re-export the bundle")
        sums[match.group(2)] = match.group(1)
    if not sums or canonical_listing(sums) != text:
        raise BundleError(f"{file}: not in canonical form (one '<sha256>  <path>' line per "
                          "file, sorted by path, ending with a newline); re-export the bundle")
    return sums


def write_checksums(directory: Path, sums: Mapping[str, str]) -> str:
    """Write ``SHA256SUMS`` for ``sums`` (every file, ``bundle.json`` included) atomically and
    return the bundle digest."""
    from rnnzoo.io import atomic_write_text

    atomic_write_text(Path(directory) / CHECKSUMS_FILE, canonical_listing(sums))
    return digest_of(sums)


def check_pinned(path: str | os.PathLike, expected: str, found: str) -> None:
    """Refuse a bundle whose digest is not the pinned one, with both digests."""
    if expected != found:
        raise BundleDigestError(
            f"{path}: bundle digest mismatch: pinned sha256={expected}, found sha256={found}; "
            "this is not the bundle that was pinned (a file was replaced or edited, hashes "
            "included). Get the pinned bundle again, or pin the new digest only after checking "
            "where the bundle came from", expected=expected, found=found)
