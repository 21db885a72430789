"""Shared fixtures. Unit tests use tiny configs and generated data; real-data tests skip cleanly
when ../shared/data is absent."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RNNZOO_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_data(*parts: str) -> Path:
    """A path in ../shared/data, or skip the test when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


#: What the train extra brings: a slim install (``pip install rnnzoo``) cannot import these.
TRAIN_EXTRA_PACKAGES = ("tensorflow", "keras", "tf2onnx")


def without_packages(code: str, blocked: Sequence[str] = TRAIN_EXTRA_PACKAGES) -> str:
    """``code`` (dedented) after a prelude that makes ``blocked`` unimportable, as when they
    are not installed: how the tests reproduce a slim install in a child process."""
    return textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in {tuple(blocked)!r}:
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
    """) + textwrap.dedent(code)


def run_python(code: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess:
    """``python -c code`` in a fresh interpreter, its output captured as text."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def train_tiny_ctc(data: Path, out: Path, conv_filters: int, units: int, **training: Any) -> Any:
    """``rnnzoo.train`` of a one-layer ``ctc_bigru`` on the family's synthetic tone bursts (3
    labels, 20 mel bands, a stride-2 convolution, no dropout, best-path decoding): the speech
    model the CTC and serving tests train, at their own width and schedule (``training``)."""
    import rnnzoo

    return rnnzoo.train(
        "ctc_bigru", data, out=out, verbose=0,
        model={"num_labels": 3, "conv_filters": conv_filters, "conv_kernel": 3, "conv_stride": 2,
               "units": units, "num_layers": 1, "input_dropout": 0.0, "dropout": 0.0},
        data={"n_mels": 20, "beam_width": 0},
        training={"batch_size": 16, "early_stopping_patience": 0, **training})


def tiny_overrides(family: str) -> dict:
    from rnnzoo.families import family_spec

    return family_spec(family).module.TINY_OVERRIDES


@pytest.fixture(scope="session")
def sentiment_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rnnzoo.families.sentiment import synthetic_dataset

    return synthetic_dataset(tmp_path_factory.mktemp("data"), n=480, seed=0)


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a shell's background job
    (``cmd &``, nohup) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt
    handler, so the test would wait for a Ctrl-C that never arrives."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
