"""The Node example (issue #39): ``examples/node/generate.mjs`` generates text from the char-LM
bundle with onnxruntime-node, reading only ``bundle.json``'s ``stream`` description and carrying
the state itself; its greedy text equals the Python call's. It checks the bundle against
``SHA256SUMS`` and honours a pinned digest. Runs where ``node`` is installed and
``cd examples/node && npm install`` was run; skips with the reason otherwise."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import rnnzoo
from rnnzoo.presets import installed_presets, preset_info

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "node"
NAME = "charlm_lstm.shakespeare"


@pytest.fixture(scope="module")
def bundle() -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (EXAMPLE / "node_modules" / "onnxruntime-node").is_dir():
        pytest.skip("onnxruntime-node is not installed: cd examples/node && npm install")
    presets = installed_presets()
    if NAME not in presets:
        pytest.skip(f"{NAME} is not installed (pip install ./presets/text_generation)")
    return presets[NAME][1] / "onnx" / "fp32"


def _node(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["node", "generate.mjs", *args], cwd=EXAMPLE, capture_output=True,
                          text=True, timeout=120)


def test_node_greedy_text_equals_python(bundle):
    digest = preset_info(NAME)["onnx"]["fp32"]["digest"]
    proc = _node("--bundle", str(bundle), "--prompt", "ROMEO:", "--steps", "50",
                 "--digest", digest)
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = rnnzoo.from_preset(NAME, backend="onnx").generate("ROMEO:", steps=50, temperature=0)
    assert proc.stdout == want and len(want) == 50
    assert f"bundle digest sha256={digest}" in proc.stderr


def test_node_refuses_a_wrong_pin(bundle):
    proc = _node("--bundle", str(bundle), "--steps", "1", "--digest", "0" * 64)
    assert proc.returncode != 0 and "is not the pinned" in proc.stderr
