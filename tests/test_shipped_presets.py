"""Every preset shipped in the package: its metadata passes the schema, num_params is what the
model has, a flipped byte is caught, and its metric, re-measured on the recorded split (or on
the recorded fixed subset when the split is too slow for CI), matches the stored value on Keras,
on its ONNX bundles and through the CLI."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_data

import rnnzoo
from rnnzoo.apps import app_cli
from rnnzoo.evaluation import evaluate_reports, report_metrics
from rnnzoo.presets import (
    PresetError,
    has_bundle,
    installed_presets,
    validate_metadata,
    verify_preset,
)

# Every preset installed here: the core package's and each rnnzoo-presets-* distribution's.
INSTALLED = {name: path for name, (_, path) in installed_presets().items()}
SHIPPED = sorted(INSTALLED)
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
    meta = verify_preset(INSTALLED[name])
    validate_metadata(meta, name)
    assert meta["name"] == name and name in rnnzoo.list_models(pretrained=True)
    task = rnnzoo.from_preset(name)
    assert task.model.count_params() == meta["num_params"]
    copy = tmp_path / name
    shutil.copytree(INSTALLED[name], copy)
    weights = bytearray((copy / "model.weights.h5").read_bytes())
    weights[len(weights) // 2] ^= 0x01
    (copy / "model.weights.h5").write_bytes(bytes(weights))
    with pytest.raises(PresetError, match="sha256 mismatch"):
        rnnzoo.from_preset(copy)


def _close(a: float, b: float, relative: float) -> bool:
    return abs(a - b) <= relative * max(abs(a), abs(b)) + 1e-9


def _cli_json(args: list[str]) -> list[dict]:
    """``rnnzoo ARGS --json`` in a new process, as a user types it."""
    proc = subprocess.run([sys.executable, "-c", "from rnnzoo.cli import main; "
                           "raise SystemExit(main())", *args, "--json"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    return out if isinstance(out, list) else [out]


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset_metric_is_the_same_everywhere(name):
    """Generated for every shipped preset (a new one gets it without a new test): its metric
    on the recorded split (or fixed first-N subset) equals the metadata on Keras, equals
    Keras within 0.2% (relative) on the ONNX fp32 bundle, stays within the application's
    declared int8 tolerance on the int8 bundle, and ``rnnzoo evaluate --json --backend onnx``
    prints exactly what the Python call returns."""
    meta = rnnzoo.preset_info(name)
    check = meta.get("check")
    limit = check["limit"] if check else None
    recorded = check["metrics"] if check else meta["metrics"]
    data_path = _data_path(meta)
    keras = rnnzoo.from_preset(name, backend="keras")
    data = keras.load_data(data_path, seed=keras.config.training.seed)

    def scores(model: object) -> dict[str, float]:
        return report_metrics(evaluate_reports(model, data, meta["split"], {"limit": limit}))

    measured = scores(keras)
    for key, value in recorded.items():
        scale = 100.0 if value > 1.0 else 1.0  # BLEU/chrF are on 0-100
        assert abs(measured[key] - value) <= TOLERANCE * scale, (key, measured[key], value)
    if not has_bundle(meta):
        return
    fp32 = scores(rnnzoo.from_preset(name, backend="onnx"))
    for key, value in measured.items():
        assert _close(fp32[key], value, 0.002), (key, "onnx fp32", fp32[key], "keras", value)

    cli = app_cli(keras.config.task)
    if has_bundle(meta, "int8"):
        int8 = scores(rnnzoo.from_preset(name, backend="onnx", precision="int8"))
        metric, direction, tolerance = cli.HEADLINE + (cli.INT8_TOLERANCE,)
        loss = fp32[metric] - int8[metric] if direction == "max" else int8[metric] - fp32[metric]
        allowed = tolerance["absolute"] if "absolute" in tolerance \
            else tolerance["relative"] * abs(fp32[metric])
        assert loss <= allowed + 1e-9, (metric, "fp32", fp32[metric], "int8", int8[metric])

    args = ["evaluate", name, "--data", str(data_path), "--split", meta["split"],
            "--backend", "onnx"] + (["--limit", str(limit)] if limit else [])
    printed = report_metrics(_cli_json(args))
    assert printed == pytest.approx(fp32, rel=1e-9, abs=1e-12)
