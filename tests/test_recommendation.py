"""The recommendation application's own behaviour: the ranking metrics against a hand-computed
example, full ranking with seen items filtered, the readers' errors and layouts, and a stream
giving what ``recommend`` gives (Keras tiny model; the shipped preset on onnxruntime, and its
``:predict``/``:stream`` when the serve extra is installed). The lifecycle (train, resume,
export, runtime parity) is the generated harness's."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import shared_data

import rnnzoo
from rnnzoo.apps.recommendation.data import (
    MISS,
    ItemCatalog,
    load_sequences,
    padded_batches,
    rank_of,
    ranking_metrics,
    read_history,
    windows,
)
from rnnzoo.apps.recommendation.inference import _Recommender, popularity_metrics
from rnnzoo.errors import ConfigError, DataError

PRESET = "recommender_gru4rec.ml1m"


def test_ranking_metrics_against_a_hand_computed_example():
    got = ranking_metrics([0, 3, 12, 25])
    assert got["hr@10"] == 0.5 and got["recall@20"] == 0.75
    assert got["ndcg@10"] == pytest.approx((1 + 1 / math.log2(5)) / 4)
    assert got["mrr@20"] == pytest.approx((1 + 1 / 4 + 1 / 13) / 4)
    assert ranking_metrics([MISS])["ndcg@10"] == 0.0
    scores = np.array([-np.inf, 0.5, 2.0, 0.5, 1.0])
    assert rank_of(scores, 4) == 1 and rank_of(scores, 1) == 2  # ties do not count against
    assert rank_of(scores, 0) == MISS


class _Fixed(_Recommender):
    """A recommender whose logits after any history are fixed: the ranking logic alone."""

    def __init__(self, logits):
        self.logits = np.asarray(logits, np.float64)
        self.preprocessor = ItemCatalog([10, 20, 30, 40, 50], [5, 1, 4, 2, 3],
                                        {10: "ten", 30: "thirty"})

    def _logits_after(self, rows, progress=None):
        return np.repeat(self.logits[None], len(rows), axis=0)

    def _max_length(self):
        return 50

    def _output_width(self):
        return len(self.logits)

    def require_fitted(self):
        pass

    def _runner(self):
        raise AssertionError("not used")

    def _state_sizes(self):
        return {}


def test_full_ranking_filters_seen_items_and_ranks_unknown_targets_as_misses():
    #             pad   10   20   30   40   50
    model = _Fixed([9.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    # item 30 after [10]: 10 is seen (filtered), 20 ranks above: rank 1. After [10, 20]: rank 0.
    # 50 after [40]: 10, 20, 30 above: rank 3. 99 is not in the catalogue: a miss.
    got = model.evaluate([[10], [10, 20], [40], [10]], [30, 30, 50, 99], sampled=False)
    expected = ranking_metrics([1, 0, 3, MISS])
    assert {k: got[k] for k in expected} == pytest.approx(expected)
    assert got["unknown_targets"] == 1 and got["users"] == 4
    top = model.recommend([10, 77], k=2)
    assert top["items"] == [20, 30] and top["titles"] == [None, "thirty"]
    assert top["skipped"] == [77]
    assert sum(top["scores"]) < 1 and top["scores"][0] > top["scores"][1]
    assert model.recommend([10], k=2, exclude_seen=False)["items"] == [10, 20]
    assert model.recommend([], k=3)["items"] == [10, 30, 50]  # cold start: popularity
    # the popularity ranker: counts 5, 1, 4, 2, 3 -> 10, 30, 50, 40, 20
    pop = popularity_metrics(model.preprocessor, [[10], [30]], [30, 20])
    assert pop == pytest.approx(ranking_metrics([0, 3]))
    with pytest.raises(DataError, match="k: expected an integer >= 1"):
        model.recommend([10], k=0)
    with pytest.raises(DataError, match="one next item per history"):
        model.evaluate([[10]], [30, 40])


def test_readers_layouts_and_their_errors(tmp_path):
    (tmp_path / "seq.txt").write_text("1 5\n1 6\n2 7\n1 8\n2 5\n")
    data = load_sequences(tmp_path / "seq.txt")
    assert data.users == ["1", "2"] and [s.tolist() for s in data.sequences] == [[5, 6, 8], [7, 5]]
    last = data.split("last")
    assert [h.tolist() for h in last.histories] == [[5, 6], [7]] and last.targets.tolist() == [8, 5]
    assert [s.tolist() for s in data.split("train")] == [[5, 6]]
    with pytest.raises(ConfigError, match="train, dev and last"):
        data.split("test")
    # ML-1M's layout: SASRec ids -> MovieLens ids, titles from movies.dat
    ml = tmp_path / "ml"
    ml.mkdir()
    (ml / "ml-1m.train.txt").write_text("1 1\n1 2\n")
    (ml / "sas_to_original_items.txt").write_text("1 2858\n2 260\n")
    (ml / "movies.dat").write_bytes("2858::American Beauty (1999)::Drama\n"
                                    "260::Star Wars (1977)::Action\n".encode("latin-1"))
    data = load_sequences(ml)
    assert data.sequences[0].tolist() == [2858, 260] and data.benchmark == "ml-1m"
    assert data.titles[260] == "Star Wars (1977)"
    # a session log: rows sorted by time within a session, sessions by date
    (tmp_path / "s.csv").write_text("session_id;user_id;item_id;timeframe;eventdate\n"
                                    "1;NA;30;900;2016-05-09\n2;NA;7;5;2016-05-01\n"
                                    "1;NA;31;100;2016-05-09\n2;NA;8;9;2016-05-01\n")
    data = load_sequences(tmp_path / "s.csv")
    assert data.layout == "sessions" and data.users == ["2", "1"]
    assert [s.tolist() for s in data.sequences] == [[7, 8], [31, 30]]
    bad = {"three.txt": ("1 5 9\n", "line 1: expected `user item`"),
           "word.txt": ("1 5\n1 abc\n", "line 2: item 'abc' is not an integer id"),
           "empty.txt": ("\n\n", "empty file"),
           "noitem.csv": ("session_id;product\n1;5\n", "naming the session and item"),
           "short.csv": ("session_id;item_id;timeframe\n1;5;3\n2\n", "line 3: 1 fields")}
    for name, (text, message) in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=message):
            load_sequences(tmp_path / name)
    assert read_history("2858, 1196 260") == [2858, 1196, 260]
    (tmp_path / "mine.txt").write_text("5\n6\n")
    assert read_history(str(tmp_path / "mine.txt")) == [5, 6]
    for value, message in (("2858,x", "'x' is not an item id"), ([1, -2], "integers >= 0"),
                           ([1.5], "integers >= 0")):
        with pytest.raises(DataError, match=message):
            read_history(value)


def test_training_windows_and_length_bucketed_batches():
    seq = np.arange(1, 8)  # 7 items, windows of at most 4 items from the end
    assert [w.tolist() for w in windows([seq], 3)] == [[4, 5, 6, 7], [1, 2, 3, 4]]
    assert windows([np.array([3])], 3) == []
    pieces = [np.arange(1, n + 1) for n in (2, 9, 3, 8)]
    batches = padded_batches(pieces, 2, np.random.default_rng(0))
    shapes = sorted(x.shape for x, _ in batches)
    assert shapes == [(2, 2), (2, 8)]  # similar lengths together, padded to the longest
    for x, y in batches:
        assert ((y == 0) == (x == 0)).all() and (y[x > 0] == x[x > 0] + 1).all()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny untrained GRU4Rec with the synthetic catalogue (random weights rank distinctly)."""
    from rnnzoo.families import family_spec

    spec = family_spec("gru4rec")
    task = rnnzoo.create_model("recommender_gru4rec", **spec.tiny_overrides)
    task.adapt(task.load_data(spec.synthetic_dataset(tmp_path_factory.mktemp("rec")), 0))
    return task


def _stream_equals_recommend(model, history, k=5):
    s = model.stream(k=k)
    for item in history:
        top = s.step(item)
    want = model.recommend(history, k=k)
    assert top["items"] == want["items"]
    np.testing.assert_allclose(top["scores"], want["scores"], atol=1e-5)
    # the functional form, a chunk fed at once, and a batch of two users
    chunk, state = model.step(history, model.initial_state(1), k=k)
    assert chunk["items"] == want["items"]
    assert set(state) >= {"state_0", "seen", "logits"}
    two, other = model.stream(batch=2, k=k), history[::-1]
    for item, o in zip(history, other):
        both = two.step(np.array([item, o]))
    assert both[0]["items"] == want["items"]
    assert both[1]["items"] == model.recommend(other, k=k)["items"]
    branch, saved = s.copy(), s.state
    again = branch.step(history[0])  # branches move on their own
    assert again["items"] == model.step(history[0], saved, k=k)[0]["items"]
    assert all(np.array_equal(s.state[n], saved[n]) for n in saved)
    s.reset()
    assert s.step(history[0])["items"] == model.recommend(history[:1], k=k)["items"]


def test_stream_gives_what_recommend_gives_keras(tiny):
    _stream_equals_recommend(tiny, [3, 4, 5, 6])
    with pytest.raises(DataError, match="state must come from initial_state"):
        tiny.step(3, {})


def test_shipped_preset_streams_recommends_titles_and_serves():
    pytest.importorskip("onnxruntime")
    if PRESET not in rnnzoo.list_models(pretrained=True):
        pytest.skip(f"{PRESET} is not installed (pip install ./presets/recommendation)")
    model = rnnzoo.from_preset(PRESET, backend="onnx")
    history = [2858, 1196, 260]  # American Beauty, The Empire Strikes Back, Star Wars
    _stream_equals_recommend(model, history, k=10)
    top = model.recommend(history)
    assert len(top["items"]) == 10 and not set(top["items"]) & set(history)
    assert all(isinstance(t, str) and t for t in top["titles"])
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from rnnzoo.serving import ServeConfig, create_app, load_models

    with TestClient(create_app(load_models([PRESET], ServeConfig())),
                    base_url="http://localhost") as client:
        body = {"instances": [{"history": history}], "k": 5}
        r = client.post(f"/v1/models/{PRESET}:predict", json=body)
        assert r.status_code == 200, r.text
        predicted = r.json()["predictions"][0]
        assert predicted["items"] == model.recommend(history, k=5)["items"]
        r = client.post(f"/v1/models/{PRESET}:stream", json=body)
        assert r.status_code == 200, r.text
        events = [json.loads(line[5:]) for line in r.text.splitlines()
                  if line.startswith("data:")]
        assert [e["item"] for e in events[:-1]] == history
        assert events[-2]["items"] == predicted["items"] and events[-1]["predictions"] == [
            predicted]
        bad = client.post(f"/v1/models/{PRESET}:predict", json={"instances": [["x"]]})
        assert bad.status_code == 400 and "instances[0]" in bad.text


def test_shipped_preset_split_last_on_real_data():
    """``--split last`` on the real file: each user's last interaction given the rest; the
    recorded subset (the first users) gives the recorded numbers on the runtime, and the
    popularity ranker far below them."""
    if PRESET not in rnnzoo.list_models(pretrained=True):
        pytest.skip(f"{PRESET} is not installed")
    from rnnzoo.evaluation import evaluate_reports

    path = shared_data("recsys_sequences", "ml-1m", "ml-1m.train.txt")
    meta = rnnzoo.preset_info(PRESET)
    model = rnnzoo.from_preset(PRESET, backend="onnx")
    data = load_sequences(path)
    assert len(data.split("last").targets) == 6040 and data.benchmark == "ml-1m"
    (report,) = evaluate_reports(model, data, "last", {"limit": meta["check"]["limit"]})
    for key, value in meta["check"]["metrics"].items():
        assert report[key] == pytest.approx(value, abs=1e-3), key
    assert report["popularity"]["ndcg@10"] < report["ndcg@10"] / 3
