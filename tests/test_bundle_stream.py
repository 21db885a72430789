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
        one_step = name.split("_")[0] in ("charlm", "music", "translator", "captioner")
        assert ("decoder" in spec) == one_step, sorted(spec)
        for graph in spec.values():
            assert graph["state"] and all(s["initial"] for s in graph["state"])
        if name.startswith("music_"):
            assert spec["decoder"]["start"]["feed"] == "zeros"
            assert spec["decoder"]["keys"]["activation"] == "sigmoid"
