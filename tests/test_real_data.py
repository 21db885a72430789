"""Real-data check on MR (skips cleanly without ../shared/data): a short from-scratch run of
sentiment_bilstm beats 70% dev accuracy."""

from __future__ import annotations

import pytest
from conftest import shared_data

import rnnzoo


@pytest.mark.slow
def test_sentiment_bilstm_learns_mr(tmp_path):
    data = shared_data("sentiment", "MR")
    result = rnnzoo.train("sentiment_bilstm", data, out=tmp_path / "mr", epochs=2, units=64,
                          verbose=0)
    assert result.metrics["num_examples"] == 1066
    assert result.metrics["accuracy"] > 0.70, result.metrics
    pred = result.task.predict(["a gorgeous , witty , seductive movie .",
                                "a dull , tedious and pointless mess ."])
    assert pred.labels == ["positive", "negative"]
