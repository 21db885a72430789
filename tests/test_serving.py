"""``rnnzoo serve`` (rnnzoo/serving/) on the shipped presets' ONNX bundles: the v1 and v2 APIs,
request batching, typed errors, a real uvicorn process (slow clients, a bounded load test,
SIGTERM), no TensorFlow, and the demo page in headless Chromium.

Needs the serve extra (Starlette, uvicorn, httpx); the browser test also needs Playwright and a
Chromium (``apt-get install chromium``), and skips saying which is missing."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import run_python, train_tiny_ctc, without_packages

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install "
                    "'rnnzoo[serve]'")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (serve extra)")

import httpx  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from rnnzoo.serving import (  # noqa: E402
    ServeConfig,
    ServeError,
    create_app,
    load_models,
    options_of,
    split_predictions,
)

SST2 = "sentiment_bilstm.sst2"
SPA = "translator_gru_attention.spa_eng"
JSB = "music_lstm.jsb"
ETT = "forecaster_lstm.etth1"
CHARLM = "charlm_lstm.shakespeare"
REPO = Path(__file__).resolve().parents[1]
# The server answers Host names of its own only (DNS-rebinding protection): Starlette's test
# client names it "testserver" unless told.
LOCAL = "http://localhost"


@pytest.fixture(scope="module")
def models():
    return load_models([SST2, SPA, JSB, ETT], ServeConfig())


@pytest.fixture(scope="module")
def client(models):
    config = ServeConfig(max_body_bytes=64 * 1024, max_instances=16)
    with TestClient(create_app(models, config), base_url=LOCAL) as c:
        yield c


def predict(client, model, body, status=200):
    r = client.post(f"/v1/models/{model}:predict", json=body)
    assert r.status_code == status, r.text
    return r.json()


# -- v1 task level -----------------------------------------------------------------------------


def test_classifier_predictions_are_the_runtime_s(client, models):
    texts = ["a gorgeous , witty , seductive movie .", "a sometimes tedious film .", "!"]
    preds = predict(client, SST2, {"instances": texts})["predictions"]
    direct = models[SST2].runtime.predict(texts)
    assert [p["label"] for p in preds] == direct.labels == ["positive", "negative",
                                                            direct.labels[2]]
    for p, row in zip(preds, direct.probs):
        assert list(p["probs"]) == ["negative", "positive"]
        np.testing.assert_allclose(list(p["probs"].values()), row, atol=1e-6)


def test_translator_options_and_attention(client, models):
    body = {"instances": ["tengo hambre .", "¿dónde está la biblioteca?"], "attention": True}
    preds = predict(client, SPA, body)["predictions"]
    assert [p["translation"] for p in preds] == models[SPA].runtime.translate(body["instances"])
    first = preds[0]
    att = np.asarray(first["attention"])
    assert att.shape == (len(first["target_tokens"]), len(first["source_tokens"]))
    np.testing.assert_allclose(att.sum(axis=1), 1.0, atol=2e-3)
    beam = predict(client, SPA, {"instances": ["tengo hambre ."], "beam": 3})["predictions"]
    assert beam[0]["translation"] == models[SPA].runtime.translate("tengo hambre .", beam=3)
    err = predict(client, SPA, {"instances": ["hola"], "beam": -2}, 400)
    assert err["code"] == "invalid_input" and "beam" in err["error"]


def test_music_generation_is_seeded_and_returns_midi(client, models):
    item = {"steps": 12, "seed": 3, "temperature": 0.8, "primer": [[60, 64, 67], [62]]}
    a = predict(client, JSB, {"instances": [item, item]})["predictions"]
    assert a[0]["pitches"] == a[1]["pitches"] and len(a[0]["pitches"]) == 12
    midi = base64.b64decode(a[0]["midi_base64"])
    assert midi[:4] == b"MThd"
    direct = models[JSB].runtime.generate(**item)
    assert a[0]["pitches"] == [list(map(int, np.flatnonzero(r) + 21)) for r in direct]
    audio = predict(client, JSB, {"instances": [{"steps": 2, "seed": 0}], "audio": True})
    assert base64.b64decode(audio["predictions"][0]["wav_base64"])[:4] == b"RIFF"
    err = predict(client, JSB, {"instances": [{"stepz": 4}]}, 400)
    assert "stepz" in err["error"]
    err = predict(client, JSB, {"instances": [{"steps": 100000}]}, 400)
    assert "limit" in err["error"]


def test_forecaster_through_the_default_hook(client, models):
    """The forecasting runtime declares no serving hook: the default calls ``forecast`` on the
    instances and splits the result per instance."""
    rt = models[ETT].runtime
    assert not hasattr(rt, "serve_predict")
    assert options_of(rt) == {"horizon": None}
    rng = np.random.default_rng(0)
    windows = [rng.normal(size=(rt.lookback, len(rt.preprocessor.columns))).tolist()
               for _ in range(2)]
    preds = predict(client, ETT, {"instances": windows, "horizon": 6})["predictions"]
    np.testing.assert_allclose(np.asarray(preds), rt.forecast(np.asarray(windows), horizon=6))
    assert np.asarray(preds).shape == (2, 6, 1)
    err = predict(client, ETT, {"instances": windows, "horizon": 10**6}, 400)
    assert "horizon" in err["error"]


def test_split_predictions_shapes():
    from typing import NamedTuple

    class P(NamedTuple):
        labels: list
        probs: np.ndarray

    got = split_predictions(P(["a", "b"], np.eye(2, dtype=np.float32)), 2)
    assert got == [{"labels": "a", "probs": [1.0, 0.0]}, {"labels": "b", "probs": [0.0, 1.0]}]
    assert split_predictions((["x", "y"], [np.zeros(1), None]), 2) == [["x", [0.0]], ["y", None]]
    assert split_predictions(np.array([1.5, float("nan")]), 2) == [1.5, None]
    with pytest.raises(TypeError, match="serve_predict"):
        split_predictions({"a": 1}, 2)


def test_model_listing_status_health_and_openapi(client):
    listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(listed) == {SST2, SPA, JSB, ETT}
    assert listed[SST2]["verb"] == "predict" and listed[SST2]["options"] == {"truncate": False}
    assert listed[SPA]["demo"]["input"] == "text" and listed[JSB]["demo"]["input"] == "json"
    status = client.get(f"/v1/models/{SST2}").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get(f"/v2/models/{SPA}/ready").json()["ready"] is True
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/v2/models/{name}/infer" in spec["paths"]
    assert spec["paths"]["/v1/models/{name}:predict"]["post"]["parameters"][0]["schema"][
        "enum"] == [SST2, SPA, JSB, ETT]
    page = client.get(f"/demo/{SST2}")
    assert page.status_code == 200 and "<select id=\"model\">" in page.text
    assert client.get("/demo/nope").status_code == 404


# -- v2 tensor level ---------------------------------------------------------------------------


def test_v2_metadata_names_every_graph(client):
    meta = client.get(f"/v2/models/{SPA}").json()
    assert meta["parameters"]["graph"] == "encoder"
    assert set(meta["parameters"]["graphs"]) == {"encoder", "decoder"}
    assert meta["inputs"] == [{"name": "source", "datatype": "INT32", "shape": [-1, -1]}]
    sst = client.get(f"/v2/models/{SST2}").json()
    assert sst["outputs"] == [{"name": "probs", "datatype": "FP32", "shape": [-1, 2]}]


def test_v2_infer_equals_the_graph(client, models):
    tokens = np.array([[5, 17, 230, 9], [44, 2, 0, 0]], np.int32)
    body = {"id": "r1", "inputs": [{"name": "tokens", "shape": [2, 4], "datatype": "INT32",
                                    "data": tokens.ravel().tolist()}]}
    reply = client.post(f"/v2/models/{SST2}/infer", json=body).json()
    assert reply["id"] == "r1" and reply["model_name"] == SST2
    out = reply["outputs"][0]
    assert out["name"] == "probs" and out["shape"] == [2, 2] and out["datatype"] == "FP32"
    want = models[SST2].runtime.run("model", {"tokens": tokens})["probs"]
    np.testing.assert_allclose(np.reshape(out["data"], (2, 2)), want, atol=1e-6)
    # A second graph by parameters.graph, nested data accepted.
    enc = {"parameters": {"graph": "encoder"}, "outputs": [{"name": "state_0"}],
           "inputs": [{"name": "source", "shape": [1, 3], "datatype": "INT32",
                       "data": [[7, 8, 9]]}]}
    reply = client.post(f"/v2/models/{SPA}/infer", json=enc).json()
    assert [o["name"] for o in reply["outputs"]] == ["state_0"]


@pytest.mark.parametrize("tensor,code", [
    ({"name": "tokens", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
     "wrong_datatype"),
    ({"name": "tokens", "shape": [1, 4], "datatype": "INT32", "data": [1, 2, 3]}, "wrong_shape"),
    ({"name": "tokens", "shape": [3], "datatype": "INT32", "data": [1, 2, 3]}, "wrong_shape"),
    ({"name": "tokens", "shape": [1, 2], "datatype": "INT32", "data": [1.5, 2]},
     "wrong_datatype"),
    ({"name": "tokens", "shape": [1, 2], "datatype": "INT32", "data": ["a", "b"]},
     "wrong_datatype"),
    ({"name": "tokens", "shape": [1, 2], "datatype": "INT32", "data": [-3, 2]},
     "invalid_input"),
    ({"name": "tokens", "shape": [1, 2], "datatype": "INT32", "data": [10**7, 2]},
     "invalid_input"),
    ({"name": "tokens", "shape": [1, 101], "datatype": "INT32", "data": [4] * 101}, "too_long"),
    ({"name": "words", "shape": [1, 2], "datatype": "INT32", "data": [1, 2]}, "unknown_input"),
])
def test_v2_bad_tensors_are_400(client, tensor, code):
    r = client.post(f"/v2/models/{SST2}/infer", json={"inputs": [tensor]})
    assert r.status_code == 400 and r.json()["code"] == code, r.text


def test_v2_bad_requests(client):
    r = client.post(f"/v2/models/{SPA}/infer", json={"parameters": {"graph": "nope"},
                                                      "inputs": [{"name": "x"}]})
    assert r.status_code == 400 and r.json()["code"] == "unknown_graph"
    r = client.post(f"/v2/models/{SPA}/infer", json={"parameters": {"graph": "decoder"},
                                                      "inputs": [{"name": "token", "shape": [1],
                                                                  "datatype": "INT32",
                                                                  "data": [3]}]})
    assert r.status_code == 400 and r.json()["code"] == "missing_input"
    assert client.post(f"/v2/models/{SST2}/infer", json=[1]).json()["code"] == "invalid_request"
    assert client.get("/v2/models/nope").status_code == 404


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("body,status,code", [
    (b"{bad json", 400, "invalid_json"),
    (b"", 400, "invalid_json"),
    (b"\xff\xfe", 400, "invalid_json"),
    (b'["a"]', 400, "invalid_request"),
    (b'{"inputs": ["a"]}', 400, "invalid_request"),
    (b'{"instances": []}', 400, "invalid_request"),
    (b'{"instances": "a film"}', 400, "invalid_request"),
    (b'{"instances": [3]}', 400, "invalid_input"),
    (b'{"instances": ["a"], "beam": 2}', 400, "unknown_option"),
    (b'{"instances": ["a"], "truncate": "yes"}', 400, "invalid_input"),
    (json.dumps({"instances": ["film"] * 17}).encode(), 413, "too_many_instances"),
    (json.dumps({"instances": ["a" * 70000]}).encode(), 413, "body_too_large"),
])
def test_bad_requests_get_typed_json_errors(client, body, status, code):
    r = client.post(f"/v1/models/{SST2}:predict", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == status and r.json()["code"] == code, r.text
    assert r.json()["error"]


def test_overlong_text_is_refused_unless_truncated(client):
    long = "good " * 150
    err = predict(client, SST2, {"instances": ["fine", long]}, 400)
    assert "instances[1]: 150 tokens" in err["error"] and "truncate" in err["error"]
    ok = predict(client, SST2, {"instances": [long], "truncate": True})
    assert ok["predictions"][0]["label"] in ("negative", "positive")
    err = predict(client, SPA, {"instances": ["hola " * 61]}, 400)
    assert "61 tokens" in err["error"]


def test_unknown_model_route_and_method(client):
    r = client.post("/v1/models/nope:predict", json={"instances": ["a"]})
    assert r.status_code == 404 and r.json()["code"] == "unknown_model"
    assert SST2 in r.json()["error"]
    r = client.post(f"/v1/models/{SST2}:explain", json={"instances": ["a"]})
    assert r.status_code == 404 and r.json()["code"] == "unknown_route"
    r = client.get("/v3/anything")
    assert r.status_code == 404 and r.json()["code"] == "unknown_route"
    r = client.get(f"/v1/models/{SST2}:predict")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


def test_bad_model_specs_fail_at_start(tmp_path):
    from rnnzoo.errors import ConfigError, RnnzooError

    with pytest.raises(ConfigError, match="two models are named"):
        load_models([SST2, SST2], ServeConfig())
    with pytest.raises(RnnzooError, match="unknown preset"):
        load_models(["no_such_preset.x"], ServeConfig())
    with pytest.raises(ConfigError, match="max_batch_size"):
        ServeConfig(max_batch_size=0)
    with pytest.raises(ConfigError, match="intra_op_threads"):
        ServeConfig(intra_op_threads="many")
    named = load_models([f"sst={SST2}"], ServeConfig())
    assert list(named) == ["sst"]


# -- batching ----------------------------------------------------------------------------------


def test_concurrent_requests_are_merged_and_answered_as_alone(models):
    texts = [f"{w} film" for w in ("great", "dull", "fine", "awful", "moving", "lazy")] * 5
    alone = models[SST2].runtime.predict(texts)

    def run(with_bad: bool) -> tuple[list, dict]:
        model = load_models([SST2], ServeConfig(max_batch_size=64, max_delay_ms=50))[SST2]

        async def main():
            jobs = [model.predict([t], {}) for t in texts]
            if with_bad:
                jobs.insert(7, model.predict([123], {}))
            return await asyncio.gather(*jobs, return_exceptions=True)

        return asyncio.run(main()), model.stats

    for with_bad in (False, True):
        results, stats = run(with_bad)
        if with_bad:
            bad = results.pop(7)
            assert isinstance(bad, ServeError) and bad.status == 400 and "position 0" in str(bad)
        assert [r[0]["label"] for r in results] == alone.labels
        for r, row in zip(results, alone.probs):
            np.testing.assert_allclose(list(r[0]["probs"].values()), row, atol=1e-6)
        if not with_bad:  # all 30 arrived within the 50 ms window: one runtime call
            assert stats["runtime_calls"] == 1 and stats["largest_batch"] == len(texts)
        else:  # the merged call failed on the bad request: halves ran until it was alone
            assert 2 <= stats["runtime_calls"] <= 10


def test_batching_respects_the_batch_limit_and_queue(models):
    model = load_models([SST2], ServeConfig(max_batch_size=4, max_delay_ms=20,
                                            max_queue=40))[SST2]

    async def main():
        return await asyncio.gather(*[model.predict(["a film", "a movie"], {})
                                      for _ in range(10)])

    asyncio.run(main())
    assert model.stats["largest_batch"] == 4 and model.stats["runtime_calls"] >= 5

    async def flood():
        return await asyncio.gather(*[model.predict(["x"] * 10, {}) for _ in range(6)],
                                    return_exceptions=True)

    results = asyncio.run(flood())
    refused = [r for r in results if isinstance(r, ServeError)]
    assert refused and all(r.status == 503 and r.code == "overloaded" for r in refused)


def test_no_batching_runs_one_request_per_call_in_the_same_workers(models):
    """--no-batching is the same worker code with one request per runtime call."""
    texts = [f"{w} film" for w in ("great", "dull", "fine", "awful")] * 4
    model = load_models([SST2], ServeConfig(batching=False))[SST2]

    async def main():
        return await asyncio.gather(*[model.predict([t], {}) for t in texts])

    results = asyncio.run(main())
    assert [r[0]["label"] for r in results] == models[SST2].runtime.predict(texts).labels
    assert model.stats["runtime_calls"] == len(texts) and model.stats["largest_batch"] == 1

    # --intra-op-threads auto: merged calls of 8 rows or more may use every core, same results
    auto = load_models([SST2], ServeConfig(intra_op_threads="auto", max_delay_ms=50))[SST2]

    async def merged():
        return await asyncio.gather(*[auto.predict([t], {}) for t in texts])

    probs = [r[0]["probs"]["positive"] for r in asyncio.run(merged())]
    np.testing.assert_allclose(probs, models[SST2].runtime.predict(texts).probs[:, 1], atol=1e-5)
    assert auto.stats["largest_batch"] == len(texts)


def test_merged_texts_run_in_cost_grouped_calls_with_the_same_results(models):
    """A merged batch of mixed lengths runs as a few calls of similar lengths (padding costs
    steps, a call has a fixed cost), and each text's probabilities are the ones it gets
    alone."""
    from rnnzoo.data.batching import cost_grouped_batches

    runtime = models[SST2].runtime
    texts = ["good"] * 5 + ["a long and winding but rather good film , all told ."] * 3 + \
        ["bad " * n for n in range(1, 30)] + ["", "good " * 100]
    want = runtime.predict(texts, batch_size=1)
    got = runtime.serve_predict(texts, {"truncate": True})
    assert [g["label"] for g in got] == want.labels
    np.testing.assert_allclose([list(g["probs"].values()) for g in got], want.probs, atol=1e-6)

    seqs = [[1] * n for n in [3] * 40 + [50] + [4] * 30]
    batches = list(cost_grouped_batches(seqs, call_cost=8.0, step_cost=1.0, max_batch=32))
    rows = np.concatenate([idx for idx, _ in batches])
    assert sorted(rows.tolist()) == list(range(len(seqs)))  # every row exactly once
    for idx, batch in batches:
        assert len(idx) <= 32 and batch.shape[1] == max(len(seqs[i]) for i in idx)
    widths = sorted(b.shape[1] for _, b in batches)
    assert widths[-1] == 50 and widths.count(50) == 1  # the long row is not padded into others
    assert [len(i) for i, b in batches if b.shape[1] == 50] == [1]
    with pytest.raises(ValueError, match="max_batch"):
        list(cost_grouped_batches(seqs, 8.0, 1.0, max_batch=0))


def test_the_server_imports_no_tensorflow():
    code = ("import sys\nfrom rnnzoo.serving import ServeConfig, create_app, load_models\n"
            f"app = create_app(load_models({[SST2, SPA, JSB]!r}, ServeConfig()))\n"
            "from starlette.testclient import TestClient\n"
            "with TestClient(app, base_url='http://localhost') as c:\n"
            f"    assert c.post('/v1/models/{SST2}:predict', json={{'instances': ['ok']}})"
            ".status_code == 200\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- a real server process ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(*args: str) -> tuple[subprocess.Popen, int]:
    import tempfile

    port = _free_port()
    log = tempfile.TemporaryFile()  # a pipe nobody reads could fill and block the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnzoo.cli", "serve", *args, "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                log.seek(0)
                pytest.fail(f"rnnzoo serve did not start: {log.read().decode()[-2000:]}")
            time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    """``rnnzoo serve`` in a subprocess: ``(base_url, port, process)``."""
    # Short deadlines so that the tests of slow or hostile clients take a second, not ten:
    # request 3 s, body 1 s, headers 1 s.
    proc, port = _start_server(SST2, SPA, JSB, ETT, CHARLM, "--request-timeout", "3",
                               "--body-timeout", "1", "--header-timeout", "1")
    yield f"http://127.0.0.1:{port}", port, proc
    _stop(proc)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def _post(port: int, path: str, payload: dict, clients: int, count: int) -> list[int]:
    body = json.dumps(payload).encode()
    req = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
    statuses: list[int] = []

    async def one_client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while len(statuses) < count:
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n")
                          if h.lower().startswith(b"content-length:"))
            reply = await reader.readexactly(length)
            statuses.append(int(head.split(b" ")[1]) if b"predictions" in reply else -1)
        writer.close()

    await asyncio.wait_for(asyncio.gather(*(one_client() for _ in range(clients))), 120)
    return statuses


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_bounded_load_no_errors_no_memory_growth(server):
    _, port, proc = server
    path = f"/v1/models/{SST2}:predict"
    payload = {"instances": ["a gorgeous , witty , seductive movie ."]}
    asyncio.run(_post(port, path, payload, 32, 600))  # warm-up: arenas and caches settle
    before = _rss_mb(proc.pid)
    t0 = time.time()
    statuses = asyncio.run(_post(port, path, payload, 32, 3000))
    elapsed = time.time() - t0
    after = _rss_mb(proc.pid)
    assert set(statuses) == {200}, f"{sum(s != 200 for s in statuses)} failed requests"
    assert after - before < 15, f"RSS grew {before:.1f} -> {after:.1f} MB over 3000 requests"
    assert elapsed < 120


def test_slow_client_gets_408_and_does_not_block_others(server):
    base, port, _ = server
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"POST /v1/models/%s:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                 b"application/json\r\nContent-Length: 100\r\n\r\n{\"inst" % SST2.encode())
    t0 = time.time()
    # Served while the slow client holds its request open.
    r = httpx.post(f"{base}/v1/models/{SST2}:predict", json={"instances": ["fine"]}, timeout=5)
    assert r.status_code == 200 and time.time() - t0 < 5
    slow.settimeout(30)
    reply = b""
    while b"}" not in reply:
        chunk = slow.recv(4096)
        if not chunk:
            break
        reply += chunk
    slow.close()
    assert b" 408 " in reply.split(b"\r\n")[0] and b"body_timeout" in reply


# -- hostile clients (issue #31) on the real server -------------------------------------------

LONG_MUSIC = {"instances": [{"steps": 1024, "seed": i} for i in range(16)]}  # seconds of work


def _post_async(url: str, body: dict, out: dict, key: str) -> threading.Thread:
    def run() -> None:
        t0 = time.monotonic()
        r = httpx.post(url, json=body, timeout=60)
        out[key] = (r.status_code, r.json(), time.monotonic() - t0)
    t = threading.Thread(target=run)
    t.start()
    return t


def _stats(base: str, model: str) -> dict:
    return httpx.get(f"{base}/stats").json()["models"][model]


def _wait_running(base: str, model: str, requests: int) -> None:
    """Until the model has seen ``requests`` requests (they are queued or running)."""
    deadline = time.monotonic() + 10
    while _stats(base, model)["requests"] < requests:
        assert time.monotonic() < deadline, "the request did not arrive"
        time.sleep(0.02)


def _wait_stopped(base: str, model: str, before: dict) -> None:
    """Until the model's stats say a client left and its work was stopped midway."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        now = _stats(base, model)
        if now["client_gone"] > before["client_gone"] and now["stopped"] > before["stopped"]:
            return
        time.sleep(0.05)
    pytest.fail(f"the work went on after the client left: {before} -> {now}")


def test_a_runaway_is_refused_at_once_and_long_work_ends_at_the_deadline(server):
    """The issue's 109 s case: a request behind a runaway one. The runaway (max_length
    1000000) is refused at once; a long but allowed request is stopped at its deadline, and a
    request queued behind it on the same model is answered right after, not starved."""
    base, _, _ = server
    music = f"{base}/v1/models/{JSB}:predict"
    before = _stats(base, JSB)
    out: dict = {}
    long = _post_async(music, LONG_MUSIC, out, "long")
    _wait_running(base, JSB, before["requests"] + 1)
    t0 = time.monotonic()
    r = httpx.post(f"{base}/v1/models/{SPA}:predict", timeout=10,
                   json={"instances": ["tengo hambre ."], "max_length": 1_000_000})
    assert r.status_code == 422 and r.json()["limit"] == "max_decode_length"
    r = httpx.post(music, json={"instances": [{"steps": 10**6}]}, timeout=10)
    assert r.status_code == 422 and r.json()["limit"] == "max_generation_steps"
    assert time.monotonic() - t0 < 1.5, "the refusals waited for the running work"
    queued = _post_async(music, {"instances": [{"steps": 8, "seed": 1}]}, out, "queued")
    long.join(30)
    queued.join(30)
    status, reply, took = out["long"]
    assert status == 504 and reply["code"] == "deadline_exceeded" and took < 6, out["long"]
    status, reply, took = out["queued"]
    assert status == 200 and len(reply["predictions"][0]["pitches"]) == 8
    assert took < 6, f"the queued request waited {took:.1f} s"
    assert _stats(base, JSB)["stopped"] == before["stopped"] + 1


def test_a_client_that_disconnects_stops_its_work(server):
    base, port, _ = server
    for model, route, body in ((JSB, "predict", LONG_MUSIC),
                               (CHARLM, "stream", {"instances": [{"steps": 4096}]})):
        before = _stats(base, model)
        raw = json.dumps(body).encode()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /v1/models/%s:%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      b"application/json\r\nContent-Length: %d\r\n\r\n%s"
                      % (model.encode(), route.encode(), len(raw), raw))
            if route == "stream":  # leave once the events flow
                s.settimeout(10)
                head = s.recv(65536)
                assert b" 200 " in head.split(b"\r\n")[0] and b"text/event-stream" in head
            else:
                _wait_running(base, model, before["requests"] + 1)
                time.sleep(0.2)  # running
        _wait_stopped(base, model, before)
    t0 = time.monotonic()
    r = httpx.post(f"{base}/v1/models/{JSB}:predict", json={"instances": [{"steps": 4}]})
    assert r.status_code == 200 and time.monotonic() - t0 < 1.5


def test_request_headers_are_bounded_in_time_and_size(server):
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        t0 = time.monotonic()
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        reply = b""
        try:
            for _ in range(40):  # one header byte every 0.1 s, never the end of the headers
                s.sendall(b"X")
                time.sleep(0.1)
        except OSError:  # closed by the server
            pass
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408 ") and b"header_timeout" in reply, reply
    assert time.monotonic() - t0 < 3.5
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        try:
            for _ in range(20):
                s.sendall(b"X-Big: " + b"a" * 8000 + b"\r\n")
        except OSError:
            pass
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 431 "), reply


def test_browser_checks_on_the_real_server(server):
    base, _, _ = server
    url = f"{base}/v1/models/{SPA}:predict"
    body = {"instances": ["hola"]}
    assert httpx.post(url, json=body, headers={"Host": "evil.example"}).status_code == 421
    r = httpx.post(url, json=body, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = httpx.options(url, headers={"Origin": "http://evil.example",
                                    "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    r = httpx.post(url, content=json.dumps(body), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_port_in_use_or_out_of_range_is_one_line(server):
    _, port, _ = server
    r = subprocess.run([sys.executable, "-m", "rnnzoo.cli", "serve", SST2, "--port",
                        str(port)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().count("\n") == 0 and f"port {port} on 127.0.0.1 is in use" in r.stderr
    r = subprocess.run([sys.executable, "-m", "rnnzoo.cli", "serve", SST2, "--port", "99999"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "--port must be an integer from 1 to 65535, found 99999" in r.stderr


def test_docs_curl_examples_work_as_written(server):
    """The curl lines of the docs' Serving page, run against a server on another port, answer
    200 with JSON."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    _, port, _ = server
    section = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    lines = [ln for b in blocks for ln in re.sub(r"\\\n\s*", " ", b).splitlines()
             if ln.startswith("curl ")]
    assert len(lines) >= 5
    for line in lines:
        line = line.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        out = subprocess.run(line + " -w ' %{http_code}'", shell=True, capture_output=True,
                             text=True, timeout=60)
        body, _, code = out.stdout.rpartition(" ")
        assert code == "200", (line, out.stdout)
        if ":stream" in line:  # server-sent events, the last one the :predict answer
            assert "event: result\ndata: " in body, body
            body = body.rsplit("data: ", 1)[1]
        json.loads(body)


@pytest.fixture(scope="module")
def speech_bundle(tmp_path_factory):
    """A tiny CTC recognizer trained for two epochs on synthetic tone bursts, exported to a
    bundle (a task type with no shipped preset, served from a bundle directory)."""
    from rnnzoo.extras import has_training

    if not has_training():
        pytest.skip("training a tiny speech model needs the train extra")
    from rnnzoo.export import to_onnx

    from rnnzoo.families.ctc import synthetic_dataset

    tmp = tmp_path_factory.mktemp("speech")
    data = synthetic_dataset(tmp / "data", n=48, seed=1)
    result = train_tiny_ctc(data, tmp / "run", conv_filters=8, units=8, epochs=2)
    to_onnx(result.task, tmp / "bundle")
    wavs = sorted(data.glob("*.wav"))[:3]
    return tmp / "bundle", wavs


def test_speech_bundle_serves_base64_wav_and_samples(speech_bundle):
    from rnnzoo.export import runtime

    bundle, wavs = speech_bundle
    models = load_models([f"asr={bundle}"], ServeConfig())
    rt = runtime.load(bundle)
    want = rt.transcribe([str(w) for w in wavs], beam_width=2)
    b64 = [base64.b64encode(w.read_bytes()).decode() for w in wavs]
    with TestClient(create_app(models), base_url=LOCAL) as c:
        r = c.post("/v1/models/asr:predict", json={"instances": b64, "beam_width": 2})
        assert r.status_code == 200, r.text
        assert [p["text"] for p in r.json()["predictions"]] == want
        from rnnzoo.apps.speech_recognition.data import read_wav

        samples, rate = read_wav(wavs[0])
        r = c.post("/v1/models/asr:predict", json={"instances": [
            {"samples": samples.tolist(), "sample_rate": rate}, {"wav_base64": b64[1]}]})
        assert [p["text"] for p in r.json()["predictions"]] == [
            rt.transcribe([str(wavs[0])])[0], rt.transcribe([str(wavs[1])])[0]]
        for bad, text in ((["%%%"], "not base64"),
                          ([base64.b64encode(b"RIFFjunk").decode()], "instances[0]: not a WAV"),
                          ([{"samples": ["a"]}], "list of numbers"), ([3], "expected a base64"),
                          ([{"samples": [0.1], "sample_rate": 0}], "sample_rate")):
            r = c.post("/v1/models/asr:predict", json={"instances": bad})
            assert r.status_code == 400 and text in r.json()["error"], r.text
        meta = c.get("/v2/models/asr").json()
        assert [i["name"] for i in meta["inputs"]] == ["features", "mask"]
        # A bidirectional recognizer reads the whole utterance first: it does not stream.
        r = c.post("/v1/models/asr:stream", json={"instances": b64[:1]})
        assert r.status_code == 400 and r.json()["code"] == "not_streamable", r.text


def test_a_streaming_recognizer_streams_partial_transcripts(speech_bundle, tmp_path):
    """The unidirectional ``ctc_lstm_stream`` entry (untrained, tiny: what is checked is the
    serving, not the recognition): ``:stream`` sends the transcript so far each time it changes
    and ends on what ``:predict`` answers."""
    from rnnzoo.export import to_onnx

    import rnnzoo
    from rnnzoo.apps.speech_recognition.data import log_mel
    from rnnzoo.families.ctc import TINY_OVERRIDES

    _, wavs = speech_bundle  # after the speech bundle: the train extra is there
    model = {**TINY_OVERRIDES["model"], "conv_kernel": 4, "num_layers": 1}
    task = rnnzoo.create_model("ctc_lstm_stream", **{**TINY_OVERRIDES, "model": model})
    from rnnzoo.apps.speech_recognition.data import read_wav

    signals = [read_wav(w)[0] for w in wavs]
    task.preprocessor.alphabet = "abc"
    task.preprocessor.fit([log_mel(a, task.preprocessor.params) for a in signals])
    to_onnx(task, tmp_path / "stream")
    models = load_models([f"live={tmp_path / 'stream'}"], ServeConfig())
    b64 = base64.b64encode(wavs[0].read_bytes()).decode()
    with TestClient(create_app(models), base_url=LOCAL) as c:
        assert c.get("/v1/models").json()["models"][0]["stream"] == "transcript"
        for instance in (b64, {"samples": signals[1].tolist(), "sample_rate": 8000}):
            body = {"instances": [instance]}
            r = c.post("/v1/models/live:stream", json=body)
            assert r.status_code == 200, r.text
            events = [json.loads(line[5:]) for line in r.text.splitlines()
                      if line.startswith("data:")]
            want = c.post("/v1/models/live:predict", json=body).json()
            assert events[-1] == want and len(events) >= 2
            partials = [e["partial"] for e in events[:-1]]
            assert partials[-1] == want["predictions"][0]["text"]
            assert all(a != b for a, b in zip(partials, partials[1:]))  # sent when it changes


# -- the demo page in a browser ----------------------------------------------------------------

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium to drive the demo page (apt-get install chromium)")


def _png_pixels(data: bytes) -> np.ndarray:
    """RGB(A) pixels of an 8-bit non-interlaced PNG (what Chromium writes): no imaging
    library needed to check that a screenshot is not blank."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color in (2, 6)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * bpp
    out = np.zeros((height, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, np.int32)
        for x in range(stride):
            a = cur[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + pred) & 255
        out[y], prev = cur, cur
    return out.reshape(height, width, bpp)[:, :, :3]


def test_demo_page_in_headless_chromium(server, tmp_path):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright is not installed (pip install playwright)")
    base, _, _ = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{base}/")
        page.wait_for_selector("#run:not([disabled])")
        options = page.eval_on_selector_all("#model option", "els => els.map(e => e.value)")
        assert options == [SST2, SPA, JSB, ETT, CHARLM]

        # Classifier: type, run, class bars.
        page.select_option("#model", SST2)
        page.fill("#input", "a gorgeous , witty , seductive movie .")
        page.click("#run")
        page.wait_for_selector("#label")
        assert page.inner_text("#label") == "positive"
        widths = page.eval_on_selector_all(".bar .fill", "els => els.map(e => e.style.width)")
        assert len(widths) == 2 and float(widths[1].rstrip("%")) > 50
        shot = page.screenshot(path=str(tmp_path / "classifier.png"))
        pixels = _png_pixels(shot)
        colours = len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))
        assert colours > 20, f"the screenshot looks blank ({colours} colours)"
        assert (np.abs(pixels - pixels[0, 0]).sum(-1) > 0).mean() > 0.05

        # A bad input shows the server's error.
        page.fill("#input", "good " * 150)
        page.click("#run")
        page.wait_for_selector("#error", state="visible")
        assert "400 invalid_input" in page.inner_text("#error")

        # Translator: translation and the attention heatmap.
        page.goto(f"{base}/demo/{SPA}")
        page.wait_for_selector("#run:not([disabled])")
        assert page.input_value("#model") == SPA
        page.fill("#input", "tengo hambre .")
        page.click("#run")
        page.wait_for_selector("#attention")
        assert page.inner_text("#translation") == "i'm hungry."
        assert page.eval_on_selector_all("#attention tbody tr", "els => els.length") >= 2

        # Music: piano roll on a canvas with notes drawn, an audio player.
        page.select_option("#model", JSB)
        page.click("#run")
        page.wait_for_selector("#pianoroll")
        blue = page.evaluate("""() => { const c = document.getElementById('pianoroll');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4)
              if (d[i] < 100 && d[i + 2] > 200) n++; return n; }""")
        assert blue > 50
        assert page.evaluate("document.getElementById('audio').src").startswith("blob:")
        page.screenshot(path=str(tmp_path / "music.png"))

        # Forecaster (served through the default hook): the window and the forecast plotted.
        page.select_option("#model", ETT)
        page.click("#run")
        page.wait_for_selector("#series polyline")
        assert page.eval_on_selector_all("#series polyline", "els => els.length") == 2
        assert "24 steps ahead after 96 given" in page.inner_text("#result")
        page.screenshot(path=str(tmp_path / "forecast.png"))

        # Char LM (issue #39): the text appears piece by piece as the :stream events arrive.
        request = {"prompt": "ROMEO:", "steps": 1000, "temperature": 0.8, "seed": 0}
        want = httpx.post(f"{base}/v1/models/{CHARLM}:predict",
                          json={"instances": [request]}).json()["predictions"][0]["text"]
        page.select_option("#model", CHARLM)
        page.fill("#input", json.dumps(request))
        page.evaluate("""() => { window.seen = [];
            new MutationObserver(() => { const s = document.getElementById('stream-text');
              if (s) window.seen.push(s.textContent.length); })
            .observe(document.getElementById('result'), {subtree: true, childList: true,
                                                         characterData: true}); }""")
        page.click("#run")
        page.wait_for_selector("#transcript")
        assert page.eval_on_selector("#transcript", "e => e.textContent") == want
        growing = sorted({n for n in page.evaluate("window.seen") if 0 < n < len(want)})
        assert len(growing) >= 10, f"the text did not appear piece by piece: {growing}"
        status = page.inner_text("#status")
        assert "first piece after" in status and "1000 pieces" in status, status
        browser.close()
    assert not errors, errors
    if os.environ.get("RNNZOO_SCREENSHOTS"):
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, os.environ["RNNZOO_SCREENSHOTS"])


def test_demo_page_uploads_audio_to_a_speech_bundle(speech_bundle):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright is not installed (pip install playwright)")
    from rnnzoo.export import runtime

    bundle, wavs = speech_bundle
    want = runtime.load(bundle).transcribe([str(wavs[0])])[0] or "(silence)"
    proc, port = _start_server(f"asr={bundle}")
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/demo/asr")
            page.wait_for_selector("#run:not([disabled])")
            assert page.is_visible("#audio-file") and not page.is_visible("#input")
            page.click("#run")
            page.wait_for_selector("#error", state="visible")
            assert "WAV file" in page.inner_text("#error")
            page.set_input_files("#audio-file", str(wavs[0]))
            page.click("#run")
            page.wait_for_selector("#transcript")
            assert page.inner_text("#transcript") == want
            browser.close()
    finally:
        _stop(proc)


def _task_types_without_presets() -> list[str]:
    from rnnzoo.apps import known_task_types

    served = {"text-classification", "translation", "music-generation", "forecasting",
              "speech-recognition",  # shipped presets and the speech bundle above
              "recommendation"}  # its preset's :predict/:stream: tests/test_recommendation.py
    return [t for t in known_task_types() if t not in served]


@pytest.mark.parametrize("task", _task_types_without_presets())
def test_every_task_type_is_served_without_a_server_edit(task, tmp_path):
    """A tiny model of each other task type (trained one epoch, exported): listed, described
    in v2 and answering v1 with its demo input (or a row of its dummy batch) through its own
    hooks or the defaults."""
    from rnnzoo.apps import app_cli
    from rnnzoo.extras import has_training

    if not has_training():
        pytest.skip("training tiny models needs the train extra")
    from rnnzoo.export import to_onnx

    import rnnzoo
    from rnnzoo.families import family_spec
    from rnnzoo.registry import get_entry

    entry = next(n for n in rnnzoo.list_models() if get_entry(n).task == task)
    spec = family_spec(get_entry(entry).family)
    tiny = spec.tiny_overrides
    data = spec.synthetic_dataset(tmp_path / "data", n=120, seed=0)
    result = rnnzoo.train(entry, data, out=tmp_path / "run", verbose=0, model=tiny["model"],
                          data=tiny["data"], training={**tiny["training"], "epochs": 1})
    to_onnx(result.task, tmp_path / "bundle")
    models = load_models([f"m={tmp_path / 'bundle'}"], ServeConfig())
    # Candidate inputs: the demo's (written for the real preset, so a tiny model trained on
    # synthetic data may refuse it), the task's example inputs, a row of its dummy batch.
    candidates = [models["m"].demo.get("example")] + list(app_cli(task).example_inputs())
    x, _ = result.task.dummy_batch(2, seed=0)
    if isinstance(x, np.ndarray):
        candidates.append(x[0].tolist())
    answered = []
    with TestClient(create_app(models), base_url=LOCAL) as c:
        listed = c.get("/v1/models").json()["models"][0]
        assert listed["task"] == task and listed["verb"] == app_cli(task).VERB
        assert c.get("/v2/models/m").json()["inputs"]
        for instance in [c for c in candidates if c is not None]:
            r = c.post("/v1/models/m:predict", json={"instances": [instance, instance]})
            assert r.status_code in (200, 400), r.text  # never a 500
            if r.status_code == 200:
                a, b = r.json()["predictions"]
                assert a == b and a is not None
                answered.append(instance)
        assert answered, f"{task}: no candidate input was served; give its runtime hooks"
        r = c.post("/v1/models/m:predict", json={"instances": [{"no": "such input"}]})
        assert r.status_code == 400, r.text


def test_missing_serve_extra_and_bad_presets_are_one_line_errors():
    r = run_python(without_packages(f"""
        from rnnzoo.cli import main
        sys.exit(main(['serve', {SST2!r}]))
    """, ("starlette", "uvicorn")))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert 'pip install "rnnzoo[serve]"' in r.stderr
    r = subprocess.run([sys.executable, "-m", "rnnzoo.cli", "serve", "no_such.preset"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown preset 'no_such.preset'" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_preset_without_bundle_is_exported_once_and_cached(tmp_path, monkeypatch):
    from rnnzoo.extras import has_training
    from rnnzoo.presets import _write_checksums, resolve_preset

    src = resolve_preset(SST2)
    bare = tmp_path / "sst2_bare"
    shutil.copytree(src, bare, ignore=shutil.ignore_patterns("onnx"))
    meta = json.loads((bare / "metadata.json").read_text())
    meta.pop("onnx")
    (bare / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    (bare / "checksums.json").unlink()
    _write_checksums(bare)
    monkeypatch.setenv("RNNZOO_HOME", str(tmp_path / "home"))
    if not has_training():
        with pytest.raises(Exception, match="train extra"):
            load_models([str(bare)], ServeConfig())
        return
    t0 = time.time()
    first = load_models([str(bare)], ServeConfig())[SST2]
    exported = time.time() - t0
    cached = list((tmp_path / "home" / "serve").iterdir())
    assert len(cached) == 1 and (cached[0] / "onnx" / "fp32" / "bundle.json").is_file()
    t0 = time.time()
    again = load_models([str(bare)], ServeConfig())[SST2]
    assert time.time() - t0 < exported / 3  # the cached copy, no second export
    texts = ["a gorgeous , witty , seductive movie .", "a sometimes tedious film ."]
    want = load_models([SST2], ServeConfig())[SST2].runtime.predict(texts).probs
    for model in (first, again):
        np.testing.assert_allclose(model.runtime.predict(texts).probs, want, atol=1e-5)


def test_models_survive_an_app_restart():
    """The lifespan stops batchers and thread pools; serving the same models again (another
    event loop) starts fresh ones instead of hanging or failing."""
    models = load_models([SST2], ServeConfig())
    for _ in range(2):
        with TestClient(create_app(models), base_url=LOCAL) as c:
            r = c.post(f"/v1/models/{SST2}:predict", json={"instances": ["ok"]})
            assert r.status_code == 200, r.text
    # No lifespan: a new loop per request.
    plain_client = TestClient(create_app(models), base_url=LOCAL)
    for _ in range(2):
        assert plain_client.post(f"/v1/models/{SST2}:predict",
                                 json={"instances": ["ok"]}).status_code == 200
