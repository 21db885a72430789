"""The video-prediction application's own behaviour: the readers (every layout, and a malformed
file's typed error), the Moving MNIST generator (deterministic, the published protocol), the
metrics against hand-computed cases, the exported ConvLSTM step graph against Keras (a tiny
model: ``predict_frames``, ``evaluate`` and a stream on both backends), the strip writer, and
the shipped preset's recorded check subset re-measured on onnxruntime. The lifecycle (train,
resume, export, TF-free runtime) is the generated harness's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import shared_data

import rnnzoo
from rnnzoo.apps.video_prediction import cli
from rnnzoo.apps.video_prediction.data import (
    DataConfig,
    MovingMnist,
    bouncing_positions,
    frame_metrics,
    load_video_data,
    read_sequences,
    render,
    ssim,
    summarize,
)
from rnnzoo.errors import DataError
from rnnzoo.families.convlstm import TINY_OVERRIDES
from rnnzoo.limits import LimitError

PRESET = "video_convlstm.moving_mnist"
SMALL = DataConfig(image_size=16, input_frames=3, output_frames=2)


def _seqs(n: int = 3, t: int = 5, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, t, size, size), dtype=np.uint8)


# -- readers --------------------------------------------------------------------------------------
def test_array_readers_every_layout(tmp_path):
    seqs = _seqs()
    np.save(tmp_path / "nthw.npy", seqs)
    got, layout = read_sequences(tmp_path / "nthw.npy", SMALL)
    assert layout == "NTHW" and got.shape == (3, 5, 16, 16, 1)
    np.testing.assert_array_equal(got[..., 0], seqs)
    # mnist_test_seq.npy's [T, N, H, W]: detected (first axis = the model's 5 frames)
    np.save(tmp_path / "tnhw.npy", seqs.transpose(1, 0, 2, 3))
    got, layout = read_sequences(tmp_path / "tnhw.npy", SMALL)
    assert layout == "TNHW"
    np.testing.assert_array_equal(got[..., 0], seqs)
    np.savez(tmp_path / "x.npz", frames=seqs[..., None], other=np.zeros(3))
    got, layout = read_sequences(tmp_path / "x.npz", SMALL)
    assert layout == "NTHWC" and got.shape == (3, 5, 16, 16, 1)
    np.save(tmp_path / "float.npy", seqs / 255.0)
    np.testing.assert_array_equal(read_sequences(tmp_path / "float.npy", SMALL)[0][..., 0],
                                  seqs)
    data = load_video_data(tmp_path / "nthw.npy", SMALL.__class__(**{
        **SMALL.__dict__, "dev_fraction": 0.34}))
    assert (data.num_train, data.num_dev) == (2, 1) and "read as NTHW" in data.description


def test_png_folders(tmp_path):
    from PIL import Image

    seqs = _seqs(2)
    for i, seq in enumerate(seqs):
        (tmp_path / f"seq{i}").mkdir()
        for t, frame in enumerate(seq):
            Image.fromarray(frame).save(tmp_path / f"seq{i}" / f"{t + 1}.png")
    got, layout = read_sequences(tmp_path, SMALL)
    assert layout == "folders of PNG frames"
    np.testing.assert_array_equal(got[..., 0], seqs)
    got, layout = read_sequences(tmp_path / "seq1", SMALL)  # one sequence
    np.testing.assert_array_equal(got[0, ..., 0], seqs[1])


@pytest.mark.parametrize("array, pattern", [
    (np.zeros((2, 5, 16, 15), np.uint8), r"bad\.npy: found frames of 16x15x1 .*expected"),
    (np.zeros((2, 3, 16, 16), np.uint8), r"bad\.npy: sequences of 3 frames; expected at least 5"),
    (np.zeros((16, 16), np.uint8), r"bad\.npy: found shape \[16, 16\]; expected \[N, T, H, W\]"),
    (np.full((2, 5, 16, 16), 2.0), r"float frames must lie in \[0, 1\]"),
])
def test_malformed_arrays_give_one_typed_error(tmp_path, array, pattern):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError, match=pattern):
        read_sequences(tmp_path / "bad.npy", SMALL)


def test_malformed_files_name_the_problem(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros(3), b=np.zeros(3))
    with pytest.raises(DataError, match=r"two\.npz: keys \['a', 'b'\]; expected one array"):
        read_sequences(tmp_path / "two.npz", SMALL)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match=r"junk\.npy: cannot read as \.npy"):
        read_sequences(tmp_path / "junk.npy", SMALL)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no PNG frames"):
        read_sequences(tmp_path / "empty", SMALL)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        read_sequences(tmp_path / "x.txt", SMALL)
    np.save(tmp_path / "big.npy", np.zeros((4, 5, 16, 16), np.uint8))
    with _limit(max_video_frames=10):
        with pytest.raises(LimitError, match="max_video_frames"):
            read_sequences(tmp_path / "big.npy", SMALL)


class _limit:
    def __init__(self, **kw):
        self.kw = kw

    def __enter__(self):
        self.old = rnnzoo.limits.current()
        rnnzoo.limits.configure(**self.kw)

    def __exit__(self, *exc):
        import dataclasses

        rnnzoo.limits.configure(**dataclasses.asdict(self.old))


# -- Moving MNIST ---------------------------------------------------------------------------------
def test_bouncing_protocol():
    """Step first, then bounce (clamped to [0, 1], velocity reversed); frame 0 is one step in."""
    rng = np.random.default_rng(3)
    pos = bouncing_positions(rng, 50, 2, 20, 0.1)
    assert pos.shape == (50, 2, 20, 2) and pos.min() >= 0 and pos.max() <= 1
    again = np.random.default_rng(3)
    y0, x0 = again.random((50, 2)), again.random((50, 2))
    theta = again.random((50, 2)) * 2 * np.pi
    first_y = np.clip(y0 + np.sin(theta) * 0.1, 0, 1)
    first_x = np.clip(x0 + np.cos(theta) * 0.1, 0, 1)
    np.testing.assert_allclose(pos[:, :, 0, 0], first_y)
    np.testing.assert_allclose(pos[:, :, 0, 1], first_x)
    steps = np.abs(np.diff(pos, axis=2))
    assert steps.max() <= 0.1 + 1e-9  # never further than one step per frame
    # a wall reverses the motion: somewhere a coordinate touches 0 or 1 and comes back
    touched = (pos == 0) | (pos == 1)
    assert touched[:, :, 1:-1].any()


def test_render_combines_digits_with_maximum():
    digits = np.zeros((1, 2, 28, 28), np.uint8)
    digits[0, 0] = 100
    digits[0, 1, :14] = 200
    pos = np.zeros((1, 2, 1, 2))  # both at the top-left corner
    out = render(digits, pos, 64)
    assert out.shape == (1, 1, 64, 64)
    assert out[0, 0, 0, 0] == 200 and out[0, 0, 20, 20] == 100 and out[0, 0, 40, 40] == 0
    pos[0, 1, 0] = [1.0, 1.0]  # bottom-right: int(36 * 1) = 36
    out = render(digits, pos, 64)
    assert out[0, 0, 36, 36] == 200 and out[0, 0, 63, 63] == 0 and out[0, 0, 50, 50] == 0


def test_generator_is_seeded_and_draws_digits_without_replacement():
    digits = np.zeros((6, 28, 28), np.uint8)
    for i in range(6):
        digits[i, i:i + 3, :] = 255  # each digit identifiable by its bar's row
    cfg = DataConfig()
    a, b = MovingMnist(digits, cfg, 5), MovingMnist(digits, cfg, 5)
    first, second = a.sample(3), b.sample(3)
    assert first.shape == (3, 20, 64, 64, 1) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(MovingMnist(digits, cfg, 6).sample(3), first)
    # prefix-stable: the first 2 of a draw of 3 are a draw of 2 (a --limit subset of the
    # validation set equals a smaller validation set)
    np.testing.assert_array_equal(MovingMnist(digits, cfg, 5).sample(2), first[:2])
    pool = MovingMnist(digits, cfg, 0)
    picked = np.concatenate([pool._take(2) for _ in range(3)])
    assert sorted(picked) == list(range(6))  # one pass through the pool, no repeats


def test_moving_mnist_from_the_shared_digits():
    root = shared_data("video_frames", "mnist_train")
    data = load_video_data(root, DataConfig(val_sequences=8))
    assert data.num_dev == 8 and data.dev.shape == (8, 20, 64, 64, 1)
    assert "digits 50000..59999" in data.description
    again = load_video_data(root.parent, DataConfig(val_sequences=8))  # the parent works too
    np.testing.assert_array_equal(again.dev, data.dev)
    batch = next(data.train_batches(4, seed=1, epoch=1))
    assert batch.shape == (4, 20, 64, 64, 1)
    assert not np.array_equal(batch, next(data.train_batches(4, seed=1, epoch=2)))
    with pytest.raises(DataError, match="training sequences are generated"):
        data.split("train")


# -- metrics --------------------------------------------------------------------------------------
def test_metrics_against_hand_computed_values():
    truth = np.zeros((2, 3, 8, 8, 1), np.float32)
    pred = np.zeros_like(truth)
    truth[0, :, :2, :2] = 1.0  # 4 pixels off by 1 in every frame of sequence 0
    pred[1, 0, 0, 0] = 0.5  # one pixel off by 0.5 in frame 0 of sequence 1
    m = frame_metrics(pred, truth, with_ssim=False)
    np.testing.assert_allclose(m["se"], [[4, 4, 4], [0.25, 0, 0]])
    np.testing.assert_allclose(m["ae"], [[4, 4, 4], [0.5, 0, 0]])
    report = summarize({k: [v] for k, v in m.items()})
    assert report["mse_per_frame"] == pytest.approx((12 + 0.25) / 6)
    assert report["mae_per_frame"] == pytest.approx((12 + 0.5) / 6)
    assert report["mse_per_step"] == [2.125, 2.0, 2.0]
    x = np.random.default_rng(0).random((2, 16, 16, 1))
    np.testing.assert_allclose(ssim(x, x), 1.0)
    assert ssim(x, 1 - x).max() < 0.1
    # constant frames a and b: the variances vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = np.full((16, 16, 1), 0.2), np.full((16, 16, 1), 0.6)
    assert ssim(a, b) == pytest.approx((2 * 0.12 + 1e-4) / (0.04 + 0.36 + 1e-4))


# -- a tiny model on both backends -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``(Keras task, onnxruntime model)`` of a tiny untrained ConvLSTM, exported once."""
    from rnnzoo.export import runtime, to_onnx

    task = rnnzoo.create_model("video_convlstm", **TINY_OVERRIDES)
    path = tmp_path_factory.mktemp("video") / "bundle"
    to_onnx(task, path)  # validated: the step graph equals Keras at batch 1, 4 and 2
    return task, runtime.load(path)


def test_step_graph_equals_keras_and_predict_frames_agrees(tiny):
    task, rt = tiny
    frames = _seqs(3, 4)  # uint8 [N, T, H, W]
    a, b = task.predict_frames(frames, steps=3), rt.predict_frames(frames, steps=3)
    assert a.shape == (3, 3, 16, 16) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1
    np.testing.assert_allclose(a, b, atol=1e-5)
    one = rt.predict_frames(frames[0], steps=2)  # one sequence [T, H, W] -> [steps, H, W]
    assert one.shape == (2, 16, 16)
    np.testing.assert_allclose(one, b[0, :2], atol=1e-6)
    # the training model's closed loop is the same computation as the step loop
    seq = _seqs(2, 5)[..., None].astype(np.float32) / 255
    whole = np.asarray(task.model(seq, training=False))
    np.testing.assert_allclose(whole[:, 2:], task.predict_frames(seq[:, :3], steps=2),
                               atol=1e-5)
    ea, eb = task.evaluate(_seqs(4, 5)), rt.evaluate(_seqs(4, 5))
    assert ea["mse_per_frame"] == pytest.approx(eb["mse_per_frame"], rel=1e-5)
    # SSIM lies in [-1, 1]; an untrained model's can be just below 0, so compare backends
    assert len(ea["mse_per_step"]) == 2 and -1 <= ea["ssim"] <= 1
    assert ea["ssim"] == pytest.approx(eb["ssim"], abs=1e-5)


def test_int8_step_is_static_and_calibrated_on_eval_data(tmp_path):
    """With eval data the step's convolutions are static int8 (QLinearConv: faster than fp32 on
    onnxruntime, where dynamic ConvInteger is slower), calibrated on the fp32 step's own
    inputs, and the comparison with fp32 is recorded; without, dynamic int8 as elsewhere."""
    import onnx
    from rnnzoo.export import runtime, to_onnx

    task = rnnzoo.create_model("video_convlstm", **TINY_OVERRIDES)
    np.save(tmp_path / "seqs.npy", _seqs(12, 5))
    report = to_onnx(task, tmp_path / "b", quantize="int8", eval_data=tmp_path / "seqs.npy")
    int8 = runtime.load(tmp_path / "b-int8")
    static = int8.manifest["quantization"]["static"]
    assert static["graphs"] == ["step"] and static["calibration_feeds"]["step"] > 0
    ops = {n.op_type for n in onnx.load(str(tmp_path / "b-int8" / "step_model.onnx")).graph.node}
    assert "QLinearConv" in ops and "ConvInteger" not in ops
    a, b = report.int8["mse_per_frame_fp32"], report.int8["mse_per_frame_int8"]
    assert b == pytest.approx(a, rel=0.05)
    fp32 = runtime.load(tmp_path / "b")
    np.testing.assert_allclose(int8.predict_frames(_seqs(2, 4), steps=2),
                               fp32.predict_frames(_seqs(2, 4), steps=2), atol=0.05)
    to_onnx(task, tmp_path / "d", quantize="int8")  # no data: dynamic, nothing to calibrate on
    assert "static" not in runtime.load(tmp_path / "d-int8").manifest["quantization"]


def test_stream_steps_equal_the_rollout(tiny):
    task, rt = tiny
    frames = _seqs(2, 3)[..., None].astype(np.float32) / 255
    for model in (task, rt):
        s = model.stream(batch=2)
        for t in range(3):
            y = s.step(frames[:, t])
        np.testing.assert_allclose(y, model.predict_frames(frames, steps=1)[:, 0], atol=1e-6)
        branch = s.copy()
        np.testing.assert_allclose(branch.step(y), s.step(y), atol=0)
    with pytest.raises(DataError, match="state must be a dict"):
        rt.step(frames[:, 0], {"x": 1})


@pytest.mark.parametrize("bad, pattern", [
    (np.zeros((2, 3, 15, 15)), r"frames: found shape \[2, 3, 15, 15\]"),
    (np.full((1, 2, 16, 16), 300), r"integer frames must lie in 0\.\.255"),
    (np.full((1, 2, 16, 16), 1.5), r"float frames must be finite and in \[0, 1\]"),
    ("abc", r"frames: found dtype"),
])
def test_predict_frames_rejects_bad_input(tiny, bad, pattern):
    with pytest.raises(DataError, match=pattern):
        tiny[1].predict_frames(bad)
    with pytest.raises(DataError, match="steps: expected an integer >= 1"):
        tiny[1].predict_frames(_seqs(1, 2), steps=0)


def test_predict_frames_cli_writes_a_strip(tiny, tmp_path, capsys):
    import argparse

    from PIL import Image

    np.save(tmp_path / "seqs.npy", _seqs(2, 5))
    for out in ("strip.png", "strip.gif"):
        args = argparse.Namespace(input=str(tmp_path / "seqs.npy"), out=str(tmp_path / out),
                                  index=1, steps=None, json=True)
        assert cli.run_verb(tiny[1], args) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["predicted_frames"] == 2 and report["layout"] == "NTHW"
        with Image.open(tmp_path / out) as img:
            if out.endswith(".png"):  # 3 rows of 16 + 2 gaps; 3 frame slots of 16 + 2 gaps
                assert img.size == (3 * 16 + 2 * 2, 3 * 16 + 2 * 2)
            else:  # input | truth | prediction side by side, one GIF frame per step
                assert img.size == (3 * 16 + 2 * 2, 16) and img.n_frames == 5
    args.out = str(tmp_path / "strip.jpg")
    with pytest.raises(DataError, match="expected a .png or .gif"):
        cli.run_verb(tiny[1], args)


# -- the shipped preset ---------------------------------------------------------------------------
def test_shipped_preset_check_subset_on_onnxruntime():
    """The recorded ``check`` numbers (the first N generated validation sequences) re-measured
    on the fp32 bundle: what ``rnnzoo evaluate --backend onnx`` prints."""
    if PRESET not in rnnzoo.list_models(pretrained=True):
        pytest.skip(f"{PRESET} is not installed")
    meta = rnnzoo.preset_info(PRESET)
    if "onnx" not in meta or "check" not in meta:
        pytest.skip(f"{PRESET} ships no bundle or check subset")
    rt = rnnzoo.from_preset(PRESET, backend="onnx")
    data = load_video_data(shared_data("video_frames", "mnist_train"), DataConfig(
        val_sequences=meta["check"]["limit"]))
    got = rt.evaluate(data.dev)
    for key in ("mse_per_frame", "mae_per_frame", "ssim"):
        assert got[key] == pytest.approx(meta["check"]["metrics"][key], rel=2e-3), key
