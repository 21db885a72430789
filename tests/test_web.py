"""``rnnzoo web`` (issue #38): presets as a static site on onnxruntime-web. The same fixed inputs
run through the site's ES module (rnnzoo.mjs) under Node and in the built page in headless
Chromium, and must give what the Python runtime gives: identical labels, tags, entities,
translations (greedy and beam search) and greedy text, the same sampled text for a seed (numpy's
generator is reproduced in JS), class probabilities and forecasts within 1e-4.
``?model=NAME&input=TEXT`` runs on load; the char LM's text appears piece by piece; entities are
highlighted; the forecast is plotted; docs/web.md's embedding example runs.

Needs ``node`` and ``cd rnnzoo/web/js && npm ci`` (onnxruntime-web), and for the page Playwright
and Debian's Chromium (as tests/test_serving.py's demo-page test); skips saying which is missing.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import math
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from conftest import SHARED_DATA, run_python, without_packages

import rnnzoo
from rnnzoo.presets import installed_presets
from rnnzoo.web import JS_DIR, WebBuildError, build_site, find_onnxruntime_web

SST2, CHARLM, TAGGER, SPA, ETT, MUSIC, NADE, SPEECH, BISPEECH = (
    "sentiment_bilstm.sst2", "charlm_lstm.shakespeare", "tagger_bilstm_crf.conll03",
    "translator_gru_attention.spa_eng", "forecaster_lstm.etth1", "music_lstm.jsb",
    "music_lstm_nade.jsb", "ctc_lstm_stream.fsdd", "ctc_bilstm.fsdd")
PRESETS = [SST2, CHARLM, TAGGER, SPA, ETT, MUSIC, NADE, SPEECH, BISPEECH]
PRIMER = "[[60, 64, 67], [62, 65, 69]]"  # a music primer: MIDI pitches per step
# A forecaster's window: 100 hourly rows (it reads the last 96), a daily cycle and a trend.
WINDOW = [round(17 + 9 * math.sin(2 * math.pi * t / 24) + 0.05 * t, 3) for t in range(100)]
TOLERANCE = 1e-4
BEAM_PARTS = "El perro de mi vecino ladra toda la noche."  # beam 3 is not greedy here
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

CASES = [
    (SST2, "a gorgeous film", {}),
    (SST2, "a tedious , joyless mess that never finds its footing .", {}),
    (SST2, "", {}),  # an empty text is one <unk>, as predict reads it
    (SST2, "Ça, c'est un FILM naïve — the co-writer’s best 2024 work!", {}),
    # 150 tokens: predict reads the first max_length (100), all positive; the rest is not
    (SST2, "a gorgeous , witty film . " * 17 + "a tedious , joyless , boring mess . " * 6, {}),
    (CHARLM, "ROMEO:", {"steps": 60, "temperature": 0}),
    (CHARLM, "KING HENRY:", {"steps": 40, "temperature": 0}),
    (CHARLM, "JULIET:", {"steps": 60, "temperature": 0.8, "seed": 7}),
    (TAGGER, "John Smith flew from London to Paris to meet Airbus executives .", {}),
    (TAGGER, "The U.S. economy grew 2,5 % in 1996 , Alan Greenspan told Congress in "
             "Washington on 12/03/1997 .", {}),
    (TAGGER, "😀 Angela Merkel and Müller’s co-founder met EU officials in Brussels .", {}),
    (TAGGER, "", {}),
    (SPA, "¿Dónde está la estación de tren?", {}),
    (SPA, "  Él no sabe  nada, ¡qué lástima!  ", {}),
    (ETT, json.dumps(WINDOW), {}),
    (ETT, ", ".join(map(str, WINDOW[::-1])), {}),  # plain numbers work too
    # Beam search: where it parts from greedy, where widths disagree, a beam that runs to
    # max_steps (the live beams then compete), unknown words.
    (SPA, BEAM_PARTS, {"beam": 3}),
    (SPA, "perro gato casa árbol libro mesa silla ventana puerta coche", {"beam": 5}),
    (SPA, "perro gato casa árbol libro mesa silla ventana puerta coche", {"beam": 16}),
    (SPA, "muy " * 20, {"beam": 4}),
    (SPA, "xyzzy qwerty", {"beam": 2}),
    # Music (int8, as the site ships it): independent keys and NADE (key by key), seeded.
    (MUSIC, "", {"steps": 64, "temperature": 1, "seed": 0}),
    (MUSIC, PRIMER, {"steps": 32, "temperature": 0}),
    (NADE, "", {"steps": 64, "temperature": 1, "seed": 0}),
    (NADE, PRIMER, {"steps": 64, "temperature": 1, "seed": 5, "top_p": 0.9}),
]
# The fp32 music bundles, where the wasm and x86 kernels agree to about 1e-6 (int8: see docs).
MUSIC_FP32_CASES = [
    (MUSIC, "", {"steps": 64, "temperature": 1, "seed": 0}),
    (MUSIC, PRIMER, {"steps": 64, "temperature": 0.8, "seed": 3}),
    (MUSIC, "[[48], [], [50, 55]]", {"steps": 48, "temperature": 1.3, "seed": 11, "top_p": 0.95}),
    (NADE, "", {"steps": 64, "temperature": 1, "seed": 0}),
    (NADE, PRIMER, {"steps": 64, "temperature": 0.7, "seed": 2}),
    (NADE, PRIMER, {"steps": 16, "temperature": 0}),
]


def _python_result(models: dict, name: str, text: str, options: dict) -> dict:
    """What the Python runtime (``from_preset(name, backend="onnx")``) returns, as JSON."""
    model = models[name]
    if name == SST2:
        labels, probs = model.predict([text])
        return {"label": labels[0], "probs": dict(zip(model.label_names, probs[0].tolist()))}
    if name == CHARLM:
        return {"text": model.generate(text, **options)}
    if name == SPA:
        return {"translation": model.translate(text, beam=options.get("beam"))}
    if name in (MUSIC, NADE):
        from rnnzoo.apps.music_generation.data import roll_to_pitches

        options = dict(options)
        roll = model.generate(options.pop("steps"), primer=json.loads(text) if text else None,
                              **options)
        return {"pitches": roll_to_pitches(roll), "steps_per_quarter": 1}
    if name == ETT:
        window = json.loads(text) if text.startswith("[") else [float(v) for v in text.split(",")]
        return {"forecast": model.forecast(window).tolist(), "targets": ["OT"],
                "history": [[v] for v in window[-model.lookback:]]}
    tagged = model.tag(text)[0]
    return {"tokens": tagged.tokens, "tags": tagged.tags,
            "entities": [e._asdict() for e in tagged.entities]}


def _assert_same(got: dict, want: dict, where: str, models: dict, case: tuple) -> None:
    if "probs" in want:
        assert got["label"] == want["label"], where
        assert set(got["probs"]) == set(want["probs"]), where
        for k, p in want["probs"].items():
            assert abs(got["probs"][k] - p) <= TOLERANCE, (where, k, got["probs"][k], p)
    elif "forecast" in want:
        assert (got["targets"], got["history"]) == (want["targets"], want["history"]), where
        diff = max(abs(a - b) for g, w in zip(got["forecast"], want["forecast"])
                   for a, b in zip(g, w))
        assert len(got["forecast"]) == len(want["forecast"]) and diff <= TOLERANCE, (where, diff)
    elif "pitches" in want and got != want:
        got = {k: v for k, v in got.items() if k != "midi_base64"}
        frames = [t for t, (a, b) in enumerate(zip(got["pitches"], want["pitches"])) if a != b]
        assert got == want, (f"{where}: {len(frames)} frames differ from Python's, the first "
                             f"at step {frames[:1]}: {got['pitches'][frames[0]] if frames else ''}"
                             f" where Python has {want['pitches'][frames[0]] if frames else ''}")
    elif "text" in want and got != want:
        name, prompt, _ = case
        i = next(i for i, (a, b) in enumerate(zip(got["text"], want["text"])) if a != b)
        model = models[name]  # say how close the two characters were where the texts part
        probs, _ = model.step(prompt + want["text"][:i], model.initial_state())
        p = dict(zip(model.vocabulary, probs.tolist()))
        pytest.fail(f"{where}: the text differs from character {i}: {got['text'][i]!r} "
                    f"(Python's p={p[got['text'][i]]:.6f}) where Python chose "
                    f"{want['text'][i]!r} (p={p[want['text'][i]]:.6f})")
    else:
        assert got == want, where


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, dict, list, dict]:
    """The site of the three presets, and the Python runtime's answers for CASES."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install nodejs npm)")
    try:
        find_onnxruntime_web()
    except WebBuildError as exc:
        pytest.skip(str(exc))
    missing = [n for n in PRESETS if n not in installed_presets()]
    if missing:
        pytest.skip(f"presets not installed: {', '.join(missing)} (pip install ./presets/...)")
    out = tmp_path_factory.mktemp("web") / "site"
    built = build_site(PRESETS, out)
    precision = {m["name"]: m["precision"] for m in built["models"]}
    models = {n: rnnzoo.from_preset(n, backend="onnx", precision=precision[n])
              for n in precision}
    want = [_python_result(models, *case) for case in CASES]
    return out, built, want, models


def _node(site_dir: Path, cases: list) -> subprocess.Popen:
    payload = site_dir.parent / "cases.json"
    payload.write_text(json.dumps([{"model": m, "input": i, "options": o} for m, i, o in cases]))
    with payload.open() as stdin:
        return subprocess.Popen(["node", "run.mjs", str(site_dir)], cwd=JS_DIR, text=True,
                                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def _serve(directory: Path) -> Iterator[str]:
    """``directory`` behind a plain static file server (Python's http.server) on loopback."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(site):
    """The site behind a plain static file server on loopback."""
    with _serve(site[0]) as base:
        yield base


@pytest.fixture(scope="module")
def music_fp32(site, tmp_path_factory):
    """A site of the fp32 music bundles, and the Python runtime's frames for MUSIC_FP32_CASES."""
    out = tmp_path_factory.mktemp("web-fp32") / "site"
    build_site([MUSIC, NADE], out, precision="fp32")
    models = {n: rnnzoo.from_preset(n, backend="onnx", precision="fp32") for n in (MUSIC, NADE)}
    return out, [_python_result(models, *case) for case in MUSIC_FP32_CASES], models


def test_site_layout(site):
    out, built, _, _ = site
    assert {m["name"]: m["precision"] for m in built["models"]} == {
        SST2: "int8", CHARLM: "int8", TAGGER: "fp32", SPA: "fp32", ETT: "fp32", MUSIC: "int8",
        NADE: "int8", SPEECH: "int8", BISPEECH: "int8"}  # int8 where shipped
    for name in ("index.html", "rnnzoo.mjs", "app.mjs", "models.json", "ort/ort.wasm.min.mjs",
                 "ort/ort-wasm-simd-threaded.wasm", "lib/Midi.js", "lib/Midi.LICENSE.md"):
        assert (out / name).is_file(), name
    from rnnzoo.export.bundle import bundle_digest
    for m in built["models"]:  # the bundles as exported, still verifiable
        assert bundle_digest(out / m["path"]) == m["digest"]
    assert json.loads((out / "models.json").read_text()) == built


def _midi_notes(path: Path) -> list[tuple]:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(path))
    return sorted((n.pitch, n.velocity, round(n.start, 6), round(n.end, 6), i.program)
                  for i in pm.instruments for n in i.notes)


def _assert_same_midi(data: str, want: dict, tmp: Path) -> None:
    """The module's MIDI file (@tonejs/midi) holds the notes rnnzoo's write_midi writes for the
    same frames (pitch, velocity, start, end, program), at the same tempo, and reads back (with
    rnnzoo's reader) as those frames."""
    from rnnzoo.apps.music_generation.data import pitches_to_roll, read_midi, write_midi

    ours, theirs = tmp / "web.mid", tmp / "python.mid"
    ours.write_bytes(base64.b64decode(data))
    roll = pitches_to_roll(want["pitches"], "frames")
    write_midi(roll, theirs, steps_per_quarter=want["steps_per_quarter"])
    assert _midi_notes(ours) == _midi_notes(theirs) and _midi_notes(ours)
    back = read_midi(ours, want["steps_per_quarter"]).tolist()
    assert back == roll[: len(back)].tolist() and not roll[len(back):].any()


def test_node_and_chromium_match_python(site, served, tmp_path):
    """The JS module under Node (onnxruntime-web's Node build) and in the page in headless
    Chromium, on the same inputs as the Python runtime."""
    out, _, want, models = site
    node = _node(out, CASES)  # runs while the browser works
    no_browser = _no_browser()
    try:
        page_results = [] if no_browser else _in_chromium(out, served, want, models)
    finally:
        stdout, stderr = node.communicate(timeout=180)
    assert node.returncode == 0, stderr[-2000:]
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert len(lines) == len(CASES), stderr[-2000:]
    for case, line, expected in zip(CASES, lines, want):
        assert "error" not in line, (case, line)
        _assert_same(line["result"], expected, f"node: {case}", models, case)
        if "pitches" in expected:
            _assert_same_midi(line["result"]["midi_base64"], expected, tmp_path)
    sampled = want[CASES.index((CHARLM, "JULIET:", {"steps": 60, "temperature": 0.8, "seed": 7}))]
    assert len(sampled["text"]) == 60
    beam = want[CASES.index((SPA, BEAM_PARTS, {"beam": 3}))]["translation"]
    assert beam != models[SPA].translate(BEAM_PARTS)  # the beam case tests more than greedy
    if no_browser:
        pytest.skip(f"Node matches Python; the page was not checked: {no_browser}")
    for case, got, expected in zip(CASES, page_results, want):
        _assert_same(got, expected, f"chromium: {case}", models, case)


def test_music_fp32_frames_match_python(music_fp32, tmp_path):
    """Seeded music, independent keys and NADE, at several temperatures, top_p and a primer:
    the same frames as the Python runtime on the fp32 bundles, under Node and in Chromium, and
    MIDI files with the notes rnnzoo's write_midi writes."""
    out, want, models = music_fp32
    node = _node(out, MUSIC_FP32_CASES)
    no_browser = _no_browser()
    try:
        page_results = [] if no_browser else _run_in_page(out, MUSIC_FP32_CASES)
    finally:
        stdout, stderr = node.communicate(timeout=180)
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert len(lines) == len(MUSIC_FP32_CASES), stderr[-2000:]
    for case, line, expected in zip(MUSIC_FP32_CASES, lines, want):
        assert "error" not in line, (case, line)
        _assert_same(line["result"], expected, f"node: {case}", models, case)
        _assert_same_midi(line["result"]["midi_base64"], expected, tmp_path)
    assert len({json.dumps(w) for w in want}) == len(want)  # every case is its own piece
    if no_browser:
        pytest.skip(f"Node matches Python; the page was not checked: {no_browser}")
    for case, got, expected in zip(MUSIC_FP32_CASES, page_results, want):
        _assert_same(got, expected, f"chromium: {case}", models, case)


def _wav_files(tmp: Path) -> list[Path]:
    """WAV files to transcribe, in the formats rnnzoo's reader takes: a synthetic signal (tone
    bursts under noise) and, where ../shared/data has the Free Spoken Digit Dataset, the digits
    3, 1, 4 spoken by three speakers; each at the models' 8 kHz (16-bit), at 44.1 kHz in stereo
    float32 and at 16 kHz in 24-bit PCM (resampled as Python resamples), and 11.025 kHz 8-bit;
    plus a file shorter than one feature hop (no frame, no text)."""
    import wave

    from scipy.io import wavfile
    from scipy.signal import resample_poly

    from rnnzoo.apps.speech_recognition.data import tone_bursts

    rng = np.random.default_rng(0)
    signals = {"tones": tone_bursts([300, 700, 1200, 2500], 8000)
               + rng.normal(0, 0.01, 4 * 2000).astype(np.float32)}
    fsdd = SHARED_DATA / "speech_digits_fsdd" / "recordings"
    if fsdd.is_dir():
        parts = [wavfile.read(fsdd / f)[1].astype(np.float32) / 32768
                 for f in ("3_jackson_1.wav", "1_theo_0.wav", "4_george_2.wav")]
        gap = np.zeros(1200, np.float32)
        signals["digits"] = np.concatenate([parts[0], gap, parts[1], gap, parts[2]])
    out = []
    for name, x in signals.items():
        x = np.clip(x, -0.99, 0.99)
        out.append(tmp / f"{name}.wav")
        wavfile.write(out[-1], 8000, np.round(x * 32767).astype(np.int16))
        out.append(tmp / f"{name}-44k-stereo.wav")
        y = resample_poly(x, 441, 80).astype(np.float32)
        wavfile.write(out[-1], 44100, np.stack([y, 0.5 * y], axis=1))
        out.append(tmp / f"{name}-16k-24bit.wav")
        y = np.round(resample_poly(x, 2, 1) * 0.9 * 2**23).astype("<i4").tobytes()
        with wave.open(str(out[-1]), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(3)
            w.setframerate(16000)
            w.writeframes(b"".join(y[i:i + 3] for i in range(0, len(y), 4)))
        out.append(tmp / f"{name}-11k-8bit.wav")
        y = resample_poly(x, 441, 320)
        wavfile.write(out[-1], 11025, np.round(y * 127 + 128).astype(np.uint8))
    out.append(tmp / "short.wav")
    wavfile.write(out[-1], 8000, np.zeros(40, np.int16))
    return out


def test_speech_node_and_chromium_match_python(site, served, tmp_path):
    """WAV files through the JS module (reading, resampling, log-mel features, the streaming
    model's stream graph chunk by chunk, the bidirectional one's model graph, best-path CTC):
    features within 1e-4 of the Python runtime's and the same transcripts, under Node and in
    Chromium; in the page, a chosen file and a link's &input=URL transcribed."""
    out, _, _, models = site
    speech = {n: rnnzoo.from_preset(n, backend="onnx", precision="int8")
              for n in (SPEECH, BISPEECH)}
    files = _wav_files(tmp_path)
    cases = [(m, base64.b64encode(f.read_bytes()).decode(), {"features": True})
             for m in speech for f in files]
    want = []
    for name, _, _ in cases:
        path = files[len(want) % len(files)]
        model = speech[name]
        feats = model.preprocessor.features(model.load_audio(path))
        want.append((model.transcribe(path)[0], feats))
    node = _node(out, cases)
    no_browser = _no_browser()
    try:
        page_results = [] if no_browser else _run_in_page(out, cases)
    finally:
        stdout, stderr = node.communicate(timeout=180)
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert len(lines) == len(cases), stderr[-2000:]
    results = [("node", line.get("result") or line) for line in lines]
    results += [("chromium", r) for r in page_results]
    for i, (where, got) in enumerate(results):
        text, feats = want[i % len(cases)]
        what = f"{where}: {cases[i % len(cases)][0]} on {files[i % len(files)].name}"
        assert "error" not in got, (what, got)
        assert got["text"] == text, what
        assert got["frames"] == len(feats) == len(got["features"]), what
        if len(feats):
            assert np.shape(got["features"]) == feats.shape, what
            assert np.abs(np.asarray(got["features"]) - feats).max() <= TOLERANCE, what
    heard = {f.name: text for f, (text, _) in zip(files, want)}  # the streaming model's
    assert heard["short.wav"] == ""  # no frame, no text
    if "digits.wav" in heard:  # the spoken digits are heard, in every format
        assert {t for n, t in heard.items() if n.startswith("digits")} == {"314"}, heard
    if no_browser:
        pytest.skip(f"Node matches Python; the page was not checked: {no_browser}")
    from playwright import sync_api

    (out / "clip.wav").write_bytes(files[0].read_bytes())
    done = "['done', 'error'].includes(document.body.dataset.state)"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{served}/?model={SPEECH}&input=clip.wav")
        page.wait_for_function(done, timeout=60_000)
        assert page.inner_text("#transcript") == want[0][0], page.inner_text("#error")
        if "digits.wav" in heard:  # a longer recording: its transcript grows on the page
            from scipy.io import wavfile

            rate, digits = wavfile.read(tmp_path / "digits.wav")
            wavfile.write(out / "long.wav", rate, np.tile(digits, 10))
            page.add_init_script("""window.seen = []; setInterval(() => {
                const t = document.getElementById('transcript');
                if (t) window.seen.push(t.textContent.length); }, 5);""")
            page.goto(f"{served}/?model={SPEECH}&input=long.wav")
            page.wait_for_function(done, timeout=60_000)
            text = page.inner_text("#transcript")
            assert text == speech[SPEECH].transcribe(out / "long.wav")[0] and len(text) >= 20
            growing = sorted({n for n in page.evaluate("window.seen") if 0 < n < len(text)})
            assert len(growing) >= 2, f"the transcript did not grow on the page: {growing}"
        page.select_option("#model", BISPEECH)
        page.set_input_files("#audio", str(files[1]))
        page.evaluate("document.body.dataset.state = ''")
        page.click("#run")
        page.wait_for_function(done, timeout=60_000)
        assert page.inner_text("#transcript") == want[len(files) + 1][0]
        assert json.loads(page.inner_text("#result"))["text"] == want[len(files) + 1][0]
        browser.close()
        # Recording: Chromium's fake microphone (a beep) for about a second, then the
        # transcript of what was recorded, as Python transcribes those samples at their rate.
        browser = p.chromium.launch(executable_path=_chromium(), args=[
            *CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
        page = browser.new_page()
        page.goto(f"{served}/?model={SPEECH}&input=clip.wav")
        page.wait_for_function(done, timeout=60_000)
        page.evaluate("document.body.dataset.state = ''")
        page.click("#record")
        page.wait_for_function("document.getElementById('record').textContent.startsWith('Stop')")
        page.wait_for_timeout(1500)
        page.click("#record")
        page.wait_for_function(done, timeout=60_000)
        assert page.inner_text("#error") == ""
        recorded = page.evaluate("(({samples, sample_rate}) => [Array.from(samples), sample_rate])"
                                 "(window.rnnzoo.recorded)")
        got = json.loads(page.inner_text("#result"))
        browser.close()
    samples, rate = np.asarray(recorded[0], np.float32), recorded[1]
    assert len(samples) / rate > 0.5 and np.abs(samples).max() > 0.01  # a second of a beep
    model = speech[SPEECH]
    assert got["text"] == model.transcribe(samples, sample_rate=rate)[0]
    assert got["frames"] == len(model.preprocessor.features(model.load_audio(samples, rate)))


def _run_in_page(site_dir: Path, cases: list) -> list[dict]:
    """``window.rnnzoo.run`` on every case in the site's page, in headless Chromium."""
    from playwright import sync_api

    errors: list[str] = []
    with _serve(site_dir) as base, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base)
        page.wait_for_function("document.body.dataset.state === 'ready'", timeout=60_000)
        results = [page.evaluate("([m, i, o]) => window.rnnzoo.run(m, i, o)", list(case))
                   for case in cases]
        browser.close()
    assert not errors, errors
    return results


def test_node_refuses_a_modified_bundle(site, tmp_path):
    """The module checks every file against SHA256SUMS and the pinned digest before it opens a
    graph, as the Python runtime does."""
    out, built, _, _ = site
    copy = tmp_path / "site"
    (copy / "models").mkdir(parents=True)
    shutil.copy(out / "rnnzoo.mjs", copy)
    sst2 = next(m for m in built["models"] if m["name"] == SST2)
    for name in ("edited", "repinned"):
        shutil.copytree(out / sst2["path"], copy / "models" / name)
    edited = copy / "models" / "edited" / "bundle.json"
    edited.write_text(edited.read_text().replace('"max_length": 100', '"max_length": 10'))
    (copy / "models.json").write_text(json.dumps({"models": [
        {**sst2, "name": "edited"}, {**sst2, "name": "repinned", "digest": "0" * 64}]}))
    node = _node(copy, [("edited", "a film", {}), ("repinned", "a film", {})])
    stdout, stderr = node.communicate(timeout=120)
    errors = [json.loads(line).get("error", "") for line in stdout.splitlines()]
    assert len(errors) == 2, stderr[-2000:]
    assert "bundle.json: sha256 mismatch" in errors[0]
    assert "not the pinned" in errors[1]


def _chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)


def _no_browser() -> str | None:
    """Why the page cannot be driven here (None: it can)."""
    if _chromium() is None:
        return "no Chromium to drive the page (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    return None


def _docs_example() -> str:
    """The HTML block of docs/web.md (its embedding example)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "web.md").read_text(encoding="utf-8")
    return text.split("```html\n", 1)[1].split("```", 1)[0]


def _in_chromium(site_dir: Path, base: str, want: list, models: dict) -> list[dict]:
    """Every case through ``window.rnnzoo.run`` in the page, after the links of the Done-when:
    the classifier's ``?model=&input=``, the char LM streaming, the tagger's highlights."""
    from playwright import sync_api

    from rnnzoo.apps.music_generation.data import note_segments, pitches_to_roll

    executable = _chromium()
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        done = "['done', 'error'].includes(document.body.dataset.state)"

        page.goto(f"{base}/?model={SST2}&input=a%20gorgeous%20film")
        page.wait_for_function(done, timeout=60_000)
        assert page.inner_text("#error") == ""
        assert json.loads(page.inner_text("#result"))["label"] == "positive"
        assert page.inner_text("#label") == "positive"
        assert "model files checked against their sha256" in page.inner_text("#about")

        results = [page.evaluate("([m, i, o]) => window.rnnzoo.run(m, i, o)", list(case))
                   for case in CASES]

        # The char LM through the page's controls: the text grows on the page while it is
        # generated (sampled by a timer, which runs only when the page yields) and ends as the
        # Python runtime's greedy text.
        page.select_option("#model", CHARLM)
        page.fill("#input", "ROMEO:")
        page.fill("#steps", "300")
        page.fill("#temperature", "0")
        page.evaluate("""() => { document.body.dataset.state = ''; window.seen = [];
            setInterval(() => {
            const g = document.getElementById('generated');
            if (g) window.seen.push(g.textContent.length); }, 5); }""")
        page.click("#run")
        page.wait_for_function(done, timeout=60_000)
        text = json.loads(page.inner_text("#result"))["text"]
        assert text == page.eval_on_selector("#generated", "e => e.textContent")
        assert text == models[CHARLM].generate("ROMEO:", steps=300, temperature=0)
        growing = sorted({n for n in page.evaluate("window.seen") if 0 < n < len(text)})
        assert len(growing) >= 3, f"the text did not appear piece by piece: {growing}"

        # The tagger: entity spans highlighted in the text, as its CRF decode found them.
        page.select_option("#model", TAGGER)
        page.fill("#input", CASES[8][1])
        page.evaluate("document.body.dataset.state = ''")
        page.click("#run")
        page.wait_for_function(done, timeout=60_000)
        marks = page.eval_on_selector_all("mark.ent", "els => els.map(e => [e.textContent, "
                                          "e.dataset.type])")
        assert marks == [[e["text"], e["type"]] for e in want[8]["entities"]] and marks
        assert page.inner_text("#tagged").startswith("John Smith")

        # The forecaster: the window it read and the forecast, plotted.
        page.select_option("#model", ETT)
        page.evaluate("document.body.dataset.state = ''")
        page.click("#run")  # the page's example window
        page.wait_for_function(done, timeout=60_000)
        assert page.eval_on_selector_all("#series polyline", "els => els.length") == 2
        assert "24 steps of OT after 96 given" in page.inner_text("#view")

        # The translator's beam width, from a link and from the page's control.
        beam = want[CASES.index((SPA, BEAM_PARTS, {"beam": 3}))]["translation"]
        page.goto(f"{base}/?model={SPA}&input={quote(BEAM_PARTS)}&beam=3")
        page.wait_for_function(done, timeout=60_000)
        assert page.inner_text("#translation") == beam
        assert page.is_visible("#beam") and not page.is_visible("#steps")
        page.fill("#beam", "0")
        page.evaluate("document.body.dataset.state = ''")
        page.click("#run")
        page.wait_for_function(done, timeout=60_000)
        assert page.inner_text("#translation") == models[SPA].translate(BEAM_PARTS) != beam

        # Music from a link: the piano roll, Play (a live AudioContext; the same notes rendered
        # offline are not silent and last the piece), the MIDI download.
        page.goto(f"{base}/?model={MUSIC}&input={quote(PRIMER)}&steps=16&seed=0")
        page.wait_for_function(done, timeout=60_000)
        piece = json.loads(page.inner_text("#result"))
        python = _python_result(models, MUSIC, PRIMER, {"steps": 16, "temperature": 1, "seed": 0})
        assert piece == python
        notes = note_segments(pitches_to_roll(piece["pitches"], "piece"))
        assert page.eval_on_selector_all("#roll rect", "els => els.length") == len(notes) > 0
        sound = page.evaluate("r => window.rnnzoo.render(r)", piece)
        assert sound["peak"] > 0.05 and sound["rms"] > 0.01, sound
        assert abs(sound["seconds"] - (16 * 0.6 + 0.4)) < 0.01, sound
        page.wait_for_function("document.getElementById('midi').href.startsWith('blob:')")
        with page.expect_download() as download:
            page.click("#midi")
        midi = Path(download.value.path()).read_bytes()
        assert download.value.suggested_filename == f"{MUSIC}.mid"
        assert base64.b64encode(midi).decode() == page.evaluate(
            "r => window.rnnzoo.midiBase64(r)", piece)
        _assert_same_midi(base64.b64encode(midi).decode(), python, site_dir.parent)
        page.click("#play")
        page.wait_for_function("document.getElementById('play').textContent.startsWith('Playing')")

        # docs/web.md's embedding example, as written there, in a page of its own.
        (site_dir / "embed.html").write_text(f"<!doctype html><body>{_docs_example()}</body>")
        page.goto(f"{base}/embed.html")
        greedy = want[CASES.index((CHARLM, "ROMEO:", {"steps": 60, "temperature": 0}))]["text"]
        shown = ("() => [...document.body.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)"
                 ".map(n => n.textContent).join('').trimStart()")
        page.wait_for_function(f"n => ({shown})().length >= n",
                               arg=len("positive 0.998: ") + 40, timeout=60_000)
        assert page.evaluate(shown) == f"positive 0.998: {greedy[:40]}"
        browser.close()
    assert not errors, errors
    return results


def test_a_missing_onnxruntime_web_says_how_to_install_it(tmp_path, monkeypatch):
    with pytest.raises(WebBuildError, match="not an onnxruntime-web package folder"):
        build_site([SST2], tmp_path / "site", onnxruntime_web=tmp_path)
    assert not (tmp_path / "site").exists()
    monkeypatch.delenv("RNNZOO_ONNXRUNTIME_WEB", raising=False)
    monkeypatch.setattr("rnnzoo.web.build.JS_DIR", tmp_path)  # as before `npm ci`
    with pytest.raises(WebBuildError, match=f"install it with: cd {tmp_path} && npm ci"):
        build_site([SST2], tmp_path / "site")


def test_a_missing_midi_library_says_how_to_install_it(tmp_path, monkeypatch):
    """@tonejs/midi is needed for a music model only, and its absence is named before the
    output folder is touched."""
    try:
        dist = find_onnxruntime_web()
    except WebBuildError as exc:
        pytest.skip(str(exc))
    if MUSIC not in installed_presets():
        pytest.skip(f"{MUSIC} is not installed (pip install ./presets/music_generation)")
    monkeypatch.setattr("rnnzoo.web.build.JS_DIR", tmp_path)  # npm ci not run there
    with pytest.raises(WebBuildError, match=f"@tonejs/midi is not installed.*cd {tmp_path} && "
                                            "npm ci"):
        build_site([SST2, MUSIC], tmp_path / "site", onnxruntime_web=dist.parent)
    assert not (tmp_path / "site").exists()
    build_site([SST2], tmp_path / "site", onnxruntime_web=dist.parent)
    assert not (tmp_path / "site" / "lib").exists()


def test_the_builder_needs_no_tensorflow(tmp_path):
    try:
        find_onnxruntime_web()
    except WebBuildError as exc:
        pytest.skip(str(exc))
    proc = run_python(without_packages(f"""
        import sys
        from rnnzoo.cli import main
        code = main(["web", "{SST2}", "--out", {str(tmp_path / "site")!r}])
        print(code, "tensorflow" in sys.modules)
    """))
    assert proc.stdout.split()[-2:] == ["0", "False"], proc.stderr[-2000:]


def test_cli_refuses_what_it_cannot_build(tmp_path, capsys):
    from rnnzoo.cli import main

    try:
        find_onnxruntime_web()
    except WebBuildError as exc:
        pytest.skip(str(exc))
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["web", SST2, "--out", str(tmp_path)]) == 2  # a folder that is not a site
    assert "not an rnnzoo site" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"
    if "protein_ss_bigru.cb6133" in installed_presets():
        assert main(["web", "protein_ss_bigru.cb6133", "--out", str(tmp_path / "s")]) == 2
        assert "no web runtime yet" in capsys.readouterr().err
    out = tmp_path / "site"
    assert main(["web", SST2, "--out", str(out), "--precision", "fp32"]) == 0
    assert main(["web", SST2, "--out", str(out)]) == 2  # a site is there: --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["web", SST2, "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "models.json").read_text())["models"][0]["precision"] == "int8"
