"""Bundles of a text classifier: int8 beside fp32 and re-validated, the TF-free runtime rejects
bad input and tampered files clearly, per-graph session options. (Every registry entry's export
and runtime parity is checked by tests/test_lifecycle.py.)"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import run_python, tiny_overrides, without_packages
from rnnzoo.export import runtime, to_onnx
from rnnzoo.export.errors import ExportError

import rnnzoo
from rnnzoo.errors import DataError
from rnnzoo.registry import get_entry


def _tiny_trained(name: str, **model: object):
    """A tiny text classifier with a fitted vocabulary and random (not trained) weights;
    ``model`` overrides its model config."""
    tiny = {k: dict(v) for k, v in tiny_overrides(get_entry(name).family).items()}
    tiny["model"].update(model)
    task = rnnzoo.create_model(name, **tiny)
    words = "the a movie film good bad plot actors was really".split()
    task.preprocessor.tokenizer.fit([" ".join(words)], max_size=task.config.model.vocab_size)
    task.preprocessor.label_names = ["neg", "pos"]
    rng = np.random.default_rng(0)
    task.model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                            for w in task.model.get_weights()])
    return task


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "bilstm"
    report = to_onnx(_tiny_trained("sentiment_bilstm"), out, quantize="int8")
    return out, report


def test_int8_bundle_is_written_beside_and_revalidated(bundle):
    out, report = bundle
    int8 = out.with_name(out.name + "-int8")
    assert report.int8_path == int8 and (out / "model.onnx").is_file()
    manifest = json.loads((int8 / "bundle.json").read_text())
    assert manifest["precision"] == "int8"
    assert manifest["validation_int8"]["op_counts"].get("DynamicQuantizeLSTM", 0) >= 1
    assert report.int8["argmax_agreement"] >= 0.9
    labels, probs = runtime.load(int8).predict(["good movie"])
    assert labels[0] in ("neg", "pos") and probs.shape == (1, 2)


def test_runtime_rejects_bad_input(bundle):
    rt = runtime.load(bundle[0])
    ok = np.array([[3, 4, 0]], np.int32)
    assert rt.predict_tokens(ok).shape == (1, 2)
    cases = [
        (np.array([[0, 3, 4]], np.int32), "row 0 is not post-padded"),
        (ok.astype(np.float32), "expected dtype int32, got float32"),
        (ok.astype(np.int64), "expected dtype int32, got int64"),
        (np.array([3, 4], np.int32), "expected rank 2"),
        (np.zeros((0, 3), np.int32), "empty batch"),
        (np.array([[3, 9999]], np.int32), "token id 9999 out of range"),
        (np.array([[-1, 2]], np.int32), "token id -1 out of range"),
        ([[1, 2]], "expected a numpy array"),
    ]
    for tokens, message in cases:
        with pytest.raises(DataError, match=message):
            rt.predict_tokens(tokens)
    with pytest.raises(DataError, match="empty list of texts"):
        rt.predict([])


def test_tampered_bundle_is_refused(bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bundle[0], copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-100] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(runtime.BundleError, match="sha256 mismatch"):
        runtime.load(copy)
    (copy / "assets" / "labels.json").unlink()
    with pytest.raises(runtime.BundleError, match="missing"):
        runtime.load(copy)
    with pytest.raises(runtime.BundleError, match="no bundle.json"):
        runtime.load(tmp_path)


def test_unavailable_provider_is_a_clear_error(bundle):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA")
    with pytest.raises(runtime.BundleError, match="install onnxruntime-gpu"):
        runtime.load(bundle[0], providers=["CUDAExecutionProvider"])


def test_per_graph_session_options(bundle):
    rt = runtime.load(bundle[0], graph_options={"model": {"intra_op_threads": 2,
                                                          "spinning": True}})
    expected = runtime.load(bundle[0]).predict_proba(["good movie", "bad"])
    np.testing.assert_array_equal(rt.predict_proba(["good movie", "bad"]), expected)
    opts = rt.sessions["model"].get_session_options()
    assert opts.intra_op_num_threads == 2
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    with pytest.raises(runtime.BundleError, match="no graph 'decoder'.*graphs: model"):
        runtime.load(bundle[0], graph_options={"decoder": {"intra_op_threads": 2}})
    with pytest.raises(runtime.BundleError, match=r"unknown option\(s\) \['threads'\]"):
        runtime.load(bundle[0], graph_options={"model": {"threads": 2}})
    with pytest.raises(runtime.BundleError, match="intra_op_threads must be an integer"):
        runtime.load(bundle[0], intra_op_threads=-1)


def test_existing_output_is_not_overwritten(bundle):
    with pytest.raises(ExportError, match="already exists"):
        to_onnx(_tiny_trained("sentiment_gru"), bundle[0])


def test_runtime_works_with_tensorflow_and_keras_unimportable(bundle):
    proc = run_python(without_packages(f"""
        from rnnzoo.export import runtime
        rt = runtime.load({str(bundle[0])!r})
        labels, probs = rt.predict(['the movie was good', 'bad'])
        assert probs.shape == (2, 2), probs.shape
        assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)
        print('OK', labels)
    """))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK")
