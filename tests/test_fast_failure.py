"""Fast, quiet failure (issue 30): a bad command line is answered before TensorFlow is imported,
and the Python API, like the CLI, writes no TensorFlow start-up or C++ log lines to stderr.

The proof of "before TensorFlow" is a child process where TensorFlow and Keras cannot be
imported at all: the one-line error there cannot depend on them. Timings are measured by hand
and reported in the issue, never asserted here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_python, without_packages

#: A user's environment: TensorFlow's C++ log level left unset (conftest sets one for pytest).
USER_ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def tf_free_cli(*args: str) -> tuple[int, list[str]]:
    """``rnnzoo ARGS`` in a child where TensorFlow and Keras are unimportable: (exit code, the
    non-empty stderr lines); the child also fails if anything imported them."""
    code = without_packages(f"""
        from rnnzoo.cli import main
        code = main({list(args)!r})
        assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)
        sys.exit(code)
    """)
    proc = run_python(code, env={**USER_ENV, "RNNZOO_OFFLINE": "1"})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, [line for line in proc.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, sentiment_csv: Path) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("fast")
    bad_header = tmp / "bad_header.csv"
    bad_header.write_text("sentence,lbl\na good film,1\n", encoding="utf-8")
    no_conll = tmp / "no_conll"
    no_conll.mkdir()
    (no_conll / "README").write_text("no eng.train here")
    from rnnzoo.presets import resolve_preset

    return {"SST2": str(resolve_preset("sentiment_bilstm.sst2")), "CSV": str(sentiment_csv),
            "BAD": str(bad_header), "MISSING": str(tmp / "nope.csv"), "NOCONLL": str(no_conll),
            "OUT": str(tmp / "out")}


CASES = [
    (["train", "sentiment_gru", "--data", "CSV", "--set", "unitz=64"],
     "override 'unitz': not a key of model, data or training for 'sentiment_gru'. "
     "Did you mean 'units'?"),
    (["train", "sentimnt_gru", "--data", "CSV"], "Did you mean 'sentiment_gru'"),
    (["train", "sentiment_gru", "--data", "CSV", "--set", "units=-1"],
     "model.units: expected an integer >= 1, found -1"),
    (["train", "sentiment_gru", "--data", "CSV", "--set", "dropout=lots"],
     "model.dropout: expected a number, found 'lots'"),
    (["train", "sentiment_gru", "--data", "CSV", "--epochs", "0"],
     "training.epochs: expected an integer >= 1, found 0"),
    (["train", "sentiment_gru", "--data", "CSV", "--set", "monitor=val_bleu"],
     "'val_bleu' is not a metric of text-classification"),
    (["train", "sentiment_gru", "--data", "MISSING"], "data path not found"),
    (["train", "sentiment_bilstm", "--data", "MISSING", "--init-from", "SST2"],
     "data path not found"),
    (["train", "sentiment_bilstm", "--data", "CSV", "--init-from", "OUT"], "not a directory"),
    (["train", "sentiment_gru", "--data", "BAD"],
     "line 1: expected a header with columns 'text' or 'sentence' (the text) and 'label'"),
    (["train", "tagger_bilstm", "--data", "NOCONLL"], "no training file (expected one of"),
    (["finetune", "sentiment_bilstm.sst2", "--data", "CSV", "--out", "OUT", "--set",
      "unitz=64"], "Did you mean 'units'?"),
    (["finetune", "sentiment_bilstm.sst2", "--data", "CSV", "--out", "OUT", "--set",
      "learning_rate=-1"], "training.learning_rate: expected a number > 0, found -1"),
    (["finetune", "sentiment_bilstm.sst2", "--data", "BAD", "--out", "OUT"],
     "expected a header with columns"),
    (["evaluate", "sentiment_bilstm.sst2", "--data", "BAD", "--backend", "keras"],
     "expected a header with columns"),
    (["evaluate", "sentiment_bilstm.sst2", "--data", "MISSING", "--backend", "keras"],
     "data path not found"),
    (["export", "sentiment_bilstm.sst2", "--out", "OUT", "--quantize", "int8", "--data",
      "BAD"], "expected a header with columns"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0][:2] + c[0][-2:])
                                                      for c in CASES])
def test_bad_command_lines_fail_without_tensorflow(files, argv, message):
    code, lines = tf_free_cli(*[files.get(a, a) for a in argv])
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("rnnzoo: error: ") and message in lines[0], lines
    assert not Path(files["OUT"]).exists()


def test_a_valid_command_line_gets_as_far_as_needing_tensorflow(files):
    """The checks pass a good command line: the first thing it lacks is the train extra."""
    code, lines = tf_free_cli("train", "sentiment_gru", "--data", files["CSV"], "--out",
                              files["OUT"], "--set", "units=8")
    assert code == 2 and len(lines) == 1, lines
    assert 'pip install "rnnzoo[train]"' in lines[0]
    assert not Path(files["OUT"]).exists()


def test_python_api_checks_before_tensorflow(files):
    code = without_packages(f"""
        import rnnzoo
        try:
            rnnzoo.train("sentiment_gru", {files["CSV"]!r}, unitz=64)
        except rnnzoo.ConfigError as exc:
            print(exc)
        try:
            rnnzoo.train("sentiment_gru", {files["BAD"]!r})
        except rnnzoo.DataError as exc:
            print(exc)
        assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)
    """)
    proc = run_python(code, env=USER_ENV)
    assert proc.returncode == 0, proc.stderr
    typo, header = proc.stdout.splitlines()
    assert "Did you mean 'units'?" in typo and "expected a header with columns" in header


def test_help_on_to_onnx_imports_no_tensorflow():
    proc = run_python(
        "import sys, pydoc, rnnzoo.export\n"
        "text = pydoc.render_doc(rnnzoo.export.to_onnx)\n"
        "assert 'ONNX bundle' in text\n"
        "assert not {'tensorflow', 'keras', 'tf2onnx'} & set(sys.modules), 'TF imported'\n",
        env=USER_ENV)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_keras_preset_through_the_python_api_is_quiet():
    proc = run_python("import rnnzoo\n"
                      "model = rnnzoo.from_preset('sentiment_bilstm.sst2', backend='keras')\n"
                      "print(model.predict(['a good film']).labels[0])\n", timeout=300,
                      env=USER_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "positive"
    assert proc.stderr == ""


def test_train_and_to_onnx_through_the_python_api_are_quiet(tmp_path, sentiment_csv):
    proc = run_python(f"""
import rnnzoo
from rnnzoo.export import to_onnx
from rnnzoo.families.sentiment import TINY_OVERRIDES as T
run = rnnzoo.train("sentiment_gru", {str(sentiment_csv)!r}, out={str(tmp_path / "run")!r},
                   verbose=0, **{{**T, "training": {{**T["training"], "epochs": 1}}}})
print(to_onnx(run.task, {str(tmp_path / "bundle")!r}).summary())
""", timeout=300, env=USER_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "fused recurrent ops: GRU x1" in proc.stdout
    assert proc.stderr == ""


def test_finetune_applies_the_recipe_threads_without_a_warning(tmp_path, sentiment_csv):
    """Loading the preset used to run TensorFlow's first op before ``train`` set the recipe's
    threads: "TensorFlow is already initialised; thread settings ... not applied"."""
    argv = ["finetune", "sentiment_bilstm.sst2", "--data", str(sentiment_csv), "--out",
            str(tmp_path / "tuned"), "--epochs", "1", "--no-onnx", "--set", "intra_op_threads=1",
            "--set", "inter_op_threads=3"]
    proc = run_python(f"""
import sys
from rnnzoo.cli import main
code = main({argv!r})
import tensorflow as tf  # imported by the command, quietly
print("threads", tf.config.threading.get_intra_op_parallelism_threads(),
      tf.config.threading.get_inter_op_parallelism_threads())
sys.exit(code)
""", timeout=300, env=USER_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "already initialised" not in proc.stderr + proc.stdout
    assert proc.stdout.splitlines()[-1] == "threads 1 3"
    assert proc.stderr == ""
