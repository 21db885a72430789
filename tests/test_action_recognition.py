"""The action-recognition application's own behaviour: the MSR Action3D reader on a real file
and its errors on malformed input (naming the line), the features' invariance to where the body
stands and to its size, the subject split, ``classify``/``evaluate`` on Keras and on the exported
bundle (a tiny untrained model, exported once), and the shipped preset's recorded check subset.
The lifecycle (train, resume, export, runtime parity without TensorFlow) is the generated
harness's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import shared_data

import rnnzoo
from rnnzoo import limits
from rnnzoo.apps.action_recognition.cli import example_inputs, format_report
from rnnzoo.apps.action_recognition.data import (
    ACTIONS,
    DataConfig,
    as_sequences,
    augment,
    load_action_data,
    read_sequences,
    read_skeleton_text,
    skeleton_features,
    warp_time,
)
from rnnzoo.errors import DataError
from rnnzoo.families.skeleton import TINY_OVERRIDES, synthetic_sequence

PRESET = "action_bilstm.msr_action3d"
MSR = ("video_frames", "msr_action3d_skeleton", "train_odd_subjects")


def test_reader_on_a_real_msr_action3d_file():
    path = shared_data(*MSR, "a01_s01_e01_skeleton3D.txt")
    joints = read_skeleton_text(path)
    assert joints.shape == (54, 20, 3) and joints.dtype == np.float32
    np.testing.assert_allclose(joints[0, 0], [-0.371736, 0.371031, 2.674849], atol=1e-6)
    [same] = read_sequences(path)  # the user's reader: the same frames (none is empty)
    np.testing.assert_array_equal(same, joints)


def test_malformed_files_raise_a_data_error_naming_the_line(tmp_path):
    good = "\n".join(["0.1 0.2 2.5 1.0"] * 40)
    bad = tmp_path / "bad.txt"
    lines = good.splitlines()
    lines[6] = "0.1 0.2 oops 1.0"
    bad.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.txt, line 7: expected 4 numbers"):
        read_skeleton_text(bad)
    lines[6] = "0.1 0.2 2.5"  # a column missing
    bad.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match="line 7"):
        read_skeleton_text(bad)
    short = tmp_path / "short.txt"
    short.write_text("\n".join(["0.1 0.2 2.5 1.0"] * 27), encoding="utf-8")
    with pytest.raises(DataError, match=r"line 27: 27 joint lines, not a multiple of 20"):
        read_skeleton_text(short)
    with pytest.raises(DataError, match=r"expected a skeleton sequence \[frames, 20, 3\]"):
        as_sequences(np.zeros((5, 19, 3)))
    with pytest.raises(DataError, match="no frame with a skeleton"):
        as_sequences(np.zeros((5, 20, 3)))
    long = tmp_path / "long.txt"
    long.write_text("\n".join(["0.1 0.2 2.5 1.0"] * 220), encoding="utf-8")
    old = limits.configure(max_skeleton_frames=10)
    try:
        with pytest.raises(limits.LimitError, match="max_skeleton_frames"):
            read_skeleton_text(long)
    finally:
        limits.configure(max_skeleton_frames=old.max_skeleton_frames)


def test_features_do_not_depend_on_where_the_body_stands_or_its_size():
    rng = np.random.default_rng(0)
    seq = synthetic_sequence(1, rng)
    base = skeleton_features(seq, 100, True)
    moved = skeleton_features(seq + np.array([1.5, -0.3, 0.8]), 100, True)
    scaled = skeleton_features(1.3 * seq, 100, True)
    np.testing.assert_allclose(moved, base, atol=1e-5)
    np.testing.assert_allclose(scaled, base, atol=1e-5)
    assert base.shape == (len(seq), 120)
    assert skeleton_features(np.repeat(seq, 10, axis=0), 30, False).shape == (30, 60)
    # the part-based arm features (from the shoulder centre) are as invariant
    arms = skeleton_features(seq, 100, True, arms=True)
    assert arms.shape == (len(seq), 174)
    np.testing.assert_allclose(arms[:, :60], base[:, :60], atol=1e-6)
    np.testing.assert_allclose(skeleton_features(1.3 * seq + 0.5, 100, True, arms=True), arms,
                               atol=1e-5)
    turned = augment(seq, rng, 30.0, 0.0)  # a turn about the hip centre keeps the body's size
    np.testing.assert_allclose(np.linalg.norm(turned - turned[:, 6:7], axis=-1),
                               np.linalg.norm(seq - seq[:, 6:7], axis=-1), atol=1e-9)
    np.testing.assert_array_equal(warp_time(seq, rng, 0.0), seq)
    for _ in range(20):  # another pace: a part of at least 70% of it, 0.7-1.3x as many frames
        paced = warp_time(seq, rng, 0.3)
        assert 2 <= len(paced) <= round(1.3 * len(seq)) + 1
        assert len(paced) >= int(0.7 * 0.7 * len(seq)) - 1
        # interpolated between neighbouring frames: never outside the joints' range
        assert (paced.min(axis=0) >= seq.min(axis=0) - 1e-9).all()
        assert (paced.max(axis=0) <= seq.max(axis=0) + 1e-9).all()
    noisy = augment(seq, np.random.default_rng(5), 0.0, 0.0, jitter=0.01)
    assert noisy.shape == seq.shape and 0.005 < np.std(noisy - seq) < 0.02
    warped = skeleton_features(seq, 100, True, rng=rng, time_warp=0.3, jitter=0.01)
    assert warped.shape[1] == 120 and np.isfinite(warped).all()


def test_subjects_are_held_out_whole_and_npz_datasets_read(tmp_path):
    rng = np.random.default_rng(1)
    seqs = [synthetic_sequence(a, rng) for a in (1, 2, 3, 1)]
    width = max(len(s) for s in seqs)
    x = np.zeros((4, width, 20, 3), np.float32)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = s
    path = tmp_path / "d.npz"
    np.savez(path, x=x, lengths=[len(s) for s in seqs], labels=[1, 2, "bend", 1],
             subjects=[1, 9, 3, 9])
    data = load_action_data(path, DataConfig(dev_subjects=[9]))
    assert data.train_labels == [0, 12] and data.dev_labels == [1, 0]  # bend: a13
    np.testing.assert_allclose(data.dev_sequences[0], seqs[1], atol=1e-6)
    assert len(data.split("all")[0]) == 4
    np.savez(path, x=x, labels=[1, 2, 21, 1])
    with pytest.raises(DataError, match=r"labels\[2\]: label 21 is not an action"):
        load_action_data(path, DataConfig())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny untrained classifier (features fitted on synthetic sequences) and its exported
    bundle on onnxruntime."""
    from rnnzoo.export import runtime, to_onnx

    task = rnnzoo.create_model("action_bilstm", model=TINY_OVERRIDES["model"],
                               data=TINY_OVERRIDES["data"])
    rng = np.random.default_rng(2)
    task.preprocessor.fit([synthetic_sequence(1 + i % 3, rng) for i in range(12)])
    out = tmp_path_factory.mktemp("action") / "bundle"
    to_onnx(task, out)
    return task, runtime.load(out)


def test_classify_and_evaluate_are_the_same_on_keras_and_onnx(tiny, tmp_path):
    task, rt = tiny
    rng = np.random.default_rng(3)
    seqs = [synthetic_sequence(1 + i % 3, rng) for i in range(7)]
    np.save(tmp_path / "one.npy", seqs[0])
    inputs = [str(tmp_path / "one.npy"), *seqs[1:], *example_inputs()]
    a, b = task.classify(inputs), rt.classify(inputs)
    assert a.labels == b.labels and len(a.labels) == 10
    assert set(a.labels) <= set(ACTIONS)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
    np.testing.assert_allclose(a.probs.sum(axis=1), 1.0, atol=1e-5)
    single = task.classify(seqs[0])  # one sequence [T, 20, 3] is one input, not 20
    np.testing.assert_allclose(single.probs, a.probs[:1], atol=1e-6)
    labels = ["high_arm_wave", "horizontal_arm_wave", "hammer", 0, 1, 2, 0]
    ra, rb = task.evaluate(seqs, labels), rt.evaluate(seqs, labels)
    assert ra["accuracy"] == rb["accuracy"] and ra["num_examples"] == 7
    assert ra["confusion_matrix"] == rb["confusion_matrix"]
    assert "(n=7 sequences)" in format_report(ra)
    with pytest.raises(DataError, match="not a class of this model"):
        rt.evaluate(seqs[:1], ["moonwalk"])
    out = rt.serve_predict([{"joints": seqs[0].tolist()}], {})
    assert out[0]["label"] == a.labels[0]


def test_the_shipped_preset_scores_its_recorded_check_subset_on_both_backends():
    from rnnzoo.evaluation import evaluate_reports, report_metrics
    from rnnzoo.presets import installed_presets

    if PRESET not in installed_presets():
        pytest.skip(f"{PRESET} not installed (pip install ./presets/action_recognition)")
    folder = shared_data(*MSR)
    for backend in ("keras", "onnx"):
        model = rnnzoo.from_preset(PRESET, backend=backend)
        meta = json.loads((installed_presets()[PRESET][1] / "metadata.json").read_text())
        check = meta["check"]
        data = load_action_data(folder, DataConfig(dev_subjects=[9]))
        got = report_metrics(evaluate_reports(model, data, meta["split"],
                                              {"limit": check["limit"]}))
        assert got["accuracy"] == pytest.approx(check["metrics"]["accuracy"], abs=1e-9)
