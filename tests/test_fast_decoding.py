"""The throughput paths of the decoding engine and the runtime (issue 21) give the same results
as the straightforward ones: block top-k, per-beam candidate selection, greedy without the
[n, vocab] log-probabilities, compaction of finished rows, and ``intra_op_threads="auto"``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnzoo.engines import beam, sampling
from rnnzoo.engines.decoding import generate
from rnnzoo.engines.sampling import log_softmax

END = 1
PRESETS = Path(__file__).resolve().parents[1] / "rnnzoo" / "pretrained"


@pytest.mark.parametrize("vocab", [8000, 8003, 700, 40])
def test_block_top_rows_is_exact(vocab: int) -> None:
    rng = np.random.default_rng(vocab)
    x = rng.normal(size=(5, vocab)).astype(np.float32)
    x[1, vocab // 3:] = -np.inf
    x[2, ::7] = x[2, 0]  # ties
    x[3, -1] = 40.0  # the maximum in the ragged tail
    x[4, :] = -np.inf  # a dead row
    for k in (1, 2, 10, 12):
        idx = beam._top_rows(x, k)
        assert idx.shape == (5, k) and (idx >= 0).all() and (idx < vocab).all()
        got = np.sort(np.take_along_axis(x, idx, axis=1), axis=1)
        want = np.sort(np.sort(x, axis=1)[:, vocab - k:], axis=1)
        np.testing.assert_array_equal(got, want)
        assert all(len(set(row)) == k for row in idx.tolist())


def _rnn_step(vocab: int, seed: int = 0, end_bias: float = 0.5):
    rng = np.random.default_rng(seed)
    emb, out = rng.normal(size=(vocab, 16)), rng.normal(scale=1.5, size=(16, vocab))
    out[:, END] += end_bias

    def step(tokens, state):
        h = np.tanh(state["h"] + emb[tokens])
        return (h @ out).astype(np.float32), {"h": h, "seen": h[:, :3].astype(np.float32)}

    return step, rng.normal(size=(7, 16))


@pytest.mark.parametrize("vocab", [9000, 8000, 300])
def test_beam_selection_equals_a_full_sort_per_beam(vocab: int, monkeypatch) -> None:
    step, h = _rnn_step(vocab)
    start = np.arange(2, 9, dtype=np.int32)
    kw = dict(max_length=15, end_token=END, sampler="beam", width=5, early_stop=False,
              num_return=2, record=("seen",))
    fast = generate(step, start, {"h": h}, **kw)  # onnxruntime selection for wide rows
    monkeypatch.setattr(beam, "_SELECT_MIN_VOCAB", 10**9)
    block = generate(step, start, {"h": h}, **kw)  # numpy: block top-k, float64 normaliser
    # The straightforward per-beam selection: a full sort of every beam's row.
    monkeypatch.setattr(beam, "_top_rows",
                        lambda x, k: np.argsort(-x, axis=1, kind="stable")[:, :k])
    full = generate(step, start, {"h": h}, **kw)
    np.testing.assert_array_equal(block.tokens, full.tokens)
    np.testing.assert_array_equal(block.scores, full.scores)  # bit-identical
    np.testing.assert_array_equal(block.recorded["seen"], full.recorded["seen"])
    # The onnxruntime selection sums exp() per block in float32: same tokens, each step's
    # log-probabilities within ~2e-7, so scores (means over <= 15 steps) within 1e-6.
    np.testing.assert_array_equal(fast.tokens, full.tokens)
    np.testing.assert_allclose(fast.scores, full.scores, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(fast.recorded["seen"], full.recorded["seen"])


def test_shipped_selection_graph_is_the_generated_one() -> None:
    pytest.importorskip("onnx")
    from rnnzoo.export.select_graph import build_select_graph

    assert beam._SELECT_GRAPH.read_bytes() == build_select_graph()


def test_onnxruntime_selection_matches_numpy_and_routes_bad_rows() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(scale=3.0, size=(6, 3000)).astype(np.float32)
    x[2, 100:110] = x[2].max() + 1.0  # ties at the top: the lower index first
    spread = [5, 70, 200, 640, 641, 1300, 1900, 2047, 2500, 2950, 2990, 2999]
    x[3, spread[::-1]] = x[3].max() + 1.0  # ties across blocks, and in the padded last block
    x[5, 2900:] = x[5].max() + 1.0  # the best 10 all in the last (padded) block
    top, logp = beam._top_log_probs(x, 10, 0)
    stable = np.argsort(-x, axis=1, kind="stable")[:, :10]  # a full sort: ties by lower index
    np.testing.assert_array_equal(np.sort(top, axis=1), np.sort(stable, axis=1))
    assert top[2].tolist() == list(range(100, 110))
    assert top[3].tolist() == spread[:10] and top[5].tolist() == list(range(2900, 2910))
    np.testing.assert_allclose(logp, np.take_along_axis(log_softmax(x), top, axis=1), atol=3e-7)
    x[4] = -np.inf  # a dead row: the numpy path keeps it -inf
    _, logp = beam._top_log_probs(x, 10, 0)
    assert np.isneginf(logp[4]).all() and np.isfinite(logp[:4]).all()
    x[1, 7] = np.nan
    with pytest.raises(ValueError, match="NaN logits at step 3"):
        beam._top_log_probs(x, 10, 3)


def test_greedy_scores_are_log_softmax_bit_for_bit() -> None:
    step, h = _rnn_step(5000, seed=3)
    start = np.arange(2, 9, dtype=np.int32)
    out = generate(step, start, {"h": h}, max_length=12, end_token=END)
    # Replay each row alone with the full float64 log-probabilities.
    for i in range(len(start)):
        state, tok, total = {"h": h[i:i + 1]}, start[i:i + 1], 0.0
        for t in range(int(out.lengths[i])):
            logits, state = step(tok, state)
            logp = log_softmax(logits)[0]
            tok = np.array([np.argmax(logp)], np.int32)
            assert tok[0] == out.tokens[i, t]
            total += logp[tok[0]]
        assert out.log_probs[i] == total


def test_finished_rows_leave_the_batch(monkeypatch) -> None:
    step, h = _rnn_step(400, seed=5, end_bias=3.5)
    sizes: list[int] = []

    def counting(tokens, state):
        sizes.append(tokens.shape[0])
        return step(tokens, state)

    start = np.arange(2, 9, dtype=np.int32)
    kw = dict(max_length=30, end_token=END, record=("seen",))
    compacted = generate(counting, start, {"h": h}, **kw)
    assert len(set(compacted.lengths.tolist())) > 2  # rows end at different steps
    assert sizes[-1] < sizes[0]  # and leave the batch
    monkeypatch.setattr(sampling.TokenSampler, "compact_fraction", 2.0)  # never compact
    sizes.clear()
    kept = generate(counting, start, {"h": h}, **kw)
    assert set(sizes) == {len(start)}
    for field in ("tokens", "lengths", "scores", "finished"):
        np.testing.assert_array_equal(getattr(compacted, field), getattr(kept, field))
    np.testing.assert_array_equal(compacted.recorded["seen"], kept.recorded["seen"])
    assert compacted.steps == kept.steps


def test_sampling_with_compaction_is_reproducible() -> None:
    step, h = _rnn_step(400, seed=7, end_bias=2.5)
    start = np.arange(2, 9, dtype=np.int32)
    a = generate(step, start, {"h": h}, max_length=30, end_token=END, sampler="top_k", k=5,
                 seed=11)
    b = generate(step, start, {"h": h}, max_length=30, end_token=END, sampler="top_k", k=5,
                 seed=11)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.finished.any()


def test_nan_logits_are_still_reported() -> None:
    def step(tokens, state):
        logits = np.zeros((tokens.shape[0], 300), np.float32)
        logits[0, 5] = np.nan
        return logits, state

    for sampler in ("greedy", "beam", "top_k"):
        with pytest.raises(ValueError, match="NaN logits at step 0"):
            generate(step, np.array([2, 3], np.int32), {}, max_length=3, end_token=END,
                     sampler=sampler)


# -- intra_op_threads="auto" ------------------------------------------------------------------


def test_auto_threads_open_a_wide_session_only_for_batches(monkeypatch) -> None:
    from rnnzoo.export import bundle, runtime

    monkeypatch.setattr(bundle, "granted_cores", lambda: 2)
    path = PRESETS / "sentiment_bilstm.sst2" / "onnx" / "fp32"
    auto = runtime.load(path, intra_op_threads="auto")
    one = runtime.load(path, intra_op_threads=1)
    x = np.random.default_rng(0).integers(2, 20000, size=(bundle.AUTO_MIN_BATCH, 30))
    x = x.astype(np.int32)
    np.testing.assert_array_equal(auto.predict_tokens(x[:1]), one.predict_tokens(x[:1]))
    assert auto._wide == {}  # batch 1 never opens the wide session
    np.testing.assert_allclose(auto.predict_tokens(x), one.predict_tokens(x), atol=1e-6)
    wide = auto.session_for("model", bundle.AUTO_MIN_BATCH)
    assert wide is not auto.sessions["model"] and auto._wide_options["model"][
        "intra_op_threads"] == 2
    assert auto.session_for("model", bundle.AUTO_MIN_BATCH - 1) is auto.sessions["model"]
    assert one.session_for("model", 64) is one.sessions["model"]


def test_auto_threads_per_graph_and_bad_values() -> None:
    from rnnzoo.export import runtime
    from rnnzoo.export.bundle import BundleError

    path = PRESETS / "sentiment_bilstm.sst2" / "onnx" / "fp32"
    rt = runtime.load(path, graph_options={"model": {"intra_op_threads": "auto"}})
    assert rt.sessions["model"] is not None
    for bad in ("many", -1, 1.5, True):
        with pytest.raises(BundleError, match="intra_op_threads"):
            runtime.load(path, intra_op_threads=bad)
    with pytest.raises(BundleError, match="intra_op_threads"):
        runtime.load(path, graph_options={"model": {"intra_op_threads": "fast"}})
