"""Faults, end to end (issue 10): `rnnzoo train` killed by SIGINT, SIGTERM or SIGKILL at
different points then run again, two trainers on one --out, integrity checks that deleting a
file cannot switch off, --overwrite that removes only what rnnzoo wrote, a full disk, and a
table of bad command lines that must each give one line, exit code 2, no traceback and no run
directory.

Timing is made deterministic by a driver that runs the real CLI in a subprocess with one hook:
at the chosen point it writes a READY file and sleeps, and the test sends the signal then."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import default_sigint

import rnnzoo
from rnnzoo.cli import main
from rnnzoo.errors import ConfigError, RunDirError
from rnnzoo.families.sentiment import TINY_OVERRIDES, synthetic_dataset
from rnnzoo.io import StorageError
from rnnzoo.training import TrainingInterrupted, _read_history

REPO = Path(__file__).resolve().parents[1]
TINY_SET = ["--set", "vocab_size=64", "--set", "embedding_dim=8", "--set", "units=8",
            "--set", "max_length=16", "--set", "warmup_steps=0",
            "--set", "early_stopping_patience=0", "--batch-size", "16"]
TINY = {**TINY_OVERRIDES, "training": {**TINY_OVERRIDES["training"], "epochs": 3}}

# Runs the real CLI; at FAULT_AT it writes READY and sleeps, so the test can signal it there.
DRIVER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import keras
    import rnnzoo.training as T
    from rnnzoo.saving import atomic_save_weights

    at, ready = os.environ["FAULT_AT"], Path(os.environ["FAULT_READY"])

    def wait():
        ready.write_text(str(os.getpid()))
        time.sleep(120)

    class Hook(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if at == "first_epoch" and batch == 1 and not ready.exists():
                wait()

        def on_epoch_begin(self, epoch, logs=None):
            if at == "mid_run" and epoch == 1:
                wait()

    callbacks = T._callbacks
    def with_hook(*args, **kwargs):
        found, backup = callbacks(*args, **kwargs)
        return found + [Hook()], backup
    T._callbacks = with_hook

    reports = T._write_reports
    def slow_reports(run_dir, task, *args, **kwargs):
        if at == "after_last_epoch":  # the final weights are written, the rest is not
            atomic_save_weights(task.model, run_dir / "model.weights.h5")
            wait()
        return reports(run_dir, task, *args, **kwargs)
    T._write_reports = slow_reports

    from rnnzoo.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic_dataset(tmp_path_factory.mktemp("data"), n=200, seed=0)


def train_argv(data, out, epochs=3):
    return ["train", "sentiment_gru", "--data", str(data), "--out", str(out),
            "--epochs", str(epochs), *TINY_SET]


def start_driver(tmp_path, at, argv):
    ready = tmp_path / f"READY-{at}-{time.monotonic_ns()}"
    env = {**os.environ, "FAULT_AT": at, "FAULT_READY": str(ready), "PYTHONPATH": str(REPO),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_sigint)
    deadline = time.time() + 240
    while not ready.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the driver never reached {at}: rc {proc.returncode}\n{err[-3000:]}")
        time.sleep(0.1)
    return proc


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("rnnzoo:") and "error" in ln]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    return lines[0]


def assert_finished(out: Path, epochs: int = 3) -> None:
    assert not (out / "backup").exists()
    assert _read_history(out / "history.csv")["epoch"] == list(range(1, epochs + 1))
    for name in ("model.weights.h5", "metrics.json", "history.json", "training_curve.png",
                 "train.log.json", "checksums.json", "checkpoints/checksums.json"):
        assert (out / name).is_file(), name
    rnnzoo.load(out)  # verifies every checksum
    rnnzoo.load(out, weights=out / "checkpoints" / "best.weights.h5")


# == signals at different points, then the same command again ===================================
@pytest.mark.slow
@pytest.mark.parametrize("sig, at", [
    (signal.SIGINT, "first_epoch"),  # before the first backup exists
    (signal.SIGTERM, "mid_run"),  # after a backup: resumes from it
    (signal.SIGKILL, "after_last_epoch"),  # final files half written: the rerun finishes them
])
def test_signal_then_the_same_command_finishes_the_run(tmp_path, data, sig, at, capsys):
    out = tmp_path / "run"
    proc = start_driver(tmp_path, at, train_argv(data, out))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # Ctrl-C and a scheduler's SIGTERM: one true line, 128 + signal
        assert proc.returncode == 128 + sig, err[-2000:]
        assert "Traceback" not in err, err
        line = [ln for ln in err.splitlines() if ln.startswith("rnnzoo: interrupted")]
        assert len(line) == 1, err
        assert f"run the same command with --out {out}" in line[0]
        if at == "first_epoch":
            assert "before the first backup" in line[0] and not (out / "backup").exists()
        else:
            assert "keeps its backup (after epoch 1)" in line[0]
    assert main(train_argv(data, out)) == 0, capsys.readouterr().err
    assert_finished(out)
    log = json.loads((out / "train.log.json").read_text())
    if at == "mid_run":
        assert log["resumed_after_epoch"] == 1 and log["epochs_run_this_invocation"] == 2
    if at == "after_last_epoch":
        assert log["resumed_after_epoch"] == 3 and log["epochs_run_this_invocation"] == 0


@pytest.mark.slow
def test_a_second_trainer_on_the_same_out_fails_at_once_naming_the_first(tmp_path, data,
                                                                          capsys):
    out = tmp_path / "run"
    first = start_driver(tmp_path, "first_epoch", train_argv(data, out))
    try:
        started = time.time()
        assert main(train_argv(data, out)) == 2
        took = time.time() - started
        err = one_line_error(capsys.readouterr().err)
        assert f"in use by another rnnzoo train (pid {first.pid}" in err, err
        assert took < 30  # no training, no waiting for the first one
    finally:
        first.kill()
        first.communicate(timeout=60)
    # The first one died before its first backup: the same command starts it again.
    assert main(train_argv(data, out)) == 0
    assert_finished(out)


# == interruptions in process ===================================================================
def test_ctrl_c_in_the_first_epoch_can_be_rerun(tmp_path, data):
    import keras

    class CtrlC(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="before the first backup") as info:
        rnnzoo.train("sentiment_gru", data, out=out, verbose=0, callbacks=[CtrlC()], **TINY)
    assert info.value.run_dir == out and (out / "config.json").is_file()
    result = rnnzoo.train("sentiment_gru", data, out=out, verbose=0, **TINY)
    assert result.resumed_from_epoch == 0 and result.epochs_run == 3
    assert_finished(out)


def test_a_failed_start_leaves_nothing_that_blocks_the_corrected_command(tmp_path, data,
                                                                          monkeypatch):
    import rnnzoo.training as T

    out = tmp_path / "run"

    def broken(*args, **kwargs):
        raise ConfigError("simulated: the model does not build")

    monkeypatch.setattr(T, "_build_and_compile", broken)
    with pytest.raises(ConfigError, match="does not build"):
        rnnzoo.train("sentiment_gru", data, out=out, verbose=0, **TINY)
    assert not out.exists()  # created for the lock only, removed again
    monkeypatch.undo()
    three = tmp_path / "three.csv"
    three.write_text("text,label\na,x\nb,y\nc,z\nd,x\n")
    with pytest.raises(rnnzoo.DataError, match="num_classes=3"):
        rnnzoo.train("sentiment_gru", three, out=out, verbose=0, **TINY)
    assert not out.exists()
    rnnzoo.train("sentiment_gru", data, out=out, verbose=0, **TINY)
    assert_finished(out)


def test_disk_full_during_training_is_one_error_and_the_run_resumes(tmp_path, data,
                                                                    monkeypatch, capsys):
    import keras

    out = tmp_path / "run"
    save = keras.Model.save_weights
    calls = []

    def full_disk(self, filepath, *args, **kwargs):
        calls.append(filepath)
        if len(calls) > 3:  # epoch 1 is saved (backup, last, best); epoch 2 hits a full disk
            raise OSError(errno.ENOSPC, "No space left on device", str(filepath))
        return save(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", full_disk)
    assert main(train_argv(data, out)) == 2
    err = one_line_error(capsys.readouterr().err)
    assert "no space left on device [ENOSPC]" in err and str(out) in err, err
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp")]
    monkeypatch.undo()
    assert main(train_argv(data, out)) == 0
    assert_finished(out)
    log = json.loads((out / "train.log.json").read_text())
    assert log["resumed_after_epoch"] == 1


def test_storage_error_type():
    wrapped = StorageError("x: no space left on device", errno=errno.ENOSPC, filename="x")
    assert isinstance(wrapped, rnnzoo.RnnzooError) and isinstance(wrapped, OSError)


# == integrity: cannot be switched off by deleting or editing neighbours ========================
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("trained") / "run"
    rnnzoo.train("sentiment_gru", data, out=out, verbose=0,
                 **{**TINY, "training": {**TINY["training"], "epochs": 2}})
    return out


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns(".lock*"))
    return dest


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_run_without_checksums_is_refused_unless_the_caller_opts_out(run_dir, tmp_path,
                                                                       capsys):
    run = copy_of(run_dir, tmp_path)
    (run / "checksums.json").unlink()
    with pytest.raises(RunDirError, match=r"no checksums\.json.*verify=False.*--no-verify"):
        rnnzoo.load(run)
    assert main(["predict", "sentiment_gru", "--run", str(run), "good"]) == 2
    assert "--no-verify" in one_line_error(capsys.readouterr().err)
    # An explicit opt-out loads it: the user asked for it.
    rnnzoo.load(run, verify=False)
    assert main(["predict", "sentiment_gru", "--run", str(run), "--no-verify", "good"]) == 0


@pytest.mark.parametrize("spoil, pattern", [
    (lambda run: (run / "assets" / "extra.json").write_text("{}"),
     r"assets/extra\.json is not listed in checksums\.json"),
    (lambda run: flip_a_byte(run / "assets" / "tokenizer.json"), "sha256 mismatch"),
    (lambda run: (run / "checksums.json").write_text(json.dumps(
        {k: v for k, v in json.loads((run / "checksums.json").read_text()).items()
         if k != "model.weights.h5"})), r"no checksum for model\.weights\.h5"),
    (lambda run: (run / "checksums.json").write_text(json.dumps(
        {**json.loads((run / "checksums.json").read_text()), "../../etc/passwd": "0" * 64})),
     r"leaves the directory"),
])
def test_unlisted_tampered_or_escaping_files_are_refused(run_dir, tmp_path, spoil, pattern):
    run = copy_of(run_dir, tmp_path)
    spoil(run)
    with pytest.raises(RunDirError, match=pattern):
        rnnzoo.load(run)


def test_checkpoints_are_checksummed_and_verified_with_weights(run_dir, tmp_path, capsys):
    run = copy_of(run_dir, tmp_path)
    listed = json.loads((run / "checkpoints" / "checksums.json").read_text())
    assert set(listed) == {"best.weights.h5", "last.weights.h5"}
    last = run / "checkpoints" / "last.weights.h5"
    assert main(["predict", "sentiment_gru", "--weights", str(last), "good"]) == 0
    capsys.readouterr()
    flip_a_byte(last)
    with pytest.raises(RunDirError, match="sha256 mismatch"):
        rnnzoo.load(run, weights=last)
    assert main(["predict", "sentiment_gru", "--weights", str(last), "good"]) == 2
    assert "sha256 mismatch" in one_line_error(capsys.readouterr().err)
    stray = run / "checkpoints" / "other.weights.h5"
    shutil.copy(run / "checkpoints" / "best.weights.h5", stray)
    with pytest.raises(RunDirError, match="no checksum lists this weights file"):
        rnnzoo.load(run, weights=stray)
    rnnzoo.load(run, weights=stray, verify=False)


# == --overwrite removes only what rnnzoo wrote =================================================
def test_overwrite_never_empties_the_current_directory_or_a_foreign_folder(tmp_path, data,
                                                                           monkeypatch, capsys):
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "precious.txt").write_text("mine")
    monkeypatch.chdir(cwd)
    assert main(train_argv(data, ".") + ["--overwrite"]) == 2
    assert "is the current directory" in one_line_error(capsys.readouterr().err)
    assert main(train_argv(data, "..") + ["--overwrite"]) == 2
    assert "ancestor of the current directory" in one_line_error(capsys.readouterr().err)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(train_argv(data, foreign) + ["--overwrite"]) == 2
    assert "does not look like an rnnzoo run directory" in one_line_error(
        capsys.readouterr().err)
    assert sorted(os.listdir(cwd)) == ["precious.txt"]
    assert sorted(os.listdir(foreign)) == ["notes.txt"]


def test_overwrite_replaces_a_finished_run_and_save_only_replaces_saved_models(run_dir, tmp_path,
                                                                               data):
    run = copy_of(run_dir, tmp_path)
    before = (run / "checksums.json").read_text()
    result = rnnzoo.train("sentiment_gru", data, out=run, verbose=0, overwrite=True, **TINY)
    assert result.epochs_run == 3 and (run / "checksums.json").read_text() != before
    assert_finished(run)
    task = rnnzoo.load(run)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(RunDirError, match="does not look like an rnnzoo"):
        task.save(foreign, overwrite=True)
    assert os.listdir(foreign) == ["notes.txt"]
    saved = task.save(tmp_path / "saved")
    task.save(saved, overwrite=True)
    rnnzoo.load(saved)


# == bad command lines: one line, exit 2, no traceback, no run directory ========================
@pytest.fixture()
def a_file(tmp_path):
    path = tmp_path / "a_file.txt"
    path.write_text("not a folder")
    return path


BAD_TRAIN = [
    (["--set", "units=-1"], "model.units: expected an integer >= 1, found -1"),
    (["--set", "dropout=1.5"], "model.dropout: expected a number in [0, 1), found 1.5"),
    (["--set", "embedding_dim=0"], "model.embedding_dim: expected an integer >= 1, found 0"),
    (["--set", "num_classes=1"], "model.num_classes: expected an integer >= 2, found 1"),
    (["--set", "max_length=0"], "data.max_length: expected an integer >= 1, found 0"),
    (["--set", "dev_fraction=1"], "data.dev_fraction: expected a number in [0, 1)"),
    (["--epochs", "0"], "training.epochs: expected an integer >= 1, found 0"),
    (["--batch-size", "0"], "training.batch_size: expected an integer >= 1, found 0"),
    (["--learning-rate", "-0.1"], "training.learning_rate: expected a number > 0, found -0.1"),
    (["--learning-rate", "nan"], "training.learning_rate: expected a finite number > 0"),
    (["--set", "seed=-1"], "training.seed: expected an integer in [0, 4294967295]"),
    (["--set", "monitor=val_bleu"], "'val_bleu' is not a metric of text-classification"),
    (["--set", "units=many"], "model.units: expected an integer, found 'many'"),
    (["--set", "units=100000000000"], "the model does not fit in memory"),
]


@pytest.mark.parametrize("extra, message", BAD_TRAIN)
def test_bad_train_values_fail_before_any_run_directory(tmp_path, data, extra, message,
                                                        capsys):
    out = tmp_path / "run"
    assert main(["train", "sentiment_gru", "--data", str(data), "--out", str(out), *extra]) == 2
    assert message in one_line_error(capsys.readouterr().err)
    assert not out.exists()


def test_out_naming_a_file_or_a_missing_data_path(tmp_path, data, a_file, capsys):
    for out, message in ((a_file, "is a file, not a folder"),
                         (a_file / "run", "is a file, not a folder")):
        assert main(train_argv(data, out)) == 2
        assert message in one_line_error(capsys.readouterr().err)
    assert a_file.read_text() == "not a folder"
    out = tmp_path / "run"
    assert main(["train", "sentiment_gru", "--data", str(tmp_path / "nope.csv"),
                 "--out", str(out)]) == 2
    assert "data path not found" in one_line_error(capsys.readouterr().err)
    assert not out.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(train_argv(data, foreign)) == 2
    assert "is not an rnnzoo run directory" in one_line_error(capsys.readouterr().err)
    assert os.listdir(foreign) == ["notes.txt"]


@pytest.fixture(scope="module")
def translator_dir(tmp_path_factory):
    """A translator with a fitted vocabulary and random weights, saved (no training)."""
    from rnnzoo.families.translator import TINY_OVERRIDES as TR

    task = rnnzoo.create_model("translator_gru", **TR)
    words = "the a cat dog runs sees".split()
    task.preprocessor.source.fit([" ".join(words)], max_size=40)
    task.preprocessor.target.fit([" ".join(words)], max_size=40)
    return task.save(tmp_path_factory.mktemp("tr") / "saved")


@pytest.mark.parametrize("extra, message", [
    (["--beam", "0"], "beam: expected an integer in [1,"),
    (["--beam", "100000"], "beam: expected an integer in [1,"),
    (["--sampler", "top_p", "--p", "1.5"], "p must be in (0, 1]"),
    (["--sampler", "top_k", "--k", "0"], "k must be an integer >= 1"),
    (["--sampler", "temperature", "--temperature", "0"], "temperature must be > 0"),
    (["--k", "3"], "sampler 'greedy' takes no parameters"),
    (["--beam", "2", "--sampler", "top_k"], "drop sampler='top_k'"),
    (["--seed", "-1", "--sampler", "temperature"], "seed: expected an integer >= 0"),
])
def test_bad_sampler_options_are_one_line_errors(translator_dir, extra, message, capsys):
    argv = ["translate", "translator_gru", "--run", str(translator_dir), *extra, "the cat"]
    assert main(argv) == 2
    assert message in one_line_error(capsys.readouterr().err)


def test_bad_export_arguments_fail_before_tracing(run_dir, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    cases = [
        (["--out", str(foreign), "--overwrite"], "does not look like an rnnzoo bundle directory"),
        (["--out", str(foreign)], "already exists"),
        (["--out", str(tmp_path / "b"), "--opset", "5"], "opset: expected an integer in [10,"),
        (["--out", str(tmp_path / "b"), "--data", "x.csv"], "needs quantize='int8'"),
        (["--out", str(tmp_path / "b"), "--quantize", "int8", "--data",
          str(tmp_path / "missing.csv")], "data path not found"),
    ]
    for extra, message in cases:
        started = time.time()
        assert main(["export", "sentiment_gru", "--run", str(run_dir), *extra]) == 2
        assert message in one_line_error(capsys.readouterr().err)
        assert time.time() - started < 20  # refused before minutes of tracing
    assert os.listdir(foreign) == ["notes.txt"] and not (tmp_path / "b").exists()


def test_int8_export_that_fails_its_check_leaves_neither_bundle(run_dir, tmp_path, monkeypatch):
    from rnnzoo.export import to_onnx

    from rnnzoo.apps.text_classification.model import TextClassificationTask

    def failing(*args, **kwargs):
        raise rnnzoo.DataError("simulated: the int8 check failed")

    monkeypatch.setattr(TextClassificationTask, "_compare_runtimes", failing)
    with pytest.raises(rnnzoo.DataError, match="int8 check failed"):
        to_onnx(rnnzoo.load(run_dir), tmp_path / "bundle", quantize="int8", validate=False)
    assert sorted(os.listdir(tmp_path)) == []


def test_every_rnnzoo_error_is_one_line_in_a_fresh_process(tmp_path, a_file):
    proc = subprocess.run([sys.executable, "-m", "rnnzoo.cli", "train", "sentiment_gru",
                           "--data", str(a_file), "--out", str(a_file), "--epochs", "0"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 2
    line = one_line_error(proc.stderr)
    assert line.startswith("rnnzoo: error: ")
    assert "training.epochs: expected an integer >= 1" in line


def test_python_api_arguments_are_rnnzoo_errors(run_dir, tmp_path, data):
    from rnnzoo.export import runtime, to_onnx

    cases = [
        (lambda: rnnzoo.load(123), "load: expected a directory path, found int"),
        (lambda: runtime.load(None), "expected a bundle directory path, found NoneType"),
        (lambda: rnnzoo.create_model(7), "model name: expected a string"),
        (lambda: rnnzoo.list_models(3), "pattern: expected a glob string"),
        (lambda: rnnzoo.train("sentiment_gru", 123), "data: expected a dataset file or folder"),
        (lambda: rnnzoo.train("sentiment_gru", data, out=tmp_path / "r", verbose="loud"),
         "verbose: expected 0, 1, 2 or 'auto'"),
        (lambda: rnnzoo.train("sentiment_gru", data, out=tmp_path / "r", callbacks="x"),
         "callbacks: expected a list of keras.callbacks.Callback"),
        (lambda: to_onnx(run_dir, 5), "out_dir: expected a directory path"),
        (lambda: to_onnx(run_dir, tmp_path / "b", tolerance=-1),
         "tolerance: expected a finite number > 0"),
    ]
    for call, message in cases:
        with pytest.raises(rnnzoo.RnnzooError, match=message):
            call()
    assert not (tmp_path / "r").exists() and not (tmp_path / "b").exists()


def test_what_a_rerun_does_with_each_state_of_a_run_directory(tmp_path):
    """Decided under the lock, before anything changes: a start that never reached a backup
    starts again (also half emptied by an interrupted --overwrite), a backup resumes, a
    finished run or one with progress but no backup is refused, a foreign folder is refused."""
    from rnnzoo.training import _run_dir_state

    task = rnnzoo.create_model("sentiment_gru")
    config = json.dumps(task.config.to_dict())

    def state(files, overwrite=False):
        run = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        for name, text in files.items():
            (run / name).parent.mkdir(parents=True, exist_ok=True)
            (run / name).write_text(text)
        return _run_dir_state(run, task, overwrite)

    assert state({}) == "new"
    assert state({".lock": "", ".lock.json": "{}"}) == "new"
    assert state({"config.json": config}) == "restart"
    assert state({"config.json": config, "assets/labels.json": "[]", "history.csv": "",
                  "checksums.json": "{}", "backup/latest.weights.h5": ""}) == "restart"
    assert state({"config.json": "{}"}, overwrite=True) == "replace"  # half emptied
    assert state({"config.json": config, "backup/training_metadata.json": "{}"}) == "resume"
    with pytest.raises(RunDirError, match="with a different config"):
        state({"config.json": config.replace("sentiment_gru", "other"),
               "backup/training_metadata.json": "{}"})
    with pytest.raises(RunDirError, match="its training finished"):
        state({"config.json": config, "checksums.json": '{"model.weights.h5": "x"}'})
    with pytest.raises(RunDirError, match=r"no unfinished run to resume \(no backup\)"):
        state({"config.json": config, "checkpoints/last.weights.h5": ""})
    with pytest.raises(RunDirError, match="is not an rnnzoo run directory"):
        state({"notes.txt": "mine"})
    with pytest.raises(RunDirError, match="does not look like an rnnzoo run directory"):
        state({"notes.txt": "mine"}, overwrite=True)
