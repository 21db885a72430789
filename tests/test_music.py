"""The music family's own behaviour: readers (.mat, JSON, MIDI files and folders), the frame NLL
of the published tables, Bernoulli sampling, MIDI/PNG/WAV output, a tiny model that learns a
chord progression and plays it back, and Keras vs the ONNX runtime on probabilities and sampled
frames. (Build, train, resume, export and the TF-free runtime of every entry are covered by
test_lifecycle.py.)"""

from __future__ import annotations

import math
import wave

import numpy as np
import pytest

import rnnzoo
from rnnzoo.apps.music_generation.cli import evaluate_reports, format_report
from rnnzoo.apps.music_generation.data import (
    NUM_KEYS,
    DataConfig,
    MusicData,
    load_music,
    note_segments,
    pitches_to_roll,
    read_json_rolls,
    read_mat,
    read_midi,
    roll_to_pitches,
    write_midi,
    write_wav,
)
from rnnzoo.apps.music_generation.inference import _MusicGenerator, frame_nll, sample_keys
from rnnzoo.errors import DataError
from rnnzoo.families.music import TINY_OVERRIDES, pattern_piece, synthetic_dataset

pretty_midi = pytest.importorskip("pretty_midi")


def random_roll(rng: np.random.Generator, t: int, density: float = 0.06) -> np.ndarray:
    roll = (rng.random((t, NUM_KEYS)) < density).astype(np.uint8)
    roll[:, [0, NUM_KEYS - 1]] = rng.random((t, 2)) < 0.3  # the range edges, A0 and C8
    return roll


def write_pm(path, notes, drums=(), program=0, resolution=220, tempo=120.0):
    """A MIDI file written with pretty_midi itself: ``notes`` as (pitch, start beat, end beat)."""
    pm = pretty_midi.PrettyMIDI(resolution=resolution, initial_tempo=tempo)
    beat = 60.0 / tempo
    for group, is_drum, prog in ((notes, False, program), (drums, True, 0)):
        if group:
            inst = pretty_midi.Instrument(program=prog, is_drum=is_drum)
            inst.notes += [pretty_midi.Note(80, p, s * beat, e * beat) for p, s, e in group]
            pm.instruments.append(inst)
    pm.write(str(path))
    return path


# -- readers ------------------------------------------------------------------------------------


def test_mat_reader_keeps_the_standard_splits(tmp_path):
    import scipy.io

    rng = np.random.default_rng(0)
    splits = {k: [random_roll(rng, t) for t in lengths] for k, lengths in
              (("traindata", (5, 3)), ("validdata", (4,)), ("testdata", (2, 6, 1)))}
    cells = {}
    for key, rolls in splits.items():
        cell = np.empty((1, len(rolls)), dtype=object)
        for i, r in enumerate(rolls):
            cell[0, i] = r
        cells[key] = cell
    path = tmp_path / "tiny.mat"
    scipy.io.savemat(path, cells)
    train, dev, test = read_mat(path)
    for got, want in ((train, splits["traindata"]), (dev, splits["validdata"]),
                      (test, splits["testdata"])):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == np.uint8 and np.array_equal(g, w)
    data = load_music(path, DataConfig(), seed=0)
    assert (data.num_train, data.num_dev, len(data.test)) == (2, 1, 3)
    assert len(data.split("all")) == 6 and data.benchmark is None

    scipy.io.savemat(tmp_path / "other.mat", {"traindata": cells["traindata"], "x": 1})
    with pytest.raises(DataError, match=r"other\.mat: expected the cells .*missing validdata, "
                                        r"testdata; found traindata, x"):
        read_mat(tmp_path / "other.mat")
    (tmp_path / "text.mat").write_text("not matlab")
    with pytest.raises(DataError, match=r"text\.mat: not a MATLAB \.mat file"):
        read_mat(tmp_path / "text.mat")


def test_json_reader_and_pitch_lists(tmp_path):
    import json

    pieces = {"train": [[[21, 60], [], [108]], [[64]]], "valid": [[[60, 64, 67]]],
              "test": [[[48], [50]]]}
    path = tmp_path / "rolls.json"
    path.write_text(json.dumps(pieces))
    train, dev, test = read_json_rolls(path)
    assert roll_to_pitches(train[0]) == [[21, 60], [], [108]]
    assert train[0][0, 0] == 1 and train[0][2, NUM_KEYS - 1] == 1 and train[0].sum() == 3
    assert roll_to_pitches(dev[0]) == [[60, 64, 67]] and len(test) == 1

    pieces["test"][0][1] = [50, 109]
    path.write_text(json.dumps(pieces))
    with pytest.raises(DataError, match=r"rolls\.json: test piece 0, step 1: note 109 is "
                                        "outside the piano range 21-108"):
        read_json_rolls(path)
    path.write_text(json.dumps({"train": [[]]}))
    with pytest.raises(DataError, match=r"rolls\.json: train piece 0: expected a non-empty"):
        read_json_rolls(path)
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match=r"rolls\.json: expected an object with the keys"):
        read_json_rolls(path)


def test_midi_reader_quantises_selects_programs_and_excludes_drums(tmp_path):
    # Beats (quarters): C4 for 1 beat from 0, E4 from 0.5 to 1.75, a piano G4 and a violin A4.
    path = write_pm(tmp_path / "a.mid", [(60, 0, 1), (64, 0.5, 1.75), (67, 2, 3)],
                    drums=[(36, 0, 4)])
    roll = read_midi(path, steps_per_quarter=4)
    assert roll.shape == (12, NUM_KEYS)
    assert roll_to_pitches(roll)[:4] == [[60], [60], [60, 64], [60, 64]]
    assert np.flatnonzero(roll[:, 64 - 21]).tolist() == [2, 3, 4, 5, 6]
    assert np.flatnonzero(roll[:, 67 - 21]).tolist() == list(range(8, 12))
    assert roll[:, 36 - 21].sum() == 0  # the drum track is excluded by default
    with_drums = read_midi(path, steps_per_quarter=4, include_drums=True)
    assert with_drums.shape == (16, NUM_KEYS) and with_drums[:, 36 - 21].sum() == 16
    assert read_midi(path, steps_per_quarter=1).shape == (3, NUM_KEYS)

    violin = write_pm(tmp_path / "v.mid", [(69, 0, 2)], program=40)
    assert read_midi(violin, 1, program=40).sum() == 2
    with pytest.raises(DataError, match=r"v\.mid: no notes for program 0 \(programs in the "
                                        r"file: 40\); pass --set program=null"):
        read_midi(violin, 1, program=0)


def test_midi_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    for spq, qpm in ((1, 100.0), (4, 137.0), (3, 90.0)):
        roll = random_roll(rng, 40, density=0.1)
        roll[-1, 30] = 1  # the piece ends on a sounding note (its length is kept)
        path = write_midi(roll, tmp_path / f"r{spq}.mid", qpm=qpm, program=19,
                          steps_per_quarter=spq)
        back = read_midi(path, steps_per_quarter=spq)
        assert np.array_equal(back, roll), spq
        pm = pretty_midi.PrettyMIDI(str(path))
        assert pm.instruments[0].program == 19
        assert len(pm.instruments[0].notes) == len(note_segments(roll))
        # the tempo is stored in whole microseconds per quarter
        assert math.isclose(pm.get_end_time(), 40 * 60 / qpm / spq, rel_tol=1e-5)


def test_bad_midi_inputs_get_one_line_errors_naming_the_file(tmp_path):
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"this is not a MIDI file at all")
    with pytest.raises(DataError, match=r"junk\.mid: not a MIDI file pretty_midi can read"):
        read_midi(junk)
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    with pytest.raises(DataError, match=r"empty\.mid: the piece is empty \(no notes\)"):
        read_midi(empty)
    drums = write_pm(tmp_path / "drums.mid", [], drums=[(36, 0, 1), (38, 1, 2)])
    with pytest.raises(DataError, match=r"drums\.mid: only drum notes .*include_drums=true"):
        read_midi(drums)
    low = write_pm(tmp_path / "low.mid", [(12, 0, 1), (60, 1, 2), (115, 1, 2)])
    with pytest.raises(DataError, match=r"low\.mid: note 12 at step 0 is outside the piano "
                                        r"range 21-108; pass --set out_of_range=drop"):
        read_midi(low, 1)
    assert roll_to_pitches(read_midi(low, 1, out_of_range="drop")) == [[], [60]]
    assert roll_to_pitches(read_midi(low, 1, out_of_range="fold")) == [[24], [60, 103]]
    with pytest.raises(DataError, match=r"p, step 1: expected integer MIDI pitches"):
        pitches_to_roll([[60], ["x"]], "p")


def test_midi_folder_is_split_by_file_and_reports_bad_files(tmp_path):
    folder = tmp_path / "midi"
    (folder / "sub").mkdir(parents=True)
    for i in range(10):
        write_pm(folder / ("sub" if i % 2 else "") / f"{i}.mid", [(60 + i, 0, 2), (72, 1, 3)])
    data = load_music(folder, DataConfig(dev_fraction=0.2, test_fraction=0.1), seed=0)
    assert (data.num_train, data.num_dev, len(data.test)) == (7, 2, 1)
    pitches = sorted(int(np.flatnonzero(r[0])[0]) + 21 for r in data.split("all"))
    assert pitches == list(range(60, 70))  # every file once
    (folder / "broken.mid").write_bytes(b"MThd garbage")
    with pytest.raises(DataError, match=r"broken\.mid: not a MIDI file .*skip_invalid=true"):
        load_music(folder, DataConfig(), seed=0)
    data = load_music(folder, DataConfig(skip_invalid=True), seed=0)
    assert "1 unreadable skipped" in data.description and len(data.split("all")) == 10
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match=r"nothing: no MIDI files \(\*\.mid, \*\.midi\)"):
        load_music(tmp_path / "nothing", DataConfig(), 0)


# -- metric and sampling ----------------------------------------------------------------------


def test_frame_nll_by_hand():
    # All logits 0: every key has p = 1/2, so each frame costs 88 ln 2 whatever it holds.
    frames = np.zeros((3, NUM_KEYS))
    frames[1, :5] = 1
    assert np.allclose(frame_nll(np.zeros((3, NUM_KEYS)), frames), 88 * math.log(2))
    # One key at p = 3/4 (logit ln 3), the others at logit -40 (p ~ 4e-18, about no cost).
    logits = np.full((2, NUM_KEYS), -40.0)
    logits[:, 0] = math.log(3)
    on = np.zeros((2, NUM_KEYS))
    on[0, 0] = 1
    assert np.allclose(frame_nll(logits, on), [-math.log(0.75), -math.log(0.25)], atol=1e-12)
    # Saturated logits stay finite and exact (sigmoid would round to exactly 1 in float32).
    assert frame_nll(np.full((1, NUM_KEYS), 200.0), np.zeros((1, NUM_KEYS)))[0] == 88 * 200.0


class _ConstantModel(_MusicGenerator):
    """Logits c everywhere: the split NLL can be computed by hand."""

    preprocessor = None

    def __init__(self, c):
        self.c = c

    def _runner(self):
        model = self

        class Runner:
            def run(self, graph, feeds):
                return {"logits": np.full(feeds["frames"].shape, model.c, np.float32)}

        return Runner()

    def _state_sizes(self):
        return {}


def test_split_nll_averages_over_predicted_frames_not_pieces():
    c = math.log(1 / 3)  # p = 1/4 per key
    a = pitches_to_roll([[60], [60, 64], [], [67]], "a")  # predicted: frames 1-3 (2, 0, 1 keys)
    b = pitches_to_roll([[50]], "b")  # a single frame: nothing to predict
    d = pitches_to_roll([[40], [40, 41, 42]], "d")  # predicted: frame 1 (3 keys)
    per_key_off, per_key_on = -math.log(0.75), -math.log(0.25)
    costs = [2 * per_key_on + 86 * per_key_off, 88 * per_key_off,
             per_key_on + 87 * per_key_off, 3 * per_key_on + 85 * per_key_off]
    report = _ConstantModel(c).nll([a, b, d])
    assert report["frames"] == 4 and report["pieces"] == 3
    assert math.isclose(report["nll"], sum(costs) / 4, rel_tol=1e-6)


def test_bernoulli_sampling_temperature_and_seed():
    logits = np.array([[3.0, -3.0, 0.2, -0.2] * 22])
    assert sample_keys(logits, 0.0, np.random.default_rng(0)).tolist() == [[1, 0, 1, 0] * 22]
    draws = np.concatenate([sample_keys(np.repeat(logits, 500, 0), 1.0,
                                        np.random.default_rng(s)) for s in range(4)])
    p = 1 / (1 + np.exp(-logits[0, :4]))
    assert np.allclose(draws[:, :4].mean(0), p, atol=0.03)
    cold = sample_keys(np.repeat(logits, 2000, 0), 0.05, np.random.default_rng(0))
    assert cold[:, :4].mean(0).tolist() == [1.0, 0.0, pytest.approx(0.98, abs=0.02),
                                             pytest.approx(0.02, abs=0.02)]
    a = sample_keys(logits, 1.0, np.random.default_rng(7))
    assert np.array_equal(a, sample_keys(logits, 1.0, np.random.default_rng(7)))


def test_transposition_moves_inputs_and_targets_together_within_the_keyboard():
    from rnnzoo.apps.music_generation.model import frame_dataset, transpose_ranges

    low = pitches_to_roll([[21, 30], [25], [28, 33]], "low")  # at the bottom: only up
    high = pitches_to_roll([[100], [108], [99]], "high")  # at the top: only down
    ys = [low, high]
    xs = [np.concatenate([np.zeros((1, NUM_KEYS), np.uint8), r[:-1]]) for r in ys]
    assert transpose_ranges(xs, ys, 5).tolist() == [[0, 5], [-5, 0]]
    ds, batches = frame_dataset(xs, ys, batch_size=1, max_length=8, shuffle=True, seed=0,
                                bucketing=False, transpose=5)
    assert batches == 2
    shifts = {0: set(), 1: set()}
    for _ in range(12):  # epochs
        for x, y in ds:
            x, y = x.numpy()[0], y.numpy()[0]
            i = 0 if np.flatnonzero(y[0])[0] < 40 else 1
            k = int(np.flatnonzero(y[0])[0] - np.flatnonzero(ys[i][0])[0])
            assert np.array_equal(y, np.roll(ys[i], k, axis=1))
            assert np.array_equal(x, np.roll(xs[i], k, axis=1))
            shifts[i].add(k)
    assert shifts[0] <= set(range(0, 6)) and shifts[1] <= set(range(-5, 1))
    assert len(shifts[0]) > 2 and len(shifts[1]) > 2


# -- a tiny trained model, Keras and the runtime ---------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("music")
    data = synthetic_dataset(work / "data", n=120, seed=0)
    result = rnnzoo.train(
        "music_gru", data, out=work / "run", verbose=0,
        model={**TINY_OVERRIDES["model"], "units": 32},
        data={**TINY_OVERRIDES["data"], "transpose": 0},  # the pattern is in two keys only
        training={**TINY_OVERRIDES["training"], "epochs": 30, "learning_rate": 0.02,
                  "batch_size": 16, "schedule": "constant"})
    return result, data, work


def test_tiny_model_learns_a_progression_and_plays_it_back(trained):
    result, data, _ = trained
    task = result.task
    test = evaluate_reports(task, task.load_data(data, seed=0), "test", {})[0]
    assert test["nll"] < 1.0, test  # 88 ln 2 = 61 nats for a coin per key
    for progression, offset in ((0, 0), (1, 3), (0, 5)):
        primer = pattern_piece(progression, offset, 5)
        expected = pattern_piece(progression, offset, 5 + 12)[5:]
        out = task.generate(12, primer=primer, temperature=0.0)
        assert roll_to_pitches(out) == expected, (progression, offset)
        sampled = task.generate(12, primer=primer, temperature=0.5, seed=1)
        assert roll_to_pitches(sampled) == expected
    with_primer = task.generate(4, primer=primer, temperature=0.0, include_primer=True)
    assert roll_to_pitches(with_primer[:5]) == primer and len(with_primer) == 9
    # Evaluating on a benchmark file's test split prints the published numbers beside ours.
    piece = pitches_to_roll(pattern_piece(0, 0, 9), "p")
    bench = MusicData([], [piece], [piece], "JSB", "jsb")
    text = format_report(evaluate_reports(task, bench, "test", {})[0])
    assert text.startswith("frame NLL ") and "8 predicted frames in 1 pieces" in text
    assert "LSTM 8.45 · GRU 8.43 · vanilla RNN 8.91 · TCN 8.10" in text
    assert "published" not in format_report(evaluate_reports(task, bench, "dev", {})[0])


def test_keras_and_runtime_give_the_same_probabilities_and_frames(trained, tmp_path):
    from rnnzoo.export import runtime, to_onnx

    result, data, _ = trained
    task = result.task
    to_onnx(task, tmp_path / "bundle")
    rt = runtime.load(tmp_path / "bundle")
    primer = pattern_piece(1, 2, 9)
    np.testing.assert_allclose(task.frame_probabilities(primer), rt.frame_probabilities(primer),
                               atol=1e-5)
    for seed, temperature in ((0, 1.0), (5, 1.6)):
        a = task.generate(24, primer=primer[:3], temperature=temperature, seed=seed,
                          num_samples=3)
        b = rt.generate(24, primer=primer[:3], temperature=temperature, seed=seed,
                        num_samples=3)
        assert a.shape == (3, 24, NUM_KEYS) and np.array_equal(a, b)
    pieces = task.load_data(data, seed=0).test
    assert math.isclose(task.nll(pieces)["nll"], rt.nll(pieces)["nll"], rel_tol=1e-5)


def test_generate_cli_writes_midi_png_and_wav(trained, tmp_path, capsys):
    from rnnzoo.cli import main

    result, _, work = trained
    primer = write_midi(pitches_to_roll(pattern_piece(0, 0, 4), "p"), tmp_path / "in.mid")
    out, png, wav = tmp_path / "out.mid", tmp_path / "roll.png", tmp_path / "out.wav"
    code = main(["generate", "music_gru", "--run", str(work / "run"), "--steps", "16",
                 "--primer", str(primer), "--include-primer", "--seed", "0", "--out", str(out),
                 "--qpm", "120", "--program", "19", "--plot", str(png), "--wav", str(wav)])
    assert code == 0
    pm = pretty_midi.PrettyMIDI(str(out))
    assert pm.instruments[0].program == 19 and pm.instruments[0].notes
    assert math.isclose(pm.get_end_time(), 20 * 0.5, abs_tol=1e-6)  # 4 + 16 quarters at 120
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with wave.open(str(wav)) as w:
        assert w.getnchannels() == 1 and w.getframerate() == 22050
        assert w.getnframes() >= 10 * 22050
        signal = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert np.abs(signal).max() > 10000
    assert main(["generate", "music_gru", "--run", str(work / "run"), "--steps", "3",
                 "--temperature", "0"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3

    assert main(["generate", "music_gru", "--run", str(work / "run"), "--steps", "0"]) == 2
    assert "steps: expected an integer >= 1" in capsys.readouterr().err
    assert main(["generate", "music_gru", "--run", str(work / "run"), "--primer",
                 str(tmp_path / "missing.mid")]) == 2
    assert "missing.mid: no such file" in capsys.readouterr().err
    assert main(["predict", "music_gru", "--run", str(work / "run"), "x"]) == 2
    assert "use `rnnzoo generate music_gru" in capsys.readouterr().err


def test_generate_rejects_bad_arguments(trained):
    task = trained[0].task
    with pytest.raises(DataError, match="temperature: expected a number >= 0"):
        task.generate(4, temperature=-1)
    with pytest.raises(DataError, match="primer, step 1: note 12 is outside"):
        task.generate(4, primer=[[60], [12]])
    with pytest.raises(DataError, match=r"primer: expected a piano roll of shape \(T, 88\)"):
        task.generate(4, primer=np.zeros((3, 87)))


def test_wav_is_the_additive_synth(tmp_path):
    roll = pitches_to_roll([[69], [69], []], "a4")  # A4 held two quarters, then a rest
    path = write_wav(roll, tmp_path / "a.wav", qpm=60, sample_rate=8000)
    with wave.open(str(path)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(float)
    assert len(x) == int(3.3 * 8000)
    spectrum = np.abs(np.fft.rfft(x[:16000]))
    assert abs(np.argmax(spectrum) * 8000 / 16000 - 440) <= 1  # the fundamental of A4
    assert np.abs(x[int(2.2 * 8000):]).max() == 0  # silence after the release
