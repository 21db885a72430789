"""Saved models and bundles written by rnnzoo before the task-type refactor (commit c7e59fd,
tests/fixtures/legacy_v0) still load and give the outputs they gave then."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rnnzoo.export import runtime

import rnnzoo

FIXTURES = Path(__file__).parent / "fixtures" / "legacy_v0"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
TEXTS = EXPECTED["texts"]


def _check(model, name):
    want = EXPECTED[name]
    if "probs" in want:
        np.testing.assert_allclose(model.predict_proba(TEXTS), want["probs"], atol=1e-6)
    else:
        assert model.translate(TEXTS, max_length=6) == want["translations"]


@pytest.mark.parametrize("name", ["sentiment_gru", "translator_gru_attention"])
def test_old_saved_model_loads_with_identical_outputs(name):
    _check(rnnzoo.load(FIXTURES / f"{name}_model"), name)


@pytest.mark.parametrize("name", ["sentiment_gru", "translator_gru_attention"])
def test_old_bundle_runs_with_identical_outputs(name):
    _check(runtime.load(FIXTURES / f"{name}_bundle"), name)
