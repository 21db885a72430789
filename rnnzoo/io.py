"""Small file helpers shared by training, saving, export and the runtime (TF-free).

Everything that writes does so atomically (temporary name, then rename), so a crash or a full
disk never leaves a half-written artifact behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file via a temporary file in the same folder and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_directory(final: Path, fill: Callable[[Path], None], overwrite: bool,
                     error: type[Exception]) -> Path:
    """Build a directory with ``fill(tmp)`` in a sibling temporary folder, then rename it to
    ``final``; on any failure nothing is left behind. ``error`` is raised if ``final`` exists
    and ``overwrite`` is false."""
    final = Path(final)
    if final.exists() and not overwrite:
        raise error(f"{final} already exists; pass overwrite=True (--overwrite) or pick "
                    "another path")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        fill(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path, error: type[Exception], missing_hint: str) -> Any:
    """Parse a JSON file, raising ``error`` naming the file (and line) when it is missing or
    malformed."""
    if not path.is_file():
        raise error(f"{path.parent}: no {path.name}; {missing_hint}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None


def verify_files(directory: Path, sums: dict[str, str], listing: str, error: type[Exception],
                 fix: str) -> None:
    """Check that every file in ``sums`` (relative path -> sha256) exists under ``directory``
    with that digest; ``listing`` names the file that lists them, ``fix`` says what to do."""
    for rel, digest in sums.items():
        file = Path(directory) / rel
        if not file.is_file():
            raise error(f"{directory}: file {rel} listed in {listing} is missing")
        actual = sha256_file(file)
        if actual != digest:
            raise error(f"{file}: sha256 mismatch (expected {digest[:12]}..., found "
                        f"{actual[:12]}...); the file is corrupt or was modified: {fix}")
