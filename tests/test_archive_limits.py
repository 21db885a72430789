"""Preset archives under the archive limits (issue #31, item 1): members and bytes are counted
while the archive is listed and again while it is written, extraction stops at the limit (never
after) with ``LimitError`` naming it, and nothing is left half-written; a member the preset's
own ``checksums.json`` does not list is refused before anything is written, however large."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from rnnzoo import limits
from rnnzoo.limits import LimitError
from rnnzoo.presets import PresetError, extract_archive, resolve_preset
from rnnzoo.presets.archives import _Budget, _copy_counted

MiB = 1 << 20


@pytest.fixture
def small_limits():
    old = limits.configure(max_archive_bytes=MiB, max_archive_members=20)
    yield
    limits.configure(**dataclasses.asdict(old))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RNNZOO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, read in blocks (a multi-GiB member costs no memory to archive)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _preset_members(extra: dict[str, int]) -> list[tuple[str, int]]:
    return [("p/metadata.json", 2), ("p/checksums.json", 0), *extra.items()]


def _bomb_tar(path: Path, members: dict[str, int]) -> Path:
    """A tar.gz whose members are zeros of the given sizes (``p/`` is a preset-like top)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, size in _preset_members(members):
            info = tarfile.TarInfo(name)
            if name.endswith("checksums.json"):
                data = json.dumps({"metadata.json": "0" * 64}).encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.size = size
                tar.addfile(info, io.BufferedReader(_Zeros(size)))
    return path


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_a_highly_compressible_member_stops_at_the_byte_limit(tmp_path, small_limits):
    archive = _bomb_tar(tmp_path / "bomb.tar.gz", {"p/weights.bin": 16 * MiB})
    assert archive.stat().st_size < MiB // 4  # 16 MiB of zeros in a small file
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(LimitError, match=r"bomb\.tar\.gz: bytes its members declare \(counted "
                                         r"while listing\): \d+ is over the limit "
                                         r"max_archive_bytes=1048576") as info:
        extract_archive(archive, dest)
    assert info.value.limit == "max_archive_bytes"
    assert _files(dest) == []  # refused from its header: nothing written, nothing decompressed


def test_the_byte_limit_holds_while_writing(tmp_path):
    class Out:
        written = 0

        def write(self, data: bytes) -> None:
            self.written += len(data)

    budget, out = _Budget("x.zip"), Out()
    old = limits.configure(max_archive_bytes=3 * MiB + 5)
    try:
        with pytest.raises(LimitError, match=r"x\.zip: bytes extracted \(counted while "
                                             r"extracting\): 4194304 is over the limit"):
            _copy_counted(io.BufferedReader(_Zeros(10 * MiB)), out, budget)
    finally:
        limits.configure(**dataclasses.asdict(old))
    assert out.written == 3 * MiB  # stopped at the limit, not after it


def test_too_many_members_are_refused_while_listing(tmp_path, small_limits):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(25):
            zf.writestr(f"p/f{i}.txt", "x")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(LimitError, match=r"many\.zip: members in the archive .*: 21 is over the "
                                         r"limit max_archive_members=20"):
        extract_archive(archive, dest)
    assert _files(dest) == []


def test_a_zip_bomb_is_refused_and_the_cache_stays_empty(tmp_path, home, small_limits):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", "{}")
        with zf.open("weights.bin", "w") as member:
            for _ in range(8):
                member.write(bytes(MiB))
    with pytest.raises(LimitError, match="max_archive_bytes=1048576"):
        resolve_preset(archive)
    assert [p for p in _files(home) if not p.endswith("presets")] == []


def test_an_unlisted_member_is_refused_before_anything_is_written(tmp_path, home):
    """At the default limits: 16 MiB that checksums.json does not list is never written."""
    archive = _bomb_tar(tmp_path / "unlisted.tar.gz", {"p/huge.bin": 16 * MiB})
    with pytest.raises(PresetError, match=r"unlisted\.tar\.gz/p/huge\.bin: file not listed in "
                                          r"checksums\.json"):
        resolve_preset(archive)
    assert [p for p in _files(home) if not p.endswith("presets")] == []


def test_a_failed_write_removes_what_it_wrote(tmp_path, monkeypatch):
    import errno

    import rnnzoo.presets.archives as archives

    archive = tmp_path / "two.tar"
    with tarfile.open(archive, "w") as tar:
        for name, size in (("a/small.txt", 10), ("a/b/big.bin", 3 * MiB)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BufferedReader(_Zeros(size)))
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "kept.txt").write_text("was here before")
    copy, calls = archives._copy_counted, []

    def disk_fills(src, out, budget):  # the second member fills the disk half-way
        calls.append(1)
        if len(calls) == 2:
            out.write(src.read(MiB))
            raise OSError(errno.ENOSPC, "No space left on device")
        copy(src, out, budget)

    monkeypatch.setattr(archives, "_copy_counted", disk_fills)
    with pytest.raises(PresetError, match=r"two\.tar: cannot unpack \(No space left on device\)"):
        extract_archive(archive, dest)
    assert _files(dest) == ["kept.txt"]  # what it wrote is gone, what was there stays
    monkeypatch.setattr(archives, "_copy_counted", copy)
    extract_archive(archive, dest)
    assert _files(dest) == ["a", "a/b", "a/b/big.bin", "a/small.txt", "kept.txt"]
