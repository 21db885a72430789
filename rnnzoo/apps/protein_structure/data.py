"""Protein secondary structure data: the residue alphabet, the Q8 (DSSP) and Q3 label sets and
the Q3 reduction, readers for the CB6133 CSV (``id,len,input,expected``) with its split TSV and
for FASTA plus a DSSP string file, the preprocessor, and the Q8/Q3 scores. TF-free.

Every reader error is a ``DataError`` naming the file and line, and what to fix.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo import limits
from rnnzoo.config import rule
from rnnzoo.data.batching import pad_rows
from rnnzoo.errors import ConfigError, DataError, short_repr
from rnnzoo.io import read_json

#: The 20 standard amino acids, then X for any other residue (ids 1..21; 0 is padding).
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
ALPHABET = AMINO_ACIDS + "X"
VOCAB_SIZE = len(ALPHABET) + 1
#: Letters that are residues but not one of the 20 (Asx, Glx, Xle, selenocysteine,
#: pyrrolysine): read as X, as the CB6133 decoding does for non-standard residues.
AMBIGUOUS = "BZJUO"
#: DSSP's eight states in the order of the CB6133 label block: L (loop/coil), B (bridge),
#: E (strand), G (3-10 helix), I (pi helix), H (alpha helix), S (bend), T (turn).
Q8 = "LBEGIHST"
Q3 = "HEC"
#: The usual reduction: H, G, I -> H; E, B -> E; L, S, T -> C.
Q8_TO_Q3 = {"H": "H", "G": "H", "I": "H", "E": "E", "B": "E", "L": "C", "S": "C", "T": "C"}
#: Coil written other ways by DSSP tools: blank, '-', 'C', '.', and 'P' (DSSP 4's
#: polyproline II, a coil state in the 8-state scheme).
COIL_SYNONYMS = " -C.P"
Q3_INDEX = np.array([Q3.index(Q8_TO_Q3[c]) for c in Q8], dtype=np.int64)  # q8 id -> q3 id

CSV_HEADER = ["id", "len", "input", "expected"]
FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fas", ".fsa")
DSSP_SUFFIXES = (".dssp", ".ss", ".ss8")


@dataclasses.dataclass
class DataConfig:
    # Residues per training chain: longer chains are cut for training only (evaluation and
    # prediction read whole chains; CB6133 chains are at most 700 long).
    max_length: int = rule(800, min=1)
    # Held out as dev when the data has no split file; 0 trains on everything.
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)


def q3_of(q8: str) -> str:
    """The Q3 string of a Q8 string (H, G, I -> H; E, B -> E; the rest -> C)."""
    try:
        return "".join(Q8_TO_Q3[c] for c in q8)
    except KeyError as exc:
        raise DataError(f"{exc.args[0]!r} is not a Q8 state ({Q8})") from None


def clean_sequence(text: Any, where: str) -> str:
    """A protein sequence as the model reads it: whitespace removed, upper case, a final ``*``
    (stop) dropped, B/Z/J/U/O read as X; anything else is a ``DataError`` naming the
    position and character."""
    if not isinstance(text, str):
        raise DataError(f"{where}: expected a protein sequence string, found "
                        f"{type(text).__name__}")
    seq = "".join(text.split()).upper()
    if seq.endswith("*"):
        seq = seq[:-1]
    if not seq:
        raise DataError(f"{where}: empty sequence")
    limits.check("max_text_chars", len(seq), f"{where}: residues")
    out = []
    for i, c in enumerate(seq):
        if c in ALPHABET:
            out.append(c)
        elif c in AMBIGUOUS:
            out.append("X")
        else:
            raise DataError(f"{where}: residue {i + 1} is {c!r}, not an amino-acid letter "
                            f"(expected {AMINO_ACIDS}, X, or {AMBIGUOUS} read as X)")
    return "".join(out)


def clean_labels(text: str, where: str) -> str:
    """A DSSP string in Q8 letters: coil synonyms (blank, '-', 'C', '.', 'P') become L; any
    other letter outside ``LBEGIHST`` is a ``DataError``."""
    out = []
    for i, c in enumerate(text.upper().rstrip("\n")):
        if c in Q8:
            out.append(c)
        elif c in COIL_SYNONYMS:
            out.append("L")
        else:
            raise DataError(f"{where}: position {i + 1} is {c!r}, not a DSSP state (expected "
                            f"one of {Q8}, or coil written as blank, '-', 'C', '.' or 'P')")
    return "".join(out)


# -- records and readers -----------------------------------------------------------------------
@dataclasses.dataclass
class Chains:
    """Protein chains of one split: ids, sequences, Q8 label strings (None: unlabelled)."""

    ids: list[str]
    sequences: list[str]
    labels: list[str] | None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: Sequence[int]) -> Chains:
        return Chains([self.ids[i] for i in keep], [self.sequences[i] for i in keep],
                      None if self.labels is None else [self.labels[i] for i in keep])


def _read_text(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def read_csv(path: str | os.PathLike) -> Chains:
    """The CB6133 text form: a header ``id,len,input,expected`` and one chain a line; ``len``
    must equal the lengths of both strings."""
    path = Path(path)
    lines = _read_text(path)
    if not lines or [h.strip() for h in lines[0].split(",")] != CSV_HEADER:
        found = short_repr(lines[0] if lines else "")
        raise DataError(f"{path}, line 1: expected the header {','.join(CSV_HEADER)}, found "
                        f"{found}")
    ids, seqs, labels = [], [], []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path}, line {n}"
        fields = line.split(",")
        if len(fields) != 4:
            raise DataError(f"{where}: expected 4 comma-separated fields (id,len,input,"
                            f"expected), found {len(fields)}")
        cid, length, seq, q8 = (f.strip() for f in fields)
        if not cid:
            raise DataError(f"{where}: empty id")
        if cid in seen:
            raise DataError(f"{where}: id {cid!r} again (first on line {seen[cid]})")
        seen[cid] = n
        seq = clean_sequence(seq, f"{where} (input)")
        q8 = clean_labels(q8, f"{where} (expected)")
        if not length.isdigit() or int(length) != len(seq) or len(q8) != len(seq):
            raise DataError(f"{where}: len {length!r}, but input has {len(seq)} residues and "
                            f"expected {len(q8)} labels; the three must agree")
        ids.append(cid)
        seqs.append(seq)
        labels.append(q8)
    if not ids:
        raise DataError(f"{path}: no chains after the header")
    return Chains(ids, seqs, labels)


SPLIT_NAMES = {"train": "train", "valid": "dev", "dev": "dev", "test": "test"}
DROPPED = ("drop_duplicate", "drop")


def read_split(path: str | os.PathLike) -> dict[str, str]:
    """id -> split (``train``, ``dev``, ``test``, or ``drop``) from a TSV with the header
    ``id<TAB>split[<TAB>...]``; ``valid`` is read as ``dev``, ``drop_duplicate`` as ``drop``."""
    path = Path(path)
    lines = _read_text(path)
    header = lines[0].split("\t") if lines else []
    if header[:2] != ["id", "split"]:
        raise DataError(f"{path}, line 1: expected a header starting id<TAB>split, found "
                        f"{short_repr(lines[0] if lines else '')}")
    out: dict[str, str] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip():
            raise DataError(f"{path}, line {n}: expected id<TAB>split, found "
                            f"{short_repr(line)}")
        cid, split = fields[0].strip(), fields[1].strip()
        if cid in out:
            raise DataError(f"{path}, line {n}: id {cid!r} given twice")
        if split in DROPPED:
            out[cid] = "drop"
        elif split in SPLIT_NAMES:
            out[cid] = SPLIT_NAMES[split]
        else:
            raise DataError(f"{path}, line {n}: split {split!r} is not one of "
                            f"{', '.join([*SPLIT_NAMES, *DROPPED])}")
    return out


def read_fasta(path: str | os.PathLike, labels: bool = False) -> tuple[list[str], list[str]]:
    """``(ids, strings)`` of a FASTA file: ``>id description`` headers, the record's lines
    joined. ``labels=True`` reads a DSSP string file in the same layout (Q8 letters, coil
    synonyms allowed) instead of sequences."""
    path = Path(path)
    lines = _read_text(path)
    ids: list[str] = []
    parts: list[list[str]] = []
    starts: list[int] = []
    for n, line in enumerate(lines, start=1):
        if line.startswith(">"):
            name = line[1:].split(maxsplit=1)
            if not name:
                raise DataError(f"{path}, line {n}: a header without an id ('>' alone)")
            if name[0] in ids:
                raise DataError(f"{path}, line {n}: id {name[0]!r} again (first on line "
                                f"{starts[ids.index(name[0])]})")
            ids.append(name[0])
            parts.append([])
            starts.append(n)
        elif line.startswith(";") or not line or not (line.strip() or labels):
            continue  # comments and empty lines (a blank line of a DSSP file is coil)
        elif not ids:
            raise DataError(f"{path}, line {n}: text before the first '>' header; a FASTA "
                            "record starts with '>id'")
        else:
            where = f"{path}, line {n}"
            parts[-1].append(clean_labels(line, where) if labels
                             else clean_sequence(line, where))
    if not ids:
        raise DataError(f"{path}: no FASTA records (a record starts with '>id')")
    strings = ["".join(p) for p in parts]
    for cid, text, n in zip(ids, strings, starts):
        if not text:
            raise DataError(f"{path}, line {n}: record {cid!r} has no "
                            f"{'labels' if labels else 'sequence'}")
    return ids, strings


def read_fasta_chains(path: str | os.PathLike, dssp: str | os.PathLike | None = None) -> Chains:
    """A FASTA file, labelled by a DSSP string file (same ids, same lengths) when given."""
    ids, seqs = read_fasta(path)
    if dssp is None:
        return Chains(ids, seqs, None)
    label_ids, q8 = read_fasta(dssp, labels=True)
    found = dict(zip(label_ids, q8))
    labels = []
    for cid, seq in zip(ids, seqs):
        if cid not in found:
            raise DataError(f"{dssp}: no record {cid!r} (the FASTA file {path} has it); give "
                            "one DSSP string per sequence, with the same ids")
        if len(found[cid]) != len(seq):
            raise DataError(f"{dssp}: record {cid!r} has {len(found[cid])} labels but its "
                            f"sequence in {path} has {len(seq)} residues")
        labels.append(found[cid])
    return Chains(ids, seqs, labels)


def labels_file_for(fasta: Path) -> Path | None:
    """The DSSP string file beside a FASTA file (``x.fasta`` -> ``x.dssp``, ``x.ss`` or
    ``x.ss8``), or None."""
    for suffix in DSSP_SUFFIXES:
        candidate = fasta.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def split_file_for(csv: Path) -> Path | None:
    """The split TSV of a CSV in a folder: ``<name>.split.tsv`` with ``<name>`` the CSV's name
    up to its first dot (``cb6133filtered.npy.csv`` -> ``cb6133filtered.split.tsv``)."""
    candidate = csv.with_name(csv.name.split(".")[0] + ".split.tsv")
    return candidate if candidate.is_file() else None


# -- the dataset -------------------------------------------------------------------------------
@dataclasses.dataclass
class ProteinData:
    """Chains per split (``train``, ``dev``, and ``test`` when the split file has one)."""

    splits: dict[str, Chains]
    description: str

    @property
    def num_train(self) -> int:
        return len(self.splits.get("train", ()))

    @property
    def num_dev(self) -> int:
        return len(self.splits.get("dev", ()))

    @property
    def labelled(self) -> bool:
        return all(c.labels is not None for c in self.splits.values())

    def chains(self, name: str) -> Chains:
        """The chains of a split; ``"all"`` is every split together."""
        if name == "all":
            parts = list(self.splits.values())
        elif name in self.splits:
            parts = [self.splits[name]]
        else:
            raise ConfigError(f"split {name!r}: {self.description} has the splits "
                              f"{', '.join(self.splits)} and all")
        labels = None if any(p.labels is None for p in parts) else \
            [q for p in parts for q in p.labels or []]
        return Chains([i for p in parts for i in p.ids],
                      [s for p in parts for s in p.sequences], labels)

    def split(self, name: str) -> tuple[list[str], list[str]]:
        """``(sequences, Q8 label strings)`` of a split (``"all"``: every split)."""
        if not self.labelled:
            raise DataError(f"{self.description}: no DSSP labels to score against; put them "
                            "beside the FASTA file as <name>.dssp (FASTA layout, same ids)")
        chains = self.chains(name)
        return chains.sequences, chains.labels or []

    def limited(self, limit: int, seed: int = 0) -> ProteinData:
        """At most ``limit`` chains per split, a seeded sample kept in file order."""
        rng = np.random.default_rng(seed)
        splits = {}
        for name, part in self.splits.items():
            splits[name] = part if len(part) <= limit else part.subset(
                np.sort(rng.choice(len(part), limit, replace=False)).tolist())
        return ProteinData(splits, f"{self.description} (at most {limit} chains per split)")


def _held_out(whole: Chains, fraction: float, seed: int) -> dict[str, Chains]:
    order = list(range(len(whole)))
    random.Random(seed).shuffle(order)
    n_dev = round(len(order) * fraction) if len(order) > 1 else 0
    dev = set(order[:n_dev])
    splits = {"train": whole.subset([i for i in range(len(whole)) if i not in dev])}
    if n_dev:
        splits["dev"] = whole.subset(sorted(dev))
    return splits


def _by_split(chains: Chains, split: dict[str, str], split_path: Path) -> dict[str, Chains]:
    missing = [cid for cid in chains.ids if cid not in split]
    if missing:
        raise DataError(f"{split_path}: no split for id {missing[0]!r} "
                        f"({len(missing)} ids missing); list every id of the CSV")
    out = {}
    for name in ("train", "dev", "test"):
        keep = [i for i, cid in enumerate(chains.ids) if split[cid] == name]
        if keep:
            out[name] = chains.subset(keep)
    if "train" not in out:
        raise DataError(f"{split_path}: no id is marked train")
    return out


def load_protein(path: str | os.PathLike, config: DataConfig, seed: int) -> ProteinData:
    """A folder (one CSV with its ``<name>.split.tsv``, or one FASTA file with its DSSP
    file), a CSV file, or a FASTA file (labelled by ``<name>.dssp`` beside it, if there).
    Without a split file a seeded ``dev_fraction`` of the chains is held out as dev."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path not found: {path}")
    split_path = None
    if path.is_dir():
        csvs = sorted(path.glob("*.csv"))
        fastas = sorted(p for p in path.iterdir() if p.suffix.lower() in FASTA_SUFFIXES)
        if len(csvs) == 1:
            path, split_path = csvs[0], split_file_for(csvs[0])
        elif not csvs and len(fastas) == 1:
            path = fastas[0]
        else:
            raise DataError(f"{path}: expected one CSV (id,len,input,expected) or one FASTA "
                            f"file, found {len(csvs)} CSV and {len(fastas)} FASTA files; "
                            "pass the file itself as --data")
    if path.suffix.lower() in FASTA_SUFFIXES:
        dssp = labels_file_for(path)
        whole = read_fasta_chains(path, dssp)
        source = f"{path}" + (f" with labels {dssp.name}" if dssp else " (no labels)")
    elif path.suffix.lower() == ".csv":
        whole, source = read_csv(path), str(path)
    else:
        raise DataError(f"{path}: expected a CSV (id,len,input,expected), a FASTA file "
                        f"({', '.join(FASTA_SUFFIXES)}) or a folder holding one")
    if split_path is not None:
        splits = _by_split(whole, read_split(split_path), split_path)
        desc = f"{source} (split {split_path.name}: " + ", ".join(
            f"{k} {len(v)}" for k, v in splits.items()) + ")"
        return ProteinData(splits, desc)
    splits = _held_out(whole, config.dev_fraction, seed)
    desc = f"{source} ({config.dev_fraction:.0%} of chains held out as dev, seed {seed})" \
        if "dev" in splits else source
    return ProteinData(splits, desc)


# -- the preprocessor --------------------------------------------------------------------------
class ProteinPreprocessor:
    """Residues -> ids (fixed alphabet, nothing to fit) and the label sets; what
    ``assets/protein.json`` holds."""

    alphabet = ALPHABET
    q8 = Q8
    q3 = Q3
    is_fitted = True

    def __init__(self) -> None:
        self.index = {c: i + 1 for i, c in enumerate(self.alphabet)}
        self.label_index = {c: i for i, c in enumerate(self.q8)}

    def encode(self, sequence: str) -> list[int]:
        """Ids of a cleaned sequence (``clean_sequence``)."""
        return [self.index[c] for c in sequence]

    def batch(self, sequences: Sequence[str]) -> np.ndarray:
        """Post-padded ``residues`` [batch, time] int32."""
        return pad_rows([self.encode(s) for s in sequences])

    def label_ids(self, q8: str) -> list[int]:
        return [self.label_index[c] for c in q8]

    def to_json(self) -> str:
        return json.dumps({"alphabet": self.alphabet, "q8": self.q8, "q3": self.q3,
                           "q3_of_q8": "".join(Q8_TO_Q3[c] for c in self.q8)})

    @classmethod
    def load(cls, path: Path, error: type[Exception], hint: str) -> ProteinPreprocessor:
        """What ``to_json`` wrote; ``error`` (with ``hint``) when it is anything else (this
        version reads one alphabet and one label set)."""
        found = read_json(path, error, hint)
        expected = json.loads(cls().to_json())
        if found != expected:
            raise error(f"{path}: expected {expected}, found {short_repr(found, 120)}; {hint}")
        return cls()


# -- scores ------------------------------------------------------------------------------------
def _per_class(cm: np.ndarray, names: str) -> tuple[dict[str, dict[str, float]], float]:
    """Per-class recall, precision, F1 and support of a confusion matrix (rows: true), and
    the macro-F1 over the classes that occur in the truth or the predictions."""
    tp = np.diag(cm).astype(np.float64)
    true, pred = cm.sum(axis=1), cm.sum(axis=0)
    recall = np.divide(tp, true, out=np.zeros(len(tp)), where=true > 0)
    precision = np.divide(tp, pred, out=np.zeros(len(tp)), where=pred > 0)
    denom = recall + precision
    f1 = np.divide(2 * recall * precision, denom, out=np.zeros(len(tp)), where=denom > 0)
    table = {c: {"recall": float(recall[i]), "precision": float(precision[i]),
                 "f1": float(f1[i]), "support": int(true[i])} for i, c in enumerate(names)}
    present = (true + pred) > 0
    return table, float(f1[present].mean()) if present.any() else 0.0


def structure_report(gold: Sequence[str], q8: Sequence[str], q3: Sequence[str]) -> dict:
    """Q8 and Q3 accuracy over all residues (the CB513 convention), per-class recall,
    precision and F1 for both, and their macro-F1 (over the classes that occur). ``gold`` is
    Q8; its Q3 is the reduction. ``q3``: the predicted Q3 strings (the model's own, which may
    differ from the reduction of its Q8)."""
    y8 = np.fromiter((Q8.index(c) for s in gold for c in s), np.int64)
    p8 = np.fromiter((Q8.index(c) for s in q8 for c in s), np.int64)
    p3 = np.fromiter((Q3.index(c) for s in q3 for c in s), np.int64)
    if not (len(y8) == len(p8) == len(p3)):
        raise DataError(f"structure_report: {len(y8)} gold residues, {len(p8)} Q8 and "
                        f"{len(p3)} Q3 predictions")
    y3 = Q3_INDEX[y8]
    cm8 = np.zeros((8, 8), np.int64)
    cm3 = np.zeros((3, 3), np.int64)
    np.add.at(cm8, (y8, p8), 1)
    np.add.at(cm3, (y3, p3), 1)
    per8, f8 = _per_class(cm8, Q8)
    per3, f3 = _per_class(cm3, Q3)
    n = max(len(y8), 1)
    return {"q8": float(np.trace(cm8) / n), "q3": float(np.trace(cm3) / n),
            "macro_f1": f8, "q3_macro_f1": f3, "residues": int(len(y8)),
            "sequences": len(gold), "per_class": per8, "per_class_q3": per3,
            "confusion_q8": cm8.tolist()}
