"""Task metrics in numpy (TF-free, so the ONNX runtime reports the same numbers as Keras)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
