"""The manifest's ``stream`` description (issue #39, part 2): every graph that carries recurrent
state is described in ``bundle.json`` (state inputs and outputs, dtypes, shapes, initial values,
how to start, which output positions are real symbols), written at export, checked and exposed
by the runtime (``stream_spec``), and enough on its own: a greedy loop in plain onnxruntime that
reads only ``bundle.json`` reproduces ``generate(temperature=0)`` of the shipped char LM."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TRAIN_EXTRA_PACKAGES, run_python, without_packages
from rnnzoo.export import runtime
from rnnzoo.export.migrate import migrate_bundle
from rnnzoo.export.streamspec import describe_stream

import rnnzoo
from rnnzoo.presets import installed_presets

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "legacy_v0"
INSTALLED = {name: path for name, (_, path) in installed_presets().items()}
CHARLM = "charlm_lstm.shakespeare"


def _charlm_bundle() -> Path:
    if CHARLM not in INSTALLED:
        pytest.skip(f"{CHARLM} is not installed (pip install ./presets/text_generation)")
    return INSTALLED[CHARLM] / "onnx" / "fp32"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny char LM (random weights) exported once: (bundle, report, task)."""
    from rnnzoo.export import to_onnx

    from rnnzoo.apps.text_generation.data import CharVocab
    from rnnzoo.families.charlm import TINY_OVERRIDES

    task = rnnzoo.create_model("charlm_lstm", model=TINY_OVERRIDES["model"],
                               data=TINY_OVERRIDES["data"], training=TINY_OVERRIDES["training"])
    task.preprocessor = CharVocab.fit("abcab.\ncabba!\n", task.config.model.vocab_size)
    out = tmp_path_factory.mktemp("charlm") / "bundle"
    return out, to_onnx(task, out, validate=False), task


def test_export_describes_the_state_and_prints_one_digest(exported):
    out, report, task = exported
    manifest = json.loads((out / "bundle.json").read_text())
    graphs = manifest["stream"]["graphs"]
    assert sorted(graphs) == ["decoder", "model"]
    step = graphs["decoder"]
    units = task.config.model.units
    assert step["state"] == [
        {"input": f"state_{i}", "output": f"new_state_{i}", "dtype": "float32",
         "shape": ["batch", units], "initial": "zeros"} for i in range(2)]
    assert step["inputs"] == [{"name": "char", "dtype": "int32", "shape": ["batch"]}]
    assert step["symbols"]["count"] == task.preprocessor.size < task.config.model.vocab_size
    assert step["start"]["feed"] == task.preprocessor.start_id and step["start"]["symbol"] == "\n"
    assert graphs["model"]["symbols"]["input"] == "chars"
    # One digest for the whole bundle: printed, equal to sha256(SHA256SUMS), pinnable.
    assert report.digest == hashlib.sha256((out / "SHA256SUMS").read_bytes()).hexdigest()
    assert f"bundle digest: sha256={report.digest}" in report.summary()
    model = runtime.load(out, expected_digest=report.digest)
    assert model.stream_spec == graphs and model.digest == report.digest


def _greedy_from_manifest(bundle: Path, prompt: str, steps: int) -> str:
    """Greedy generation that knows nothing of rnnzoo: bundle.json's stream and onnxruntime."""
    import onnxruntime as ort

    manifest = json.loads((bundle / "bundle.json").read_text())
    step = manifest["stream"]["graphs"]["decoder"]
    symbols = step["symbols"]
    vocabulary = json.loads((bundle / symbols["vocabulary"]).read_text())[symbols["key"]]
    session = ort.InferenceSession(str(bundle / manifest["graphs"]["decoder"]["file"]),
                                   providers=["CPUExecutionProvider"])
    state = {s["input"]: np.zeros([1 if d == "batch" else d for d in s["shape"]], s["dtype"])
             for s in step["state"]}

    def feed(symbol: int) -> np.ndarray:
        out = dict(zip([o.name for o in session.get_outputs()], session.run(None, {
            **state, symbols["input"]: np.array([symbol], np.int32)})))
        state.update({s["input"]: out[s["output"]] for s in step["state"]})
        return out[symbols["output"]][0]

    for symbol in [step["start"]["feed"], *(vocabulary.index(c) for c in prompt)]:
        logits = feed(symbol)
    text = ""
    for _ in range(steps):
        symbol = int(np.argmax(logits[: symbols["count"]]))
        text += vocabulary[symbol]
        logits = feed(symbol)
    return text


def test_the_description_alone_reproduces_greedy_generation():
    bundle = _charlm_bundle()
    want = rnnzoo.from_preset(CHARLM, backend="onnx").generate("ROMEO:", steps=50,
                                                                 temperature=0)
    assert _greedy_from_manifest(bundle, "ROMEO:", 50) == want


def test_slicing_the_logits_to_the_symbols_is_how_rnnzoo_scores():
    bundle = _charlm_bundle()
    model = runtime.load(bundle)
    count = model.stream_spec["model"]["symbols"]["count"]
    assert count == len(model.vocabulary) == 66
    text = "ROMEO:\nBut soft, what light through yonder window breaks?\n" * 4
    ids = model.preprocessor.encode(text)
    feed = np.concatenate([[model.stream_spec["model"]["start"]["feed"]], ids[:-1]])
    state = {s["input"]: np.zeros((1, s["shape"][1]), np.float32)
             for s in model.stream_spec["model"]["state"]}
    logits = model.run("model", {"chars": feed[None].astype(np.int32), **state})["logits"][0]
    logits = logits.astype(np.float64)

    def nats(z: np.ndarray) -> float:
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(ids)), ids].mean())

    sliced, full = nats(logits[:, :count]), nats(logits)
    assert sliced == pytest.approx(model.evaluate(text)["nats_per_char"], rel=1e-6)
    assert sliced < full  # a softmax over all 128 puts mass on non-characters


def test_encoder_outputs_feed_the_decoder_state(tmp_path):
    bundle = tmp_path / "translator"
    shutil.copytree(FIXTURES / "translator_gru_attention_bundle", bundle)
    migrate_bundle(bundle)
    step = runtime.load(bundle).stream_spec["decoder"]
    assert step["state"][0]["initial"] == {"graph": "encoder", "output": "state_0"}
    fed = {i["name"]: i.get("from") for i in step["inputs"]}
    assert fed["encoder_outputs"] == {"graph": "encoder", "output": "encoder_outputs"}
    assert fed["token"] is None and "encoder" not in runtime.load(bundle).stream_spec


def test_a_bundle_without_stream_gets_the_derived_description():
    spec = runtime.load(FIXTURES / "translator_gru_attention_bundle").stream_spec
    assert [s["input"] for s in spec["decoder"]["state"]] == ["state_0"]
    assert runtime.load(FIXTURES / "sentiment_gru_bundle").stream_spec == {}


def test_a_description_that_does_not_match_the_graphs_is_refused(tmp_path):
    bundle = tmp_path / "translator"
    shutil.copytree(FIXTURES / "translator_gru_attention_bundle", bundle)
    migrate_bundle(bundle)
    path = bundle / "bundle.json"
    original = json.loads(path.read_text())
    cases = [
        (lambda s: s["graphs"]["decoder"]["state"][0].update(shape=["batch", 64]),
         r"stream\.graphs\.decoder\.state does not match the graph's inputs and outputs"),
        (lambda s: s["graphs"].pop("decoder"),
         r"stream\.graphs lists \[\], but the graphs that carry state .* are \['decoder'\]"),
        (lambda s: s["graphs"]["decoder"].update(symbols={"output": "logits", "count": 41}),
         r"stream\.graphs\.decoder\.symbols: expected"),
    ]
    for change, pattern in cases:
        manifest = json.loads(json.dumps(original))
        change(manifest["stream"])
        path.write_text(json.dumps(manifest))
        with pytest.raises(runtime.BundleError, match=pattern):
            runtime.read_manifest(bundle, verify=False)


def test_hints_only_add_to_stateful_graphs():
    graphs = json.loads((FIXTURES / "translator_gru_attention_bundle" / "bundle.json")
                        .read_text())["graphs"]
    with pytest.raises(ValueError, match="graph 'encoder', which carries no state"):
        describe_stream(graphs, {"encoder": {"start": {}}})
    with pytest.raises(ValueError, match=r"may not replace \['state'\]"):
        describe_stream(graphs, {"decoder": {"state": []}})


@pytest.mark.parametrize("name", sorted(INSTALLED))
def test_every_shipped_bundle_is_described(name):
    for precision in ("fp32", "int8"):
        bundle = INSTALLED[name] / "onnx" / precision
        if not bundle.is_dir():
            continue
        spec = runtime.read_manifest(bundle)["stream"]["graphs"]
        one_step = name.split("_")[0] in ("charlm", "music", "translator", "captioner",
                                          "recommender")
        assert ("decoder" in spec) == one_step, sorted(spec)
        for graph in spec.values():
            assert graph["state"] and all(s["initial"] for s in graph["state"])
        if name.startswith("music_"):
            assert spec["decoder"]["start"]["feed"] == "zeros"
            assert spec["decoder"]["keys"]["activation"] == (  # RNN-NADE: key by key
                "nade" if "_nade" in name else "sigmoid")
        if name.startswith(("translator_", "captioner_")):  # _stream_manifest of both
            step = spec["decoder"]
            assert (step["start"]["symbol"], step["end"]["symbol"]) == ("<s>", "</s>")
            assert step["symbols"]["vocabulary"].startswith("assets/")
            assert ("source_mask" in step) == name.startswith("translator_")
        if name.startswith("recommender_"):  # inputs and logits index the item catalogue
            assert spec["decoder"]["symbols"]["vocabulary"] == "assets/items.json"
        if name.startswith("esn_"):  # re-exported with its step graph
            assert sorted(spec) == ["step"]
        if name.startswith("video_"):  # the per-frame ConvLSTM step, states [batch, h, w, c]
            assert sorted(spec) == ["step"] and len(spec["step"]["state"][0]["shape"]) == 4


# -- translator and captioner decoders: the description alone decodes --------------------------
TRANSLATOR = "translator_gru_attention.spa_eng"
CAPTIONER = "captioner_lstm_attention.flickr8k_subset"
SOURCES = ["¿Dónde está la estación?", "TENGO HAMBRE.", "Tom no quiere ir a la escuela mañana.",
           "me gusta leer libros, pero no tengo tiempo", "«Xyzzy» dijo: ¡qué-tal!", ""]


def _installed_bundle(name: str) -> Path:
    if name not in INSTALLED:
        pytest.skip(f"{name} is not installed (pip install ./presets/*/)")
    return INSTALLED[name] / "onnx" / "fp32"


def _greedy_decoder(bundle: Path, encoder_feeds: dict[str, np.ndarray],
                    decoder_extra: dict[str, np.ndarray] | None = None) -> list[int]:
    """Greedy decoding that knows nothing of rnnzoo: bundle.json's ``stream`` and onnxruntime.
    The decoder's state starts from the encoder outputs its ``initial`` names, its ``from``
    inputs are the encoder's, and the next id is the argmax over the first ``count`` logits,
    the ids in ``never`` left out."""
    import onnxruntime as ort

    manifest = json.loads((bundle / "bundle.json").read_text())
    step = manifest["stream"]["graphs"]["decoder"]
    symbols, end = step["symbols"], step["end"]

    def session(graph: str) -> ort.InferenceSession:
        return ort.InferenceSession(str(bundle / manifest["graphs"][graph]["file"]),
                                    providers=["CPUExecutionProvider"])

    encoder, decoder = session("encoder"), session("decoder")
    encoded = dict(zip([o.name for o in encoder.get_outputs()],
                       encoder.run(None, encoder_feeds)))
    state = {s["input"]: encoded[s["initial"]["output"]] for s in step["state"]}
    fixed = {i["name"]: encoded[i["from"]["output"]] for i in step["inputs"] if "from" in i}
    fixed.update(decoder_extra or {})
    names = [o.name for o in decoder.get_outputs()]
    token, ids = step["start"]["feed"], []
    for _ in range(end["max_steps"]):
        out = dict(zip(names, decoder.run(None, {
            **state, **fixed, symbols["input"]: np.array([token], np.int32)})))
        state = {s["input"]: out[s["output"]] for s in step["state"]}
        logits = out[symbols["output"]][0, : symbols["count"]].astype(np.float64)
        logits[symbols["never"]] = -np.inf
        token = int(np.argmax(logits))
        ids.append(token)
        if token == end["id"]:
            break
    return ids


def test_the_translator_description_alone_reproduces_translate():
    """Source ids from ``stream.decoder.source`` (NFC, lower-case, the token regex, the source
    vocabulary), ``source_mask`` as its note says, then greedy decoding: the same translation
    as ``translate`` for every sentence (punctuation, capitals, unknown words, an empty one)."""
    import re
    import unicodedata

    bundle = _installed_bundle(TRANSLATOR)
    model = runtime.load(bundle)
    step = model.stream_spec["decoder"]
    source = step["source"]
    assert step["start"]["symbol"] == "<s>" and step["end"]["symbol"] == "</s>"
    assert step["symbols"]["count"] == len(model.preprocessor.target.vocab) <= \
        model.manifest["graphs"]["decoder"]["outputs"][0]["shape"][-1]
    assert step["source_mask"]["from"] == {"graph": "encoder", "input": "source"}
    vocab = json.loads((bundle / source["vocabulary"]).read_text())[source["key"]]
    index = {w: i for i, w in enumerate(vocab)}
    for text in SOURCES:
        text_n = unicodedata.normalize(source["unicode"], text)
        words = re.findall(source["tokens"], text_n.lower() if source["lowercase"] else text_n)
        ids = ([index.get(w, source["unknown_id"]) for w in words]
               or [source["unknown_id"]])[: source["max_tokens"]]
        assert ids == model.preprocessor.encode_source(text), text
        tokens = np.array([ids], np.int32)
        mask = (tokens != step["source_mask"]["pad_id"]).astype(np.float32)
        out = _greedy_decoder(bundle, {source["input"]: tokens}, {"source_mask": mask})
        assert model.preprocessor.decode_target(out) == model.translate(text), text


def test_the_captioner_description_alone_reproduces_caption():
    from rnnzoo.apps.image_captioning.cli import example_inputs

    bundle = _installed_bundle(CAPTIONER)
    model = runtime.load(bundle)
    step = model.stream_spec["decoder"]
    width = model.manifest["graphs"]["decoder"]["outputs"][0]["shape"][-1]
    assert step["symbols"]["count"] == len(model.preprocessor.tokenizer.vocab) == 750 < width
    assert step["symbols"]["never"] == [0, 1, 2]  # <pad>, <unk>, <s>
    for image in example_inputs():
        image = np.asarray(image, np.uint8)  # one picture (a nested list reads as a batch)
        pixels = model.preprocessor.pixels([image])
        out = _greedy_decoder(bundle, {"image": pixels})
        assert model.preprocessor.decode(out) == model.caption(image)


def test_the_shipped_echo_state_network_streams_on_a_slim_install():
    """The re-exported bundle carries its ``step`` graph: with neither TensorFlow nor ``onnx``
    installed, feeding a window one row at a time gives ``forecast(window)``."""
    name = "esn_forecaster.mackey_glass"
    bundle = _installed_bundle(name)
    spec = runtime.read_manifest(bundle)["stream"]["graphs"]
    assert sorted(spec) == ["step"] and spec["step"]["state"][0]["shape"] == ["batch", 500]
    proc = run_python(without_packages(f"""
        import sys
        import numpy as np
        import rnnzoo
        model = rnnzoo.from_preset("{name}", backend="onnx")
        window = np.sin(np.arange(model.lookback) / 7.0)[:, None]
        s = model.stream()
        for row in window:
            last = s.step(row)
        want = model.forecast(window)
        assert np.abs(last - want).max() < 1e-4, (last, want)
        assert not {{"onnx", "tensorflow", "keras"}} & set(sys.modules)
        print("OK", float(last.ravel()[0]), float(want.ravel()[0]))
    """, blocked=(*TRAIN_EXTRA_PACKAGES, "onnx")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("OK")
