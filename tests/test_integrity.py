"""Whole-bundle integrity (issue #31, item 5): ``SHA256SUMS`` covers every file of a bundle,
``bundle.json`` included, so an edited manifest is refused; the bundle digest (sha256 of that
listing) pins the whole bundle, so a graph replaced together with its listed hashes is caught
when the user pins it; presets record their bundles' digests and a preset whose recorded digest
is not what loads is refused; the shipped presets are migrated. TF-free: the bundles are the
checked-in fixtures and the shipped presets."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from rnnzoo.export import runtime
from rnnzoo.export.integrity import canonical_listing, digest_of, read_checksums
from rnnzoo.export.migrate import adopt_bundles, migrate_bundle, migrate_preset

from rnnzoo.presets import PresetError, installed_presets, verify_preset

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "legacy_v0"
TRANSLATOR = FIXTURES / "translator_gru_attention_bundle"
CLASSIFIER = FIXTURES / "sentiment_gru_bundle"
INSTALLED = {name: path for name, (_, path) in installed_presets().items()}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def translator(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the legacy translator bundle, migrated (stream + SHA256SUMS), and its digest."""
    bundle = tmp_path / "translator"
    shutil.copytree(TRANSLATOR, bundle)
    return bundle, migrate_bundle(bundle)


def _rewrite_all_hashes(bundle: Path) -> None:
    """What a deliberate tamperer does after replacing a file: fix every listed hash."""
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["files"] = {rel: _sha(bundle / rel) for rel in manifest["files"]}
    (bundle / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    sums = {**manifest["files"], "bundle.json": _sha(bundle / "bundle.json")}
    (bundle / "SHA256SUMS").write_text(canonical_listing(sums))


def test_the_digest_is_the_sha256_of_a_sha256sum_listing_of_every_file(translator):
    bundle, digest = translator
    sums = read_checksums(bundle)
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*")
                   if p.is_file() and p.name != "SHA256SUMS")
    assert sorted(sums) == files and "bundle.json" in sums
    assert all(sums[rel] == _sha(bundle / rel) for rel in files)
    # `sha256sum -c SHA256SUMS` format, and `sha256sum SHA256SUMS` prints the digest.
    text = (bundle / "SHA256SUMS").read_text()
    assert text.splitlines()[0] == f"{sums[files[0]]}  {files[0]}"
    assert digest == _sha(bundle / "SHA256SUMS") == digest_of(sums)
    model = runtime.load(bundle, expected_digest=digest)
    assert model.digest == digest == runtime.bundle_digest(bundle)
    # Pins are accepted as printed by sha256sum, with a prefix or in upper case.
    runtime.load(bundle, expected_digest=f"sha256:{digest.upper()}")
    with pytest.raises(runtime.BundleError, match=r"expected_digest: expected a bundle digest "
                                                  r"\(64 hex digits"):
        runtime.load(bundle, expected_digest="abc")


def test_editing_bundle_json_is_caught_by_the_checksums(translator):
    bundle, _ = translator
    before = runtime.load(bundle).translate(["hola"], max_length=4)
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["preprocessing"]["max_length"] = 1000  # would change every answer silently
    (bundle / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    with pytest.raises(runtime.BundleError, match=r"bundle\.json: sha256 mismatch"):
        runtime.load(bundle)
    # Removing the listing does not get an edited manifest past the check either.
    (bundle / "SHA256SUMS").unlink()
    with pytest.raises(runtime.BundleError, match=r"SHA256SUMS is missing"):
        runtime.load(bundle)
    assert before  # the untouched bundle translated


def test_a_graph_replaced_with_its_hashes_loads_but_not_when_pinned(translator):
    bundle, digest = translator
    graph = bundle / "decoder_model.onnx"
    data = graph.read_bytes()
    graph.write_bytes(data + b"\x32\x08tampered")  # doc_string (field 6): still a valid model
    _rewrite_all_hashes(bundle)
    assert runtime.load(bundle).translate(["hola"], max_length=4)  # the checksums all agree
    found = runtime.bundle_digest(bundle)
    with pytest.raises(runtime.BundleDigestError, match=rf"bundle digest mismatch: pinned "
                                                       rf"sha256={digest}, found sha256={found}"):
        runtime.load(bundle, expected_digest=digest)
    # The pin verifies even when verify=False was asked for.
    with pytest.raises(runtime.BundleDigestError) as info:
        runtime.load(bundle, verify=False, expected_digest=digest)
    assert (info.value.expected, info.value.found) == (digest, found)


def test_a_listing_that_disagrees_with_the_manifest_is_refused(translator):
    bundle, _ = translator
    text = (bundle / "SHA256SUMS").read_text()
    (bundle / "SHA256SUMS").write_text("".join(sorted(text.splitlines(keepends=True),
                                                      reverse=True)))
    with pytest.raises(runtime.BundleError, match="not in canonical form"):
        runtime.load(bundle)
    lines = [line for line in text.splitlines(keepends=True) if "assets/" not in line]
    (bundle / "SHA256SUMS").write_text("".join(lines))
    with pytest.raises(runtime.BundleError, match=r"SHA256SUMS and bundle\.json list different "
                                                  r"files \(assets/"):
        runtime.load(bundle)


def test_a_bundle_from_before_sha256sums_still_loads_and_can_be_pinned():
    sums = {rel: _sha(CLASSIFIER / rel) for rel in
            json.loads((CLASSIFIER / "bundle.json").read_text())["files"]}
    sums["bundle.json"] = _sha(CLASSIFIER / "bundle.json")
    assert not (CLASSIFIER / "SHA256SUMS").exists()
    digest = runtime.bundle_digest(CLASSIFIER)
    assert digest == digest_of(sums)
    assert runtime.load(CLASSIFIER, expected_digest=digest).digest == digest
    with pytest.raises(runtime.BundleDigestError):
        runtime.load(CLASSIFIER, expected_digest="0" * 64)


def test_migrating_twice_changes_nothing(translator):
    bundle, digest = translator
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    assert migrate_bundle(bundle) == digest
    assert {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("name", sorted(INSTALLED))
def test_shipped_presets_record_the_digest_of_their_bundles(name):
    meta = verify_preset(INSTALLED[name])
    for precision in ("fp32", "int8"):
        entry = (meta.get("onnx") or {}).get(precision)
        if entry is None:
            continue
        bundle = INSTALLED[name] / entry["path"]
        assert (bundle / "SHA256SUMS").is_file(), "run: python -m rnnzoo.export.migrate --shipped"
        manifest = json.loads((bundle / "bundle.json").read_text())
        assert manifest["checksums"] == "SHA256SUMS" and "stream" in manifest
        assert entry["digest"] == runtime.bundle_digest(bundle)


def test_a_preset_whose_recorded_digest_is_not_its_bundle_is_refused(tmp_path):
    import rnnzoo
    from rnnzoo.saving import write_checksums

    name = "sentiment_bilstm.sst2"
    if name not in INSTALLED:
        pytest.skip(f"{name} is not installed")
    copy = tmp_path / name
    shutil.copytree(INSTALLED[name], copy)
    meta = json.loads((copy / "metadata.json").read_text())
    recorded = meta["onnx"]["fp32"]["digest"]
    meta["onnx"]["fp32"]["digest"] = "0" * 64
    (copy / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_checksums(copy)  # a consistent preset, but not with the bundle it ships
    with pytest.raises(PresetError, match=r"metadata\.json records bundle digest 000000000000"
                                          r"\.\.\. for onnx/fp32, but its files give "
                                          rf"{recorded[:12]}"):
        rnnzoo.from_preset(copy, backend="onnx")
    meta["onnx"]["fp32"]["digest"] = "not a digest"
    (copy / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_checksums(copy)
    with pytest.raises(PresetError, match=r"fp32\.digest: expected the bundle digest"):
        verify_preset(copy)
    # The migration puts it right (and verifies the result).
    meta["onnx"]["fp32"]["digest"] = recorded
    (copy / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_checksums(copy)
    assert migrate_preset(copy)["fp32"] == recorded
    assert rnnzoo.from_preset(copy, backend="onnx").digest == recorded


def test_adopting_rebuilt_bundles_keeps_everything_else_and_refuses_another_preset(tmp_path):
    """``migrate --bundles-from``: the preset takes the rebuilt copy's ``onnx/`` and
    ``metadata.onnx`` (here: the int8 bundle dropped, as a re-export can), regenerates its card
    and checksums and verifies; a copy whose weights or other metadata differ is refused and
    nothing changes."""
    from rnnzoo.export.migrate import main

    from rnnzoo.saving import write_checksums

    name = "sentiment_bilstm.sst2"
    if name not in INSTALLED:
        pytest.skip(f"{name} is not installed")
    preset, rebuilt = tmp_path / name, tmp_path / "rebuilt"
    shutil.copytree(INSTALLED[name], preset)
    shutil.copytree(INSTALLED[name], rebuilt)

    def edit_rebuilt(change) -> None:
        meta = json.loads((rebuilt / "metadata.json").read_text())
        change(meta)
        (rebuilt / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        write_checksums(rebuilt)

    def snapshot() -> dict:
        return {p.relative_to(preset): p.read_bytes() for p in preset.rglob("*") if p.is_file()}

    before = snapshot()
    accuracy = json.loads((preset / "metadata.json").read_text())["metrics"]["accuracy"]
    weights = bytearray((rebuilt / "model.weights.h5").read_bytes())
    weights[len(weights) // 2] ^= 0x01
    (rebuilt / "model.weights.h5").write_bytes(bytes(weights))
    edit_rebuilt(lambda meta: None)
    with pytest.raises(PresetError, match=r"not a re-export of .*: model\.weights\.h5 differ"):
        adopt_bundles(preset, rebuilt)
    shutil.copy2(preset / "model.weights.h5", rebuilt / "model.weights.h5")
    edit_rebuilt(lambda meta: meta["metrics"].update(accuracy=0.99))
    with pytest.raises(PresetError, match=r"metadata fields metrics differ .* \(only 'onnx' may\)"):
        adopt_bundles(preset, rebuilt)
    assert snapshot() == before

    edit_rebuilt(lambda meta: (meta["metrics"].update(accuracy=accuracy),
                               meta["onnx"].pop("int8")))
    shutil.rmtree(rebuilt / "onnx" / "int8")
    write_checksums(rebuilt)
    assert main([str(preset), "--bundles-from", str(rebuilt)]) == 0
    meta = verify_preset(preset)
    assert "int8" not in meta["onnx"] and not (preset / "onnx" / "int8").exists()
    assert meta["onnx"]["fp32"]["digest"] == runtime.bundle_digest(preset / "onnx" / "fp32")
    after = snapshot()
    assert after[Path("model.weights.h5")] == before[Path("model.weights.h5")]
    assert "onnx/int8" not in after[Path("README.md")].decode()
    assert not list(preset.glob(".onnx*"))  # no temporary folder left
