"""Task metrics in numpy (TF-free, so the ONNX runtime reports the same numbers as Keras)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnzoo.data.conll import convert


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str]
) -> dict:
    """Accuracy, macro-F1 (unweighted mean of per-class F1) and the confusion matrix."""
    n = len(label_names)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(np.float64)
    precision = np.divide(tp, cm.sum(axis=0), out=np.zeros(n), where=cm.sum(axis=0) > 0)
    recall = np.divide(tp, cm.sum(axis=1), out=np.zeros(n), where=cm.sum(axis=1) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    total = int(cm.sum())
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()) if n else 0.0,
        "per_class_f1": {name: float(v) for name, v in zip(label_names, f1)},
        "confusion_matrix": cm.tolist(),
        "label_names": list(label_names),
        "num_examples": total,
    }


def format_report(report: dict) -> str:
    """A human-readable block for the console."""
    names = report["label_names"]
    width = max(8, *(len(n) for n in names))
    lines = [
        f"accuracy  {report['accuracy']:.4f}   macro-F1  {report['macro_f1']:.4f}   "
        f"(n={report['num_examples']})",
        "confusion matrix (rows: true, columns: predicted)",
        " " * (width + 2) + " ".join(f"{n:>{width}}" for n in names),
    ]
    for name, row in zip(names, report["confusion_matrix"]):
        lines.append(f"{name:>{width}}  " + " ".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def tagging_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                   scheme: str | None) -> dict[str, Any]:
    """Token accuracy, and for chunk tags (``scheme`` not None) entity micro P/R/F1 and per
    type, computed by seqeval in its default (conlleval-compatible) mode on IOB2 renderings of
    both sides."""
    tokens = sum(len(s) for s in gold)
    hits = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
    report: dict[str, Any] = {"token_accuracy": hits / max(tokens, 1), "sentences": len(gold),
                              "tokens": tokens}
    if scheme is None:
        return report
    from rnnzoo.extras import require_module

    metrics = require_module("seqeval.metrics", "entity F1 (conlleval semantics)", "seqeval")
    g2 = [convert(s, "iob2") for s in gold]
    p2 = [convert(s, "iob2") for s in pred]
    report.update(precision=float(metrics.precision_score(g2, p2, zero_division=0)),
                  recall=float(metrics.recall_score(g2, p2, zero_division=0)),
                  f1=float(metrics.f1_score(g2, p2, zero_division=0)))
    table = metrics.classification_report(g2, p2, output_dict=True, zero_division=0)
    report["per_type"] = {
        name: {"precision": float(v["precision"]), "recall": float(v["recall"]),
               "f1": float(v["f1-score"]), "support": int(v["support"])}
        for name, v in sorted(table.items()) if not name.endswith(" avg")}
    report["entities"] = sum(v["support"] for v in report["per_type"].values())
    return report


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1) between two
    sequences: the numerator of the label/character error rate. Plain dynamic programming,
    one row at a time: transcripts here are short, so no extra dependency is worth it."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def label_error_rate(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> dict:
    """Corpus label error rate (total edit distance / total reference length, as in Graves et
    al. 2006), string accuracy (exact matches) and the counts behind them."""
    if len(refs) != len(hyps):
        raise ValueError(f"label_error_rate: {len(refs)} references but {len(hyps)} hypotheses")
    edits = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    length = sum(len(r) for r in refs)
    exact = sum(list(r) == list(h) for r, h in zip(refs, hyps))
    return {"ler": edits / max(length, 1), "string_accuracy": exact / max(len(refs), 1),
            "edits": edits, "reference_labels": length, "num_strings": len(refs)}
