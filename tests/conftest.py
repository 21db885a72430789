"""Shared fixtures. Unit tests use tiny configs and generated data; real-data tests skip cleanly
when ../shared/data is absent."""

from __future__ import annotations

import os
from pathlib import Path

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
