"""``rnnzoo structure NAME SEQUENCE|FILE.fasta ...`` and ``rnnzoo evaluate`` for protein
secondary structure models: the verb's arguments and output, the evaluation report (through
the model's public ``evaluate``, the same on Keras and ONNX), example inputs for the harness.
TF-free."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rnnzoo.apps._classification import INT8_TOLERANCE as INT8_TOLERANCE  # the int8 rule
from rnnzoo.apps._classification import split_report
from rnnzoo.apps.protein_structure.data import (
    FASTA_SUFFIXES,
    Q3,
    Q8,
    ProteinData,
    clean_sequence,
    read_fasta,
)
from rnnzoo.errors import DataError
from rnnzoo.progress import add_progress_argument, progress_wanted

VERB = "structure"
#: Q8 accuracy over residues, the number protein secondary structure papers lead with.
HEADLINE = ("q8", "max")
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Predicting the DSSP secondary structure (Q8, and Q3 from it) of each residue "
                "of protein chains given as one-letter amino-acid sequences, from the "
                "sequence alone.")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Sequence only: no evolutionary profiles (PSSM/HMM), which published models use and which "
    "are worth several points of Q8; do not compare with profile-based numbers.",
    "Trained on PDB chains of up to 700 residues (CullPDB, CB6133-filtered); membrane, "
    "disordered and designed proteins unlike those chains are predicted less reliably.",
    "Rare states (pi helix I, bridge B) are almost never predicted: read the per-class recall, "
    "not only Q8.",
)


def add_verb_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="SEQUENCE|FILE.fasta",
                        help="protein sequences (one-letter codes) or FASTA files")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per chain: id, sequence, q8, q3 and the "
                             "per-residue probabilities")
    add_progress_argument(parser)


def verb_chains(inputs: list[str]) -> tuple[list[str], list[str]]:
    """``(ids, sequences)`` of the verb's inputs: a FASTA file's records, or a sequence
    (named ``seq<k>``); a path that is not a file and not a sequence is an error."""
    ids: list[str] = []
    seqs: list[str] = []
    for k, item in enumerate(inputs, start=1):
        path = Path(item)
        if path.suffix.lower() in FASTA_SUFFIXES or path.is_file():
            if not path.is_file():
                raise DataError(f"{item}: no such FASTA file")
            found, strings = read_fasta(path)
            ids += found
            seqs += strings
        else:
            seqs.append(clean_sequence(item, f"argument {k} (neither a file nor a sequence)"))
            ids.append(f"seq{k}")
    return ids, seqs


def run_verb(model: Any, args: argparse.Namespace) -> int:
    """Print each chain's sequence with its Q8 and Q3 strings (``--json``: with the
    probabilities); every input is read before any output."""
    ids, seqs = verb_chains(list(args.inputs))
    results = model.predict_structure(seqs, progress=progress_wanted(args))
    for cid, r in zip(ids, results):
        if args.json:
            print(json.dumps({"id": cid, "sequence": r.sequence, "q8": r.q8, "q3": r.q3,
                              "q8_states": Q8, "q8_probs": r.q8_probs.round(4).tolist(),
                              "q3_states": Q3, "q3_probs": r.q3_probs.round(4).tolist()}))
        else:
            print(f">{cid} ({len(r.sequence)} residues)\nseq {r.sequence}\nq8  {r.q8}\n"
                  f"q3  {r.q3}")
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """No options beyond the common ones."""
    return None


def evaluate_reports(model: Any, data: ProteinData, split: str,
                     options: dict[str, Any]) -> list[dict]:
    """Q8, Q3, macro-F1 and the per-class table on a split."""
    return [split_report(model, data, split, options.get("limit"),
                         progress=options.get("progress", False))]


def format_report(report: dict) -> str:
    lines = [f"Q8 {100 * report['q8']:.2f}%  Q3 {100 * report['q3']:.2f}%  macro-F1 (Q8) "
             f"{100 * report['macro_f1']:.2f}  ({report['sequences']} chains, "
             f"{report['residues']} residues)",
             f"  {'state':<6} {'recall':>7} {'precision':>9} {'f1':>7} {'support':>8}"]
    for table in ("per_class", "per_class_q3"):
        for name, row in report.get(table, {}).items():
            tag = f"{name} (Q3)" if table == "per_class_q3" else name
            lines.append(f"  {tag:<6} {100 * row['recall']:7.2f} {100 * row['precision']:9.2f} "
                         f"{100 * row['f1']:7.2f} {row['support']:8d}")
    return "\n".join(lines)


def example_inputs() -> list:
    # Ubiquitin, a short helical peptide, one residue, and a chain with X and lower case.
    return ["MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG",
            "AEAAAKEAAAKEAAAKA", "M", "gsxMKTAYIAKQRQISFVKSHFSRQ"]


def example_outputs(model: Any, inputs: list) -> Any:
    return [{"q8": r.q8, "q3": r.q3, "q8_probs": r.q8_probs.tolist()}
            for r in model.predict_structure(inputs)]
