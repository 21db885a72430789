"""The TF-free runtime and bundle manifests against hostile input (issue 10): random shapes,
dtypes and Python values into ``check_tokens``, ``predict``, ``translate`` and ``run``, and random
or tampered manifests into ``read_manifest``, may give a result or an rnnzoo error, never a raw
numpy/onnxruntime/Python exception, a silent wrong answer or unbounded work.

The bundles are the checked-in fixtures (``tests/fixtures/legacy_v0``), so no TensorFlow runs
here."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rnnzoo.export import runtime
from rnnzoo.export.bundle import BundleError, check_tokens, read_manifest

from rnnzoo.errors import ConfigError, DataError, RnnzooError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "legacy_v0"
CLASSIFIER = FIXTURES / "sentiment_gru_bundle"
TRANSLATOR = FIXTURES / "translator_gru_attention_bundle"
FAST = settings(max_examples=int(os.environ.get("RNNZOO_HYPOTHESIS_EXAMPLES", "40")),
                deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def classifier():
    return runtime.load(CLASSIFIER)


@pytest.fixture(scope="module")
def translator():
    return runtime.load(TRANSLATOR)


def only_rnnzoo_errors(call, *args, **kwargs):
    """The call's result, or None when it raised an rnnzoo error (anything else fails)."""
    try:
        return call(*args, **kwargs)
    except RnnzooError as exc:
        assert "\n" not in str(exc), str(exc)
        return None


# == token batches =============================================================================
DTYPES = st.sampled_from([np.int32, np.int64, np.int8, np.uint16, np.float32, np.float64,
                          np.bool_, np.complex64])
TOKEN_ARRAYS = hnp.arrays(dtype=DTYPES, shape=hnp.array_shapes(min_dims=0, max_dims=3,
                                                               min_side=0, max_side=6))


@FAST
@given(tokens=st.one_of(TOKEN_ARRAYS,
                        hnp.arrays(np.int32, hnp.array_shapes(min_dims=2, max_dims=2,
                                                              max_side=6),
                                   elements=st.integers(-3, 70)),
                        st.lists(st.integers()), st.none(), st.text(), st.integers()))
def test_check_tokens_accepts_valid_batches_and_names_everything_else(tokens):
    checked = only_rnnzoo_errors(check_tokens, tokens, 64)
    if checked is not None:
        assert checked.dtype == np.int32 and checked.ndim == 2 and checked.size
        assert checked.min() >= 0 and checked.max() < 64


@FAST
@given(tokens=st.one_of(TOKEN_ARRAYS, hnp.arrays(np.int32, hnp.array_shapes(
    min_dims=2, max_dims=2, max_side=6), elements=st.integers(-3, 1000))))
def test_predict_tokens_never_raises_a_raw_error(classifier, tokens):
    probs = only_rnnzoo_errors(classifier.predict_tokens, tokens)
    if probs is not None:
        assert probs.shape == (tokens.shape[0], 2)
        assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)


# == the user calls ============================================================================
TEXTS = st.one_of(
    st.text(max_size=30), st.lists(st.text(max_size=20), max_size=5),
    st.lists(st.one_of(st.text(max_size=5), st.integers(), st.none(), st.binary(max_size=5)),
             max_size=4),
    st.none(), st.integers(), st.binary(max_size=10), st.dictionaries(st.text(max_size=3),
                                                                       st.text(max_size=3)),
    st.sets(st.text(max_size=3), max_size=3),
)
COUNTS = st.one_of(st.integers(-5, 70), st.floats(allow_nan=True), st.none(), st.text(max_size=3),
                   st.booleans())


@FAST
@given(texts=TEXTS, batch_size=COUNTS)
def test_predict_gives_one_answer_per_text_or_an_rnnzoo_error(classifier, texts, batch_size):
    pred = only_rnnzoo_errors(classifier.predict, texts, batch_size=batch_size)
    if pred is not None:
        n = 1 if isinstance(texts, str) else len(texts)
        assert len(pred.labels) == n and pred.probs.shape == (n, 2)
        assert isinstance(batch_size, int) and batch_size >= 1


def test_predict_argument_errors_are_typed(classifier):
    with pytest.raises(ConfigError, match=r"batch_size: expected an integer >= 1, found -1"):
        classifier.predict(["good"], batch_size=-1)  # used to return zeros
    with pytest.raises(DataError, match="expected strings, found int at position 1"):
        classifier.predict(["good", 3])
    with pytest.raises(DataError, match="found set"):
        classifier.predict({"good", "bad"})
    with pytest.raises(DataError, match="got 2 texts but 1 labels"):
        classifier.evaluate(["good", "bad"], ["pos"])
    with pytest.raises(DataError, match="labels must be a list"):
        classifier.evaluate(["good", "bad"], "pn")


SAMPLER_OPTIONS = st.fixed_dictionaries({}, optional={
    "k": st.one_of(st.integers(-2, 50), st.floats(), st.text(max_size=2)),
    "p": st.one_of(st.floats(-1, 2), st.integers(-1, 2), st.none()),
    "temperature": st.one_of(st.floats(allow_nan=True), st.integers(-1, 3)),
    "width": st.integers(-2, 10**6),
    "bogus": st.integers(),
})


@FAST
@given(texts=TEXTS, beam=st.one_of(st.none(), st.integers(-3, 10**7), st.floats(),
                                   st.text(max_size=2)),
       sampler=st.one_of(st.none(), st.sampled_from(["greedy", "temperature", "top_k", "top_p",
                                                     "beam", "nucleus", ""]), st.integers()),
       max_length=st.one_of(st.none(), st.integers(-2, 6), st.floats()),
       batch_size=COUNTS, options=SAMPLER_OPTIONS)
def test_translate_gives_strings_or_an_rnnzoo_error(translator, texts, beam, sampler,
                                                    max_length, batch_size, options):
    out = only_rnnzoo_errors(translator.translate, texts, beam=beam, sampler=sampler,
                             max_length=max_length, batch_size=batch_size, seed=0, **options)
    if out is not None:
        if isinstance(texts, str):
            assert isinstance(out, str)
        else:
            assert len(out) == len(texts) and all(isinstance(t, str) for t in out)


def test_beam_wider_than_the_vocabulary_is_refused_at_once(translator):
    vocab = translator.preprocessor.target.vocab_size
    for call in (lambda: translator.translate("hola", beam=vocab + 1),
                 lambda: translator.translate("hola", sampler="beam", width=10**6)):
        with pytest.raises(ConfigError, match=rf"in \[1, {vocab}\] \(the target vocabulary\)"):
            call()
    assert isinstance(translator.translate("hola", beam=vocab, max_length=3), str)


# == feeds, providers, session options ==========================================================
FEEDS = st.dictionaries(
    st.one_of(st.sampled_from(["tokens", "source", "token", "state_0"]), st.text(max_size=4)),
    st.one_of(TOKEN_ARRAYS, st.lists(st.integers(), max_size=3), st.none()), max_size=3)


@FAST
@given(graph=st.one_of(st.sampled_from(["model", "encoder", "decoder"]), st.text(max_size=4),
                       st.none()),
       feeds=st.one_of(FEEDS, st.lists(st.integers(), max_size=2), st.none()))
def test_run_with_random_graphs_and_feeds(classifier, translator, graph, feeds):
    for rt in (classifier, translator):
        only_rnnzoo_errors(rt.run, graph, feeds)


def test_wrong_feed_names_name_the_expected_inputs(classifier, translator):
    with pytest.raises(DataError, match=r"model: wrong feed names \(missing tokens; unknown "
                                        r"'source'\); this graph's inputs are tokens"):
        classifier.run("model", {"source": np.zeros((1, 2), np.int32)})
    with pytest.raises(DataError, match="inputs are token, state_0, encoder_outputs"):
        translator.run("decoder", {"token": np.zeros(1, np.int32)})
    with pytest.raises(DataError, match=r"no graph 'decoderr' in this bundle \(graphs: "):
        translator.run("decoderr", {})
    with pytest.raises(DataError, match="must have dtype int32, found int64"):
        classifier.run("model", {"tokens": np.zeros((1, 2), np.int64)})


@pytest.mark.parametrize("kwargs, pattern", [
    ({"providers": "CPUExecutionProvider"}, "providers: expected a list of execution provider"),
    ({"providers": [1]}, "providers: expected a list"),
    ({"providers": ["NopeExecutionProvider"]}, r"not available in this onnxruntime build"),
    ({"inter_op_threads": -1}, "inter_op_threads must be an integer >= 0"),
    ({"intra_op_threads": 1.5}, "intra_op_threads must be an integer >= 0"),
    ({"spinning": "yes"}, "spinning must be True or False"),
    ({"graph_options": ["model"]}, "graph_options: expected a mapping"),
    ({"graph_options": {"model": 2}}, r"graph_options\['model'\]: expected a mapping"),
])
def test_bad_runtime_options_are_bundle_errors(kwargs, pattern):
    with pytest.raises(BundleError, match=pattern):
        runtime.load(CLASSIFIER, **kwargs)


# == manifests ==================================================================================
def bundle_copy(tmp_path: Path, source: Path = CLASSIFIER) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(source, dest)
    return dest


def edit_manifest(bundle: Path, change) -> None:
    path = bundle / "bundle.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_a_graph_file_not_in_files_is_refused(tmp_path):
    bundle = bundle_copy(tmp_path)
    shutil.copy(bundle / "model.onnx", bundle / "other.onnx")

    def point_elsewhere(m):
        m["graphs"]["model"]["file"] = "other.onnx"

    edit_manifest(bundle, point_elsewhere)
    with pytest.raises(BundleError, match=r"graph 'model' names file 'other\.onnx', which "
                                          r"'files' does not list"):
        read_manifest(bundle, verify=False)  # structure is checked even unverified


def test_an_unlisted_file_or_symlink_in_the_bundle_is_refused(tmp_path):
    bundle = bundle_copy(tmp_path)
    (bundle / "assets" / "extra.json").write_text("{}")
    with pytest.raises(BundleError, match=r"assets/extra\.json is not listed in bundle\.json"):
        runtime.load(bundle)
    (bundle / "assets" / "extra.json").unlink()
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"x")
    (bundle / "link.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match=r"link\.onnx is not listed"):
        runtime.load(bundle)


@pytest.mark.parametrize("name, pattern", [
    ("../outside.onnx", r"leaves the directory"),
    ("/etc/passwd", r"is an absolute path"),
    ("assets/../model.onnx", r"leaves the directory"),
    ("a\\b", r"backslash"),
])
def test_unsafe_file_names_are_refused_even_unverified(tmp_path, name, pattern):
    bundle = bundle_copy(tmp_path)
    edit_manifest(bundle, lambda m: m["files"].update({name: "0" * 64}))
    with pytest.raises(BundleError, match=pattern):
        read_manifest(bundle, verify=False)


def test_a_symlinked_listed_file_leaving_the_bundle_is_refused(tmp_path):
    bundle = bundle_copy(tmp_path)
    outside = tmp_path / "labels.json"
    shutil.move(bundle / "assets" / "labels.json", outside)
    (bundle / "assets" / "labels.json").symlink_to(outside)
    with pytest.raises(BundleError, match="symbolic link"):
        runtime.load(bundle)
    with pytest.raises(BundleError, match="symbolic link"):
        runtime.load(bundle, verify=False).asset("labels.json")


def test_asset_opens_only_listed_files(tmp_path):
    bundle = bundle_copy(tmp_path)
    rt = runtime.load(bundle)
    assert rt.asset("labels.json").is_file()
    (bundle / "assets" / "secret.json").write_text("{}")  # after loading
    for name in ("secret.json", "../bundle.json", "../../outside", 3):
        with pytest.raises(BundleError, match="not listed in bundle.json"):
            rt.asset(name)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)
FILE_NAMES = st.one_of(st.sampled_from(["model.onnx", "assets/labels.json", "../x", "/abs",
                                        "assets", ".", "", "a//b", "assets/./labels.json"]),
                       st.text(max_size=12))


@FAST
@given(manifest=st.fixed_dictionaries(
    {"format": st.one_of(st.just("rnnzoo.onnx_bundle.v1"), JSON)},
    optional={"task": st.one_of(st.just("text-classification"), JSON),
              "family": st.one_of(st.just("sentiment"), JSON),
              "entry": st.one_of(st.just("sentiment_gru"), JSON),
              "files": st.one_of(st.dictionaries(FILE_NAMES, st.one_of(
                  st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), JSON),
                  max_size=4), JSON),
              "graphs": st.one_of(st.dictionaries(st.text(max_size=6), st.one_of(
                  st.fixed_dictionaries({"file": FILE_NAMES}), JSON), max_size=2), JSON),
              "preprocessing": JSON}),
       verify=st.booleans())
def test_random_manifests_give_a_manifest_or_a_bundle_error(tmp_path_factory, manifest, verify):
    bundle = tmp_path_factory.mktemp("m")
    (bundle / "model.onnx").write_bytes(b"onnx")
    (bundle / "assets").mkdir()
    (bundle / "assets" / "labels.json").write_text("[]")
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    try:
        found = read_manifest(bundle, verify=verify)
    except BundleError as exc:
        assert "\n" not in str(exc)
        return
    assert set(found["graphs"]) and all(g["file"] in found["files"]
                                        for g in found["graphs"].values())
    try:
        runtime.load(bundle, verify=verify)
    except RnnzooError:
        pass
