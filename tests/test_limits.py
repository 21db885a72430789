"""Limits on what one input may cost, checked before the work (issue 31), through the shipped
presets on onnxruntime (no TensorFlow): the 740-byte MIDI bomb, image pixels from the header,
audio seconds from the header, text length, steps, decode length, beam width and batch size;
numbers that are not numbers, with the position of the first; labels matched by name."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
import time
import tracemalloc
import types
import wave
import zlib
from pathlib import Path

import numpy as np
import pytest

import rnnzoo
from rnnzoo import limits
from rnnzoo.errors import DataError, RnnzooError
from rnnzoo.io.inputs import NonFiniteError, check_finite, first_bad_number, position, wav_seconds
from rnnzoo.limits import LimitError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def limited():
    """``limited(name=value)`` for one test; the previous limits come back afterwards."""
    saved = limits.current()
    yield limits.configure
    limits.configure(**dataclasses.asdict(saved))


_RUNTIMES: dict[str, object] = {}


def preset(name: str):
    """A shipped preset on onnxruntime, loaded once per test session."""
    if name not in _RUNTIMES:
        _RUNTIMES[name] = rnnzoo.from_preset(name, backend="onnx")
    return _RUNTIMES[name]


# == MIDI: length in seconds and frames before a piano roll is rendered ==========================
def midi_bomb(path: Path, resolution: int = 1, ticks: int = 9_900_000) -> Path:
    """88 notes each held ``ticks`` ticks (under pretty_midi's own limit of 1e7): a few hundred
    bytes that would render millions of piano-roll frames."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=120)
    inst = pretty_midi.Instrument(0)
    end = pm.tick_to_time(ticks)
    inst.notes = [pretty_midi.Note(velocity=80, pitch=p, start=0.0, end=end)
                  for p in range(21, 109)]
    pm.instruments.append(inst)
    pm.write(str(path))
    return path


def test_the_midi_bomb_is_refused_quickly_and_in_little_memory(tmp_path):
    bomb = midi_bomb(tmp_path / "bomb.mid")
    assert bomb.stat().st_size < 1000
    model = preset("music_lstm.jsb")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(LimitError, match="max_piano_roll_frames") as caught:
            model.generate(8, primer=bomb)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0, elapsed
    assert peak < 20 * 2**20, peak  # the roll alone would be 9.9 M x 88 bytes
    assert caught.value.limit == "max_piano_roll_frames" and caught.value.value > 9_000_000
    assert str(bomb) in str(caught.value) and "--limit max_piano_roll_frames=N" in str(
        caught.value)


def test_a_long_piece_is_refused_by_its_seconds_and_allowed_once_raised(tmp_path, limited):
    # 480 ticks per quarter: 20625 frames at JSB's one step per quarter (under the frame
    # limit), but 10312 s at 120 bpm.
    long = midi_bomb(tmp_path / "long.mid", resolution=480)
    model = preset("music_lstm.jsb")
    with pytest.raises(LimitError, match="max_midi_seconds") as caught:
        model.generate(2, primer=long)
    assert caught.value.maximum == 3600.0
    short = midi_bomb(tmp_path / "short.mid", resolution=480, ticks=480 * 16)  # 8 s, 16 frames
    assert model.generate(2, primer=short, seed=0).shape == (2, 88)
    limited(max_midi_seconds=1.0)
    with pytest.raises(LimitError, match="max_midi_seconds=1.0"):
        model.generate(2, primer=short)


def test_the_cli_refuses_the_midi_bomb_with_one_line(tmp_path):
    bomb = midi_bomb(tmp_path / "bomb.mid")
    proc = subprocess.run([sys.executable, "-m", "rnnzoo.cli", "generate", "music_lstm.jsb",
                           "--primer", str(bomb), "--steps", "8"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rnnzoo: error:"), proc.stderr[-2000:]
    assert "max_piano_roll_frames" in lines[0] and "Traceback" not in proc.stderr


def test_served_midi_and_wav_refusals_name_the_field_not_a_temporary_file(tmp_path, limited):
    import base64

    bomb = base64.b64encode(midi_bomb(tmp_path / "bomb.mid").read_bytes()).decode()
    with pytest.raises(LimitError, match=r"^instances\[0\]: primer_midi_base64: piano-roll"):
        preset("music_lstm.jsb").serve_predict([{"primer_midi_base64": bomb}], {})
    limited(max_audio_seconds=1.0)
    wav = base64.b64encode(write_wav(tmp_path / "a.wav", 2.0).read_bytes()).decode()
    with pytest.raises(LimitError, match=r"^instances\[0\]: seconds of audio: 2.0 is over"):
        preset("ctc_bilstm.fsdd").serve_predict([wav], {})


def test_midi_that_is_not_midi_is_a_data_error(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\xe7\x28")  # SMPTE time division
    with pytest.raises(DataError, match="SMPTE|not a MIDI file"):
        preset("music_lstm.jsb").generate(2, primer=bad)
    bad.write_bytes(b"not midi at all")
    with pytest.raises(DataError, match="not a MIDI file"):
        preset("music_lstm.jsb").generate(2, primer=bad)


# == images: pixels from the header, before decoding =============================================
def png_header(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` but which holds almost no pixel data:
    decoding it fails (truncated), so only a check made before decoding gives a LimitError."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [13000, 20000])  # 169 Mpx; 400 Mpx (over Pillow's own cap)
def test_a_huge_image_is_refused_from_its_header(tmp_path, side):
    from rnnzoo.data.captions import decode_image

    path = tmp_path / "huge.png"
    path.write_bytes(png_header(side, side))
    model = preset("captioner_lstm_attention.flickr8k_subset")
    with pytest.raises(LimitError, match="max_image_pixels") as caught:
        model.caption(path)
    assert caught.value.value == side * side
    with pytest.raises(LimitError, match="max_image_pixels"):
        decode_image(path.read_bytes(), "instances[0]")


def test_image_limit_applies_to_files_pillow_images_and_arrays(tmp_path, limited):
    from PIL import Image

    model = preset("captioner_lstm_attention.flickr8k_subset")
    path = tmp_path / "small.png"
    Image.new("RGB", (12, 10), (200, 10, 10)).save(path)
    assert isinstance(model.caption(path, max_length=3), str)
    limited(max_image_pixels=100)
    for image in (path, Image.open(path), np.zeros((10, 12, 3), np.uint8)):
        with pytest.raises(LimitError, match="120 is over the limit max_image_pixels=100"):
            model.caption(image)
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    limited(max_image_pixels=50_000_000)
    with pytest.raises(DataError, match="cannot decode the image"):
        model.caption(path)


def test_pixel_arrays_must_be_finite_and_rectangular():
    model = preset("captioner_lstm_attention.flickr8k_subset")
    pixels = np.zeros((4, 5, 3))
    pixels[2, 3, 1] = np.inf
    with pytest.raises(NonFiniteError, match="row 2, column 3, channel 1"):
        model.caption(pixels)
    with pytest.raises(DataError, match="expected a file path, a Pillow image or an array"):
        model.caption([[[1, 2, 3], [1, 2]]])  # one image whose rows differ in length


# == audio: seconds from the WAV header ==========================================================
def write_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return path


def test_audio_is_refused_by_its_header_before_decoding(tmp_path, limited, monkeypatch):
    from scipy.io import wavfile

    path = write_wav(tmp_path / "a.wav", 2.0)
    assert wav_seconds(path) == pytest.approx(2.0)
    model = preset("ctc_bilstm.fsdd")
    assert isinstance(model.transcribe(path)[0], str)
    limited(max_audio_seconds=1.0)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the samples were read before the duration was checked")

    monkeypatch.setattr(wavfile, "read", no_decoding)
    with pytest.raises(LimitError, match="max_audio_seconds=1.0") as caught:
        model.transcribe(path)
    assert caught.value.value == pytest.approx(2.0)
    monkeypatch.undo()
    with pytest.raises(LimitError, match="max_audio_seconds"):  # a signal: its length / rate
        model.transcribe(np.zeros(16000, np.float32), sample_rate=8000)
    signal = np.zeros(800, np.float32)
    signal[17] = np.nan
    limited(max_audio_seconds=600.0)
    with pytest.raises(NonFiniteError, match="sample 17"):
        model.transcribe(signal)


def test_wav_seconds_reads_only_what_is_there(tmp_path):
    path = write_wav(tmp_path / "b.wav", 1.0)
    data = bytearray(path.read_bytes())
    data[40:44] = struct.pack("<I", 0xFFFFFFF0)  # a data chunk claiming ~4 GB
    path.write_bytes(bytes(data))
    assert wav_seconds(path) == pytest.approx(1.0)
    (tmp_path / "c.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    assert wav_seconds(tmp_path / "c.wav") is None


# == text, steps, decode length, beam width, batch size ==========================================
def test_long_texts_are_refused_by_every_text_call(limited):
    limited(max_text_chars=40)
    long = "a " * 30
    calls = [
        (preset("translator_gru_attention.spa_eng").translate, (long,)),
        (preset("sentiment_bilstm.sst2").predict, ([long],)),
        (preset("tagger_bilstm_crf.conll03").tag, ([long],)),
        (preset("tagger_bilstm_crf.conll03").tag_tokens, ([["ab"] * 30],)),
        (preset("charlm_lstm.shakespeare").generate, (long,)),
    ]
    for call, args in calls:
        with pytest.raises(LimitError, match="max_text_chars=40"):
            call(*args)
    assert preset("sentiment_bilstm.sst2").predict(["a fine film"]).labels


def test_decoding_and_generation_costs_are_refused_before_any_work():
    translator = preset("translator_gru_attention.spa_eng")
    captioner = preset("captioner_lstm_attention.flickr8k_subset")
    cases = [
        (lambda: translator.translate("hola", max_length=1_000_000), "max_decode_length"),
        (lambda: translator.translate("hola", beam=100), "max_beam_width"),
        (lambda: translator.translate("hola", sampler="beam", width=1000), "max_beam_width"),
        (lambda: captioner.caption(np.zeros((8, 8, 3), np.uint8), max_length=10**6),
         "max_decode_length"),
        (lambda: preset("charlm_lstm.shakespeare").generate("A", steps=10**9),
         "max_generation_steps"),
        (lambda: preset("music_lstm.jsb").generate(10**9), "max_generation_steps"),
        (lambda: preset("music_lstm.jsb").generate(2, num_samples=10**6), "max_batch_size"),
        (lambda: preset("ctc_bilstm.fsdd").transcribe(np.zeros(800, np.float32),
                                                      beam_width=10**6), "max_beam_width"),
    ]
    for call, limit in cases:
        start = time.perf_counter()
        with pytest.raises(LimitError) as caught:
            call()
        assert caught.value.limit == limit, (limit, caught.value)
        assert time.perf_counter() - start < 1.0, limit
        assert f"--limit {limit}=N" in str(caught.value)


# == finite numbers, by position ================================================================
def test_forecast_windows_hold_numbers_the_model_can_compute_with():
    model = preset("forecaster_lstm.etth1")
    cols = model.preprocessor.columns
    window = np.zeros((model.lookback, len(cols)))
    assert model.forecast(window).shape[0] == model.horizon
    for value, what in ((1e308, "is 1e+308, outside the float32 range"),
                        (np.nan, "is not a finite number (nan)"),
                        (-np.inf, "is not a finite number (-inf)")):
        bad = window.copy()
        bad[5, len(cols) - 1] = value
        with pytest.raises(NonFiniteError, match=f"row 5, column '{cols[-1]}'") as caught:
            model.forecast(bad)
        assert what in str(caught.value) and caught.value.index == (5, len(cols) - 1)
    esn = preset("esn_forecaster.mackey_glass")  # std 0.23: a float32 value, an inf z-score
    batch = np.zeros((2, esn.lookback, 1))
    batch[1, 3, 0] = 3e38
    with pytest.raises(NonFiniteError, match=r"window 1, row 3, column 'x' is 1\.3\d*e\+39, "
                                             "outside the float32 range"):
        esn.forecast(batch)
    refs = np.zeros((1, model.horizon, len(model.preprocessor.targets)))
    refs[0, 2, 0] = np.nan
    with pytest.raises(NonFiniteError, match="window 0, step 2"):
        model.evaluate(window[None], refs)


def test_v2_tensors_name_the_first_value_that_is_not_a_finite_float32():
    from rnnzoo.serving.config import ServeError
    from rnnzoo.serving.v2 import v2_feeds

    model = types.SimpleNamespace(name="f", runtime=preset("forecaster_lstm.etth1"))
    spec = model.runtime.sessions["model"].get_inputs()[0]
    cols = len(model.runtime.preprocessor.columns)
    data = [[[0.0] * cols for _ in range(4)]]
    data[0][2][cols - 1] = 1e308
    body = {"inputs": [{"name": spec.name, "datatype": "FP32", "shape": [1, 4, cols],
                        "data": data}]}
    with pytest.raises(ServeError, match=rf"index \[0, 2, {cols - 1}\] is 1e\+308, outside "
                                         "the FP32 range") as caught:
        v2_feeds(model, body)
    assert caught.value.status == 400
    data[0][2][cols - 1] = 0.5
    graph, feeds, _ = v2_feeds(model, body)
    assert feeds[spec.name].dtype == np.float32


def test_music_frames_and_sequence_features_name_the_bad_value():
    from rnnzoo.apps.long_dependency.data import features

    roll = np.zeros((3, 88))
    roll[1, 5] = np.nan
    with pytest.raises(DataError, match=r"primer: step 1, key 5 \(MIDI 26\) is nan"):
        preset("music_lstm.jsb").generate(2, primer=roll)
    x = np.zeros((2, 3, 2))
    x[1, 2, 0] = 1e308
    with pytest.raises(NonFiniteError, match="sequence 1, step 2, feature 0 is 1e\\+308"):
        features("adding", x)


def test_check_finite_and_positions():
    assert first_bad_number(np.array([1, 2])) is None
    assert first_bad_number(np.array([1.0, 1e39, np.nan])) == ((1,), 1e39)
    assert first_bad_number(np.array([1.0, 1e39]), dtype=None) is None
    assert position((2, 1), names=["a", "b"]) == "row 2, column 'b'"
    assert position((1, 2, 3, 4)) == "index (1, 2, 3, 4)"
    with pytest.raises(NonFiniteError, match="index 1 is 1e\\+39, outside the float32"):
        check_finite([0.0, 1e39], "x")


# == labels by name ============================================================================
def test_file_labels_are_matched_by_name_and_unknown_ones_refused(tmp_path):
    from rnnzoo.apps._classification import compare_on_data, split_report
    from rnnzoo.evaluation import reader_task
    from rnnzoo.presets.resolve import resolve_preset

    directory = resolve_preset("sentiment_bilstm.sst2")
    directory = directory[0] if isinstance(directory, tuple) else directory
    task = reader_task(directory)
    model = preset("sentiment_bilstm.sst2")
    assert model.label_names == ["negative", "positive"]
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\na wonderful and moving film .,positive\nit is a film .,neutral\n")
    with pytest.raises(DataError, match="label 'neutral' is not a class of this model"):
        compare_on_data(task, model, model, bad, ["accuracy"])  # export's int8 gate
    # Only 'positive' in the file: numbered 0 by the file, class 1 of the model. By position
    # every prediction of 'positive' would count as wrong.
    good = tmp_path / "good.csv"
    good.write_text("text,label\n" + "".join(
        f"{t},positive\n" for t in ("a wonderful and moving film .", "a delight from start "
                                    "to finish .", "brilliant and funny and warm .")))
    found = compare_on_data(task, model, model, good, ["accuracy"])
    assert found["fp32"] == 1.0 and found["examples"] >= 1
    data = task.load_data(good, seed=0)
    assert data.label_names == ["positive"]  # the file's class 0
    report = split_report(model, data, "all", None)
    assert report["accuracy"] == 1.0 and report["num_examples"] == 3, report


def test_tagger_refuses_entity_types_it_does_not_know():
    tagger = preset("tagger_bilstm_crf.conll03")
    with pytest.raises(DataError, match=r"entity type\(s\) \['SPORT'\]"):
        tagger.evaluate([["John", "plays", "golf"]], [["B-PER", "O", "B-SPORT"]])
    report = tagger.evaluate([["John", "lives", "here"]], [["B-PER", "O", "O"]])
    assert 0.0 <= report["f1"] <= 1.0


def test_limit_errors_are_typed_for_the_cli_and_the_server():
    error = LimitError("max_beam_width", 100, 64, "beam")
    assert isinstance(error, RnnzooError) and isinstance(error, ValueError)
    assert str(error).startswith("beam: 100 is over the limit max_beam_width=64")


def test_a_bundle_graph_with_an_out_of_range_constant_is_a_typed_error(tmp_path):
    """Each Slice bound of ``model.onnx`` set out of range in turn (checksums switched off):
    onnxruntime refuses the graph, or it runs and returns no forecast; either is a typed error
    (once an IndexError from the slicing after the graph)."""
    import shutil

    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper
    from rnnzoo.export.runtime import load

    source = Path(preset("esn_forecaster.mackey_glass").path)
    original = onnx.load(source / "model.onnx")
    damaged = 0
    for k, tensor in enumerate(original.graph.initializer):
        value = numpy_helper.to_array(tensor)
        if value.dtype.kind not in "iu" or not value.size or not any(
                w in tensor.name for w in ("starts", "ends")):  # the Slice bounds
            continue
        bundle = tmp_path / f"b{k}"
        shutil.copytree(source, bundle)
        graph = onnx.load(bundle / "model.onnx")
        edited = value.copy()
        edited.flat[0] = 2**30
        graph.graph.initializer[k].CopyFrom(numpy_helper.from_array(edited, tensor.name))
        onnx.save(graph, bundle / "model.onnx")
        try:
            runtime = load(bundle, verify=False)
            runtime.forecast(np.zeros((runtime.lookback, 1)))
        except RnnzooError as exc:
            damaged += "the model's graph is damaged" in str(exc)
    assert damaged >= 1


def test_a_series_file_value_float32_cannot_hold_names_its_line(tmp_path, limited):
    model = preset("forecaster_lstm.etth1")
    rows = ["date,OT"] + [f"2020-01-{1 + i // 24:02d} {i % 24:02d}:00:00,{v}" for i, v in
                          enumerate([10.0] * (model.lookback + 5) + [1e308])]
    path = tmp_path / "series.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=rf"line {model.lookback + 7}, column 'OT': 1e\+308 is "
                                        "outside the float32 range"):
        model.forecast_csv(path)
    limited(max_series_length=50)  # the reader stops at the limit
    with pytest.raises(LimitError, match="rows: 51 is over the limit max_series_length=50"):
        model.forecast_csv(path)


def test_batch_size_is_cut_to_the_limit_not_refused():
    """``batch_size`` only splits the work into model calls, so over ``max_batch_size`` it is
    cut (same results), and a limit below an internal default (translate's 64) still works."""
    import rnnzoo.limits as limits_module

    translator = preset("translator_gru_attention.spa_eng")
    texts = ["hola", "¿dónde está la estación?", "buenos días"]
    expected = translator.translate(texts)
    assert translator.translate(texts, batch_size=10**6) == expected
    old = limits_module.configure(max_batch_size=2)
    try:
        assert translator.translate(texts) == expected
        assert preset("sentiment_bilstm.sst2").predict(["a fine film"] * 3)[0] is not None
    finally:
        limits_module.configure(max_batch_size=old.max_batch_size)
