"""tf.data input pipelines: post-padding, length bucketing, shuffling, prefetch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from rnnzoo.data.batching import pad_rows

DEFAULT_BOUNDARIES = (8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512)


def bucket_boundaries(max_length: int) -> list[int]:
    """Length buckets below ``max_length``: short sentences are not padded to the longest one."""
    return [b for b in DEFAULT_BOUNDARIES if b < max_length]


def _options() -> tf.data.Options:
    options = tf.data.Options()
    # Autotune was measured to stall 8-9 s at the end of fit() on these machines.
    options.autotune.enabled = False
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return options


# -- the steps every pipeline takes (token rows, pairs, piano rolls), written once -----------------
def dataset_rows(tensors: tuple, shuffle: bool, seed: int) -> tf.data.Dataset:
    """One element per row of ``tensors`` (equal first dimensions), reshuffled every epoch
    when ``shuffle``."""
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        ds = ds.shuffle(len(tensors[0]), seed=seed, reshuffle_each_iteration=True)
    return ds


def padded_batches(ds: tf.data.Dataset, batch_size: int, shapes: Any, length_of: Callable,
                   bucket_length: int | None, padding_values: Any = None) -> tf.data.Dataset:
    """Post-padded batches: grouped by ``length_of(*element)`` into the buckets below
    ``bucket_length``, or in order when it is None (fixed length, no bucketing). The batches
    ``count_batches`` counts."""
    if bucket_length is None:
        return ds.padded_batch(batch_size, padded_shapes=shapes, padding_values=padding_values)
    bounds = bucket_boundaries(bucket_length)
    return ds.bucket_by_sequence_length(
        element_length_func=length_of, bucket_boundaries=bounds,
        bucket_batch_sizes=[batch_size] * (len(bounds) + 1), padded_shapes=shapes,
        padding_values=padding_values)


def finish_dataset(ds: tf.data.Dataset, n_batches: int) -> tf.data.Dataset:
    """Known cardinality (Keras shows a real progress bar and does not warn at epoch end),
    prefetch and the pipelines' options."""
    ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    return ds.prefetch(2).with_options(_options())


def sequence_dataset(sequences: Sequence[Sequence[int]], labels: Sequence[int] | np.ndarray,
                     batch_size: int, max_length: int, shuffle: bool = False, seed: int = 0,
                     bucketing: bool = True, fixed_length: bool = False) -> tf.data.Dataset:
    """Batches of ``(tokens [batch, time] int32, labels)``, post-padded with 0.

    ``bucketing`` groups sequences of similar length (large speed-up on short sentences).
    ``fixed_length`` pads every batch to ``max_length`` (needed under tf.distribute strategies,
    which reject ragged/variable shapes across replicas).
    """
    seqs = [list(s[:max_length]) or [1] for s in sequences]  # an empty row becomes <unk>
    padded, lengths = _pad_rows(seqs)
    ds = dataset_rows((padded, lengths, np.asarray(labels)), shuffle, seed)
    ds = ds.map(lambda x, n, y: (x[:n], y))
    shapes = ([max_length if fixed_length else None], tf.TensorShape(np.asarray(labels).shape[1:]))
    bucketed = bucketing and not fixed_length
    ds = padded_batches(ds, batch_size, shapes, lambda x, y: tf.shape(x)[0],
                        max_length if bucketed else None)
    return finish_dataset(ds, count_batches(lengths, batch_size, max_length, bucketing,
                                            fixed_length))


def count_batches(
    lengths: Sequence[int], batch_size: int, max_length: int, bucketing: bool = True,
    fixed_length: bool = False,
) -> int:
    """Exact number of batches ``sequence_dataset`` yields per epoch (for LR schedules and
    progress bars: bucketed datasets have unknown cardinality)."""
    if fixed_length or not bucketing:
        return -(-len(lengths) // batch_size)
    bounds = np.asarray(bucket_boundaries(max_length))
    lens = np.minimum(np.maximum(np.asarray(lengths), 1), max_length)
    counts = np.bincount(np.searchsorted(bounds, lens, side="right"), minlength=len(bounds) + 1)
    return int(sum(-(-c // batch_size) for c in counts))


def _pad_rows(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Post-padded rows and their lengths (the lengths slice each row back in the pipeline)."""
    return pad_rows(seqs), np.array([len(s) for s in seqs], dtype=np.int64)


def pair_dataset(sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]],
                 batch_size: int, max_length: int, shuffle: bool = False, seed: int = 0,
                 bucketing: bool = True, fixed_length: bool = False) -> tf.data.Dataset:
    """Teacher-forcing batches ``((source, target_in), target_out)``, all post-padded.

    ``targets`` include ``<s>`` and ``</s>``: ``target_in`` drops the last token and
    ``target_out`` the first. Buckets use the longer side of each pair.
    """
    src, src_len = _pad_rows(sources)
    tgt, tgt_len = _pad_rows(targets)
    ds = dataset_rows((src, src_len, tgt, tgt_len), shuffle, seed)
    ds = ds.map(lambda s, ns, t, nt: (s[:ns], t[: nt - 1], t[1:nt]))
    width = max_length + 1 if fixed_length else None
    lengths = np.maximum(src_len, tgt_len - 1)
    bucketed = bucketing and not fixed_length
    ds = padded_batches(ds, batch_size, ([width], [width], [width]),
                        lambda s, ti, to: tf.maximum(tf.shape(s)[0], tf.shape(ti)[0]),
                        max_length + 1 if bucketed else None)
    ds = ds.map(lambda s, ti, to: ((s, ti), to))
    return finish_dataset(ds, count_batches(lengths, batch_size, max_length + 1, bucketing,
                                            fixed_length))
