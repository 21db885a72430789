"""Sort by length, post-pad, batch: the one helper every family and runtime uses (numpy only).

Fused recurrent operators run every padded step of a batch, so inference groups inputs of similar
length; they also require post-padding (valid steps first, zeros after), which is what the
``sequence_lens`` of the ONNX operators and Keras masks agree on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rnnzoo.progress import Progress


def pad_rows(seqs: Sequence[Sequence[Any]], dtype: Any = np.int32, pad: Any = 0,
             min_length: int = 1) -> np.ndarray:
    """Post-padded array [len(seqs), max(len), ...] of the rows (at least ``min_length`` wide).

    Rows may be token lists or arrays of frames/features (the trailing dimensions are kept).
    """
    if not len(seqs):
        raise ValueError("pad_rows: no rows")
    arrays = [np.asarray(s, dtype=dtype) for s in seqs]
    width = max(min_length, *(len(a) for a in arrays))
    tail = arrays[0].shape[1:]
    out = np.full((len(arrays), width, *tail), pad, dtype=dtype)
    for row, a in enumerate(arrays):
        out[row, : len(a)] = a
    return out


def length_sorted_batches(seqs: Sequence[Sequence[Any]], batch_size: int, dtype: Any = np.int32,
                          pad: Any = 0, progress: Progress | None = None
                          ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(indices, padded batch)`` over ``seqs`` grouped by length (stable order within a
    length), so each batch pads little; scatter results back with ``out[indices] = ...``.
    ``progress`` counts a batch's rows once the caller asks for the next batch (its work on
    this one is done): every long call that batches this way reports through here."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    order = np.argsort([len(s) for s in seqs], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield idx, pad_rows([seqs[i] for i in idx], dtype=dtype, pad=pad)
        if progress is not None:
            progress.update(len(idx))


def cost_grouped_batches(seqs: Sequence[Sequence[Any]], call_cost: float, step_cost: float,
                         max_batch: int = 64, dtype: Any = np.int32,
                         pad: Any = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(indices, padded batch)`` like :func:`length_sorted_batches`, but the cut points
    between lengths are chosen (dynamic programming over the distinct lengths) to minimise an
    estimated run time: a call of ``rows`` sequences padded to ``width`` steps costs
    ``call_cost + width * (step_cost + rows)``, in units of one row-step. Why: a fused
    recurrent operator runs every padded step, and a call has a fixed cost; few rows of one
    length are cheaper merged with their neighbours, many are cheaper alone. At most
    ``max_batch`` rows per call."""
    if not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1:
        raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
    if not len(seqs):
        return
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    order = np.argsort(lengths, kind="stable")
    values, counts = np.unique(lengths[order], return_counts=True)
    values, ends = values.tolist(), np.cumsum(counts).tolist()
    starts = [0] + ends

    def cost(rows: int, width: int) -> float:
        calls = -(-rows // max_batch)
        return calls * call_cost + width * (calls * step_cost + rows)

    # best[j]: the cheapest cover of the first j distinct lengths; cut[j]: where its last group
    # starts. A group spans distinct lengths i..j-1 and is padded to the longest, values[j-1].
    best, cut = [0.0] * (len(values) + 1), [0] * (len(values) + 1)
    for j in range(1, len(values) + 1):
        width = max(1, values[j - 1])
        best[j], cut[j] = min((best[i] + cost(ends[j - 1] - starts[i], width), i)
                              for i in range(j))
    groups, j = [], len(values)
    while j:
        groups.append((starts[cut[j]], ends[j - 1]))
        j = cut[j]
    for lo, hi in reversed(groups):
        for start in range(lo, hi, max_batch):
            idx = order[start:min(hi, start + max_batch)]
            yield idx, pad_rows([seqs[i] for i in idx], dtype=dtype, pad=pad)
