"""The `rnnzoo` command: help on every subcommand, one-line errors with exit code 2, and the
train -> evaluate -> predict path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rnnzoo.cli import main

TINY_SET = ["--set", "vocab_size=64", "--set", "embedding_dim=8", "--set", "units=8",
            "--set", "max_length=16", "--set", "warmup_steps=0", "--set", "learning_rate=0.01"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnzoo.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("cmd", ["list", "info", "train", "evaluate", "predict"])
def test_help_for_every_command(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    assert "usage: rnnzoo" in capsys.readouterr().out


def test_list_and_info(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "sentiment_bilstm" in out and "sentiment_gru" in out
    assert main(["list", "*gru"]) == 0
    assert "sentiment_bilstm" not in capsys.readouterr().out
    assert main(["info", "sentiment_gru"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["cell"] == "gru"


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "sentimnt_gru"], "unknown model 'sentimnt_gru'. Did you mean"),
        (["train", "sentiment_gru", "--data", "/nonexistent/data.csv"], "data path not found"),
        (["train", "sentiment_gru", "--data", ".", "--set", "unitz=3"], "Did you mean 'units'"),
        (["train", "sentiment_gru", "--data", ".", "--set", "novalue"], "expected KEY=VALUE"),
        (["predict", "sentiment_gru", "--run", "/nonexistent", "hi"], "not a directory"),
        (["evaluate", "sentiment_gru", "--data", "x"], "give --run DIR"),
    ],
)
def test_bad_input_gives_one_line_error_and_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnzoo: error:") and message in err
    assert "\n" not in err and "Traceback" not in err


def test_train_evaluate_predict_round_trip(tmp_path, sentiment_csv, capsys):
    out = tmp_path / "run"
    code = main(["train", "sentiment_gru", "--data", str(sentiment_csv), "--out", str(out),
                 "--epochs", "4", "--batch-size", "16", *TINY_SET])
    assert code == 0
    assert "dev: accuracy" in capsys.readouterr().out
    assert main(["evaluate", "sentiment_gru", "--run", str(out), "--data", str(sentiment_csv),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] >= 0.9
    assert main(["predict", "sentiment_gru", "--run", str(out), "--json",
                 "the film was good", "a bad story"]) == 0
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == ["pos", "neg"]
    assert main(["evaluate", "sentiment_gru", "--weights",
                 str(out / "checkpoints" / "last.weights.h5"), "--data",
                 str(sentiment_csv)]) == 0
    assert "confusion matrix" in capsys.readouterr().out
    assert main(["predict", "sentiment_bilstm", "--run", str(out), "x"]) == 2
    assert "holds a 'sentiment_gru' model" in capsys.readouterr().err


def test_console_entry_point_runs_in_a_fresh_process():
    proc = run_cli("list", "--task", "text-classification")
    assert proc.returncode == 0, proc.stderr
    assert "sentiment_bilstm" in proc.stdout
    proc = run_cli("info", "nope")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def test_wrong_verb_names_the_right_one_and_split_all_scores_the_whole_file(tmp_path,
                                                                            sentiment_csv,
                                                                            capsys):
    out = tmp_path / "run"
    assert main(["train", "sentiment_gru", "--data", str(sentiment_csv), "--out", str(out),
                 "--epochs", "1", "--batch-size", "16", *TINY_SET]) == 0
    capsys.readouterr()
    assert main(["translate", "sentiment_gru", "--run", str(out), "hola"]) == 2
    err = capsys.readouterr().err
    assert "is a text-classification model" in err and "use `rnnzoo predict sentiment_gru" in err
    assert main(["evaluate", "sentiment_gru", "--run", str(out), "--data", str(sentiment_csv),
                 "--split", "all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 480
