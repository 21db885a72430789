"""Presets: save -> verify -> load round trips, every source (directory, archive, file:// and
http:// URLs, cache, shipped), and every way a preset can be refused (tampered, incomplete,
hostile archive, wrong hash, offline, unknown name). One tiny trained model for the module."""

from __future__ import annotations

import functools
import http.server
import io
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import rnnzoo
from rnnzoo.errors import RunDirError, UnknownModelError
from rnnzoo.io import sha256_file
from rnnzoo.presets import (
    PRESET_FORMAT,
    PresetError,
    from_preset,
    list_presets,
    preset_info,
    resolve_preset,
    rewrite_weights,
    save_preset,
    validate_metadata,
)

NAME = "sentiment_gru.tiny"
TEXTS = ["a good film", "bad bad bad", "the plot was good but the acting bad", "x"]


def _metadata(seconds: float = 1.5) -> dict:
    return {
        "name": NAME,
        "dataset": "synthetic good/bad sentences (sentiment.synthetic_dataset, n=200, seed 0)",
        "split": "dev",
        "metrics": {"accuracy": 0.8125, "macro_f1": 0.8},
        "metrics_command": "rnnzoo evaluate sentiment_gru --run run --data data.csv",
        "training_command": "rnnzoo train sentiment_gru --data data.csv --out run --epochs 1",
        "training_wall_time_s": seconds,
        "data_license": "CC0-1.0 (generated)",
        "published": {"accuracy": 0.9, "majority class": 0.5},
        "notes": "A test fixture, not a useful model.",
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    import rnnzoo
    from rnnzoo.families.sentiment import TINY_OVERRIDES, synthetic_dataset

    tmp = tmp_path_factory.mktemp("train")
    csv = synthetic_dataset(tmp, n=200)
    return rnnzoo.train("sentiment_gru", csv, out=tmp / "run", verbose=0, **TINY_OVERRIDES)


@pytest.fixture(scope="module")
def preset(trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float16 preset of the trained model (copy it before tampering)."""
    out = tmp_path_factory.mktemp("presets") / NAME
    return save_preset(trained.task, out, _metadata(trained.seconds))


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache for every test: nothing touches ~/.cache/rnnzoo."""
    home = tmp_path / "home"
    monkeypatch.setenv("RNNZOO_HOME", str(home))
    monkeypatch.delenv("RNNZOO_OFFLINE", raising=False)
    return home


def _cache_files(home: Path) -> list[str]:
    """Everything in the cache, hidden temporaries included."""
    return sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if not p.is_dir())


def _copy(preset: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(preset, tmp_path / "copy" / NAME))


def _tar_gz(src: Path, out: Path, top: str | None = NAME) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src, arcname=top or ".")
    return out


def _probs(task) -> np.ndarray:
    return np.asarray(task.predict(TEXTS).probs)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An http.server on 127.0.0.1 serving a folder: (base URL, folder)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- saving and loading ------------------------------------------------------------------------


def test_float16_preset_loads_with_fp16_rounding_only(trained, preset: Path) -> None:
    import h5py

    import rnnzoo

    with h5py.File(preset / "model.weights.h5") as f:
        dtypes = set()
        f.visititems(lambda _, o: dtypes.add(str(o.dtype)) if isinstance(o, h5py.Dataset) else None)
        assert dtypes == {"float16"}
        assert "optimizer" not in f and "layers" in f  # Keras' layout, without training state

    task = from_preset(preset)
    assert task.preset_metadata["name"] == NAME
    np.testing.assert_allclose(_probs(task), _probs(trained.task), atol=1e-3)
    for old, new in zip(trained.task.model.weights, task.model.weights):
        want = old.numpy().astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(new.numpy(), want)

    # Keras' own loader reads the float16 file into a float32 model.
    plain = rnnzoo.load(trained.run_dir)
    plain.model.load_weights(preset / "model.weights.h5")
    assert all(w.dtype == "float32" for w in plain.model.weights)
    np.testing.assert_allclose(_probs(plain), _probs(trained.task), atol=1e-3)


def test_float32_preset_is_exact(trained, tmp_path: Path) -> None:
    path = save_preset(trained.task, tmp_path / NAME, _metadata(), storage="float32")
    task = from_preset(path)
    np.testing.assert_array_equal(_probs(task), _probs(trained.task))
    assert task.preset_metadata["storage"] == "float32"
    assert task.preset_metadata["tradeoffs"] == ""


def test_metadata_is_filled_in_and_checksummed(trained, preset: Path) -> None:
    meta = json.loads((preset / "metadata.json").read_text())
    assert meta["num_params"] == trained.task.model.count_params()
    assert meta["format"] == PRESET_FORMAT
    assert (meta["entry"], meta["family"], meta["task"]) == (
        "sentiment_gru", trained.task.config.family, trained.task.config.task)
    assert set(meta["versions"]) == {"rnnzoo", "keras", "tensorflow"}
    assert meta["storage"] == "float16" and "float16" in meta["tradeoffs"]
    sums = json.loads((preset / "checksums.json").read_text())
    files = {p.relative_to(preset).as_posix() for p in preset.rglob("*") if p.is_file()}
    assert set(sums) == files - {"checksums.json"}
    assert {"config.json", "model.weights.h5", "metadata.json", "README.md"} <= set(sums)
    assert any(rel.startswith("assets/") for rel in sums)
    assert preset_info(preset) == meta


def test_model_card_shows_metrics_and_how_to_load(preset: Path) -> None:
    card = (preset / "README.md").read_text()
    assert card.startswith(f"# {NAME}\n")
    assert "| accuracy | 0.8125 | 0.9 |" in card
    assert "| macro_f1 | 0.8 | |" in card
    assert "majority class: 0.5" in card
    for text in ("synthetic good/bad", "CC0-1.0", "rnnzoo train sentiment_gru",
                 "rnnzoo evaluate sentiment_gru", f'rnnzoo.from_preset("{NAME}")',
                 f"rnnzoo predict {NAME}", "size on disk", "A test fixture"):
        assert text in card, text


def test_save_refuses_bad_metadata_and_writes_nothing(trained, tmp_path: Path) -> None:
    meta = _metadata()
    del meta["dataset"]
    with pytest.raises(PresetError, match=r"missing field 'dataset'"):
        save_preset(trained.task, tmp_path / "a", meta)
    with pytest.raises(PresetError, match=r"'num_params' is 7 but the model says"):
        save_preset(trained.task, tmp_path / "a", {**_metadata(), "num_params": 7})
    with pytest.raises(PresetError, match=r"must start with the entry name"):
        save_preset(trained.task, tmp_path / "a", {**_metadata(), "name": "other.tiny"})
    with pytest.raises(PresetError, match=r"storage='bfloat16'"):
        save_preset(trained.task, tmp_path / "a", _metadata(), storage="bfloat16")
    assert list(tmp_path.iterdir()) == []


def test_rewrite_weights_keeps_the_layout(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "w.weights.h5"
    with h5py.File(path, "w") as f:
        f.attrs["keras"] = "3"
        layer = f.create_group("layers/dense/vars")
        layer.attrs["name"] = "probs"
        layer.create_dataset("0", data=np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3))
        layer.create_dataset("1", data=np.int64(7))
        f.create_group("optimizer/vars").create_dataset("0", data=np.zeros(3, np.float32))
    rewrite_weights(path, "float16")
    with h5py.File(path) as f:
        assert dict(f.attrs) == {"keras": "3"} and "optimizer" not in f
        assert f["layers/dense/vars"].attrs["name"] == "probs"
        assert f["layers/dense/vars/0"].dtype == np.float16
        assert f["layers/dense/vars/1"].dtype == np.int64 and f["layers/dense/vars/1"][()] == 7
        np.testing.assert_array_equal(f["layers/dense/vars/0"][()],
                                      np.linspace(-2, 2, 6).reshape(2, 3).astype(np.float16))
    with h5py.File(path, "a") as f:
        f["layers/dense/vars"].create_dataset("2", data=np.array([1e6], np.float32))
    with pytest.raises(PresetError, match=r"'layers/dense/vars/2' has values beyond the float16"):
        rewrite_weights(path, "float16")


def test_save_refuses_existing_directory(trained, preset: Path) -> None:
    with pytest.raises(PresetError, match="already exists"):
        save_preset(trained.task, preset, _metadata())


# -- metadata schema ---------------------------------------------------------------------------


def test_validate_metadata_names_the_field_and_file(preset: Path) -> None:
    meta = json.loads((preset / "metadata.json").read_text())
    assert validate_metadata(meta, "m.json") == meta
    for field in ("metrics_command", "data_license", "num_params", "versions"):
        broken = {k: v for k, v in meta.items() if k != field}
        with pytest.raises(PresetError, match=rf"^m\.json: missing field '{field}'"):
            validate_metadata(broken, "m.json")
    with pytest.raises(PresetError, match=r"m\.json: field 'num_params': expected a non-neg"):
        validate_metadata({**meta, "num_params": "962"}, "m.json")
    with pytest.raises(PresetError, match=r"field 'metrics': 'accuracy' is not a finite"):
        validate_metadata({**meta, "metrics": {"accuracy": float("nan")}}, "m.json")
    with pytest.raises(PresetError, match=r"unknown field 'metircs'\. Did you mean 'metrics'"):
        validate_metadata({**meta, "metircs": {}}, "m.json")
    with pytest.raises(PresetError, match=r"field 'date': expected an ISO 8601"):
        validate_metadata({**meta, "date": "yesterday"}, "m.json")


def test_newer_format_asks_for_an_upgrade(preset: Path, tmp_path: Path) -> None:
    meta = json.loads((preset / "metadata.json").read_text())
    with pytest.raises(PresetError, match=r"newer than this rnnzoo.*upgrade rnnzoo"):
        validate_metadata({**meta, "format": "rnnzoo.preset.v2"}, "m.json")
    copy = _copy(preset, tmp_path)
    (copy / "metadata.json").write_text(json.dumps({**meta, "format": "rnnzoo.preset.v2"}))
    with pytest.raises(PresetError, match=r"metadata\.json: preset format .*upgrade rnnzoo"):
        resolve_preset(copy)


# -- verification ------------------------------------------------------------------------------


def test_flipped_byte_in_weights_is_refused(preset: Path, tmp_path: Path) -> None:
    copy = _copy(preset, tmp_path)
    weights = copy / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(RunDirError, match=r"model\.weights\.h5: sha256 mismatch") as err:
        from_preset(copy)
    assert isinstance(err.value, PresetError)


def test_missing_checksums_is_refused(preset: Path, tmp_path: Path) -> None:
    copy = _copy(preset, tmp_path)
    (copy / "checksums.json").unlink()
    with pytest.raises(PresetError, match=r"no checksums\.json; a preset without checksums"):
        resolve_preset(copy)


def test_unlisted_file_is_refused(preset: Path, tmp_path: Path) -> None:
    copy = _copy(preset, tmp_path)
    (copy / "assets" / "extra.json").write_text("{}")
    with pytest.raises(PresetError, match=r"assets/extra\.json: file not listed"):
        resolve_preset(copy)


def test_symlink_inside_preset_is_refused(preset: Path, tmp_path: Path) -> None:
    copy = _copy(preset, tmp_path)
    readme = copy / "README.md"
    readme.unlink()
    readme.symlink_to(preset / "README.md")
    with pytest.raises(PresetError, match=r"README\.md: symbolic links are refused"):
        resolve_preset(copy)


def test_modified_metadata_is_refused(preset: Path, tmp_path: Path) -> None:
    copy = _copy(preset, tmp_path)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["metrics"]["accuracy"] = 0.99
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(PresetError, match=r"metadata\.json: sha256 mismatch"):
        preset_info(copy)


def test_directory_without_metadata_is_not_a_preset(trained) -> None:
    with pytest.raises(PresetError, match=r"no metadata\.json, so not a preset"):
        resolve_preset(trained.run_dir)


def test_overrides_start_a_new_head(trained, preset: Path) -> None:
    task = from_preset(preset, num_classes=3)
    assert task.config.model.num_classes == 3 and task.new_head_layers == ["probs"]
    assert task.preset_metadata["name"] == NAME
    with pytest.raises(rnnzoo.ConfigError, match="num_clases"):
        from_preset(preset, num_clases=3)


# -- archives and the cache --------------------------------------------------------------------


def test_tar_gz_archive_lands_in_the_cache(preset: Path, tmp_path: Path, home: Path) -> None:
    archive = _tar_gz(preset, tmp_path / "p.tar.gz")
    task = from_preset(archive)
    cached = home / "presets" / NAME
    assert resolve_preset(NAME) == cached
    assert task.preset_metadata["name"] == NAME
    assert NAME in list_presets() and NAME not in list_presets("translator_*")
    assert sha256_file(cached / "model.weights.h5") == sha256_file(preset / "model.weights.h5")
    assert not [p for p in (home / "presets").iterdir() if p.name.startswith(".extract")]
    # The same archive again reuses the cached copy; a flat .zip replaces it.
    assert resolve_preset(archive) == cached
    zipped = tmp_path / "p.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for p in sorted(preset.rglob("*")):
            zf.write(p, p.relative_to(preset).as_posix())
    assert resolve_preset(zipped) == cached


def test_cached_copy_is_verified_on_use(preset: Path, tmp_path: Path, home: Path) -> None:
    resolve_preset(_tar_gz(preset, tmp_path / "p.tgz"))
    (home / "presets" / NAME / "config.json").write_text("{}")
    with pytest.raises(PresetError, match=r"config\.json: sha256 mismatch"):
        resolve_preset(NAME)


def test_shipped_presets_are_found_by_name(preset: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import rnnzoo.presets.resolve as presets  # where list_presets and _resolve look it up

    shipped = tmp_path / "pretrained"
    shutil.copytree(preset, shipped / NAME)
    monkeypatch.setattr(presets, "_shipped_dir", lambda: shipped)
    assert list_presets("sentiment_*") == [NAME]
    assert resolve_preset(NAME) == shipped / NAME


def test_unknown_name_suggests_close_ones(preset: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match=r"unknown preset 'sentimnt_gru\.tiny'"):
        resolve_preset("sentimnt_gru.tiny")
    resolve_preset(_tar_gz(preset, tmp_path / "p.tar.gz"))
    with pytest.raises(UnknownModelError, match=rf"Did you mean '{NAME}'"):
        from_preset("sentimnt_gru.tiny")
    with pytest.raises(PresetError, match=r"no such file or directory"):
        resolve_preset(tmp_path / "nope.tar.gz")


def _hostile_tar(path: Path, member: tarfile.TarInfo, payload: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("metadata.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
        member.size = len(payload) if member.isreg() else 0
        tar.addfile(member, io.BytesIO(payload) if member.isreg() else None)
    return path


def _symlink(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("member, why", [
    (tarfile.TarInfo("../evil"), r"'\.\./evil': '\.\.' would write outside"),
    (tarfile.TarInfo("sub/../../evil"), r"'sub/\.\./\.\./evil': '\.\.' would"),
    (tarfile.TarInfo("/tmp/evil"), r"'/tmp/evil': absolute"),
    (_symlink("link", "/etc/passwd"), r"'link': it is a symbolic link"),
    (_symlink("hard", "metadata.json", tarfile.LNKTYPE), r"'hard': it is a hard link"),
    (_symlink("dev", "", tarfile.CHRTYPE), r"'dev': it is a device"),
])
def test_hostile_tar_members_are_refused(member: tarfile.TarInfo, why: str, tmp_path: Path,
                                         home: Path) -> None:
    archive = _hostile_tar(tmp_path / "evil.tar.gz", member)
    with pytest.raises(PresetError, match=rf"evil\.tar\.gz: refused archive member {why}"):
        resolve_preset(archive)
    assert _cache_files(home) == []
    assert not (tmp_path.parent / "evil").exists()


def test_hostile_zip_members_are_refused(tmp_path: Path, home: Path) -> None:
    traversal = tmp_path / "t.zip"
    with zipfile.ZipFile(traversal, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("../evil", "x")
    with pytest.raises(PresetError, match=r"refused archive member '\.\./evil'"):
        resolve_preset(traversal)
    link = tmp_path / "l.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("config.json")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(PresetError, match=r"'config\.json': it is a symbolic link"):
        resolve_preset(link)
    assert _cache_files(home) == []


def test_archive_that_fails_verification_leaves_nothing(preset: Path, tmp_path: Path,
                                                         home: Path) -> None:
    copy = _copy(preset, tmp_path)
    (copy / "notes.txt").write_text("unlisted")
    archive = _tar_gz(copy, tmp_path / "bad.tar.gz")
    with pytest.raises(PresetError, match=r"bad\.tar\.gz/sentiment_gru\.tiny/notes\.txt: file "
                                          r"not listed"):
        resolve_preset(archive)
    assert _cache_files(home) == []


# -- URLs --------------------------------------------------------------------------------------


def test_file_url_with_sha256_fragment(preset: Path, tmp_path: Path, home: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _tar_gz(preset, tmp_path / "p.tar.gz", top=None)
    digest = sha256_file(archive)
    monkeypatch.setenv("RNNZOO_OFFLINE", "1")  # file:// is not the network
    path = resolve_preset(f"{archive.as_uri()}#sha256={digest}")
    assert path == home / "presets" / NAME
    listed = json.loads((preset / "checksums.json").read_text())
    assert _cache_files(home) == sorted(
        ["presets/.sources.json", f"presets/{NAME}/checksums.json",
         *(f"presets/{NAME}/{rel}" for rel in listed)])  # no temporaries left behind


def test_http_url_downloads_verifies_and_caches(preset: Path, server, home: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    base, root = server
    digest = sha256_file(_tar_gz(preset, root / "x.tar.gz"))
    task = from_preset(f"{base}/x.tar.gz", expected_sha256=digest.upper())
    assert task.preset_metadata["name"] == NAME
    assert (home / "presets" / NAME / "metadata.json").is_file()
    resolve_preset(f"{base}/x.tar.gz", progress=True)
    assert "100%" in capsys.readouterr().err
    # Pinned by hash, the cached copy serves offline and without the server.
    (root / "x.tar.gz").unlink()
    monkeypatch.setenv("RNNZOO_OFFLINE", "1")
    assert resolve_preset(f"{base}/x.tar.gz#sha256={digest}") == home / "presets" / NAME


def test_wrong_sha256_is_refused_and_cache_stays_empty(preset: Path, server,
                                                       home: Path) -> None:
    base, root = server
    _tar_gz(preset, root / "x.tar.gz")
    with pytest.raises(PresetError, match=r"x\.tar\.gz: sha256 mismatch \(expected 000000"):
        resolve_preset(f"{base}/x.tar.gz#sha256={'0' * 64}")
    assert _cache_files(home) == []
    with pytest.raises(PresetError, match=r"not 64 hex digits"):
        resolve_preset(f"{base}/x.tar.gz#sha256=abc")


def test_bad_urls_are_one_line_errors(server, home: Path) -> None:
    base, root = server
    (root / "page.tar.gz").write_text("<html>not found</html>")
    with pytest.raises(PresetError, match=r"page\.tar\.gz: not a preset archive"):
        resolve_preset(f"{base}/page.tar.gz")
    with pytest.raises(PresetError, match=r"download failed: HTTP 404"):
        resolve_preset(f"{base}/missing.tar.gz")
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PresetError, match=r"download failed: .*check the URL"):
        resolve_preset(f"http://127.0.0.1:{port}/x.tar.gz")
    with pytest.raises(PresetError, match=r"unsupported URL scheme 'ftp'"):
        resolve_preset("ftp://example.com/x.tar.gz")
    assert _cache_files(home) == []


def test_offline_forbids_network_urls(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNZOO_OFFLINE", "1")
    with pytest.raises(PresetError, match=r"RNNZOO_OFFLINE=1 forbids downloads"):
        resolve_preset("https://example.com/sentiment_gru.sst2.tar.gz")
    assert _cache_files(home) == []


def test_module_imports_without_tensorflow() -> None:
    code = ("import sys, rnnzoo.presets as p; p.list_presets(); "
            "assert not {'tensorflow', 'keras', 'h5py'} & set(sys.modules), sys.modules.keys()")
    subprocess.run([sys.executable, "-c", code], check=True)
