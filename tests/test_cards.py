"""Model cards and headline metrics: one headline per task type (a family may declare its own),
used by ``rnnzoo list --pretrained`` and the card; ``rnnzoo card PRESET`` prints the card of a
verified preset without TensorFlow, with the command that re-measures its metrics, the bundles'
inputs, outputs and state, and the training command; a fine-tuned preset's card commands run as
printed."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from conftest import run_python, without_packages

from rnnzoo.apps import app_cli, headline, headline_metric, known_task_types
from rnnzoo.cli import main
from rnnzoo.presets import list_presets, preset_info, render_model_card

SST2 = "sentiment_bilstm.sst2"


def _installed(name: str) -> dict:
    if name not in list_presets():
        pytest.skip(f"{name} is not installed (pip install ./presets/*/)")
    return preset_info(name)


def _fenced_after(card: str, marker: str) -> str:
    """The first fenced block after ``marker`` in a card."""
    match = re.search(re.escape(marker) + r"\n\n```[a-z]*\n(.*?)\n```", card, re.S)
    assert match, marker
    return match.group(1)


# -- the headline ------------------------------------------------------------------------------


@pytest.mark.parametrize("task", known_task_types())
def test_every_task_type_declares_its_headline_intended_use_and_limitations(task):
    cli = app_cli(task)
    assert headline_metric(task) == cli.HEADLINE
    assert cli.HEADLINE[1] in ("max", "min")
    assert isinstance(cli.INTENDED_USE, str) and cli.INTENDED_USE.endswith(".")
    assert cli.LIMITATIONS and all(isinstance(x, str) and x for x in cli.LIMITATIONS)


def test_a_family_may_declare_its_own_headline_and_a_missing_one_is_said():
    metrics = {"mse": 0.5, "mae": 0.25, "nrmse": 0.01}
    assert headline("forecasting", metrics, "esn") == ("nrmse", 0.01, "min")
    assert headline("forecasting", metrics, "forecaster") == ("mse", 0.5, "min")
    assert headline("forecasting", metrics) == ("mse", 0.5, "min")
    missing = headline("token-classification", {"token_accuracy": 0.97}, "tagger")
    assert missing == ("f1", None, "max") and missing.text() == "f1 not recorded"
    assert headline("text-classification", {"accuracy": 0.85206}).text() == "accuracy 0.8521"


def test_list_pretrained_shows_each_presets_headline(capsys):
    assert main(["list", "--pretrained"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows[SST2].split()[2:] == ["accuracy", "0.8521", "(dev)"]
    for name in list_presets():
        meta = preset_info(name)
        head = headline(meta["task"], meta["metrics"], meta["family"])
        assert rows[name].split(maxsplit=2)[2] == f"{head.text()} ({meta['split']})"
    expected = {"tagger_bilstm_crf.conll03": "f1 0.9076 (dev)",
                "esn_forecaster.mackey_glass": "nrmse 0.002293 (test)",
                "forecaster_lstm.etth1": "mse 0.02729 (test)"}
    for name, text in expected.items():
        if name in rows and "not installed" not in rows[name]:
            assert rows[name].endswith(text), rows[name]


# -- the card ----------------------------------------------------------------------------------


def test_card_command_prints_the_card_with_its_re_measure_command(capsys):
    meta = _installed(SST2)
    assert main(["card", SST2]) == 0
    card = capsys.readouterr().out
    assert card.startswith(f"# {SST2}\n")
    assert _fenced_after(card, "re-measure with:") == meta["metrics_command"]
    assert meta["metrics_command"].startswith(f"rnnzoo evaluate {SST2} --data ")
    assert meta["metrics_command"].endswith(" --split dev")
    assert f"Headline: **accuracy {meta['metrics']['accuracy']:.4g}** on the dev split" in card
    table = card[card.index("| metric | value |"):].splitlines()
    assert table[2].startswith("| accuracy |")  # the headline first
    assert _fenced_after(card, "The training command, as recorded:") == \
        meta["training_command"]
    for text in ("## Intended use", "rnnzoo predict sentiment_bilstm.sst2 ...",
                 "## Data and licence", meta["data_license"], "## Limitations",
                 "unseen words become <unk>", "Traded for size or speed: weights stored as "
                 "float16", "- `onnx/fp32`", "inputs: `tokens` int32 [batch, time]",
                 "outputs: `probs` float32 [batch, 2]", "inputs, outputs and state: as fp32",
                 "## Sizes", "| parameters | 3,217,922 |", "Wall time: 26m 50s"):
        assert text in card, text


def test_card_command_needs_no_tensorflow_and_refuses_unknown_presets():
    proc = run_python(without_packages(f"""
        import sys
        from rnnzoo.cli import main
        assert main(["card", "{SST2}"]) == 0
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        assert main(["card", "sentiment_bilstm.sst3"]) == 2
    """))
    assert proc.returncode == 0, proc.stderr
    assert "Headline: **accuracy" in proc.stdout
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnzoo: error: unknown preset")


def test_card_shows_recurrent_state_and_says_when_the_headline_is_missing(tmp_path):
    """A stateful bundle (state_<i> in, new_state_<i> out) from its manifest, by hand."""
    (tmp_path / "onnx" / "fp32").mkdir(parents=True)
    (tmp_path / "model.weights.h5").write_bytes(b"\0" * 2048)
    graph = {"file": "decoder_model.onnx",
             "inputs": [{"name": "char", "dtype": "int32", "shape": ["batch"]},
                        {"name": "state_0", "dtype": "float32", "shape": ["batch", 8]}],
             "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 5]},
                         {"name": "new_state_0", "dtype": "float32", "shape": ["batch", 8]}]}
    (tmp_path / "onnx" / "fp32" / "bundle.json").write_text(json.dumps(
        {"graphs": {"decoder": graph}}))
    meta = {"name": "tagger_bilstm.toy", "entry": "tagger_bilstm", "family": "tagger",
            "task": "token-classification", "description": "A toy.", "num_params": 1234,
            "storage": "float32", "dataset": "toy tags", "split": "dev",
            "data_license": "CC0-1.0", "date": "2025-01-01T00:00:00+00:00",
            "versions": {"rnnzoo": "0", "keras": "0", "tensorflow": "0"},
            "metrics": {"token_accuracy": 0.9}, "metrics_command": "rnnzoo evaluate x",
            "training_command": "rnnzoo train tagger_bilstm --data d --set units=8",
            "training_wall_time_s": 3.0, "tradeoffs": "",
            "onnx": {"opset": 17, "fp32": {"path": "onnx/fp32", "bytes": 10}}}
    card = render_model_card(meta, tmp_path)
    assert "Headline: f1, **not recorded**" in card
    assert "inputs: `char` int32 [batch]" in card and "outputs: `logits` float32" in card
    assert ("state (fed back by the caller on the next call): `state_0` float32 [batch, 8] -> "
            "`new_state_0`") in card
    assert "| Keras weights (`model.weights.h5`, float32) | 2.0 KB |" in card
    assert "rnnzoo train tagger_bilstm --data d --set units=8" in card


# -- a fine-tuned preset -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory) -> tuple[Path, list[str]]:
    """A tiny preset fine-tuned by the CLI: (its directory, the command line that made it)."""
    import rnnzoo
    from rnnzoo.families.sentiment import TINY_OVERRIDES, synthetic_dataset
    from rnnzoo.presets import save_preset

    tmp = tmp_path_factory.mktemp("finetune")
    data = synthetic_dataset(tmp / "data", n=160, seed=0)
    result = rnnzoo.train("sentiment_gru", data, out=tmp / "run", verbose=0, **TINY_OVERRIDES)
    source = save_preset(result.task, tmp / "sentiment_gru.src", {
        "name": "sentiment_gru.src", "dataset": "synthetic", "split": "dev",
        "metrics": {"accuracy": 1.0}, "metrics_command": "test", "training_command": "test",
        "training_wall_time_s": 1.0, "data_license": "generated by the test"})
    argv = ["finetune", str(source), "--data", str(data), "--out", str(tmp / "tuned"),
            "--epochs", "1", "--learning-rate", "0.005", "--no-onnx"]
    saved = sys.argv
    sys.argv = ["rnnzoo", *argv]  # what a shell would hand the command
    try:
        assert main(argv) == 0
    finally:
        sys.argv = saved
    return tmp / "tuned", argv


def test_finetuned_card_commands_run_as_printed(finetuned, capsys):
    directory, argv = finetuned
    capsys.readouterr()
    assert main(["card", str(directory)]) == 0
    card = capsys.readouterr().out
    assert card.startswith("# sentiment_gru.finetuned\n")
    meta = json.loads((directory / "metadata.json").read_text())
    assert "fine-tuned from sentiment_gru.src" in card.lower()
    training = _fenced_after(card, "The training command, as recorded:")
    assert training == meta["training_command"]
    words = shlex.split(training)
    assert words[:3] == ["rnnzoo", "finetune", argv[1]] and argv[3] in words
    for option, value in (("--epochs", "1"), ("--learning-rate", "0.005")):  # every override
        key = option[2:].replace("-", "_")
        assert f"{option} {value}" in training or f"{key}={value}" in words, (option, training)

    remeasure = _fenced_after(card, "re-measure with:")
    words = shlex.split(remeasure)
    assert words[:3] == ["rnnzoo", "evaluate", str(directory)]
    assert main(words[1:]) == 0  # as printed
    assert "accuracy" in capsys.readouterr().out
    assert main([*words[1:], "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["accuracy"] == pytest.approx(meta["metrics"]["accuracy"], abs=1e-6)

    # The training command too: run as printed, it makes the same preset again.
    words = shlex.split(training)
    for folder in (directory, directory.with_name(directory.name + "-run")):
        shutil.rmtree(folder)
    saved = sys.argv
    sys.argv = words
    try:
        assert main(words[1:]) == 0
    finally:
        sys.argv = saved
    again = json.loads((directory / "metadata.json").read_text())
    assert (again["name"], again["training_command"]) == (meta["name"], training)


# -- the bundles' digests ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_shipped_cards_are_generated_and_show_each_bundle_digest(name):
    """Every shipped card is what the generator renders from the preset as it ships (regenerate
    with ``python -m rnnzoo.export.migrate PRESET``), with each bundle's digest."""
    from rnnzoo.presets import resolve_preset

    meta, directory = preset_info(name), resolve_preset(name)
    card = (directory / "README.md").read_text(encoding="utf-8")
    assert card == render_model_card(meta, directory)
    for precision in ("fp32", "int8"):
        entry = (meta.get("onnx") or {}).get(precision)
        if entry is not None:
            assert f"| `{entry['path']}` | `sha256={entry['digest']}` |" in card


def test_the_cards_pin_commands_run_as_printed(capsys):
    """The Python pin in the card loads the bundle with that digest, and the ``rnnzoo serve``
    line pins the same digest."""
    from rnnzoo.serving.loading import split_pin

    meta = _installed(SST2)
    assert main(["card", SST2]) == 0
    card = capsys.readouterr().out
    code = _fenced_after(card, "replaced together with its checksums:\n\n| bundle | digest |\n"
                         f"|---|---|\n| `onnx/fp32` | `sha256={meta['onnx']['fp32']['digest']}` "
                         f"|\n| `onnx/int8` | `sha256={meta['onnx']['int8']['digest']}` |")
    scope: dict = {}
    exec(code, scope)  # as printed
    assert scope["model"].digest == meta["onnx"]["fp32"]["digest"]
    serve = re.search(r"```sh\n(rnnzoo serve .*)\n```", card).group(1)
    source, digest = split_pin(serve, shlex.split(serve)[2])
    assert (source, digest) == (SST2, meta["onnx"]["fp32"]["digest"])
