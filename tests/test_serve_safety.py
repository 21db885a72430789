"""``rnnzoo serve`` under hostile load (issue #31), in process: every request's cost bounded
before work starts (limits: 413/422 naming the limit), a deadline that stops long work (504),
browser safety (Host, CORS, JSON content type), server faults as 500 with an error id; and, in
a process of its own, SIGTERM draining and exiting 0. The tests that need the real server of
tests/test_serving.py are there (deadline without starvation, client disconnect, header
limits, port in use)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install "
                    "'rnnzoo[serve]'")
httpx = pytest.importorskip("httpx", reason="the serve extra brings httpx")

from starlette.testclient import TestClient  # noqa: E402

from rnnzoo import limits  # noqa: E402
from rnnzoo.serving import ServeConfig, create_app, load_models  # noqa: E402

SPA = "translator_gru_attention.spa_eng"
JSB = "music_lstm.jsb"
SST2 = "sentiment_bilstm.sst2"
LONG_MUSIC = {"instances": [{"steps": 1024, "seed": i} for i in range(16)]}  # seconds of work


# -- in process: limits and browser checks ---------------------------------------------------


@pytest.fixture(scope="module")
def models():
    return load_models([SPA, JSB], ServeConfig())


def _client(models, **config):
    return TestClient(create_app(models, ServeConfig(**config)), base_url="http://localhost")


@pytest.mark.parametrize("model,body,status,limit", [
    (SPA, {"instances": ["hola"], "max_length": 1_000_000}, 422, "max_decode_length"),
    (SPA, {"instances": ["hola"], "beam": 10_000}, 422, "max_beam_width"),
    (JSB, {"instances": [{"steps": 10**7}]}, 422, "max_generation_steps"),
    (SPA, {"instances": ["hola " * 30_000]}, 413, "max_text_chars"),
])
def test_requests_over_a_limit_are_refused_before_any_work(models, model, body, status, limit):
    with _client(models, max_body_bytes=1 << 20) as c:
        calls = models[model].stats["runtime_calls"]
        r = c.post(f"/v1/models/{model}:predict", json=body)
        assert r.status_code == status, r.text
        reply = r.json()
        assert reply["code"] == "limit_exceeded" and reply["limit"] == limit
        assert f"--limit {limit}=N" in reply["error"]
        assert models[model].stats["runtime_calls"] == calls  # nothing ran
        # :stream checks the same limits.
        r = c.post(f"/v1/models/{model}:stream", json={**body, "instances": body["instances"]})
        assert r.status_code == status and r.json()["limit"] == limit, r.text


def test_a_midi_bomb_primer_is_413_and_names_no_server_path(models):
    """The issue's 740-byte MIDI whose notes are held for hours (a piano roll of GBs): refused
    from its length before any roll is rendered; the message names the field, not the
    temporary file the server wrote it to."""
    import base64
    import io

    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=220)
    piano = pretty_midi.Instrument(0)
    piano.notes = [pretty_midi.Note(velocity=90, pitch=p, start=0, end=20000.0)
                   for p in range(21, 109)]
    pm.instruments.append(piano)
    buf = io.BytesIO()
    pm.write(buf)
    assert len(buf.getvalue()) < 1000
    body = {"instances": [{"steps": 8, "primer_midi_base64":
                           base64.b64encode(buf.getvalue()).decode()}]}
    with _client(models) as c:
        for route in ("predict", "stream"):
            r = c.post(f"/v1/models/{JSB}:{route}", json=body)
            assert r.status_code == 413 and r.json()["limit"] == "max_midi_seconds", r.text
            assert tempfile.gettempdir() not in r.text, r.text
            assert "primer_midi_base64" in r.text or "uploaded file" in r.text, r.text


@pytest.mark.parametrize("model,body", [
    (JSB, {"instances": [{"steps": 3, "seed": "x"}]}),
    (JSB, {"instances": [{"steps": 3, "seed": -5}]}),
    (JSB, {"instances": [{"steps": 3, "seed": 1.5}]}),
    (SPA, {"instances": ["hola"], "sampler": "temperature", "seed": [1]}),
    (SPA, {"instances": ["hola"], "return_attention": True}),
    (SPA, {"instances": ["hola"], "stream": True}),
    (SPA, {"instances": ["hola"], "progress": True}),
    (SPA, {"instances": ["hola"], "batch_size": 1}),
])
def test_inputs_the_fuzzer_found_are_400_not_500(models, model, body):
    """Found by tests/test_serve_fuzz.py: a seed numpy cannot take, and keyword arguments a
    **kwargs user call would accept but that are the server's to choose."""
    with _client(models) as c:
        for route in ("predict", "stream"):
            r = c.post(f"/v1/models/{model}:{route}", json=body)
            assert r.status_code == 400, (route, r.text)
            assert r.json()["code"] in ("invalid_input", "unknown_option")


def test_a_limit_raised_in_process_lets_the_request_through(models):
    old = limits.configure(max_beam_width=2)
    try:
        with _client(models) as c:
            r = c.post(f"/v1/models/{SPA}:predict", json={"instances": ["hola"], "beam": 3})
            assert r.status_code == 422 and r.json()["maximum"] == 2
            limits.configure(max_beam_width=3)
            r = c.post(f"/v1/models/{SPA}:predict", json={"instances": ["hola"], "beam": 3})
            assert r.status_code == 200, r.text
    finally:
        limits.configure(max_beam_width=old.max_beam_width)


def test_the_deadline_stops_running_work_in_process(models):
    old = limits.configure(request_timeout_s=0.5)
    try:
        with _client(models) as c:
            stopped = models[JSB].stats["stopped"]
            t0 = time.monotonic()
            r = c.post(f"/v1/models/{JSB}:predict", json=LONG_MUSIC)
            assert r.status_code == 504 and r.json()["code"] == "deadline_exceeded", r.text
            assert time.monotonic() - t0 < 3 and "request_timeout_s" in r.json()["error"]
            deadline = time.monotonic() + 5
            while models[JSB].stats["stopped"] == stopped and time.monotonic() < deadline:
                time.sleep(0.02)
            assert models[JSB].stats["stopped"] == stopped + 1  # the work itself stopped
            r = c.post(f"/v1/models/{JSB}:predict", json={"instances": [{"steps": 4}]})
            assert r.status_code == 200
    finally:
        limits.configure(request_timeout_s=old.request_timeout_s)


def test_host_header_origin_and_content_type(models):
    url = f"/v1/models/{SPA}:predict"
    body = {"instances": ["hola"]}
    with _client(models, allowed_hosts=("rnnzoo.lan", ".corp.example"),
                 cors_origins=("http://localhost:3000",)) as c:
        for host, status in (("localhost:8000", 200), ("127.0.0.1", 200), ("[::1]:8000", 200),
                             ("app.localhost", 200), ("192.168.1.5:8000", 200),
                             ("rnnzoo.lan", 200), ("a.corp.example", 200),
                             ("corp.example", 200), ("evil.example", 421),
                             ("localhost.evil.example", 421), ("corp.example.evil", 421)):
            r = c.post(url, json=body, headers={"Host": host})
            assert r.status_code == status, (host, r.text)
        r = c.get("/v1/models", headers={"Host": "evil.example:8000"})
        assert r.status_code == 421 and r.json()["code"] == "host_not_allowed"
        assert "--allowed-hosts evil.example" in r.json()["error"]

        # The server's own origin (the demo page) and an allowed one pass; others get 403.
        same = c.post(url, json=body, headers={"Origin": "http://localhost"})
        assert same.status_code == 200 and "access-control-allow-origin" not in same.headers
        ok = c.post(url, json=body, headers={"Origin": "http://localhost:3000"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "Origin" in ok.headers["vary"]
        bad = c.post(url, json=body, headers={"Origin": "https://evil.example"})
        assert bad.status_code == 403 and bad.json()["code"] == "origin_not_allowed"
        assert "--cors-origin https://evil.example" in bad.json()["error"]
        assert c.post(url, json=body, headers={"Origin": "null"}).status_code == 403

        # Preflight: the policy for an allowed origin, 403 for another, Allow for plain OPTIONS.
        pre = {"Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type"}
        r = c.options(url, headers={"Origin": "http://localhost:3000", **pre})
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "content-type" in r.headers["access-control-allow-headers"]
        r = c.options(url, headers={"Origin": "https://evil.example", **pre})
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
        assert c.options("/v1/models").status_code == 204

        # A POST that is not JSON is never processed: the types a page may send cross-origin
        # without a preflight (text/plain, forms, none).
        raw = json.dumps(body).encode()
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": ctype} if ctype else {}
            r = c.post(url, content=raw, headers=headers)
            assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type", ctype
        r = c.post(url, content=raw, headers={"Content-Type": "application/json; charset=utf-8"})
        assert r.status_code == 200
    with _client(models) as c:  # no CORS by default
        r = c.post(url, json=body, headers={"Origin": "http://localhost:3000"})
        assert r.status_code == 403
        r = c.post(url, json=body, headers={"Host": "rnnzoo.lan"})
        assert r.status_code == 421


def test_server_faults_are_500_with_an_error_id_and_no_internals(models, caplog):
    from rnnzoo.serving import error_reply

    status, reply = error_reply(KeyError("/secret/path/model.onnx"))
    assert status == 500 and reply["code"] == "internal" and "secret" not in reply["error"]
    assert reply["id"] in reply["error"]
    assert any(reply["id"] in rec.getMessage() for rec in caplog.records)


# -- a real server -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    log = tempfile.TemporaryFile()  # a pipe nobody reads could fill and block the server
    proc = subprocess.Popen([sys.executable, "-m", "rnnzoo.cli", "serve", *args,
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            log.seek(0)
            pytest.fail(f"rnnzoo serve did not start: {log.read().decode()[-2000:]}")
        time.sleep(0.2)


def _post_async(url: str, body: dict, out: dict, key: str) -> threading.Thread:
    def run() -> None:
        r = httpx.post(url, json=body, timeout=60)
        out[key] = (r.status_code, r.json())
    t = threading.Thread(target=run)
    t.start()
    return t


def test_sigterm_drains_stops_runaway_work_and_exits_0():
    """SIGTERM with a request running and a long one queued behind it: the running one
    finishes (drained), the long one, still running when the graceful timeout ends, is stopped
    and answered 503, and the process exits 0 soon after (not killed by the signal, not left
    computing). The running one is eight 1,024-step pieces (about 2 s on an idle core, 0.2 s
    each), so it is still running when SIGTERM comes on a loaded machine and done well within the
    10 s graceful window; the queued one (200 pieces, about 50 s) cannot finish in it."""
    proc, port = _start(JSB, "--graceful-timeout", "10", "--request-timeout", "120")
    base = f"http://127.0.0.1:{port}"

    def arrived(n: int) -> None:
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/stats").json()["models"][JSB]["requests"] < n:
            assert time.monotonic() < deadline, "the request did not arrive"
            time.sleep(0.02)

    try:
        url = f"{base}/v1/models/{JSB}:predict"
        out: dict = {}
        short = _post_async(url, {"instances": [{"steps": 1024, "seed": i} for i in range(8)]},
                            out, "short")
        arrived(1)
        long = _post_async(url, {"instances": [{"steps": 1024, "seed": i}
                                               for i in range(200)]}, out, "long")
        arrived(2)
        assert not out, "a request finished before SIGTERM; make it longer"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        short.join(30)
        long.join(30)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - t0 < 20
        assert out["short"][0] == 200, out["short"]
        assert [len(p["pitches"]) for p in out["short"][1]["predictions"]] == [1024] * 8
        assert out["long"][0] == 503 and out["long"][1]["code"] == "shutting_down", out["long"]
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/v2/health/ready", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_pinned_bundle_is_served_only_with_its_digest(tmp_path):
    """``NAME=PATH#sha256=DIGEST`` (issue #31 item 5): the whole-bundle digest, manifest
    included, so a bundle edited and re-hashed (tampering, not corruption) is refused."""
    import hashlib
    import shutil

    from rnnzoo.export.integrity import read_checksums, write_checksums
    from rnnzoo.export.runtime import BundleDigestError, bundle_digest

    from rnnzoo.errors import RnnzooError
    from rnnzoo.presets import resolve_preset

    bundle = resolve_preset(SST2) / "onnx" / "fp32"
    digest = bundle_digest(bundle)
    served = load_models([f"sst={bundle}#sha256={digest}", f"{SST2}#sha256:{digest.upper()}"],
                         ServeConfig())
    assert list(served) == ["sst", SST2]
    with pytest.raises(BundleDigestError, match="digest mismatch"):
        load_models([f"sst={bundle}#sha256={'0' * 64}"], ServeConfig())
    with pytest.raises(RnnzooError, match="64 hex digits"):
        load_models([f"sst={bundle}#sha256=abc"], ServeConfig())
    # Tampered: bundle.json edited and every listed hash recomputed. Unpinned, it loads (the
    # checksums agree); pinned, it is refused.
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "bundle.json").read_text())
    manifest["preprocessing"]["max_length"] = 7
    (copy / "bundle.json").write_text(json.dumps(manifest))
    sums = read_checksums(copy)
    sums["bundle.json"] = hashlib.sha256((copy / "bundle.json").read_bytes()).hexdigest()
    write_checksums(copy, sums)
    assert list(load_models([f"t={copy}"], ServeConfig())) == ["t"]
    with pytest.raises(BundleDigestError):
        load_models([f"t={copy}#sha256={digest}"], ServeConfig())
    r = subprocess.run([sys.executable, "-m", "rnnzoo.cli", "serve", f"t={copy}#sha256={digest}",
                        "--port", str(_free_port())], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "digest mismatch" in r.stderr and "Traceback" not in r.stderr


def test_bad_limit_and_safety_flags_are_one_line_errors(capsys):
    from rnnzoo.cli import main

    before = limits.current()
    for args, text in ((["--limit", "max_beams=3"], "expected NAME=VALUE with NAME one of"),
                       (["--limit", "max_beam_width=-1"], "expected a positive int"),
                       (["--cors-origin", "evil.example/path"], "expected an origin"),
                       (["--port", "0"], "--port must be an integer from 1 to 65535")):
        assert main(["serve", SST2, *args]) == 2
        err = capsys.readouterr().err
        assert err.strip().count("\n") == 0 and text in err, err
    assert limits.current() == before
