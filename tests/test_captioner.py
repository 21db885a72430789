"""Image captioner: a tiny model learns a synthetic coloured-shapes language word for word,
Keras and ONNX runtime captions agree token for token, the Flickr8k and COCO readers, and bad
input (corrupt JPEG, RGBA PNG, grayscale, a caption file without a column, a COCO id that names
no image, no Pillow)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

import rnnzoo
from rnnzoo.data.captions import ImageReadError, preprocess_image, read_captions
from rnnzoo.errors import DataError
from rnnzoo.evaluation import evaluate_reports
from rnnzoo.extras import MissingDependencyError
from rnnzoo.families.captioner import synthetic_dataset

SHAPES_MODEL = {"image_size": 32, "conv_filters": 16, "conv_blocks": 3, "feature_dim": 32,
                "vocab_size": 40, "embedding_dim": 16, "decoder_units": 64,
                "attention_units": 32, "output_units": 64, "dropout": 0.0}
SHAPES_DATA = {"max_length": 10, "min_count": 1, "dev_fraction": 0.1, "test_fraction": 0.15,
               "augment_flip": True}
SHAPES_TRAINING = {"epochs": 15, "batch_size": 32, "learning_rate": 5e-3, "warmup_steps": 0,
                   "early_stopping_patience": 0, "schedule": "cosine", "seed": 0}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A captioner trained on 1,500 synthetic images (about 30 s on 2 cores)."""
    root = tmp_path_factory.mktemp("shapes")
    data = synthetic_dataset(root, n=1500, seed=0)
    result = rnnzoo.train("captioner_lstm_attention", data, out=root / "run", verbose=0,
                          model=SHAPES_MODEL, data=SHAPES_DATA, training=SHAPES_TRAINING)
    return result, data


def test_learns_shapes_captions_exactly(shapes):
    result, data = shapes
    task = result.task
    split = task.load_data(data, seed=task.config.training.seed)
    test = split.test
    assert len(test) == 225 and not {x.name for x in test} & {x.name for x in split.train}
    got = task.caption([str(x.path) for x in test])
    want = [task.preprocessor.normalize(x.captions[0]) for x in test]
    exact = np.mean([g == w for g, w in zip(got, want)])
    assert exact >= 0.95, [(g, w) for g, w in zip(got, want) if g != w][:5]
    # beam search finds the same captions; BLEU-4 of exact captions is 100
    report = task.evaluate([x.pixels for x in test], [x.captions for x in test], beam=3)
    assert report["bleu_4"] >= 90 and report["decoding"] == "beam 3"
    # the baselines score on the same split, far below the model
    reports = evaluate_reports(task, split, "test", {})
    names = [r["decoding"] for r in reports]
    assert names == ["greedy", "beam 3", "baseline most frequent caption",
                     "baseline nearest neighbour"]
    assert reports[0]["bleu_4"] > reports[2]["bleu_4"] + 30
    # The attention of the word after "above" looks at the lower half of the image.
    caption, attention = task.caption(str(test[0].path), return_attention=True)
    words = caption.split()
    grid = attention[words.index("above") + 2].reshape(4, 4)  # "a <colour>" below
    assert grid[2:].sum() > grid[:2].sum(), (caption, grid.round(2))


def test_keras_and_runtime_captions_are_token_identical(shapes, tmp_path):
    from rnnzoo.export import runtime, to_onnx

    result, data = shapes
    task = result.task
    to_onnx(task, tmp_path / "bundle")
    assert (tmp_path / "bundle" / "image_encoder.onnx").is_file()
    assert (tmp_path / "bundle" / "decoder_model.onnx").is_file()
    rt = runtime.load(tmp_path / "bundle")
    paths = sorted(str(p) for p in (data / "Images").glob("*.png"))[:60]
    for beam in (None, 3):
        assert task.caption(paths, beam=beam) == rt.caption(paths, beam=beam)
    k_caption, k_att = task.caption(paths[0], return_attention=True)
    r_caption, r_att = rt.caption(paths[0], return_attention=True)
    assert k_caption == r_caption
    np.testing.assert_allclose(k_att, r_att, atol=1e-4)
    # rnnzoo serve's hook: base64 image files in, captions (and attention) out
    import base64

    b64 = base64.b64encode(open(paths[0], "rb").read()).decode()
    served = rt.serve_predict([{"b64": b64}], {"attention": True, "beam": 3})
    assert served[0]["caption"] == task.caption(paths[0], beam=3)
    assert len(served[0]["attention"]) == len(served[0]["words"])
    with pytest.raises(DataError, match=r"instances\[0\]: cannot decode the image"):
        rt.serve_predict([{"b64": base64.b64encode(b"junk").decode()}], {})
    a = task.evaluate(paths[:20], [["a red circle above a blue square"]] * 20)
    b = rt.evaluate(paths[:20], ["a red circle above a blue square"] * 20)
    assert a["bleu_4"] == b["bleu_4"]


def test_caption_cli_with_attention_plot(shapes, tmp_path, capsys):
    from rnnzoo.cli import main

    result, data = shapes
    image = sorted((data / "Images").glob("*.png"))[0]
    out = tmp_path / "attention.png"
    assert main(["caption", "captioner_lstm_attention", "--run", str(result.run_dir),
                 str(image), "--beam", "3", "--attention-plot", str(out)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == result.task.caption(str(image), beam=3)
    assert out.stat().st_size > 1000


# -- readers ----------------------------------------------------------------------------------

def _jpeg(path, colour=(200, 10, 10), size=(40, 30)):
    Image.new("RGB", size, colour).save(path, "JPEG")


def _flickr(root, names, missing=()):
    (root / "Images").mkdir(parents=True)
    lines = ["image,caption"]
    for n in names:
        if n not in missing:
            _jpeg(root / "Images" / n)
        for k in range(5):
            lines.append(f"{n},A dog , number {k} , runs .")
    (root / "captions.txt").write_text("\n".join(lines) + "\n")
    return root


def test_flickr_layout_keeps_every_reference_and_the_official_splits(tmp_path):
    names = [f"{i}_x.jpg" for i in range(6)]
    root = _flickr(tmp_path / "f", names, missing=["5_x.jpg"])
    (root / "Flickr_8k.trainImages.txt").write_text("0_x.jpg\n1_x.jpg\n2_x.jpg\n9_absent.jpg\n")
    (root / "Flickr_8k.devImages.txt").write_text("3_x.jpg\n")
    (root / "Flickr_8k.testImages.txt").write_text("4_x.jpg\n5_x.jpg\n")
    splits, description = read_captions(root)
    assert [x.name for x in splits["train"]] == ["0_x.jpg", "1_x.jpg", "2_x.jpg"]
    assert [x.name for x in splits["dev"]] == ["3_x.jpg"]
    assert [x.name for x in splits["test"]] == ["4_x.jpg"]  # listed but absent: not there
    assert splits["train"][0].captions == [f"A dog , number {k} , runs ." for k in range(5)]
    assert "official" in description


def test_flickr_without_split_lists_warns_about_missing_images(tmp_path):
    root = _flickr(tmp_path / "f", [f"{i}.jpg" for i in range(10)], missing=["7.jpg"])
    with pytest.warns(UserWarning, match="7.jpg"):
        splits, _ = read_captions(root, seed=0, dev_fraction=0.2, test_fraction=0.2)
    assert sum(len(v) for v in splits.values()) == 9


def test_caption_file_with_a_missing_column(tmp_path):
    root = _flickr(tmp_path / "f", ["a.jpg"])
    (root / "captions.txt").write_text("image,text\na.jpg,a dog\n")
    with pytest.raises(DataError, match=r"line 1: the header has no 'caption' column"):
        read_captions(root)
    (root / "captions.txt").write_text("image,caption\na.jpg\n")
    with pytest.raises(DataError, match=r"line 2: expected 2 columns"):
        read_captions(root)


def test_coco_json_reader_and_unknown_image_id(tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "train2014").mkdir()
    (root / "val2014").mkdir()
    for split, ids in (("train2014", [1, 2, 3]), ("val2014", [4])):
        for i in ids:
            _jpeg(root / split / f"{i:012d}.jpg")
        doc = {"images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in ids],
               "annotations": [{"id": 10 * i + k, "image_id": i, "caption": f"cap {i} {k}"}
                               for i in ids for k in range(5)]}
        (root / "annotations" / f"captions_{split}.json").write_text(json.dumps(doc))
    splits, description = read_captions(root)
    assert [x.name for x in splits["train"]] == [f"{i:012d}.jpg" for i in (1, 2, 3)]
    assert [x.name for x in splits["dev"]] == ["000000000004.jpg"]
    assert splits["dev"][0].captions == [f"cap 4 {k}" for k in range(5)]
    assert splits["dev"][0].path.is_file()
    # one JSON alone: a seeded split of its images
    single, _ = read_captions(root / "annotations" / "captions_train2014.json")
    assert sum(len(v) for v in single.values()) == 3
    bad = json.loads((root / "annotations" / "captions_val2014.json").read_text())
    bad["annotations"][2]["image_id"] = 99
    (root / "annotations" / "captions_val2014.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"annotations\[2\]: image_id 99 is not the id of any"):
        read_captions(root)


# -- bad images -------------------------------------------------------------------------------

def test_corrupt_jpeg_is_skipped_with_its_name_or_an_error_with_strict(tmp_path):
    root = _flickr(tmp_path / "f", [f"{i}.jpg" for i in range(10)])
    raw = (root / "Images" / "3.jpg").read_bytes()
    (root / "Images" / "3.jpg").write_bytes(raw[: len(raw) // 2])  # truncated
    (root / "Images" / "4.jpg").write_bytes(b"not a jpeg at all")
    task = rnnzoo.create_model("captioner_lstm", image_size=16, conv_blocks=2)
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\): 3.jpg .*4.jpg"):
        data = task.load_data(root, seed=0)
    assert sorted(data.skipped)[0].startswith("3.jpg")
    assert data.num_train + data.num_dev + len(data.test) == 8
    strict = rnnzoo.create_model("captioner_lstm", image_size=16, conv_blocks=2,
                                 strict_images=True)
    with pytest.raises(ImageReadError, match=r"3.jpg: cannot decode the image"):
        strict.load_data(root, seed=0)
    with pytest.raises(ImageReadError, match=r"4.jpg: cannot decode"):
        preprocess_image(root / "Images" / "4.jpg", 16)
    with pytest.raises(ImageReadError, match="no such image file"):
        preprocess_image(root / "Images" / "nope.jpg", 16)


def test_rgba_png_grayscale_and_arrays_become_the_same_rgb_pixels(tmp_path):
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 255, 0))  # fully transparent: composited on white
    rgba.save(tmp_path / "a.png")
    out = preprocess_image(tmp_path / "a.png", 20)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    big = preprocess_image(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), 8)
    assert (big == 255).all()
    Image.new("L", (12, 12), 77).save(tmp_path / "g.jpg")
    gray = preprocess_image(tmp_path / "g.jpg", 12)
    assert gray.shape == (12, 12, 3) and (gray[..., 0] == gray[..., 2]).all()
    # a path, the Pillow image and its array give the same pixels
    Image.new("RGB", (30, 20), (10, 120, 240)).save(tmp_path / "c.png")
    pil = Image.open(tmp_path / "c.png")
    a, b = preprocess_image(tmp_path / "c.png", 16), preprocess_image(pil, 16)
    c = preprocess_image(np.asarray(pil), 16)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    with pytest.raises(DataError, match=r"shape \(4, 4, 2\)"):
        preprocess_image(np.zeros((4, 4, 2)), 8)


def test_missing_pillow_names_the_image_extra(monkeypatch):
    import rnnzoo.data.captions as captions

    monkeypatch.setattr(captions, "has_module", lambda name: False)
    with pytest.raises(MissingDependencyError, match=r'rnnzoo\[image\]'):
        captions.preprocess_image("x.jpg", 8)


def test_caption_rejects_bad_arguments_before_decoding(shapes):
    task = shapes[0].task
    with pytest.raises(DataError, match="empty list of images"):
        task.caption([])
    with pytest.raises(DataError, match="expected an image path"):
        task.caption(42)
    with pytest.raises(rnnzoo.errors.ConfigError, match="beam"):
        task.caption(np.zeros((8, 8, 3)), beam=0)
    with pytest.raises(DataError, match="got 1 images but 2 references"):
        task.evaluate([np.zeros((8, 8, 3))], ["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(task.caption(np.zeros((8, 8), np.uint8)), str)


def test_keras_applications_backbone_reads_weights_from_a_local_file(tmp_path):
    import keras

    full = keras.applications.MobileNetV2(include_top=False, weights=None,
                                          input_shape=(32, 32, 3))
    path = tmp_path / "mobilenet.weights.h5"
    full.save_weights(path)
    overrides = {"image_size": 32, "backbone": "MobileNetV2", "vocab_size": 20,
                 "decoder_units": 8, "feature_dim": 8, "attention_units": 8,
                 "embedding_dim": 8}
    with pytest.raises(rnnzoo.errors.ConfigError, match="backbone_weights: no such file"):
        _ = rnnzoo.create_model("captioner_lstm_attention", backbone_weights=str(tmp_path / "x"),
                                **overrides).model
    task = rnnzoo.create_model("captioner_lstm_attention", backbone_weights=str(path),
                               **overrides)
    backbone = next(layer for layer in task.model.layers if "mobilenet" in layer.name)
    for a, b in zip(backbone.get_weights(), full.get_weights()):
        np.testing.assert_array_equal(a, b)
    x, _ = task.dummy_batch(2)
    assert task.model(x).shape == (2, 6, 20)
