"""Reliability of the shared plumbing (issue 10): config value rules, safe --overwrite, file
permissions, storage errors, the directory lock, manifest path safety and hostile input files.

Each test names the failure it keeps fixed; the property-based tests (hypothesis) feed random
bytes, manifests and config values and accept only rnnzoo's own one-line errors."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnzoo.config import (
    TrainingConfig,
    build_section,
    config_problems,
    validate_config,
)
from rnnzoo.data import readers
from rnnzoo.data.readers import load_text_classification, read_class_dirs, read_delimited, read_mr
from rnnzoo.data.tokenizer import WordTokenizer
from rnnzoo.errors import ConfigError, DataError, RnnzooError, RunDirError
from rnnzoo.io import (
    LockError,
    StorageError,
    atomic_directory,
    atomic_write_bytes,
    atomic_write_text,
    check_removable_bundle_dir,
    check_removable_preset_dir,
    check_removable_run_dir,
    current_umask,
    empty_directory,
    ensure_directory,
    lock_directory,
    read_json,
    sha256_file,
    storage_errors,
    unlisted_files,
    verify_files,
)
from rnnzoo.io import storage as rio  # the atomic writes, whose os calls fail here

REPO = Path(__file__).resolve().parents[1]
# Modest by default; RNNZOO_HYPOTHESIS_EXAMPLES=2000 for a deeper search.
FAST = settings(max_examples=int(os.environ.get("RNNZOO_HYPOTHESIS_EXAMPLES", "40")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
WHERE = "zoo_configs/text_classification/x.yaml: training"


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# == 1. config values are checked before anything is built ======================================
@pytest.mark.parametrize("key, value, expected", [
    ("epochs", 0, "training.epochs: expected an integer >= 1, found 0"),
    ("batch_size", -4, "training.batch_size: expected an integer >= 1, found -4"),
    ("learning_rate", -0.1, "training.learning_rate: expected a number > 0, found -0.1"),
    ("learning_rate", 0, "training.learning_rate: expected a number > 0, found 0.0"),
    ("learning_rate", "nan", "training.learning_rate: expected a finite number > 0, found nan"),
    ("weight_decay", -1e-4, "training.weight_decay: expected a number >= 0, found -0.0001"),
    ("warmup_steps", -1, "training.warmup_steps: expected an integer >= 0, found -1"),
    ("decay_rate", 0.0, "training.decay_rate: expected a number in (0, 1], found 0.0"),
    ("decay_rate", 1.5, "training.decay_rate: expected a number in (0, 1], found 1.5"),
    ("clipnorm", -1, "training.clipnorm: expected a number >= 0, found -1.0"),
    ("early_stopping_patience", -1,
     "training.early_stopping_patience: expected an integer >= 0, found -1"),
    ("intra_op_threads", -2, "training.intra_op_threads: expected an integer >= 0, found -2"),
    ("inter_op_threads", -1, "training.inter_op_threads: expected an integer >= 0, found -1"),
    ("seed", -1, "training.seed: expected an integer in [0, 4294967295], found -1"),
    ("seed", 2**32, "training.seed: expected an integer in [0, 4294967295], found 4294967296"),
    ("backup_every", 0, "training.backup_every: expected 'epoch' or an integer >= 1, found 0"),
    ("monitor", "", "training.monitor: expected a non-empty string, found ''"),
    ("monitor", "val loss", "training.monitor: expected a metric name such as 'val_loss'"),
])
def test_training_values_out_of_range_name_file_key_range_and_value(key, value, expected):
    with pytest.raises(ConfigError) as info:
        build_section(TrainingConfig, {key: value}, WHERE)
    message = str(info.value)
    assert message.startswith(f"zoo_configs/text_classification/x.yaml: {expected}")
    assert "\n" not in message


def test_training_defaults_and_edge_values_are_accepted():
    assert config_problems(TrainingConfig()) == []
    cfg = build_section(TrainingConfig, {
        "epochs": 1, "batch_size": 1, "learning_rate": "1e-9", "weight_decay": 0,
        "decay_rate": 1, "clipnorm": 0, "early_stopping_patience": 0, "intra_op_threads": 0,
        "backup_every": 1, "seed": 0,
    }, WHERE)
    assert (cfg.decay_rate, cfg.backup_every, cfg.clipnorm) == (1.0, 1, 0.0)
    assert build_section(TrainingConfig, {"backup_every": "epoch"}, WHERE).backup_every == "epoch"


def test_type_errors_keep_their_message():
    # Type errors read as before; only range errors mention the range.
    with pytest.raises(ConfigError, match=r"training\.epochs: expected an integer, found 'x'"):
        build_section(TrainingConfig, {"epochs": "x"}, WHERE)


def test_overrides_and_config_json_go_through_the_same_rules():
    from rnnzoo.registry import entry_from_dict, get_entry

    with pytest.raises(ConfigError, match=r"training\.epochs: expected an integer >= 1, found 0"):
        get_entry("sentiment_gru").with_overrides(epochs=0)
    raw = get_entry("sentiment_gru").to_dict()
    raw["training"]["learning_rate"] = -0.5
    with pytest.raises(ConfigError, match=r"^run/config\.json: training\.learning_rate: "
                                          r"expected a number > 0, found -0\.5$"):
        entry_from_dict(raw, "run/config.json")


@dataclasses.dataclass
class _Model:
    units: int = dataclasses.field(default=8, metadata={"min": 1})
    dropout: float = dataclasses.field(
        default=0.0, metadata={"min": 0.0, "max": 1.0, "max_exclusive": True})
    scale: float = dataclasses.field(default=1.0, metadata={"lt": 10, "finite": False})
    sizes: list[int] = dataclasses.field(default_factory=lambda: [4], metadata={"min": 1})
    name: str = dataclasses.field(default="m", metadata={"nonempty": True})
    encoder: int = 8
    decoder: int = 8

    def check(self) -> list[str]:
        problems = []
        if self.decoder < self.encoder:
            problems.append(f"decoder: expected >= encoder ({self.encoder}), found "
                            f"{self.decoder}")
        if self.units == 7:
            problems.append("units and sizes disagree")
        return problems


@pytest.mark.parametrize("data, expected", [
    ({"units": 0}, "f: model.units: expected an integer >= 1, found 0"),
    ({"dropout": 1.0}, "f: model.dropout: expected a number in [0, 1), found 1.0"),
    ({"dropout": -0.1}, "f: model.dropout: expected a number in [0, 1), found -0.1"),
    ({"scale": 10}, "f: model.scale: expected a number < 10, found 10.0"),
    ({"sizes": [3, 0]}, "f: model.sizes: expected a list of integers >= 1, found [3, 0]"),
    ({"name": "  "}, "f: model.name: expected a non-empty string, found '  '"),
    ({"encoder": 16}, "f: model.decoder: expected >= encoder (16), found 8"),
    ({"units": 7}, "f: model: units and sizes disagree"),
])
def test_metadata_rules_and_cross_field_check(data, expected):
    with pytest.raises(ConfigError) as info:
        build_section(_Model, data, "f: model")
    assert str(info.value) == expected


def test_rules_allow_what_they_should():
    cfg = build_section(_Model, {"dropout": 0.99, "scale": "-inf", "sizes": []}, "f: model")
    assert cfg.scale == float("-inf")  # finite=False, and -inf < 10
    assert validate_config(cfg, "f: model") is cfg


def test_misspelt_rule_is_a_programming_error_and_required_keys_are_reported():
    @dataclasses.dataclass
    class Typo:
        units: int = dataclasses.field(default=1, metadata={"mni": 1})

    with pytest.raises(TypeError, match=r"Typo\.units: unknown metadata key"):
        build_section(Typo, {}, "f")

    @dataclasses.dataclass
    class Needs:
        path: str

    with pytest.raises(ConfigError, match=r"^f: missing required key\(s\) path$"):
        build_section(Needs, {}, "f")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats()
    | st.text(max_size=20) | st.sampled_from(["epoch", "1e-3", "nan", "-inf", "adam", "0"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)
_training_keys = [f.name for f in dataclasses.fields(TrainingConfig)]


@FAST
@given(st.dictionaries(st.sampled_from(_training_keys) | st.text(max_size=8), _json_values,
                       max_size=5))
def test_random_training_sections_give_a_valid_config_or_a_config_error(data):
    try:
        cfg = build_section(TrainingConfig, data, WHERE)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("zoo_configs/")
    else:
        assert config_problems(cfg) == []


@FAST
@given(_json_values)
def test_random_sections_that_are_not_mappings(data):
    try:
        build_section(_Model, data, "f: model")
    except ConfigError:
        pass


# == 2. --overwrite removes only what rnnzoo wrote ==============================================
def _run_dir(path: Path) -> Path:
    (path / "assets").mkdir(parents=True)
    (path / "checkpoints").mkdir()
    (path / "backup").mkdir()
    for name in ("config.json", "model.weights.h5", "checksums.json", "history.csv",
                 "metrics.json", "train.log.json", ".lock", ".config.json.abc.tmp"):
        (path / name).write_text("x")
    (path / "assets" / "vocab.json").write_text("[]")
    return path


def test_a_run_directory_is_removable(tmp_path):
    check_removable_run_dir(_run_dir(tmp_path / "run"), RunDirError)
    (tmp_path / "fresh").mkdir()
    check_removable_run_dir(tmp_path / "fresh", RunDirError)  # empty: nothing to lose
    check_removable_run_dir(tmp_path / "missing", RunDirError)  # nothing to remove


@pytest.mark.parametrize("spoil, pattern", [
    (lambda d: (d / "notes.txt").write_text("mine"), r"it holds files .* \(notes\.txt\)"),
    (lambda d: (d / ".git").mkdir(), r"it holds files .* \(\.git/\)"),
    (lambda d: (d / "config.json").unlink(), r"it has no config\.json"),
    (lambda d: [(d / n).unlink() for n in ("checksums.json", "history.csv", "train.log.json")]
     + [(d / n).rmdir() for n in ("backup", "checkpoints")], r"it has none of checksums"),
])
def test_anything_else_is_refused_and_left_intact(tmp_path, spoil, pattern):
    run = _run_dir(tmp_path / "run")
    spoil(run)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(RunDirError, match=r"run: does not look like an rnnzoo run directory: "
                                          + pattern):
        check_removable_run_dir(run, RunDirError)
    assert sorted(p.name for p in run.iterdir()) == before


def test_current_directory_ancestors_home_root_symlinks_and_files_are_refused(
        tmp_path, monkeypatch):
    run = _run_dir(tmp_path / "a" / "run")
    monkeypatch.chdir(run)
    with pytest.raises(RunDirError, match="is the current directory"):
        check_removable_run_dir(Path("."), RunDirError)
    monkeypatch.chdir(run / "assets")
    with pytest.raises(RunDirError, match="is an ancestor of the current directory"):
        check_removable_run_dir(Path(".."), RunDirError)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(run))
    with pytest.raises(RunDirError, match="is the home directory"):
        check_removable_run_dir(run, RunDirError)
    with pytest.raises(RunDirError, match="is an ancestor of the home directory"):
        check_removable_run_dir(tmp_path / "a", RunDirError)
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(RunDirError, match="is the file-system root"):
        check_removable_run_dir(Path("/"), RunDirError)
    (tmp_path / "link").symlink_to(run)
    with pytest.raises(RunDirError, match="is a symbolic link"):
        check_removable_run_dir(tmp_path / "link", RunDirError)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        check_removable_run_dir(tmp_path / "file", RunDirError)


def test_bundle_directories(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "assets").mkdir(parents=True)
    for name in ("bundle.json", "model.onnx", "encoder_model.onnx"):
        (bundle / name).write_text("x")
    check_removable_bundle_dir(bundle, ValueError)
    (bundle / "model.weights.h5").write_text("x")
    with pytest.raises(ValueError, match=r"bundle directory: it holds files .*model\.weights"):
        check_removable_bundle_dir(bundle, ValueError)
    (bundle / "model.weights.h5").unlink()
    (bundle / "bundle.json").unlink()
    with pytest.raises(ValueError, match=r"it has no bundle\.json"):
        check_removable_bundle_dir(bundle, ValueError)
    with pytest.raises(ValueError, match=r"it holds files .*config\.json"):
        check_removable_bundle_dir(_run_dir(tmp_path / "run"), ValueError)


def test_preset_directories(tmp_path):
    preset = tmp_path / "preset"
    (preset / "assets").mkdir(parents=True)
    for name in ("config.json", "model.weights.h5", "metadata.json", "README.md",
                 "checksums.json"):
        (preset / name).write_text("x")
    check_removable_preset_dir(preset, ValueError)
    (preset / "metadata.json").unlink()
    with pytest.raises(ValueError, match=r"preset directory: it has no metadata\.json"):
        check_removable_preset_dir(preset, ValueError)


def test_empty_directory_keeps_the_lock_files(tmp_path):
    run = _run_dir(tmp_path / "run")
    (run / ".lock.json").write_text("{}")
    empty_directory(run)
    assert sorted(p.name for p in run.iterdir()) == [".lock", ".lock.json"]


def test_atomic_directory_overwrite_checks_before_work_and_keeps_the_old_folder(
        tmp_path, monkeypatch):
    final = tmp_path / "out"
    atomic_directory(final, lambda d: (d / "a.txt").write_text("old"), False, ValueError)
    calls = []

    def refuse(path: Path) -> None:
        raise ValueError(f"{path}: not ours")

    with pytest.raises(ValueError, match="not ours"):
        atomic_directory(final, calls.append, True, ValueError, removable=refuse)
    assert calls == [] and (final / "a.txt").read_text() == "old"

    def fill_then_fail(d: Path) -> None:
        (d / "a.txt").write_text("new")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_directory(final, fill_then_fail, True, ValueError)
    assert (final / "a.txt").read_text() == "old"
    atomic_directory(final, lambda d: (d / "b.txt").write_text("new"), True, ValueError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in final.iterdir()] == ["b.txt"]
    monkeypatch.chdir(final)
    with pytest.raises(ValueError, match="is the current directory"):
        atomic_directory(Path("."), calls.append, True, ValueError)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        atomic_directory(tmp_path / "file", calls.append, True, ValueError)
    assert calls == []


# == 3. files and folders follow the umask =====================================================
@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_written_files_and_folders_follow_the_umask(tmp_path, umask):
    assert current_umask() == umask
    atomic_write_text(tmp_path / "a.json", "{}")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00")
    assert mode(tmp_path / "a.json") == 0o666 & ~umask
    assert mode(tmp_path / "b.bin") == 0o666 & ~umask

    def fill(d: Path) -> None:
        atomic_write_text(d / "bundle.json", "{}")
        (d / "assets").mkdir()
        (d / "assets" / "vocab.json").write_text("[]")

    out = atomic_directory(tmp_path / "bundle", fill, False, ValueError)
    assert mode(out) == 0o777 & ~umask
    assert mode(out / "assets") == 0o777 & ~umask
    assert mode(out / "bundle.json") == 0o666 & ~umask
    assert mode(out / "assets" / "vocab.json") == 0o666 & ~umask
    with lock_directory(tmp_path / "run", "test"):
        assert mode(tmp_path / "run" / ".lock.json") == 0o666 & ~umask


# == 4. disk full and permission errors: one error naming the path, old file intact =============
@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "no space left on device"),
    (errno.EDQUOT, "disk quota exceeded"),
    (errno.EACCES, "permission denied"),
    (errno.EROFS, "read-only file system"),
])
def test_storage_errors_are_typed_and_leave_the_previous_file(tmp_path, monkeypatch, code, words):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "good")

    def fail(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(rio.os, "fsync", fail)
    with pytest.raises(StorageError) as info:
        atomic_write_text(target, "half-written")
    exc = info.value
    assert isinstance(exc, RnnzooError) and isinstance(exc, OSError)
    assert exc.errno == code and exc.filename == str(target)
    assert str(exc).startswith(f"{target}: {words}") and "\n" not in str(exc)
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_atomic_directory_disk_full_keeps_the_old_directory(tmp_path):
    final = atomic_directory(tmp_path / "b", lambda d: (d / "x").write_text("old"), False,
                             ValueError)

    def fill(d: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(d / "model.onnx"))

    with pytest.raises(StorageError, match=r"/b/model\.onnx: no space left on device \[ENOSPC\] "
                                           r"while writing .*/b; free some space"):
        atomic_directory(final, fill, True, ValueError)
    assert (final / "x").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_other_errors_pass_through_unchanged(tmp_path, monkeypatch):
    def fail(*args):
        raise OSError("disk full")  # no errno: not recognisably a storage error

    monkeypatch.setattr(rio.os, "replace", fail)
    with pytest.raises(OSError, match="disk full") as info:
        atomic_write_text(tmp_path / "a", "x")
    assert not isinstance(info.value, StorageError)
    with pytest.raises(RunDirError):  # rnnzoo errors from fill are never rewrapped
        atomic_directory(tmp_path / "d", lambda d: (_ for _ in ()).throw(RunDirError("x")),
                         False, ValueError)


def test_storage_errors_context_reads_h5py_style_messages(tmp_path):
    with pytest.raises(StorageError, match=r"w\.h5: no space left on device \[ENOSPC\]; free"):
        with storage_errors(tmp_path / "w.h5"):
            raise OSError("Unable to synchronously create file (file write failed: errno = 28, "
                          "error message = 'No space left on device')")
    with pytest.raises(KeyError):
        with storage_errors(tmp_path):
            raise KeyError("unrelated")


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(StorageError, match=r"out: is a file, not a folder"):
        atomic_write_text(tmp_path / "out" / "run" / "config.json", "{}")
    with pytest.raises(StorageError, match=r"out: is a file, not a folder"):
        ensure_directory(tmp_path / "out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_real_permission_error(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="permission denied"):
            atomic_write_text(locked / "a.json", "{}")
    finally:
        locked.chmod(0o700)


# == 5. one writer per directory ===============================================================
HOLDER = textwrap.dedent("""
    import sys
    from rnnzoo.io import lock_directory
    with lock_directory(sys.argv[1], "rnnzoo train"):
        print("locked", flush=True)
        sys.stdin.read()
""")


def test_a_second_writer_fails_at_once_naming_the_first(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockError) as info:
            with lock_directory(run, "rnnzoo train"):
                pass
        message = str(info.value)
        assert message.startswith(f"{run}: in use by another rnnzoo train (pid {holder.pid} on ")
        assert "\n" not in message
        assert (run / ".lock.json").is_file()  # the holder's; the failed attempt left it alone
        holder.send_signal(signal.SIGKILL)  # kill -9: the OS drops the lock with the process
        holder.wait(timeout=30)
        with lock_directory(run, "rnnzoo train") as locked:
            info = json.loads((locked / ".lock.json").read_text())
            assert info["pid"] == os.getpid() and info["what"] == "rnnzoo train"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)


def test_lock_in_process_and_cleanup(tmp_path):
    run = tmp_path / "run"
    with lock_directory(run, "rnnzoo train"):
        with pytest.raises(LockError, match="in use by another rnnzoo train"):
            with lock_directory(run, "rnnzoo export", error=LockError):
                pass
    assert not run.exists()  # created by the lock and left empty: removed, blocks nothing
    run.mkdir()
    (run / "config.json").write_text("{}")
    with lock_directory(run, "rnnzoo train"):
        pass
    assert {p.name for p in run.iterdir()} <= {"config.json", ".lock"}


# == 6. manifests: paths are checked as well as digests ========================================
def _bundle(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    d = tmp_path / "bundle"
    (d / "assets").mkdir(parents=True)
    (d / "model.onnx").write_bytes(b"graph")
    (d / "assets" / "vocab.json").write_text("[]")
    (tmp_path / "secret").write_text("outside")
    return d, {r: sha256_file(d / r) for r in ("model.onnx", "assets/vocab.json")}


@pytest.mark.parametrize("entry, pattern", [
    ("/etc/passwd", "is an absolute path"),
    ("../secret", r"leaves the directory \('\.\.'\)"),
    ("assets/../../secret", r"leaves the directory"),
    ("./model.onnx", "is not a normalised relative path"),
    ("assets//vocab.json", "is not a normalised relative path"),
    ("assets/", "is not a normalised relative path"),
    ("assets\\vocab.json", "contains a backslash"),
    ("", "not a non-empty string"),
])
def test_unsafe_manifest_paths_are_refused(tmp_path, entry, pattern):
    d, sums = _bundle(tmp_path)
    sums[entry] = "0" * 64
    with pytest.raises(ValueError, match=rf"entry .* in bundle\.json {pattern}"):
        verify_files(d, sums, "bundle.json", ValueError, "re-export")


def test_symlinks_are_refused_even_with_the_right_digest(tmp_path):
    d, sums = _bundle(tmp_path)
    (d / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(ValueError, match=r"entry 'leak' .* symbolic link"):
        verify_files(d, {"leak": sha256_file(tmp_path / "secret")}, "bundle.json", ValueError,
                     "x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "g.onnx").write_bytes(b"graph")
    (d / "graphs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match=r"entry 'graphs/g\.onnx' .* passes through\) a symbol"):
        verify_files(d, {"graphs/g.onnx": sha256_file(d / "model.onnx")}, "bundle.json",
                     ValueError, "x")


def test_manifest_values_missing_files_and_tampering(tmp_path):
    d, sums = _bundle(tmp_path)
    verify_files(d, sums, "bundle.json", ValueError, "re-export")
    with pytest.raises(ValueError, match="must map file names to sha256, found list"):
        verify_files(d, ["model.onnx"], "bundle.json", ValueError, "re-export")
    with pytest.raises(ValueError, match="has no valid sha256"):
        verify_files(d, {"model.onnx": 12}, "bundle.json", ValueError, "re-export")
    with pytest.raises(ValueError, match="file gone.onnx listed in bundle.json is missing"):
        verify_files(d, {"gone.onnx": "0" * 64}, "bundle.json", ValueError, "re-export")
    (d / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="sha256 mismatch .* re-export"):
        verify_files(d, sums, "bundle.json", ValueError, "re-export")


def test_unlisted_files_finds_what_a_manifest_does_not_cover(tmp_path):
    d, sums = _bundle(tmp_path)
    (d / "bundle.json").write_text("{}")
    (d / "extra.onnx").write_bytes(b"unverified graph")
    (d / "assets" / ".vocab.json.x.tmp").write_text("")
    (d / "assets" / "link").symlink_to(tmp_path)
    assert unlisted_files(d, sums, ignore=("bundle.json",)) == [
        "assets/.vocab.json.x.tmp", "assets/link", "extra.onnx"]
    assert unlisted_files(d, sums, ignore=("bundle.json", "assets/*", "*.onnx")) == []


_segments = st.sampled_from(["model.onnx", "assets", "vocab.json", "..", ".", "", "/", "\\",
                             "link", "x\x00", "\ud800", "a" * 300, "C:"])
_paths = st.lists(_segments, min_size=1, max_size=4).map("/".join) | st.text(max_size=30)
_digests = st.sampled_from(["0" * 64, "A" * 64, "", None, 3, [], "f" * 63]) | st.text(max_size=70)


@FAST
@given(st.dictionaries(_paths, _digests, max_size=5) | _json_values)
def test_random_manifests_raise_only_the_given_error(tmp_path, sums):
    d = tmp_path / "bundle"
    if not d.exists():
        _bundle(tmp_path)
        (d / "link").symlink_to(tmp_path / "secret")

    class Refused(Exception):
        pass

    try:
        verify_files(d, sums, "bundle.json", Refused, "re-export")
    except Refused as exc:
        assert "\n" not in str(exc)


def test_read_json_hostile_files(tmp_path):
    path = tmp_path / "bundle.json"
    for content, pattern in [(b"\xff\xfe{}", "not UTF-8 text"), (b"[" * 100_000, "nested"),
                             (b"1" * 10_000, "invalid JSON"), (b"{", "invalid JSON at line 1")]:
        path.write_bytes(content)
        with pytest.raises(ValueError, match=pattern):
            read_json(path, ValueError, "")


# == 7. readers: hostile data files give one-line DataErrors ===================================
def test_huge_csv_field_is_a_data_error_naming_the_line(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    path.write_text('text,label\nfine,pos\n"' + "x" * 200_000 + ',neg\nlater,pos\n')
    monkeypatch.setattr(readers, "MAX_FIELD_CHARS", 100_000)
    with pytest.raises(DataError, match=r"big\.csv, line 3: a field is longer than 100000 "
                                        r"characters; an unclosed quote"):
        read_delimited(path)
    monkeypatch.undo()
    path.write_text("text,label\n" + "y" * 200_000 + ",pos\n")  # over csv's default 128 KiB
    texts, _ = read_delimited(path)
    assert len(texts[0]) == 200_000


@pytest.mark.parametrize("content, pattern", [
    (b"text,label\ncaf\xe9,pos\n", r"d\.csv, line 2: not valid utf-8-sig text \(byte 0xe9 at "
                                   r"byte offset 14: .*iconv -f latin1 -t utf-8 .*d\.csv"),
    (b"text,label\nok,pos\nbin\x00ary,neg\n", r"d\.csv, line 3: NUL byte at byte offset 21: "
                                              "this looks like a binary file"),
    (b"\x1f\x8b\x08\x00rest", r"d\.csv: this is a gzip archive"),
    (b"PK\x03\x04rest", r"d\.csv: this is a zip archive"),
    ("text,label\nok,pos\n".encode("utf-16"), r"d\.csv: this is UTF-16 text; .*iconv -f UTF-16"),
    (b"", r"d\.csv: file is empty"),
    (b"\xef\xbb\xbf \n\n", r"d\.csv: file is empty"),
])
def test_hostile_csv_files(tmp_path, content, pattern):
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    for reader in (read_delimited, load_text_classification):
        with pytest.raises(DataError, match=pattern) as info:
            reader(path)
        assert "\n" not in str(info.value)


def test_non_ascii_digit_labels_do_not_crash(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,\u00b2\nb,3\nc,10\nd,9\n")
    assert load_text_classification(path).label_names == ["10", "3", "9", "\u00b2"]
    path.write_text("text,label\na,3\nb,10\nc,-1\n")
    assert load_text_classification(path).label_names == ["-1", "3", "10"]


def test_binary_files_in_mr_and_class_folders(tmp_path):
    (tmp_path / "rt-polarity.pos").write_bytes(b"fine\n")
    (tmp_path / "rt-polarity.neg").write_bytes(b"\x00\x01\x02")
    with pytest.raises(DataError, match=r"rt-polarity\.neg, line 1: NUL byte"):
        load_text_classification(tmp_path)
    (tmp_path / "c" / "pos").mkdir(parents=True)
    (tmp_path / "c" / "pos" / "a.txt").write_bytes(b"good \xff\xfe\xfd")
    with pytest.raises(DataError, match=r"a\.txt, line 1: not valid utf-8"):
        read_class_dirs(tmp_path / "c")


@pytest.mark.parametrize("content, pattern", [
    (b"\xff{", r"tok\.json: not UTF-8 text"),
    (b"[" * 100_000, r"tok\.json: invalid JSON: nested too deeply"),
    (json.dumps({"format": "rnnzoo.word_tokenizer.v1", "vocab": ["<pad>", "<unk>"],
                 "lowercase": "yes"}).encode(), r"tok\.json: 'lowercase' must be true or false"),
    (json.dumps({"format": "rnnzoo.word_tokenizer.v1", "vocab": ["a", "b"]}).encode(),
     r"tok\.json: tokenizer vocabulary must start with"),
    (json.dumps({"format": "rnnzoo.word_tokenizer.v1", "vocab": "abc"}).encode(),
     r"tok\.json: 'vocab' must be a list of strings"),
    (json.dumps({"format": ["x"] * 100}).encode(), r"tok\.json: expected format .*\.\.\.$"),
])
def test_hostile_tokenizer_files(tmp_path, content, pattern):
    path = tmp_path / "tok.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match=pattern):
        WordTokenizer.load(path)


_texty = st.lists(st.sampled_from(["text", "label", "sentence", ",", "\t", '"', "\n", "\r",
                                   "pos", "0", "1", " ", "\xe9", "\x00", "\ufeff", "a b"]),
                  max_size=40).map(lambda parts: "".join(parts).encode("utf-8"))
_bytes = st.binary(max_size=200) | _texty


def _only_rnnzoo_errors(call, *args) -> None:
    try:
        call(*args)
    except RnnzooError as exc:
        assert "\n" not in str(exc)


@FAST
@given(_bytes, st.sampled_from(["d.csv", "d.tsv"]))
def test_random_bytes_into_delimited_readers(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    _only_rnnzoo_errors(load_text_classification, path)


@FAST
@given(_bytes, _bytes)
def test_random_bytes_into_mr_and_glue_and_class_folders(tmp_path, pos, neg):
    mr, glue, cls = tmp_path / "mr", tmp_path / "glue", tmp_path / "cls" / "train"
    for d in (mr, glue, cls / "pos", cls / "neg"):
        d.mkdir(parents=True, exist_ok=True)
    (mr / "rt-polarity.pos").write_bytes(pos)
    (mr / "rt-polarity.neg").write_bytes(neg)
    (glue / "train.tsv").write_bytes(pos)
    (glue / "dev.tsv").write_bytes(neg)
    (cls / "pos" / "a.txt").write_bytes(pos)
    (cls / "neg" / "b.txt").write_bytes(neg)
    for path in (mr, glue, cls.parent):
        _only_rnnzoo_errors(load_text_classification, path)
    _only_rnnzoo_errors(read_mr, mr)


_tokenizer_json = st.fixed_dictionaries(
    {"format": st.sampled_from(["rnnzoo.word_tokenizer.v1", "x"]) | _json_values},
    optional={"vocab": st.lists(st.text(max_size=4), max_size=5).map(
        lambda v: ["<pad>", "<unk>", *v]) | _json_values,
        "lowercase": _json_values, "special_bos_eos": _json_values},
).map(lambda d: json.dumps(d).encode())


@FAST
@given(_bytes | _tokenizer_json)
def test_random_bytes_into_the_tokenizer_loader(tmp_path, content):
    path = tmp_path / "tok.json"
    path.write_bytes(content)
    _only_rnnzoo_errors(WordTokenizer.load, path)
