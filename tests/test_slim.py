"""The slim install: with TensorFlow, Keras and tf2onnx unimportable (as after ``pip install
rnnzoo`` without the train extra), the inference commands run the shipped presets' ONNX bundles,
and every command that needs the train extra says so in one line with the install command.
Also: the quiet default (nothing on stderr) and the preset-bundle command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import TRAIN_EXTRA_PACKAGES, run_python, without_packages

from rnnzoo.cli import main


def slim_cli(*args: str) -> subprocess.CompletedProcess:
    """``rnnzoo ARGS`` in a process where the train extra cannot be imported."""
    code = without_packages(f"""
        from rnnzoo.cli import main
        code = main({list(args)!r})
        assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)
        sys.exit(code)
    """, (*TRAIN_EXTRA_PACKAGES, "onnx"))
    return run_python(code, timeout=300, env={"RNNZOO_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def test_inference_commands_run_without_tensorflow():
    proc = slim_cli("predict", "sentiment_bilstm.sst2", "a gorgeous, witty, seductive movie.",
                    "a dull, tedious mess.", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    proc = slim_cli("translate", "translator_gru_attention.spa_eng", "Tengo hambre.")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "i'm hungry."
    proc = slim_cli("generate", "music_lstm.jsb", "--steps", "4", "--seed", "0")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 4
    proc = slim_cli("predict", "sentiment_bilstm.sst2", "a dull, tedious mess.", "--int8")
    assert proc.returncode == 0 and proc.stdout.startswith("negative"), proc.stderr


@pytest.mark.parametrize("args", [
    ["train", "sentiment_gru", "--data", "DATA"],
    ["evaluate", "sentiment_bilstm.sst2", "--data", "DATA", "--backend", "keras"],
    ["export", "sentiment_bilstm.sst2", "--out", "b"],
    ["predict", "sentiment_bilstm.sst2", "a film", "--backend", "keras"],
    ["preset-bundle", "sentiment_bilstm.sst2", "--out", "p"],
])
def test_train_extra_commands_say_how_to_install(args, sentiment_csv):
    # The arguments and the data are checked first (TF-free); valid ones reach the install line.
    proc = slim_cli(*[str(sentiment_csv) if a == "DATA" else a for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert 'pip install "rnnzoo[train]"' in lines[0] and lines[0].startswith("rnnzoo: error:")


def test_keras_path_is_quiet_by_default():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's
    proc = subprocess.run([sys.executable, "-m", "rnnzoo.cli", "predict", "sentiment_bilstm.sst2",
                           "a dull, tedious mess.", "--backend", "keras"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("negative") and proc.stderr == ""


def test_save_preset_and_preset_bundle_commands(tmp_path, sentiment_csv, capsys):
    import rnnzoo

    run = tmp_path / "run"
    rnnzoo.train("sentiment_gru", sentiment_csv, out=run, epochs=1, verbose=0, vocab_size=64,
                 embedding_dim=8, units=8, max_length=16)
    base = ["save-preset", "sentiment_gru.slim", "--run", str(run), "--data", str(sentiment_csv),
            "--data-license", "generated", "--storage", "float32"]
    # save-preset builds the validated bundles by default ...
    assert main([*base, "--out", str(tmp_path / "full")]) == 0
    assert "ONNX fp32: onnx/fp32" in capsys.readouterr().out
    meta = json.loads((tmp_path / "full" / "metadata.json").read_text())
    assert meta["onnx"]["fp32"]["path"] == "onnx/fp32"
    assert ("int8" in meta["onnx"]) != ("int8_rejected" in meta["onnx"])
    # ... and preset-bundle adds them to a preset saved without.
    plain = tmp_path / "plain"
    assert main([*base, "--out", str(plain), "--no-onnx"]) == 0
    capsys.readouterr()
    assert not (plain / "onnx").exists()
    assert main(["preset-bundle", str(plain), "--out", str(plain), "--overwrite",
                 "--data", str(sentiment_csv)]) == 0
    out = capsys.readouterr().out
    assert "ONNX fp32: onnx/fp32" in out
    assert (plain / "onnx" / "fp32" / "bundle.json").is_file()
    assert "## ONNX bundles" in (plain / "README.md").read_text()
    proc = slim_cli("predict", str(plain), "a good film", "--json")
    assert proc.returncode == 0, proc.stderr
    label = json.loads(proc.stdout)["label"]
    assert main(["predict", str(plain), "a good film", "--json", "--backend", "keras"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == label
    # evaluate without the train extra: the preset's bundle under the task's readers and
    # reports, the same numbers as Keras
    proc = slim_cli("evaluate", str(plain), "--data", str(sentiment_csv), "--json")
    assert proc.returncode == 0, proc.stderr
    assert main(["evaluate", str(plain), "--data", str(sentiment_csv), "--json"]) == 0
    keras_report = json.loads(capsys.readouterr().out)
    assert json.loads(proc.stdout)["accuracy"] == keras_report["accuracy"]
    # --limit N scores the first N examples of the split
    assert main(["evaluate", str(plain), "--data", str(sentiment_csv), "--limit", "7",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 7
