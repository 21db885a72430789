"""The CTC recognizer's own pieces: log-mel features against librosa, the FSDD digit strings
(seeded, split-clean), the CTC loss and prefix beam search against brute force, bad audio, and a
tiny model that learns tone sequences. The shared lifecycle (train/resume/export/runtime) is in
tests/test_lifecycle.py."""

from __future__ import annotations

import itertools
import math
import wave

import numpy as np
import pytest
from conftest import train_tiny_ctc

from rnnzoo.apps.speech_recognition.data import (
    DataConfig,
    FeatureParams,
    load_speech,
    log_mel,
    mel_filterbank,
    read_wav,
    write_wav,
)
from rnnzoo.engines.ctc import ctc_greedy_decode, ctc_prefix_beam_search
from rnnzoo.errors import DataError
from rnnzoo.metrics import edit_distance, label_error_rate

RATE = 8000


def _params(**kw) -> FeatureParams:
    return FeatureParams.from_config(DataConfig(**kw))


def _chirp(seconds: float = 0.7, rate: int = RATE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    sig = 0.4 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.01 * rng.normal(size=t.shape)
    return sig.astype(np.float32)


# -- features --------------------------------------------------------------------------------------


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    p = _params()
    ours = mel_filterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax)
    theirs = librosa.filters.mel(sr=p.sample_rate, n_fft=p.n_fft, n_mels=p.n_mels,
                                 fmin=p.fmin, fmax=p.fmax, htk=False, norm="slaney")
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kw", [{}, {"sample_rate": 16000, "n_mels": 64, "hop_ms": 12.5}])
def test_log_mel_matches_librosa(kw):
    librosa = pytest.importorskip("librosa")
    p = _params(**kw)
    audio = _chirp(rate=p.sample_rate)
    ours = log_mel(audio, p)
    mel = librosa.feature.melspectrogram(
        y=audio.astype(np.float64), sr=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length,
        win_length=p.win_length, window="hann", center=True, pad_mode="constant", power=2.0,
        n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax, htk=False, norm="slaney")
    theirs = np.log(mel + 1e-6).T
    assert ours.shape == theirs.shape == (1 + len(audio) // p.hop_length, p.n_mels)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=2e-4)


def test_log_mel_of_a_gain_change_is_a_shift():
    """A louder copy only moves the log-mel by 2 log(gain) where the signal dominates the floor,
    which is why gain changes are a cheap, faithful augmentation."""
    p = _params()
    audio = _chirp()
    a, b = log_mel(audio, p), log_mel(audio * 2.0, p)
    loud = a > np.log(1e-2)
    np.testing.assert_allclose((b - a)[loud], 2 * math.log(2.0), atol=1e-3)


# -- WAV reading and bad audio ------------------------------------------------------------------


def _write_pcm(path, frames: np.ndarray, width: int, channels: int = 1, rate: int = RATE):
    """A PCM WAV of any sample width (the stdlib writes 24-bit, scipy does not)."""
    ints = np.round(frames * (2 ** (8 * width - 1) - 1)).astype("<i4")
    raw = b"".join(int(v).to_bytes(4, "little", signed=True)[:width] for v in ints.ravel())
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)


def test_read_wav_24_bit_stereo_and_resampling(tmp_path):
    sig = _chirp(0.2)
    _write_pcm(tmp_path / "a24.wav", sig, 3)
    audio, rate = read_wav(tmp_path / "a24.wav")
    assert rate == RATE and audio.dtype == np.float32
    np.testing.assert_allclose(audio, sig, atol=1e-5)

    stereo = np.stack([sig, np.zeros_like(sig)], axis=1)
    _write_pcm(tmp_path / "st.wav", stereo, 2, channels=2)
    mono, _ = read_wav(tmp_path / "st.wav")
    np.testing.assert_allclose(mono, sig / 2, atol=1e-4)

    write_wav(tmp_path / "hi.wav", _chirp(0.5, rate=16000), 16000)
    down, rate = read_wav(tmp_path / "hi.wav", RATE)
    assert rate == RATE and len(down) == 4000


def test_bad_audio_is_a_clear_error(tmp_path):
    (tmp_path / "notes.wav").write_text("not audio at all")
    with pytest.raises(DataError, match=r"notes\.wav: not a WAV file.*ffmpeg"):
        read_wav(tmp_path / "notes.wav")
    write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32), RATE)
    with pytest.raises(DataError, match=r"empty\.wav: the audio is empty"):
        read_wav(tmp_path / "empty.wav")
    with pytest.raises(DataError, match=r"missing\.wav: no such audio file"):
        read_wav(tmp_path / "missing.wav")


def test_transcripts_outside_the_alphabet_name_the_file(tmp_path):
    for name in ("a.wav", "b.wav", "c.wav"):
        write_wav(tmp_path / name, _chirp(0.2), RATE)
    (tmp_path / "transcripts.tsv").write_text("a.wav\t12\nb.wav\t3x\nc.wav\t21\n")
    with pytest.raises(DataError, match=r"b\.wav: transcript '3x'.*'x' outside the alphabet"):
        load_speech(tmp_path, DataConfig(alphabet="0123456789"), seed=0)
    (tmp_path / "transcripts.tsv").write_text("a.wav\t12\nb.wav 34\n")
    with pytest.raises(DataError, match=r"transcripts\.tsv, line 2: expected 'file<TAB>text'"):
        load_speech(tmp_path, DataConfig(), seed=0)
    (tmp_path / "transcripts.tsv").write_text("a.wav\t12\nnope.wav\t34\n")
    with pytest.raises(DataError, match=r"line 2: no such audio file .*nope\.wav"):
        load_speech(tmp_path, DataConfig(), seed=0)


# -- FSDD digit strings ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_fsdd(tmp_path_factory):
    """A small folder in the FSDD layout: 3 speakers x 10 digits x 12 recordings of short tone
    bursts (the real dataset is used by the preset, not by unit tests)."""
    root = tmp_path_factory.mktemp("fsdd")
    rec = root / "recordings"
    rec.mkdir()
    rng = np.random.default_rng(0)
    for speaker in ("ann", "bob", "cyd"):
        for digit in range(10):
            for index in range(12):
                t = np.arange(int(rng.uniform(0.1, 0.2) * RATE)) / RATE
                tone = 0.3 * np.sin(2 * np.pi * (300 + 150 * digit) * t)
                write_wav(rec / f"{digit}_{speaker}_{index}.wav", tone, RATE)
    return root


def _cfg(**kw) -> DataConfig:
    return DataConfig(**{"train_strings": 60, "dev_strings": 10, "test_strings": 20, **kw})


def test_digit_strings_are_deterministic_from_the_seed(fake_fsdd):
    a = load_speech(fake_fsdd, _cfg(), seed=1)
    b = load_speech(fake_fsdd, _cfg(), seed=2)  # the training seed does not move the strings
    c = load_speech(fake_fsdd, _cfg(string_seed=5), seed=1)
    for split in ("train", "dev", "test"):
        texts = [ex.text for ex in a.split(split)]
        assert texts == [ex.text for ex in b.split(split)]
        assert [ex.source for ex in a.split(split)] == [ex.source for ex in b.split(split)]
        assert texts != [ex.text for ex in c.split(split)]
    np.testing.assert_array_equal(a.test[3].audio(RATE), b.test[3].audio(RATE))
    lengths = {len(ex.text) for ex in a.train}
    assert min(lengths) >= 1 and max(lengths) <= 7 and len(lengths) > 3
    # Audio is the utterances plus silences: longer than their sum, each utterance present.
    ex = a.test[0]
    assert len(ex.audio(RATE)) >= sum(len(ex.bank.audio(i, RATE)) for i in ex.ids)


def _recordings(examples):
    return {name for ex in examples for name in ex.source.split("+")}


def test_official_split_keeps_test_recordings_out_of_training(fake_fsdd):
    data = load_speech(fake_fsdd, _cfg(), seed=0)
    index = lambda name: int(name.rsplit("_", 1)[1])  # noqa: E731
    assert all(index(n) < 5 for n in _recordings(data.test))
    assert all(5 <= index(n) < 10 for n in _recordings(data.dev))
    assert all(index(n) >= 10 for n in _recordings(data.train))
    assert len(data.isolated) == 3 * 10 * 5
    assert all(ex.path.stem.endswith(tuple(f"_{i}" for i in range(5))) for ex in data.isolated)


def test_speaker_held_out_split(fake_fsdd):
    data = load_speech(fake_fsdd, _cfg(held_out_speaker="bob"), seed=0)
    assert {n.split("_")[1] for n in _recordings(data.test)} == {"bob"}
    assert "bob" not in {n.split("_")[1] for n in _recordings(data.train + data.dev)}
    assert {ex.path.stem.split("_")[1] for ex in data.isolated} == {"bob"}
    with pytest.raises(DataError, match="'zed' is not a speaker"):
        load_speech(fake_fsdd, _cfg(held_out_speaker="zed"), seed=0)


# -- CTC loss and decoding against brute force ------------------------------------------------


def _collapse(path, blank=0):
    out = [c for k, c in enumerate(path) if k == 0 or c != path[k - 1]]
    return tuple(c for c in out if c != blank)


def _sequence_log_probs(log_probs):
    """log P(label sequence) for every sequence, by summing every alignment (C^T paths)."""
    T, C = log_probs.shape
    totals: dict[tuple, float] = {}
    for path in itertools.product(range(C), repeat=T):
        lp = sum(log_probs[t, c] for t, c in enumerate(path))
        key = _collapse(path)
        totals[key] = np.logaddexp(totals.get(key, -np.inf), lp)
    return totals


def _random_log_probs(rng, T, C):
    z = rng.normal(0, 1.5, (T, C))
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_ctc_loss_matches_brute_force():
    import keras

    from rnnzoo.layers.ctc import CTCLoss

    rng = np.random.default_rng(0)
    T, C = 5, 3
    lp = [_random_log_probs(rng, T, C) for _ in range(3)]
    targets = [(1, 2), (1, 1), (2,)]
    frames = [5, 5, 3]  # the third row is padded: its last two frames are zeros
    y_pred = np.zeros((3, T, C), np.float32)
    for i, (p, n) in enumerate(zip(lp, frames)):
        y_pred[i, :n] = p[:n]
    y_true = np.array([[1, 2], [1, 1], [2, -1]], np.int32)
    loss = CTCLoss(reduction=None)(y_true, keras.ops.convert_to_tensor(y_pred))
    expected = [-_sequence_log_probs(p[:n])[t] for p, n, t in zip(lp, frames, targets)]
    np.testing.assert_allclose(np.asarray(loss), expected, rtol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_prefix_beam_search_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    T, C = 5, 3
    lp = _random_log_probs(rng, T, C)
    totals = _sequence_log_probs(lp)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    # A beam wide enough to hold every prefix is exact: the same sequences, the same scores.
    beams = ctc_prefix_beam_search(lp, beam_width=len(totals), prune=-np.inf)
    assert [tuple(p) for p, _ in beams[:3]] == [k for k, _ in ranked[:3]]
    for prefix, score in beams:
        assert score == pytest.approx(totals[tuple(prefix)], abs=1e-9)
    # The best path is the collapse of the per-frame argmax.
    assert tuple(ctc_greedy_decode(lp)) == _collapse(tuple(lp.argmax(1)))


def test_beam_search_can_beat_the_best_path():
    """The classic case: the most likely path is blank-blank, but 'a' wins over all of its
    alignments together."""
    lp = np.log(np.array([[0.46, 0.44, 0.10], [0.46, 0.44, 0.10]]))  # blank, a, b
    assert ctc_greedy_decode(lp) == []
    assert ctc_prefix_beam_search(lp, beam_width=4)[0][0] == [1]


def test_label_error_rate():
    assert edit_distance("12345", "1245") == 1
    assert edit_distance("", "12") == 2
    report = label_error_rate(["123", "45"], ["123", "55"])
    assert report["ler"] == pytest.approx(1 / 5) and report["string_accuracy"] == 0.5


# -- a tiny model learns tone sequences ------------------------------------------------------------


def test_tiny_model_learns_tone_sequences(tmp_path, capsys):
    from rnnzoo.evaluation import evaluate_reports
    from rnnzoo.families.ctc import synthetic_dataset

    data = synthetic_dataset(tmp_path / "data", n=240, seed=1)
    result = train_tiny_ctc(data, tmp_path / "run", conv_filters=16, units=24, epochs=12,
                            learning_rate=1e-2, warmup_steps=0, schedule="constant",
                            intra_op_threads=1)
    task = result.task
    loaded = task.load_data(data, seed=task.config.training.seed)
    report = evaluate_reports(task, loaded, "test", {"beam": 0})[0]  # best path
    assert report["ler"] < 0.15, report
    # transcribe on WAV paths agrees with the evaluation path
    paths = [ex.path for ex in loaded.test[:5]]
    assert task.transcribe(paths) == task.transcribe([ex.audio(RATE) for ex in loaded.test[:5]])
    # silence is handled: an empty transcript, not an error
    assert task.transcribe(np.zeros(4000, np.float32)) == [""]

    # the CLI verb: transcripts (JSON lines), the plot, and a clear error for a bad file
    import json

    from rnnzoo.cli import main

    png = tmp_path / "plot.png"
    capsys.readouterr()  # drop the training log
    code = main(["transcribe", "ctc_bigru", "--run", str(tmp_path / "run"), str(paths[0]),
                 str(paths[1]), "--json", "--plot", str(png), "--beam", "3"])
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [x["text"] for x in lines] == task.transcribe(paths[:2], beam_width=3)
    assert (tmp_path / "plot_0.png").stat().st_size > 1000 and (tmp_path / "plot_1.png").is_file()
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    assert main(["transcribe", "ctc_bigru", "--run", str(tmp_path / "run"),
                 str(tmp_path / "bad.wav")]) != 0
    assert "bad.wav: not a WAV file" in capsys.readouterr().err


# -- the shipped preset ---------------------------------------------------------------------------


def test_shipped_preset_keras_and_runtime_agree_on_real_recordings():
    """ctc_bilstm.fsdd through Keras and through its ONNX bundle (onnxruntime, numpy, scipy):
    identical transcripts on official test recordings and on a digit string built from them."""
    from conftest import shared_data
    from rnnzoo.export import runtime

    import rnnzoo
    from rnnzoo.presets import resolve_preset

    root = shared_data("speech_digits_fsdd")
    files = [root / "recordings" / f"{d}_{s}_{i}.wav"
             for d, s, i in ((7, "theo", 0), (3, "george", 2), (9, "lucas", 4), (0, "jackson", 1))]
    keras_asr = rnnzoo.from_preset("ctc_bilstm.fsdd")
    bundle = runtime.load(resolve_preset("ctc_bilstm.fsdd") / "onnx" / "fp32")
    data = keras_asr.load_data(root, seed=0)
    inputs = [*files, data.test[3].audio(RATE)]
    expected = ["7", "3", "9", "0", data.test[3].text]
    assert keras_asr.transcribe(inputs) == bundle.transcribe(inputs) == expected
    assert keras_asr.transcribe(inputs, beam_width=8) == bundle.transcribe(inputs, beam_width=8)
    # evaluate(inputs, references): the same report through Keras and the bundle
    refs = ["7", "3", "9", "1", data.test[3].text]  # one wrong reference: one edit
    keras_report, bundle_report = keras_asr.evaluate(inputs, refs), bundle.evaluate(inputs, refs)
    assert keras_report["ler"] == bundle_report["ler"] == pytest.approx(1 / sum(map(len, refs)))
    assert keras_report["string_accuracy"] == pytest.approx(0.8)
    with pytest.raises(DataError, match="5 audio inputs but 2 references"):
        bundle.evaluate(inputs, refs[:2])
