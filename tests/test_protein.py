"""The protein-structure application's own behaviour: the CSV, split, FASTA and DSSP readers
and their errors (file and line), the Q3 reduction, the scores against hand-computed values,
the residue-mean loss against numpy, and a tiny model trained a few steps whose
``predict_structure`` and ``evaluate`` agree on Keras and ONNX, through Python and the CLI
(``rnnzoo structure`` on a FASTA file without labels). The lifecycle, export validation and
padding invariance are generated for every entry (tests/test_lifecycle.py, test_models.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import rnnzoo
from rnnzoo import limits
from rnnzoo.apps.protein_structure.data import (
    DataConfig,
    clean_sequence,
    load_protein,
    q3_of,
    read_csv,
    read_fasta,
    read_fasta_chains,
    read_split,
    structure_report,
)
from rnnzoo.apps.protein_structure.inference import q3_probabilities, softmax
from rnnzoo.cli import main
from rnnzoo.errors import ConfigError, DataError
from rnnzoo.families.protein import TINY_OVERRIDES, synthetic_dataset

CSV = "id,len,input,expected\n4,6,RRTVPR,LLHHHT\n7,3,mkx,EBL\n"


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# -- readers ---------------------------------------------------------------------------------


def test_csv_split_and_folder(tmp_path):
    chains = read_csv(_write(tmp_path / "set.npy.csv", CSV))
    assert chains.ids == ["4", "7"] and chains.sequences == ["RRTVPR", "MKX"]
    assert chains.labels == ["LLHHHT", "EBL"]
    _write(tmp_path / "set.split.tsv", "id\tsplit\tduplicate_of\n4\ttrain\t\n7\tvalid\t\n")
    assert read_split(tmp_path / "set.split.tsv") == {"4": "train", "7": "dev"}
    data = load_protein(tmp_path, DataConfig(), seed=0)  # the folder: CSV + <name>.split.tsv
    assert (data.num_train, data.num_dev) == (1, 1)
    assert data.split("all") == (["RRTVPR", "MKX"], ["LLHHHT", "EBL"])
    with pytest.raises(ConfigError, match="has the splits train, dev and all"):
        data.split("test")


@pytest.mark.parametrize("text, message", [
    ("id,length,input,expected\n", r"line 1: expected the header id,len,input,expected"),
    (CSV + "9,2,AC\n", r"line 4: expected 4 comma-separated fields"),
    (CSV + "9,3,AC,LL\n", r"line 4: len '3', but input has 2 residues and expected 2"),
    (CSV + "9,2,A1,LL\n", r"line 4 \(input\): residue 2 is '1'"),
    (CSV + "9,2,AC,LQ\n", r"line 4 \(expected\): position 2 is 'Q', not a DSSP state"),
    (CSV + "4,2,AC,LL\n", r"line 4: id '4' again \(first on line 2\)"),
])
def test_malformed_csv_names_the_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_csv(_write(tmp_path / "bad.csv", text))


def test_malformed_split_names_the_line(tmp_path):
    with pytest.raises(DataError, match=r"line 3: split 'validation' is not one of"):
        read_split(_write(tmp_path / "s.tsv", "id\tsplit\n1\ttrain\n2\tvalidation\n"))
    with pytest.raises(DataError, match=r"line 3: id '1' given twice"):
        read_split(_write(tmp_path / "s.tsv", "id\tsplit\n1\ttrain\n1\tvalid\n"))
    (tmp_path / "d").mkdir()
    _write(tmp_path / "d" / "x.csv", CSV)
    _write(tmp_path / "d" / "x.split.tsv", "id\tsplit\n4\ttrain\n")
    with pytest.raises(DataError, match=r"no split for id '7'"):
        load_protein(tmp_path / "d", DataConfig(), seed=0)


def test_fasta_with_and_without_dssp_labels(tmp_path):
    fasta = _write(tmp_path / "p.fasta", ">a first chain\nMKT\nayi*\n; a comment\n\n>b\nGSX\n")
    assert read_fasta(fasta) == (["a", "b"], ["MKTAYI", "GSX"])
    unlabelled = load_protein(fasta, DataConfig(dev_fraction=0.0), seed=0)
    assert unlabelled.chains("all").labels is None and "no labels" in unlabelled.description
    with pytest.raises(DataError, match="no DSSP labels to score against"):
        unlabelled.split("all")
    # DSSP strings in FASTA layout, coil as '-', 'C' or blank; matched by id, not order.
    _write(tmp_path / "p.dssp", ">b\nE-C\n>a\nHHH  T\n")
    chains = read_fasta_chains(fasta, tmp_path / "p.dssp")
    assert chains.labels == ["HHHLLT", "ELL"]
    assert load_protein(fasta, DataConfig(dev_fraction=0.0), seed=0).split("all")[1] == \
        chains.labels


@pytest.mark.parametrize("text, message", [
    ("MKT\n>a\nMKT\n", r"p.fa, line 1: text before the first '>' header"),
    (">a\nMKT\n>b\n>c\nAA\n", r"p.fa, line 3: record 'b' has no sequence"),
    (">a\nMKT\nMK3T\n", r"p.fa, line 3: residue 3 is '3'"),
    (">a\nMKT\n>a\nAA\n", r"p.fa, line 3: id 'a' again \(first on line 1\)"),
    (">\nMKT\n", r"p.fa, line 1: a header without an id"),
])
def test_malformed_fasta_names_the_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_fasta(_write(tmp_path / "p.fa", text))


def test_dssp_file_must_match_the_fasta(tmp_path):
    fasta = _write(tmp_path / "p.fasta", ">a\nMKT\n>b\nGS\n")
    with pytest.raises(DataError, match=r"no record 'b' \(the FASTA file .* has it\)"):
        read_fasta_chains(fasta, _write(tmp_path / "l.dssp", ">a\nHHH\n"))
    with pytest.raises(DataError, match=r"record 'a' has 2 labels but its sequence .* 3"):
        read_fasta_chains(fasta, _write(tmp_path / "l.dssp", ">a\nHH\n>b\nEE\n"))
    with pytest.raises(DataError, match=r"l.dssp, line 2: position 1 is 'X'"):
        read_fasta_chains(fasta, _write(tmp_path / "l.dssp", ">a\nXHH\n>b\nEE\n"))


def test_sequences_are_cleaned_or_refused():
    assert clean_sequence(" mk tu b*\n", "x") == "MKTXX"
    with pytest.raises(DataError, match="x: empty sequence"):
        clean_sequence("  *", "x")
    with pytest.raises(DataError, match=r"residue 3 is '-'"):
        clean_sequence("MK-T", "x")
    old = limits.configure(max_text_chars=5)
    try:
        with pytest.raises(limits.LimitError, match="x: residues: 6 is over the limit "
                           "max_text_chars=5"):
            clean_sequence("MKTAYI", "x")
    finally:
        limits.configure(**dataclasses.asdict(old))


# -- labels and scores -------------------------------------------------------------------------


def test_q3_reduction():
    assert q3_of("LBEGIHST") == "CEEHHHCC"
    with pytest.raises(DataError, match="'X' is not a Q8 state"):
        q3_of("HX")
    probs = np.array([[0.1, 0.05, 0.15, 0.2, 0.0, 0.3, 0.1, 0.1]], np.float32)  # L B E G I H S T
    np.testing.assert_allclose(q3_probabilities(probs), [[0.5, 0.2, 0.3]], atol=1e-7)


def test_scores_match_a_hand_computed_example():
    # 8 residues, Q8 right at 1, 3, 4, 6. Gold Q3 CCHHHEEC, predicted CCHHCEEC: 7 right.
    gold = ["LLHHG", "EBT"]
    q8 = ["LTHHH", "EEL"]
    q3 = ["CCHHC", "EEC"]
    r = structure_report(gold, q8, q3)
    assert r["q8"] == pytest.approx(4 / 8) and r["q3"] == pytest.approx(7 / 8)
    assert (r["residues"], r["sequences"]) == (8, 2)
    pc = r["per_class"]
    assert pc["L"] == {"recall": 0.5, "precision": 0.5, "f1": 0.5, "support": 2}
    assert pc["H"] == pytest.approx({"recall": 1.0, "precision": 2 / 3, "f1": 0.8,
                                     "support": 2})
    assert pc["G"]["recall"] == 0.0 and pc["B"]["support"] == 1 and pc["I"]["support"] == 0
    assert pc["E"] == pytest.approx({"recall": 1.0, "precision": 0.5, "f1": 2 / 3,
                                     "support": 1})
    # Macro-F1 over the classes that occur (L B E G H T; not I or S): (0.5 + 0 + 2/3 + 0 +
    # 0.8 + 0) / 6.
    assert r["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.8) / 6)
    assert r["per_class_q3"]["C"] == pytest.approx({"recall": 1.0, "precision": 0.75,
                                                    "f1": 6 / 7, "support": 3})
    assert np.array(r["confusion_q8"]).sum() == 8


def test_residue_loss_and_accuracy_against_numpy():
    from rnnzoo.layers.protein import ResidueAccuracy, ResidueCrossEntropy

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 8)).astype("float32")
    y = np.array([[1, 6, 3, 0], [8, 0, 0, 0]], np.int32)  # 4 residues
    tags, valid = np.maximum(y - 1, 0), y > 0
    p = softmax(logits)
    nll = -np.log(np.take_along_axis(p, tags[..., None], -1)[..., 0])
    q3_index = np.array([2, 1, 1, 0, 0, 0, 2, 2])
    nll3 = -np.log(np.take_along_axis(q3_probabilities(p), q3_index[tags][..., None], -1)[..., 0])
    for weight in (0.0, 0.5):
        want = (nll + weight * nll3)[valid].mean()  # per residue, not per chain
        got = float(ResidueCrossEntropy(q3_weight=weight)(y, logits))
        assert got == pytest.approx(want, rel=1e-5)
    acc = ResidueAccuracy()
    acc.update_state(y[:1, :3], logits[:1, :3])  # batches of other padded widths
    acc.update_state(y[1:], logits[1:])
    hits = (logits.argmax(-1) == tags)[valid]
    assert float(acc.result()) == pytest.approx(hits.mean())


# -- a tiny model, Keras and ONNX ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny conv+BiGRU trained a few steps, saved as a preset with its fp32 ONNX bundle."""
    from rnnzoo.presets import save_preset

    root = tmp_path_factory.mktemp("protein")
    data = synthetic_dataset(root / "data", n=100, seed=0)
    result = rnnzoo.train("protein_ss_bigru", data, out=root / "run", verbose=0,
                          model=TINY_OVERRIDES["model"], data=TINY_OVERRIDES["data"],
                          training={**TINY_OVERRIDES["training"], "epochs": 2})
    preset = save_preset(result.task, root / "protein_ss_bigru.tiny", {
        "name": "protein_ss_bigru.tiny", "dataset": "synthetic", "split": "dev",
        "metrics": {"q8": result.metrics["q8"]}, "metrics_command": "test",
        "training_command": "test", "training_wall_time_s": 0.0,
        "data_license": "generated by the test"}, storage="float32", onnx=True, int8=False)
    return result, data, preset


def test_tiny_model_trains_and_both_backends_agree(tiny):
    result, data, preset = tiny
    assert np.isfinite(result.history["loss"]).all()
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert result.metrics["q8"] == pytest.approx(max(result.history["val_q8"]), abs=1e-6)
    keras_model = rnnzoo.from_preset(preset, backend="keras")
    runtime = rnnzoo.from_preset(preset, backend="onnx")
    chains = ["MKTAYIAKQRQISFVKSHFSRQ", "g", "ACDEFGHIKLMNPQRSTVWYX" * 12]  # 252 residues
    a, b = keras_model.predict_structure(chains), runtime.predict_structure(chains)
    for x, y in zip(a, b):
        assert (x.sequence, x.q8, x.q3) == (y.sequence, y.q8, y.q3)
        np.testing.assert_allclose(x.q8_probs, y.q8_probs, atol=1e-5)
        assert x.q8_probs.shape == (len(x.sequence), 8) and x.q3_probs.shape[1] == 3
        np.testing.assert_allclose(x.q3_probs.sum(-1), 1.0, atol=1e-5)
        assert x.q3 == "".join("HEC"[k] for k in x.q3_probs.argmax(-1))
    assert a[1].sequence == "G" and runtime.structure("G")[0].q8 == b[1].q8
    seqs, labels = keras_model.load_data(data, seed=0).split("dev")
    assert keras_model.evaluate(seqs, labels) == runtime.evaluate(seqs, labels)
    with pytest.raises(DataError, match="sequence 0 has 3 residues but 2 labels"):
        runtime.evaluate(["MKT"], ["HH"])
    with pytest.raises(DataError, match=r"predict_structure: sequence 1: residue 2 is '1'"):
        runtime.predict_structure(["MKT", "A1"])


def test_cli_structure_and_evaluate_on_both_backends(tiny, tmp_path, capsys):
    _, data, preset = tiny
    fasta = _write(tmp_path / "mine.fasta", ">chainA\nMKTAYIAKQR\n>chainB\nGSHM\n")  # no labels
    assert main(["structure", str(preset), str(fasta), "ACDE", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["chainA", "chainB", "seq2"]
    assert [len(r["q8"]) for r in rows] == [10, 4, 4] and len(rows[0]["q8_probs"][0]) == 8
    assert main(["structure", str(preset), "MKT"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == ">seq1 (3 residues)"
    reports = []
    for backend in ("onnx", "keras"):
        assert main(["evaluate", str(preset), "--data", str(data), "--split", "all",
                     "--backend", backend, "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0] == reports[1] and {"q8", "q3", "per_class"} <= set(reports[0])
    assert reports[0]["sequences"] == 99  # the dropped duplicate is not scored
    bad = _write(tmp_path / "bad.fasta", ">a\nMKT\nMK?\n")
    assert main(["structure", str(preset), str(bad)]) == 2
    assert "bad.fasta, line 3: residue 3 is '?'" in capsys.readouterr().err
    assert main(["evaluate", str(preset), "--data", str(fasta)]) == 2
    assert "no DSSP labels" in capsys.readouterr().err
