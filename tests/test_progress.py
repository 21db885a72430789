"""Progress on long calls (issue #30): the progress line itself, ``progress=True|False`` on every
application's ``evaluate`` (and the calls under it), and ``rnnzoo evaluate --progress`` writing
the line to stderr while stdout stays exactly the report."""

from __future__ import annotations

import inspect
import io
import json

import numpy as np
import pytest
from conftest import shared_data

import rnnzoo
from rnnzoo.errors import ConfigError
from rnnzoo.progress import Progress, check_progress, model_label, reporting


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_counts_shares_and_estimates_time_left():
    clock, out = FakeClock(), io.StringIO()
    bar = Progress("evaluate tagger_bilstm_crf.conll03", 3250, "sentences", stream=out,
                   clock=clock)
    bar.update(1200)
    clock.now += 12
    assert bar.text() == ("evaluate tagger_bilstm_crf.conll03: 1,200/3,250 sentences 37% 12 s, "
                          "~20 s left")
    bar.update(2050)
    clock.now += 130
    bar.close()
    bar.close()  # once
    assert out.getvalue() == ("evaluate tagger_bilstm_crf.conll03: 3,250/3,250 sentences 100% "
                              "2 min 22 s\n")


def test_stages_are_drawn_at_once_and_restart_the_count():
    clock, out = FakeClock(), io.StringIO()
    with Progress("export m", stream=out, clock=clock) as bar:
        bar.stage("tracing model.onnx (1/1)")
        clock.now += 3
        bar.stage("decoding", 4, "recordings")
        bar.update(1)
    lines = out.getvalue().splitlines()
    assert lines == ["export m: tracing model.onnx (1/1) 0 s",
                     "export m: decoding 0/4 recordings 0% 3 s",
                     "export m: decoding 1/4 recordings 25% 3 s"]


def test_terminal_line_is_redrawn_in_place_and_ends_with_a_newline():
    out = Terminal()
    with Progress("predict m", 3, "texts", stream=out) as bar:
        for _ in bar.over(["a", "b", "c"]):
            pass
        bar.stage("again", 1)
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    assert text.rstrip().rsplit("\r", 1)[-1].startswith("predict m: again 0/1 texts 0%")


def test_disabled_writes_nothing_and_starts_no_thread():
    out = io.StringIO()
    with Progress("evaluate m", 3, stream=out, enabled=False) as bar:
        bar.stage("tracing")
        bar.update(3)
        assert bar._thread is None
    assert out.getvalue() == ""


def test_reporting_passes_an_outer_line_down_and_checks_the_flag():
    outer = Progress("evaluate m", None, "windows", stream=io.StringIO(), enabled=False)
    with reporting(outer, "forecast m", 7, "windows") as inner:
        assert inner is outer and outer.total == 7  # the inner call knows the count
    assert not outer._closed  # the outer call closes its own line
    with reporting(False, "x") as silent:
        assert not silent.enabled
    assert check_progress(None) is False
    with pytest.raises(ConfigError, match="progress: expected True or False"):
        check_progress("yes")
    with pytest.raises(ConfigError, match="progress"):
        with reporting(1, "x"):
            pass


@pytest.mark.parametrize("task_type", __import__("rnnzoo.apps").apps.known_task_types())
def test_every_evaluate_takes_progress(task_type):
    """One option for every application, on the Keras task and the runtime alike."""
    from rnnzoo.apps import runtime_class, task_class

    for cls in (task_class(task_type), runtime_class(task_type)):
        param = inspect.signature(cls.evaluate).parameters.get("progress")
        assert param is not None and param.default is False, cls.__name__


def _speech_inputs():
    from rnnzoo.apps.speech_recognition.data import tone_bursts

    return ([tone_bursts([500, 1500], 8000), tone_bursts([700], 8000)], ["12", "3"],
            {"sample_rate": 8000, "beam_width": 2})


def _forecast_inputs(model):
    pre = model.preprocessor
    series = np.tile(pre.mean, (3, pre.lookback + pre.horizon, 1))
    return series[:, :pre.lookback], series[:, pre.lookback:, pre.target_index], {}


CASES = {  # preset: (inputs, references, keywords), and what the line counts
    "sentiment_bilstm.sst2": (lambda m: (["a good film", "dull", "fine"],
                                         ["positive", "negative", "positive"], {}), "3/3 texts"),
    "tagger_bilstm_crf.conll03": (lambda m: ([["John", "lives"], ["EU", "rejects", "it"]],
                                             [["B-PER", "O"], ["B-ORG", "O", "O"]], {}),
                                  "2/2 sentences"),
    "translator_gru_attention.spa_eng": (lambda m: (["tengo hambre .", "hola ."],
                                                    ["i'm hungry .", "hello ."], {"beam": 2}),
                                         "2/2 sentences"),
    "music_lstm.jsb": (lambda m: ([[[60], [62, 64], [65]], [[48], [50]]], None, {}),
                       "2/2 pieces"),
    "charlm_lstm.shakespeare": (lambda m: (["To be, or not"], None, {}), "13/13 characters"),
    "ctc_bilstm.fsdd": (lambda m: _speech_inputs(), "decoding 2/2 recordings"),
    "forecaster_lstm.etth1": (_forecast_inputs, "3/3 windows"),
    "captioner_lstm_attention.flickr8k_subset": (
        lambda m: ([np.zeros((12, 16, 3), np.uint8)], [["a dog runs"]], {}), "1/1 images"),
}


@pytest.mark.parametrize("preset", sorted(CASES))
def test_evaluate_progress_writes_the_count_to_stderr(preset, capsys):
    from rnnzoo.presets import PresetError

    try:
        model = rnnzoo.from_preset(preset, backend="onnx")
    except PresetError as exc:  # a preset distribution that is not installed
        pytest.skip(str(exc))
    make, count = CASES[preset]
    inputs, references, kwargs = make(model)
    args = (inputs,) if references is None else (inputs, references)
    quiet = model.evaluate(*args, **kwargs)
    assert capsys.readouterr().err == ""  # progress=False is the default
    loud = model.evaluate(*args, progress=True, **kwargs)
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.splitlines()[-1]
    assert last.startswith(f"{model_label(model, 'evaluate')}") and count in last, captured.err
    assert json.dumps(quiet, default=str) == json.dumps(loud, default=str)  # same report
    model.evaluate(*args, progress=False, **kwargs)
    assert capsys.readouterr().err == ""


def test_cli_evaluate_progress_goes_to_stderr_and_json_stays_clean(capsys):
    from rnnzoo.cli import main

    data = shared_data("sentiment", "SST-2")
    base = ["evaluate", "sentiment_bilstm.sst2", "--data", str(data), "--limit", "50",
            "--json", "--backend", "onnx"]
    assert main(base + ["--progress"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout is exactly the JSON report
    assert report["split"] == "dev" and sum(map(sum, report["confusion_matrix"])) == 50
    assert "evaluate sentiment_bilstm.sst2: 50/50 texts 100%" in captured.err
    assert main(base + ["--no-progress"]) == 0
    quiet = capsys.readouterr()
    assert json.loads(quiet.out) == report and "texts" not in quiet.err
    assert main(base) == 0  # stderr is not a terminal here: no line by default
    assert "texts" not in capsys.readouterr().err


def test_export_names_each_step_on_its_progress_line(tmp_path, capsys):
    from conftest import tiny_overrides
    from rnnzoo.export import to_onnx

    from rnnzoo.registry import get_entry

    task = rnnzoo.create_model("sentiment_gru",
                               **tiny_overrides(get_entry("sentiment_gru").family))
    task.preprocessor.tokenizer.fit(["the movie was good bad"], max_size=64)
    task.preprocessor.label_names = ["neg", "pos"]
    with pytest.raises(ConfigError, match="progress"):
        to_onnx(task, tmp_path / "never", progress="yes")
    to_onnx(task, tmp_path / "quiet")
    assert "export sentiment_gru" not in capsys.readouterr().err
    to_onnx(task, tmp_path / "b", quantize="int8", progress=True)
    err = capsys.readouterr().err
    # sentiment_gru streams, so its bundle has a second graph (step_model.onnx, #39)
    for step in ("tracing model.onnx (1/2)", "tracing step_model.onnx (2/2)",
                 "converting model.onnx", "simplifying model.onnx",
                 "validating model.onnx", "writing the bundle", "quantizing model.onnx to int8",
                 "comparing int8 with fp32"):
        assert f"export sentiment_gru: {step}" in err, err
