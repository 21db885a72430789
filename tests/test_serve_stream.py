"""``POST /v1/models/{name}:stream`` (issue #39 item 4), in process: server-sent events of one
instance's output, ending with what ``:predict`` answers; errors before the first event as
JSON; the deadline as an ``error`` event. On the real server (tests/test_serving.py): a client
that leaves a stream stops its generation, and the demo page shows the text as it streams
(headless Chromium)."""

from __future__ import annotations

import base64
import json
import struct
import time
import zlib

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install "
                    "'rnnzoo[serve]'")
httpx = pytest.importorskip("httpx", reason="the serve extra brings httpx")

from starlette.testclient import TestClient  # noqa: E402

from rnnzoo import limits  # noqa: E402
from rnnzoo.serving import ServeConfig, create_app, load_models  # noqa: E402

CHARLM = "charlm_lstm.shakespeare"
SPA = "translator_gru_attention.spa_eng"
JSB = "music_lstm.jsb"
SST2 = "sentiment_bilstm.sst2"
CAPTION = "captioner_lstm_attention.flickr8k_subset"


def parse_sse(text: str) -> list[tuple[str, dict]]:
    """``[(event name, data)]`` of a text/event-stream body."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", ""
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
        out.append((name, json.loads(data)))
    return out


@pytest.fixture(scope="module")
def models():
    return load_models([CHARLM, SPA, JSB, SST2, CAPTION], ServeConfig())


@pytest.fixture(scope="module")
def client(models):
    with TestClient(create_app(models), base_url="http://localhost") as c:
        yield c


def stream(client, model: str, body: dict) -> list[tuple[str, dict]]:
    r = client.post(f"/v1/models/{model}:stream", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return parse_sse(r.text)


def test_char_lm_streams_one_event_per_character_equal_to_predict(client):
    body = {"instances": [{"prompt": "ROMEO:", "steps": 20, "temperature": 0.8, "seed": 3}]}
    events = stream(client, CHARLM, body)
    pieces = [data["delta"] for name, data in events if name == "message"]
    assert len(pieces) >= 20
    predicted = client.post(f"/v1/models/{CHARLM}:predict", json=body).json()
    assert "".join(pieces) == predicted["predictions"][0]["text"]
    assert events[-1] == ("result", predicted)


def test_translator_and_music_stream_to_their_predict_result(client):
    for body in ({"instances": ["¿dónde está la biblioteca?"]},
                 {"instances": ["tengo hambre ."], "beam": 3}):
        events = stream(client, SPA, body)
        predicted = client.post(f"/v1/models/{SPA}:predict", json=body).json()
        deltas = "".join(d["delta"] for n, d in events if n == "message")
        assert deltas == predicted["predictions"][0]["translation"]
        assert events[-1] == ("result", predicted)
        if "beam" in body:
            assert len(events) == 2  # beam search yields the final text once
    body = {"instances": [{"steps": 12, "seed": 5, "primer": [[60, 64, 67]]}]}
    events = stream(client, JSB, body)
    predicted = client.post(f"/v1/models/{JSB}:predict", json=body).json()
    frames = [d["frame"] for n, d in events if n == "message"]
    assert frames == predicted["predictions"][0]["pitches"] and len(frames) == 12
    assert events[-1] == ("result", predicted)


def test_stream_errors_before_the_first_event_are_json(client):
    cases = [
        (SST2, {"instances": ["a film"]}, 400, "not_streamable"),
        (CHARLM, {"instances": [{"steps": 5}, {"steps": 5}]}, 400, "invalid_request"),
        (CHARLM, {"instances": [{"prompt": "\u2603", "steps": 5}]}, 400, "invalid_input"),
        (CHARLM, {"instances": [{"steps": 5}], "top_k": 3}, 400, "unknown_option"),
        (SPA, {"instances": ["hola"], "attention": True}, 400, "invalid_input"),
        (CHARLM, {"instances": [{"steps": 10**6}]}, 422, "limit_exceeded"),
    ]
    for model, body, status, code in cases:
        r = client.post(f"/v1/models/{model}:stream", json=body)
        assert r.status_code == status and r.json()["code"] == code, (body, r.text)
    assert client.get(f"/v1/models/{CHARLM}:stream").status_code == 405
    info = {m["name"]: m["stream"] for m in client.get("/v1/models").json()["models"]}
    assert info == {CHARLM: "text", SPA: "text", JSB: "frames", SST2: None, CAPTION: "text"}
    spec = client.get("/openapi.json").json()
    assert "text/event-stream" in json.dumps(spec["paths"]["/v1/models/{name}:stream"])


def test_a_stream_past_its_deadline_ends_with_an_error_event(client, models):
    old = limits.configure(request_timeout_s=0.4)
    try:
        stopped = models[CHARLM].stats["stopped"]
        events = stream(client, CHARLM, {"instances": [{"steps": 4096, "seed": 0}]})
        name, data = events[-1]
        assert name == "error" and data["code"] == "deadline_exceeded" and data["status"] == 504
        assert 0 < len(events) - 1 < 4096
        deadline = time.monotonic() + 5
        while models[CHARLM].stats["stopped"] == stopped and time.monotonic() < deadline:
            time.sleep(0.02)
        assert models[CHARLM].stats["stopped"] == stopped + 1
    finally:
        limits.configure(request_timeout_s=old.request_timeout_s)


def _png(width: int, height: int, pixels: bytes | None = None) -> bytes:
    """A PNG file: an RGB image of ``pixels`` rows, or (None) only a header claiming the size,
    as a decompression bomb's would."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = b"" if pixels is None else chunk(b"IDAT", zlib.compress(pixels))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + body + chunk(b"IEND", b"")


def test_captioner_streams_and_an_image_over_the_pixel_limit_is_413(client):
    rng = np.random.default_rng(0)
    rows = b"".join(b"\x00" + rng.integers(0, 256, 48 * 3, dtype=np.uint8).tobytes()
                    for _ in range(48))
    body = {"instances": [{"b64": base64.b64encode(_png(48, 48, rows)).decode()}]}
    events = stream(client, CAPTION, body)
    predicted = client.post(f"/v1/models/{CAPTION}:predict", json=body).json()
    assert "".join(d["delta"] for n, d in events if n == "message") == \
        predicted["predictions"][0]["caption"] and events[-1] == ("result", predicted)
    bomb = {"instances": [{"b64": base64.b64encode(_png(13000, 13000)).decode()}]}
    for route in ("predict", "stream"):
        r = client.post(f"/v1/models/{CAPTION}:{route}", json=bomb)
        assert r.status_code == 413 and r.json()["limit"] == "max_image_pixels", r.text
        assert "13000x13000" in r.json()["error"]
