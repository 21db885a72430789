"""Presets outgrow one wheel: one small preset ships with the core package, the others in
per-application distributions (``presets/<application>/`` -> ``rnnzoo-presets-<application>``)
found through the ``rnnzoo.presets`` entry-point group; a preset that is not installed names the
distribution that provides it."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import rnnzoo
import rnnzoo.presets.resolve as resolve
from rnnzoo.errors import UnknownModelError
from rnnzoo.registry import get_entry, list_models

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = sorted(p for p in (REPO / "presets").iterdir() if (p / "pyproject.toml").is_file())
PYPI_LIMIT = 100 * 2**20


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _installed(dist: Path) -> importlib.metadata.Distribution:
    """The installed distribution built from ``presets/<application>/`` (the README's install
    command installs every one of them)."""
    return importlib.metadata.distribution(f"rnnzoo-presets-{dist.name.replace('_', '-')}")


def _package(dist: Path) -> str:
    (ep,) = _installed(dist).entry_points.select(group="rnnzoo.presets")
    assert ep.name == dist.name
    return ep.value


def test_each_declared_preset_lives_in_its_applications_distribution_or_the_core():
    core = {p.name for p in (REPO / "rnnzoo" / "pretrained").iterdir() if p.is_dir()}
    assert len(core) == 1, core  # one small preset in the core wheel (the quick start's)
    placed = {}
    for dist in DISTRIBUTIONS:
        for preset in (dist / _package(dist)).iterdir():
            if preset.is_dir() and not preset.name.startswith("__"):
                assert get_entry(preset.name).task.replace("-", "_") == dist.name, preset
                placed[preset.name] = dist.name
    shipped = core | set(placed)
    assert shipped <= set(list_models(pretrained=True))
    assert not core & set(placed)


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda p: p.name)
def test_every_wheel_stays_well_under_the_pypi_limit(dist):
    assert _size(dist) < 0.9 * PYPI_LIMIT, f"{dist.name}: {_size(dist) / 2**20:.1f} MB"


def test_the_core_wheel_keeps_its_presets_small():
    assert _size(REPO / "rnnzoo" / "pretrained") < 0.25 * PYPI_LIMIT


def test_installed_distributions_are_found_by_name():
    where = resolve.installed_presets()
    for dist in DISTRIBUTIONS:
        presets = [p.name for p in (dist / _package(dist)).iterdir() if (p / "metadata.json")
                   .is_file()]
        assert presets, dist
        for preset in presets:
            assert where[preset][0] == _installed(dist).metadata["Name"], preset


def test_a_preset_not_installed_names_its_distribution(monkeypatch, capsys):
    monkeypatch.setattr(resolve, "_distribution_dirs", lambda: [])
    with pytest.raises(UnknownModelError, match=r"provided by the rnnzoo-presets-translation "
                       r"distribution; pip install rnnzoo-presets-translation"):
        rnnzoo.from_preset("translator_gru_attention.spa_eng")
    from rnnzoo.cli import main

    assert main(["list", "--pretrained"]) == 0
    out = capsys.readouterr().out
    assert "sentiment_bilstm.sst2" in out
    assert "translator_gru_attention.spa_eng" in out and \
        "not installed: pip install rnnzoo-presets-translation" in out


def test_a_preset_distribution_builds_into_a_wheel_with_its_entry_point(tmp_path):
    dist = REPO / "presets" / "forecasting"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(dist)], check=True, timeout=600)
    (wheel,) = tmp_path.glob("rnnzoo_presets_forecasting-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rnnzoo_presets_forecasting/forecaster_lstm.etth1/checksums.json" in names
    assert any(n.startswith("rnnzoo_presets_forecasting/esn_forecaster.mackey_glass/onnx/fp32/")
               for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[rnnzoo.presets]" in text and "forecasting = rnnzoo_presets_forecasting" in text
