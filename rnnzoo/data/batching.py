"""Sort by length, post-pad, batch: the one helper every family and runtime uses (numpy only).

Fused recurrent operators run every padded step of a batch, so inference groups inputs of similar
length; they also require post-padding (valid steps first, zeros after), which is what the
``sequence_lens`` of the ONNX operators and Keras masks agree on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np


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
                          pad: Any = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(indices, padded batch)`` over ``seqs`` grouped by length (stable order within a
    length), so each batch pads little; scatter results back with ``out[indices] = ...``."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    order = np.argsort([len(s) for s in seqs], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield idx, pad_rows([seqs[i] for i in idx], dtype=dtype, pad=pad)
