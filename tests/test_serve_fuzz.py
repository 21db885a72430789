"""An OpenAPI-driven fuzzer over ``rnnzoo serve`` (issue #31 item 7): schemathesis generates
requests for every operation of the server's own ``/openapi.json`` (valid and invalid bodies,
path parameters, query strings), sends them to a real server process, and every answer must be
below 500, arrive within the request deadline (no hang), and the server's memory must stay
bounded. Deterministic (``derandomize``) and time-boxed, so it fits CI; skipped without
schemathesis (the test extra brings it)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install "
                    "'rnnzoo[serve]'")
httpx = pytest.importorskip("httpx", reason="the serve extra brings httpx")
schemathesis = pytest.importorskip("schemathesis", reason="the test extra brings schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

MODELS = ["sentiment_bilstm.sst2", "translator_gru_attention.spa_eng",
          "charlm_lstm.shakespeare", "music_lstm.jsb", "forecaster_lstm.etth1"]
# The CI budget; for a longer hunt: RNNZOO_FUZZ_SECONDS=300 RNNZOO_FUZZ_EXAMPLES=2000
# RNNZOO_FUZZ_RANDOM=1 pytest tests/test_serve_fuzz.py -s (random rather than derandomized).
EXAMPLES = int(os.environ.get("RNNZOO_FUZZ_EXAMPLES", 15))  # per operation, per mode / model
BUDGET_S = float(os.environ.get("RNNZOO_FUZZ_SECONDS", 15))  # each fuzz run stops after this
DERANDOMIZE = not os.environ.get("RNNZOO_FUZZ_RANDOM")
SLOW_S = 10.0  # an answer slower than this is a hang (the server's deadline is 5 s)


class OutOfTime(Exception):
    """Raised by a fuzz function past its time budget: ends its Hypothesis run at once (no
    shrink phase), where returning would still generate the remaining examples."""


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.fixture(scope="module")
def server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.TemporaryFile()
    # Small limits keep each generated request cheap; the deadline bounds every answer.
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnzoo.cli", "serve", *MODELS, "--port", str(port),
         "--request-timeout", "5", "--limit", "max_generation_steps=256",
         "--limit", "max_decode_length=32", "--limit", "max_beam_width=4",
         "--max-instances", "16", "--max-body-bytes", "65536"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if httpx.get(f"{base}/v2/health/ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            log.seek(0)
            pytest.fail(f"rnnzoo serve did not start: {log.read().decode()[-2000:]}")
        time.sleep(0.2)
    yield base, proc, log
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_openapi_fuzzing_finds_no_5xx_and_no_hang(server):
    import requests

    base, proc, log = server
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    spec = httpx.get(f"{base}/openapi.json").json()
    assert len(operations) == sum(len(methods) for methods in spec["paths"].values()) >= 11
    session = requests.Session()
    failures: list[str] = []
    sent: dict[str, int] = {}
    statuses: dict[tuple[str, int], int] = {}
    rss_before = _rss_mb(proc.pid)
    current: dict = {}

    def fuzzer(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode
               ) -> None:
        @settings(max_examples=EXAMPLES, derandomize=DERANDOMIZE, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: schemathesis.Case) -> None:
            if time.monotonic() > current["stop"]:
                raise OutOfTime
            t0 = time.monotonic()
            response = case.call(base_url=base, session=session, timeout=SLOW_S * 3)
            took = time.monotonic() - t0
            sent[operation.label] = sent.get(operation.label, 0) + 1
            key = (operation.label, response.status_code)
            statuses[key] = statuses.get(key, 0) + 1
            if response.status_code >= 500 or took > SLOW_S:
                failures.append(f"{response.status_code} in {took:.1f} s: "
                                f"{case.as_curl_command()} -> {response.text[:300]}")

        try:
            fuzz()
        except OutOfTime:
            pass
        except Unsatisfiable:  # nothing invalid to generate (no parameters, no body)
            assert mode is schemathesis.GenerationMode.NEGATIVE

    for operation in operations:  # the budget shared equally between operations and modes
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            current["stop"] = time.monotonic() + BUDGET_S / (2 * len(operations))
            fuzzer(operation, mode)
    print("fuzzing: requests by operation and status", sorted(statuses.items()))
    assert not failures, "\n".join(failures[:10])
    assert sum(sent.values()) >= 40 and len(sent) == len(operations), sent
    growth = _rss_mb(proc.pid) - rss_before
    assert growth < 200, f"the server grew {growth:.0f} MB under fuzzing"
    log.seek(0)
    assert b"Traceback" not in log.read(), "the server logged a traceback"


# -- model-aware: requests shaped like each model's demo input, with values mutated ------------

LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40),
                 st.floats(allow_nan=False, allow_infinity=False, width=64),
                 st.text(max_size=30))
# Options a model that accepts any (a **kwargs user call) may be sent: its decoding options.
ANY_OPTIONS = ("beam", "sampler", "max_length", "seed", "temperature", "top_k", "top_p",
               "attention", "truncate", "horizon", "audio")


def like(example: object, depth: int = 0) -> st.SearchStrategy:
    """Values shaped like ``example``: its own value, a close variant, or anything JSON."""
    if isinstance(example, bool):
        near = st.booleans()
    elif isinstance(example, int):
        near = st.integers(-3, 300)
    elif isinstance(example, float):
        near = st.floats(-1e3, 1e3, allow_nan=False)
    elif isinstance(example, str):
        near = st.one_of(st.text(max_size=80), st.sampled_from([example, example * 3, ""]))
    elif isinstance(example, list) and depth < 3:
        inner = like(example[0], depth + 1) if example else LEAF
        near = st.one_of(st.lists(inner, max_size=8), st.just(example))
    elif isinstance(example, dict) and depth < 3:
        near = st.fixed_dictionaries({}, optional={k: like(v, depth + 1)
                                                   for k, v in example.items()})
    else:
        near = LEAF
    return st.one_of(st.just(example), near, LEAF) if depth else st.one_of(near, LEAF)


def mutated(example: object) -> st.SearchStrategy:
    """``example`` itself, with one field changed or dropped, or anything shaped like it: most
    requests are valid but one value, so they reach the models' own checks and calls."""
    options = [st.just(example), like(example)]
    if isinstance(example, dict) and example:
        keys = sorted(example)
        options.append(st.sampled_from(keys).flatmap(
            lambda k: like(example[k], 1).map(lambda v: {**example, k: v})))
        options.append(st.sampled_from(keys).map(
            lambda k: {n: v for n, v in example.items() if n != k}))
    return st.one_of(*options)


def test_model_aware_fuzzing_finds_no_5xx(server):
    """schemathesis knows only the generic body (``instances`` of anything); most of what it
    sends is refused early. Here each model gets bodies shaped like its demo input and options,
    values mutated, so that they reach the models' own checks and calls."""
    import requests

    base, proc, log = server
    session = requests.Session()
    failures: list[str] = []
    statuses: dict[tuple[str, int], int] = {}
    current: dict = {}
    served = httpx.get(f"{base}/v1/models").json()["models"]
    for info in served:  # the budget shared equally between the models
        current["name"] = info["name"]
        current["stop"] = time.monotonic() + BUDGET_S * 2 / 3 / len(served)
        example = info["demo"].get("example")
        names = info["options"] if info["options"] is not None else dict.fromkeys(ANY_OPTIONS)
        options = st.just({}) if not names else st.one_of(
            st.just({}), st.sampled_from(sorted(names)).flatmap(
                lambda k, names=names: like(names[k], 1).map(lambda v, k=k: {k: v})))
        routes = ["predict"] + (["stream"] if info["stream"] else [])

        @settings(max_examples=2 * EXAMPLES, derandomize=DERANDOMIZE, deadline=None,
                  database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(instances=st.lists(mutated(example), min_size=1, max_size=3), options=options,
               route=st.sampled_from(routes))
        def fuzz(instances: list, options: dict, route: str) -> None:
            name = current["name"]
            if time.monotonic() > current["stop"]:
                raise OutOfTime
            body = {**options, "instances": instances}
            t0 = time.monotonic()
            response = session.post(f"{base}/v1/models/{name}:{route}", json=body,
                                    timeout=SLOW_S * 3)
            took = time.monotonic() - t0
            key = (f"{name}:{route}", response.status_code)
            statuses[key] = statuses.get(key, 0) + 1
            if response.status_code >= 500 or took > SLOW_S or (
                    route == "stream" and "event: error" in response.text
                    and '"status":5' in response.text):
                failures.append(f"{response.status_code} in {took:.1f} s: POST {name}:{route} "
                                f"{str(body)[:300]} -> {response.text[:300]}")

        with contextlib.suppress(OutOfTime):
            fuzz()
    print("model-aware fuzzing: requests by route and status", sorted(statuses.items()))
    assert not failures, "\n".join(failures[:10])
    assert sum(statuses.values()) >= 50
    assert {s for (_, s) in statuses} >= {200, 400}
