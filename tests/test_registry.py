"""Registry and config validation: listing, lookup errors, malformed YAML (TF-free)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rnnzoo
from rnnzoo.config import TrainingConfig, build_section
from rnnzoo.errors import ConfigError, DuplicateModelError, UnknownModelError
from rnnzoo.registry import build_registry, list_models


def test_import_does_not_load_tensorflow():
    code = "import rnnzoo, sys; rnnzoo.list_models(); print('tensorflow' in sys.modules, " \
           "'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_list_models_glob_task_and_natural_sort(monkeypatch):
    names = list_models()
    assert {"sentiment_bilstm", "sentiment_gru"} <= set(names)
    assert list_models("sentiment_*") == sorted(n for n in names if n.startswith("sentiment_"))
    assert list_models(["*gru"]) == [n for n in names if n.endswith("gru")]
    assert list_models(task="no-such-task") == []
    from rnnzoo.registry import _natural_key

    assert sorted(["m_10", "m_2", "m_1"], key=_natural_key) == ["m_1", "m_2", "m_10"]


def test_unknown_model_suggests_close_match():
    with pytest.raises(UnknownModelError, match="Did you mean 'sentiment_bilstm'"):
        rnnzoo.create_model("sentimnt_bilstm")
    with pytest.raises(UnknownModelError, match="rnnzoo list"):
        rnnzoo.model_info("nothing_like_it")


def test_model_info_is_plain_data():
    info = rnnzoo.model_info("sentiment_bilstm")
    assert info["family"] == "sentiment"
    assert info["model"]["cell"] == "lstm" and info["model"]["bidirectional"] is True
    assert info["source"] == "zoo_configs/text_classification/sentiment_bilstm.yaml"


def _write(tmp_path: Path, name: str, body: str, folder: str = "text_classification"):
    path = tmp_path / folder / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path, f"zoo_configs/{folder}/{name}.yaml", folder


GOOD = """\
    name: {name}
    family: sentiment
    model:
      units: 16
    """


def test_duplicate_names_raise(tmp_path):
    a = _write(tmp_path, "sentiment_a", GOOD.format(name="sentiment_a"))
    b = _write(tmp_path / "other", "sentiment_a", GOOD.format(name="sentiment_a"))
    with pytest.raises(DuplicateModelError, match="duplicate model name 'sentiment_a'"):
        build_registry([a, b])


@pytest.mark.parametrize(
    "body, pattern",
    [
        ("name: sentiment_x\nfamily: sentiment\nmodel: {units: 16\n",
         r"sentiment_x\.yaml, line \d+: invalid YAML"),
        ("name: sentiment_x\nfamily: sentiment\nmodel:\n  unitz: 16\n",
         r"sentiment_x\.yaml: model: unknown key 'unitz'\. Did you mean 'units'"),
        ("name: sentiment_x\nfamily: sentiment\nmodel:\n  units: many\n",
         r"sentiment_x\.yaml: model\.units: expected an integer, found 'many'"),
        ("name: sentiment_x\nfamily: sentiment\nmodel:\n  cell: lstmm\n",
         r"model\.cell: expected 'simple' or 'lstm' or 'gru', found 'lstmm'"),
        ("name: sentiment_x\nfamily: sentiment\ntraining:\n  epochs: 2.5\n",
         r"training\.epochs: expected an integer, found 2\.5"),
        ("name: sentiment_y\nfamily: sentiment\n",
         r"sentiment_x\.yaml\.name: expected 'sentiment_x' \(the file name\), found 'sentiment_y'"),
        ("name: sentiment_x\nfamily: sentimnt\n",
         r"family: unknown family 'sentimnt'\. Did you mean 'sentiment'"),
        ("name: sentiment_x\nfamily: sentiment\nmodle: {}\n",
         r"unknown top-level key 'modle'\. Did you mean 'model'"),
        ("- just\n- a list\n", r"expected a mapping at top level, found list"),
        ("family: sentiment\n", r"missing required key 'name'"),
    ],
)
def test_malformed_yaml_names_file_key_expected_found(tmp_path, body, pattern):
    entry = _write(tmp_path, "sentiment_x", body)
    with pytest.raises(ConfigError, match=pattern):
        build_registry([entry])


def test_entry_must_be_in_its_applications_folder(tmp_path):
    entry = _write(tmp_path, "sentiment_x", GOOD.format(name="sentiment_x"),
                   folder="music_generation")
    with pytest.raises(ConfigError, match=r"text-classification entry \(family 'sentiment'\) "
                       r"belongs in zoo_configs/text_classification/, not in music_generation/"):
        build_registry([entry])


def test_overrides_route_to_sections_and_reject_unknown_keys():
    from rnnzoo.registry import get_entry

    entry = get_entry("sentiment_gru").with_overrides(units=32, epochs=2,
                                                      data={"max_length": 20})
    assert (entry.model.units, entry.training.epochs, entry.data.max_length) == (32, 2, 20)
    with pytest.raises(ConfigError, match="Did you mean 'units'"):
        get_entry("sentiment_gru").with_overrides(unit=32)
    with pytest.raises(ConfigError, match=r"model\.units: expected an integer, found 'x'"):
        get_entry("sentiment_gru").with_overrides(units="x")


def test_yaml_scientific_notation_is_a_number():
    cfg = build_section(TrainingConfig, {"learning_rate": "1e-3"}, "t")
    assert cfg.learning_rate == pytest.approx(1e-3)


@pytest.mark.parametrize("name", list_models())
def test_every_entry_and_its_defaults_satisfy_the_value_rules(name):
    """The ranges on the family configs (units >= 1, dropout in [0, 1), ...) accept every
    shipped entry, its family's defaults and the tiny test overrides."""
    from rnnzoo.config import config_problems
    from rnnzoo.families import family_spec
    from rnnzoo.registry import get_entry

    entry = get_entry(name)
    spec = family_spec(entry.family)
    for section in (entry.model, entry.data, entry.training,
                    spec.model_config(), spec.data_config(), TrainingConfig()):
        assert config_problems(section) == [], (name, section)
    tiny = entry.with_overrides(**spec.tiny_overrides)
    assert [config_problems(s) for s in (tiny.model, tiny.data, tiny.training)] == [[], [], []]


@pytest.mark.parametrize("override, message", [
    ({"units": 0}, r"model\.units: expected an integer >= 1, found 0"),
    ({"units": -8}, r"model\.units: expected an integer >= 1, found -8"),
    ({"dropout": 1.5}, r"model\.dropout: expected a number in \[0, 1\), found 1\.5"),
    ({"embedding_dropout": 1.0}, r"model\.embedding_dropout: expected a number in \[0, 1\)"),
    ({"num_classes": 1}, r"model\.num_classes: expected an integer >= 2, found 1"),
    ({"vocab_size": 2}, r"model\.vocab_size: expected an integer >= 3, found 2"),
    ({"hidden_units": -1}, r"model\.hidden_units: expected an integer >= 0, found -1"),
    ({"max_length": 0}, r"data\.max_length: expected an integer >= 1, found 0"),
    ({"dev_fraction": 1.0}, r"data\.dev_fraction: expected a number in \[0, 1\), found 1\.0"),
    ({"min_freq": 0}, r"data\.min_freq: expected an integer >= 1, found 0"),
])
def test_sentiment_values_out_of_range_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        rnnzoo.create_model("sentiment_gru", **override)


@pytest.mark.parametrize("override, message", [
    ({"decoder_units": 0}, r"model\.decoder_units: expected an integer >= 1, found 0"),
    ({"tgt_vocab_size": 4}, r"model\.tgt_vocab_size: expected an integer >= 5, found 4"),
    ({"output_units": -1}, r"model\.output_units: expected an integer >= 0, found -1"),
    ({"dropout": -0.1}, r"model\.dropout: expected a number in \[0, 1\), found -0\.1"),
    ({"source_column": 2}, r"data\.source_column: expected an integer in \[0, 1\], found 2"),
    ({"data": {"source_column": 0, "target_column": 0}},
     r"data\.target_column: expected a column other than source_column \(0\), found 0"),
    ({"data": {"dev_fraction": 0.5, "test_fraction": 0.5}},
     r"data\.test_fraction: dev_fraction \+ test_fraction must be < 1"),
])
def test_translator_values_out_of_range_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        rnnzoo.create_model("translator_gru", **override)
