"""Every preset shipped in the package: its metadata passes the schema, num_params is what the
model has, a flipped byte is caught, and its metric, re-measured on the recorded split (or on
the recorded fixed subset when the split is too slow for CI), matches the stored value."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest
from conftest import shared_data

import rnnzoo
from rnnzoo.presets import PresetError, measure, validate_metadata, verify_preset

PRETRAINED = Path(rnnzoo.__file__).parent / "pretrained"
SHIPPED = sorted(p.name for p in PRETRAINED.iterdir() if p.is_dir()) if PRETRAINED.is_dir() \
    else []
TOLERANCE = 0.005  # absolute, on metrics in [0, 1] or BLEU/100-scaled points below


def _data_path(meta: dict) -> Path:
    """The --data of the recorded measuring command, found in ../shared/data."""
    args = shlex.split(meta["metrics_command"])
    data = Path(args[args.index("--data") + 1])
    if len(data.parts) == 1 and not data.suffix:  # a generated dataset's name (mackey-glass)
        return data
    parts = data.parts[data.parts.index("data") + 1:] if "data" in data.parts else data.parts
    return shared_data(*parts)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset_is_valid_and_verified(name, tmp_path):
    meta = verify_preset(PRETRAINED / name)
    validate_metadata(meta, name)
    assert meta["name"] == name and name in rnnzoo.list_models(pretrained=True)
    task = rnnzoo.from_preset(name)
    assert task.model.count_params() == meta["num_params"]
    copy = tmp_path / name
    shutil.copytree(PRETRAINED / name, copy)
    weights = bytearray((copy / "model.weights.h5").read_bytes())
    weights[len(weights) // 2] ^= 0x01
    (copy / "model.weights.h5").write_bytes(bytes(weights))
    with pytest.raises(PresetError, match="sha256 mismatch"):
        rnnzoo.from_preset(copy)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset_metric_is_remeasured(name):
    meta = rnnzoo.preset_info(name)
    task = rnnzoo.from_preset(name)
    check = meta.get("check")
    limit = check["limit"] if check else None
    recorded = check["metrics"] if check else meta["metrics"]
    measured = measure(task, _data_path(meta), meta["split"], limit)
    for key, value in recorded.items():
        scale = 100.0 if value > 1.0 else 1.0  # BLEU/chrF are on 0-100
        assert abs(measured[key] - value) <= TOLERANCE * scale, (key, measured[key], value)
