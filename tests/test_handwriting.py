"""Handwriting recognition's own behaviour: the ink readers (InkML with difference encodings,
IAM-OnDB XML, the npz/tsv form) round-trip and refuse malformed files with one typed error,
the features (equidistant resampling, height and position invariance, pen flags), the
training augmentation (seeded, shape-preserving, identity when off, never at evaluation), the
character language model and word error rate, and a streamed line equals the whole line.
Training, export and runtime parity of the entries are tests/test_lifecycle.py's; the shipped
preset's metric is tests/test_shipped_presets.py's."""

from __future__ import annotations

import numpy as np
import pytest

from rnnzoo.apps.handwriting_recognition.data import (
    Augmentation,
    DataConfig,
    FeatureParams,
    augment_ink,
    ink_features,
    line_height,
    load_handwriting,
    resample_stroke,
)
from rnnzoo.apps.handwriting_recognition.inference import as_lines
from rnnzoo.apps.handwriting_recognition.ink import (
    Ink,
    as_strokes,
    read_iam_xml,
    read_ink_file,
    read_inkml,
    read_npz,
    read_tsv,
    write_inkml,
)
from rnnzoo.engines.ctc import (
    CharNgramLM,
    ctc_prefix_beam_search,
    ctc_training_batches,
    score_transcripts,
)
from rnnzoo.errors import DataError
from rnnzoo.limits import LimitError

STROKES = [np.array([[0.0, 0.0], [10.0, 5.0], [20.0, 0.0]]),
           np.array([[30.0, -5.0], [30.0, 40.0]])]


def test_inkml_round_trip_and_difference_encoding(tmp_path):
    path = write_inkml(tmp_path / "a.inkml", STROKES, "hi there")
    ink = read_inkml(path)
    assert ink.text == "hi there" and len(ink.strokes) == 2
    for a, b in zip(ink.strokes, STROKES):
        np.testing.assert_array_equal(a, b)
    # Channels in another order (with time), first and second differences (InkML 1.0 §3.2).
    (tmp_path / "d.inkml").write_text(
        '<ink xmlns="http://www.w3.org/2003/InkML"><traceFormat><channel name="T"/>'
        '<channel name="Y"/><channel name="X"/></traceFormat>'
        "<traceGroup><trace>0 10 100, '1 '2 '1, 1 2 1, \"0\"1\"0</trace></traceGroup>"
        "<trace>5 7 8</trace></ink>")
    ink = read_ink_file(tmp_path / "d.inkml")
    np.testing.assert_array_equal(ink.strokes[0], [[100, 10], [101, 12], [102, 14], [103, 17]])
    np.testing.assert_array_equal(ink.strokes[1], [[8, 7]])
    signs = write_inkml(tmp_path / "s.inkml", [np.array([[0.0, 0.0]])])
    signs.write_text(signs.read_text().replace("0 0", "3-5, '1-1"))
    # A qualifier applies to its own value: here x is a difference, y explicit.
    np.testing.assert_array_equal(read_inkml(signs).strokes[0], [[3, -5], [4, -1]])
    assert ink.text == ""


def test_iam_xml_npz_and_tsv_readers(tmp_path):
    (tmp_path / "l.xml").write_text(
        '<?xml version="1.0"?><WhiteboardCaptureSession><StrokeSet>'
        '<Stroke colour="black"><Point x="1" y="2" time="0.1"/><Point x="3" y="4" time="0.2"/>'
        '</Stroke><Stroke><Point x="5" y="6" time="0.3"/></Stroke></StrokeSet>'
        '<Transcription><TextLine text="ab"/></Transcription></WhiteboardCaptureSession>')
    ink = read_ink_file(tmp_path / "l.xml")
    assert read_iam_xml(tmp_path / "l.xml").source == ink.source
    assert ink.text == "ab" and [s.tolist() for s in ink.strokes] == [[[1, 2], [3, 4]], [[5, 6]]]
    xy = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 9]], np.int16)
    np.savez(tmp_path / "s.npz", ids=np.array(["f-01", "f-02"]), texts=np.array(["ab", "c"]),
             offsets=np.array([0, 3, 5]), xy=xy, stroke_end=np.array([0, 1, 1, 0, 1], np.uint8))
    lines = read_npz(tmp_path / "s.npz")
    assert [ln.text for ln in lines] == ["ab", "c"]
    assert [len(s) for s in lines[0].strokes] == [2, 1] and lines[1].num_points == 2
    (tmp_path / "s.tsv").write_text("line_id\tform_id\tn_points\ttext\nf-01\tf\t3\tab\n"
                                    "f-02\tf\t2\tc\n")
    assert [ln.text for ln in read_tsv(tmp_path / "s.tsv")] == ["ab", "c"]
    data = load_handwriting(tmp_path / "s.npz", DataConfig(dev_fraction=0.0,
                                                           test_fraction=0.0), 0)
    assert len(data.split("all")) == 2 and data.alphabet == "abc"
    # One call reads files, strokes, and lists of both.
    assert len(as_lines([str(tmp_path / "l.xml"), STROKES, tmp_path / "s.npz"])) == 4
    assert len(as_lines(STROKES)) == 1


@pytest.mark.parametrize("name, content, match", [
    ("bad.inkml", "<ink><trace>1 2, 3</trace></ink>", "point 2 has 1 values"),
    ("bad2.inkml", "<ink><trace>1 2, 3 x</trace></ink>", "'x' is not a number"),
    ("bad3.inkml", "<ink><trace>1 2 3, 3 4 5</trace></ink", "not well-formed XML"),
    ("empty.inkml", "<ink><annotation type='truth'>a</annotation></ink>", "no <trace>"),
    ("root.inkml", "<svg><trace>1 2</trace></svg>", "IAM-OnDB line XML"),
    ("chan.inkml", '<ink><traceFormat><channel name="X"/><channel name="T"/></traceFormat>'
                   "<trace>1 2</trace></ink>", "needs X and Y"),
    ("w.inkml", '<ink><traceFormat><channel name="X"/><channel name="Y"/></traceFormat>'
                "<trace>1 2 3</trace></ink>", "traceFormat has 2 channels"),
    ("iam.xml", "<StrokeSet><Stroke><Point x='1'/></Stroke></StrokeSet>", "numeric x and y"),
    ("nan.xml", "<StrokeSet><Stroke><Point x='nan' y='1'/></Stroke></StrokeSet>", "finite"),
    ("pic.png", "PNG", "unknown ink file type"),
])
def test_malformed_ink_files_give_one_typed_error(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=match):
        read_ink_file(tmp_path / name)


def test_malformed_npz_tsv_and_strokes(tmp_path):
    np.savez(tmp_path / "x.npz", ids=np.array(["a"]), texts=np.array(["t"]))
    with pytest.raises(DataError, match="missing array"):
        read_npz(tmp_path / "x.npz")
    (tmp_path / "y.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable npz"):
        read_npz(tmp_path / "y.npz")
    np.savez(tmp_path / "z.npz", ids=np.array(["a"]), texts=np.array(["t"]),
             offsets=np.array([0, 5]), xy=np.zeros((3, 2)), stroke_end=np.zeros(3))
    with pytest.raises(DataError, match="inconsistent arrays"):
        read_npz(tmp_path / "z.npz")
    np.savez(tmp_path / "z.npz", ids=np.array(["a"]), texts=np.array(["t"]),
             offsets=np.array([0, 3]), xy=np.zeros((3, 2)), stroke_end=np.zeros(3))
    (tmp_path / "z.tsv").write_text("line_id\tform_id\tn_points\ttext\nb\tf\t3\tt\n")
    with pytest.raises(DataError, match="does not match"):
        read_tsv(tmp_path / "z.tsv")
    for bad, match in [([], "expected a list of strokes"), ([np.zeros((3, 4))], "shape"),
                       ([[[0, 0], [np.inf, 1]]], "finite"), ("abc", "expected a list")]:
        with pytest.raises(DataError, match=match):
            as_strokes(bad)
    with pytest.raises(LimitError, match="max_ink_points"):
        as_strokes([np.zeros((300_000, 2))])


def test_features_resample_equidistant_and_invariant():
    p = resample_stroke(np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]), 1.0)
    steps = np.sqrt((np.diff(p, axis=0) ** 2).sum(axis=1))
    assert len(p) == 21 and np.allclose(steps[:-1], 1.0, atol=0.3)  # the corner is cut
    assert len(resample_stroke(np.array([[5.0, 5.0], [5.0, 5.0]]), 1.0)) == 1  # a dot
    params = FeatureParams(0.1, "line", 4.0)
    rng = np.random.default_rng(0)
    strokes = [np.cumsum(rng.normal(0, 3, (40, 2)), axis=0) + [20 * k, 0] for k in range(3)]
    f = ink_features(strokes, params)
    # Scale and position do not change the features (height unit and median reference).
    g = ink_features([3.0 * s + [100.0, -50.0] for s in strokes], params)
    np.testing.assert_allclose(f, g, atol=1e-9)
    starts = np.flatnonzero(f[:, 2])
    ends = np.flatnonzero(f[:, 3])
    assert len(starts) == 3 and starts[0] == 0 and (ends[:-1] + 1 == starts[1:]).all()
    assert np.abs(f[:, :2]).max() <= 4.0  # pen-up jumps clipped to max_jump
    # y grows downward in the ink and upward in the features.
    up = ink_features([np.array([[0.0, 10.0], [0.0, 0.0]])], FeatureParams(1.0, "fixed", 4.0),
                      height=10.0)
    assert up[1, 1] == pytest.approx(1.0) and up[1, 4] == pytest.approx(1.0)
    assert line_height([np.array([[0.0, 3.0], [10.0, 3.0]])]) == pytest.approx(2.5)


def test_augment_ink_seeded_identity_and_shapes():
    rng = np.random.default_rng(3)
    strokes = [np.cumsum(rng.normal(0, 3, (n, 2)), axis=0) + [25 * k, 0]
               for k, n in enumerate((30, 1, 12))]
    off = Augmentation()
    assert not off.active and not Augmentation.from_config(DataConfig()).active
    draws = np.random.default_rng(0)
    same = augment_ink(strokes, draws, off)
    assert all(a is b for a, b in zip(same, strokes))
    assert draws.integers(1 << 30) == np.random.default_rng(0).integers(1 << 30)  # no draw
    aug = Augmentation(stretch=0.2, shear=0.3, rotate=5.0, scale=0.1, jitter=0.02)
    a = augment_ink(strokes, np.random.default_rng(7), aug)
    b = augment_ink(strokes, np.random.default_rng(7), aug)
    c = augment_ink(strokes, np.random.default_rng(8), aug)
    assert [s.shape for s in a] == [s.shape for s in strokes]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.allclose(x, y) for x, y in zip(a, c))
    # Alone, a shear keeps every y and a rotation every distance between points.
    sheared = augment_ink(strokes, np.random.default_rng(1), Augmentation(shear=0.5))
    assert all(np.allclose(x[:, 1], y[:, 1]) for x, y in zip(sheared, strokes))
    assert not all(np.allclose(x, y) for x, y in zip(sheared, strokes))
    turned = augment_ink(strokes, np.random.default_rng(1), Augmentation(rotate=10.0))
    d = lambda s: np.linalg.norm(np.diff(s, axis=0), axis=1)  # noqa: E731
    assert all(np.allclose(d(x), d(y)) for x, y in zip(turned, strokes))
    params = FeatureParams(0.1, "line", 4.0)
    assert ink_features(a, params).shape[1] == ink_features(strokes, params).shape[1]
    # A whole-line scale is invisible to height: line features (the line's height the unit).
    scaled = augment_ink(strokes, np.random.default_rng(1), Augmentation(scale=0.3))
    np.testing.assert_allclose(ink_features(scaled, params), ink_features(strokes, params),
                               atol=1e-9)


def test_augmentation_only_in_training_batches(monkeypatch):
    from rnnzoo.apps.handwriting_recognition import model as hw_model
    from rnnzoo.registry import create_model

    rng = np.random.default_rng(2)
    lines = [Ink(as_strokes([np.cumsum(rng.normal(0, 5, (int(rng.integers(5, 40)), 2)), axis=0)
                             + [40 * k, 0] for k in range(3)]), "ab c"[: 1 + i % 4])
             for i in range(10)]
    task = create_model("handwriting_bilstm_ctc", units=8, num_layers=1, conv_filters=8,
                        num_labels=4, alphabet="abc ", augment_shear=0.4,
                        augment_stretch=0.2, augment_jitter=0.02)
    plain = create_model("handwriting_bilstm_ctc", units=8, num_layers=1, conv_filters=8,
                         num_labels=4, alphabet="abc ")
    assert plain.augmenter(lines) is None
    for t in (task, plain):
        t.preprocessor.alphabet = "abc "
        t.preprocessor.fit(lines)
    feats = task.features_of(lines)
    labels = [task.preprocessor.encode(ln.text) for ln in lines]
    aug = task.augmenter(lines)

    def epochs(augment, n=2):
        make = ctc_training_batches(feats, labels, 4, False, 5, augment)  # fixed order
        return [[x for (x, _), _ in make()] for _ in range(n)]

    same = lambda a, b: all(x.shape == y.shape and np.array_equal(x, y)  # noqa: E731
                            for x, y in zip(a, b))
    first, again, off = epochs(aug), epochs(aug), epochs(None)
    # Seeded: the same seed gives the same copies; each epoch draws new ones; off: the
    # stored features.
    assert same(first[0], again[0]) and same(first[1], again[1])
    assert same(off[0], off[1]) and not same(first[0], first[1])
    assert not any(same([x], [y]) for x, y in zip(first[0], off[0]))
    batches = list(ctc_training_batches(feats, labels, 4, False, 5, aug)())
    for ((x, m), y), ((xo, _), yo) in zip(batches, ctc_training_batches(feats, labels, 4, False,
                                                                         5)()):
        assert x.shape[0] == xo.shape[0] and x.shape[2] == xo.shape[2] == 5
        np.testing.assert_array_equal(y, yo)  # the labels are the same lines'
        assert np.all(x[m == 0] == 0) and np.all(m.sum(axis=1) > 0)
    # Never at evaluation: recognizing and the dev features never call the augmentation.
    monkeypatch.setattr(hw_model, "augment_ink", lambda *a: pytest.fail("augmented"))
    assert task.recognize([ln.strokes for ln in lines[:3]]) == \
        task.recognize([ln.strokes for ln in lines[:3]])
    np.testing.assert_array_equal(task.features_of(lines[:2])[1],
                                  task.preprocessor.features(lines[1].strokes))
    with pytest.raises(pytest.fail.Exception):
        epochs(aug, 1)


def test_char_lm_and_word_error_rate():
    alphabet = " eht"
    lm = CharNgramLM.train(["the het the", "the the"], alphabet, order=3)
    for ctx in ("", "t", "th", "xyz"):
        total = sum(np.exp(lm.logprob(ctx, c)) for c in alphabet + "\n")
        assert total == pytest.approx(1.0)
    assert lm.logprob("th", "e") > lm.logprob("th", "t")
    assert CharNgramLM.from_json(lm.to_json()).logprob("t", "h") == lm.logprob("t", "h")
    with pytest.raises(DataError, match="not a character n-gram"):
        CharNgramLM.from_json("{}")
    # Frames where "h" and "e" are near ties: the acoustic best is "teh", the LM reads "the".
    lp = np.log(np.array([[0.0, 0.0, 0.0, 0.0, 1.0],  # blank, " ", e, h, t
                          [0.0, 0.0, 0.52, 0.48, 0.0],
                          [1.0, 0.0, 0.0, 0.0, 0.0],
                          [0.0, 0.0, 0.48, 0.52, 0.0]]) + 1e-9)
    plain = ctc_prefix_beam_search(lp, 8)[0][0]
    fused = ctc_prefix_beam_search(lp, 8, lm=lm, lm_weight=1.0, alphabet=alphabet)[0][0]
    text = lambda ids: "".join(alphabet[i - 1] for i in ids)  # noqa: E731
    assert text(plain) == "teh" and text(fused) == "the"
    report = score_transcripts(["the cat sat", "a b"], ["the cat sit", "a b"], "abcehist ")
    assert report["wer"] == pytest.approx(1 / 5) and report["reference_words"] == 5


@pytest.fixture(scope="module")
def stream_model():
    from rnnzoo.registry import create_model

    task = create_model("handwriting_lstm_stream", units=8, num_labels=4, alphabet="abc ")
    lines = [Ink(as_strokes([np.array([[0.0, 0.0], [30.0, 60.0], [60.0, 0.0]]),
                             np.array([[80.0, 10.0], [80.0, 90.0]])]), "ab c")]
    task.preprocessor.alphabet = "abc "
    task.preprocessor.fit(lines, unit=50.0)
    return task


def test_stream_equals_whole_line(stream_model):
    rng = np.random.default_rng(1)
    strokes = [np.cumsum(rng.normal(0, 8, (int(rng.integers(2, 30)), 2)), axis=0) + [40 * k, 0]
               for k in range(5)]
    s = stream_model.stream()
    texts = [s.step(st) for st in strokes]
    whole = stream_model.frame_log_probs([strokes])[0]
    pieces, state = [], {n: v for n, v in stream_model.initial_state().items()
                         if n.startswith("state_")}
    assert texts[-1] == stream_model.recognize([strokes])[0]
    assert texts[1] == stream_model.recognize([strokes[:2]])[0]
    pre = stream_model.preprocessor
    feats = pre.features(strokes)
    for a, b in [(0, 7), (7, 8), (8, len(feats))]:
        out = stream_model._stream_run({"features": feats[None, a:b], **state})
        pieces.append(out["log_probs"][0])
        state = {n: out[f"new_{n}"] for n in state}
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)
    # Two streams at once, strokes of different lengths.
    two = stream_model.stream(batch=2)
    assert two.step([strokes[0], strokes[1]]) == [texts[0],
                                                  stream_model.recognize([strokes[1:2]])[0]]
    with pytest.raises(DataError, match="one stroke"):
        two.step(strokes[0])


def test_preset_recognizes_an_inkml_validation_line(tmp_path):
    """The shipped preset on a validation line written as InkML, through the CLI (TF-free
    runtime); a malformed file is one line on stderr, exit 2."""
    import subprocess
    import sys
    from pathlib import Path

    from conftest import shared_data

    from rnnzoo.presets.resolve import list_presets

    if "handwriting_bilstm_ctc.iamondb" not in list_presets():
        pytest.skip("preset handwriting_bilstm_ctc.iamondb not installed")
    lines = read_npz(shared_data("handwriting_ctc", "iamondb_val1.npz"))
    ink = next(ln for ln in lines if ln.source.endswith(":a02-050-04"))
    path = write_inkml(tmp_path / "a02-050-04.inkml", ink.strokes, ink.text)
    (tmp_path / "bad.inkml").write_text("<ink><trace>1 2, 3 4 5</trace></ink>")
    cli = [str(Path(sys.executable).with_name("rnnzoo"))]
    out = subprocess.run([*cli, "recognize", "handwriting_bilstm_ctc.iamondb", str(path)],
                         capture_output=True, text=True, check=True).stdout
    text, source = out.rstrip("\n").split("\t")
    assert source == str(path)
    report = score_transcripts([ink.text], [text], " abcdefghijklmnopqrstuvwxyz")
    assert report["ler"] <= 0.25, (ink.text, text)
    bad = subprocess.run([*cli, "recognize", "handwriting_bilstm_ctc.iamondb",
                          str(tmp_path / "bad.inkml")], capture_output=True, text=True)
    assert bad.returncode == 2 and "point 2 has 3 values" in bad.stderr
    assert "Traceback" not in bad.stderr
    # The server's hook (drawing pad): strokes as lists of [x, y], the same transcript.
    import rnnzoo

    model = rnnzoo.from_preset("handwriting_bilstm_ctc.iamondb", backend="onnx")
    strokes = [s.tolist() for s in ink.strokes]
    assert model.serve_predict([{"strokes": strokes}], {"beam_width": 0}) == [{"text": text}]
    with pytest.raises(DataError, match="expected"):
        model.serve_predict([{"ink": strokes}], {})


@pytest.mark.slow
def test_drawing_pad_in_headless_chromium(tmp_path):
    """The demo page's drawing pad: a validation line's strokes replayed as mouse events on
    the canvas give the transcript the runtime gives for the strokes the page collected."""
    import shutil
    import socket
    import subprocess
    import sys
    import time

    from conftest import shared_data

    from rnnzoo.presets.resolve import list_presets

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium to drive the demo page (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright is not installed (pip install playwright)")
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    name = "handwriting_bilstm_ctc.iamondb"
    if name not in list_presets():
        pytest.skip(f"preset {name} not installed")
    lines = read_npz(shared_data("handwriting_ctc", "iamondb_val1.npz"))
    ink = next(ln for ln in lines if ln.source.endswith(":a02-050-04"))
    pts = np.concatenate(ink.strokes)
    lo, scale = pts.min(axis=0), 860.0 / np.ptp(pts[:, 0])  # fit the 900 x 200 canvas
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "rnnzoo.cli", "serve", name, "--port",
                             str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "server did not start"
                time.sleep(0.2)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/demo/{name}")
            page.wait_for_selector("#run:not([disabled])")
            assert page.is_visible("#ink-canvas") and not page.is_visible("#input")
            page.click("#run")
            assert "Write something" in page.inner_text("#error")
            box = page.locator("#ink-canvas").bounding_box()
            k = box["width"] / 900.0
            for stroke in ink.strokes:
                xy = (stroke - lo) * scale * 0.2 + [20, 20]  # 0.2: the line's height fits
                for i, (x, y) in enumerate(xy):
                    page.mouse.move(box["x"] + x * k, box["y"] + y * k)
                    if i == 0:
                        page.mouse.down()
                page.mouse.up()
            drawn = page.evaluate("ink.strokes")
            page.click("#run")
            page.wait_for_selector("#transcript")
            shown = page.inner_text("#transcript")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    import rnnzoo

    model = rnnzoo.from_preset(name, backend="onnx")
    assert len(drawn) == len(ink.strokes)
    assert shown == model.recognize([[np.array(s, float) for s in drawn]])[0]
    assert score_transcripts([ink.text], [shown], " abcdefghijklmnopqrstuvwxyz")["ler"] <= 0.35


def test_int8_convolution_is_static_and_calibrated_on_eval_lines(tmp_path):
    """With eval data the convolution front end is static int8 (QLinearConv, calibrated by
    recognizing eval lines the comparison does not score; dynamic ConvInteger cost the preset
    5.7% relative CER), and the CER comparison is recorded; without, dynamic int8."""
    import onnx
    from rnnzoo.export import runtime, to_onnx

    from rnnzoo.families.handwriting import TINY_OVERRIDES, synthetic_dataset
    from rnnzoo.registry import create_model

    data = synthetic_dataset(tmp_path / "data", n=60)
    task = create_model("handwriting_bilstm_ctc", **{
        **TINY_OVERRIDES, "model": {**TINY_OVERRIDES["model"], "conv_filters": 8,
                                    "conv_stride": 2}})
    task.adapt(task.load_data(data, 0))
    report = to_onnx(task, tmp_path / "b", quantize="int8", eval_data=data)
    static = runtime.load(tmp_path / "b-int8").manifest["quantization"]["static"]
    assert static["graphs"] == ["model"] and static["calibration_feeds"]["model"] > 0
    ops = {n.op_type for n in onnx.load(str(tmp_path / "b-int8" / "model.onnx")).graph.node}
    assert "QLinearConv" in ops and "ConvInteger" not in ops
    assert {"cer_fp32", "cer_int8"} <= set(report.int8)
    to_onnx(task, tmp_path / "d", quantize="int8")  # no data: dynamic, nothing to calibrate on
    assert "static" not in runtime.load(tmp_path / "d-int8").manifest["quantization"]
