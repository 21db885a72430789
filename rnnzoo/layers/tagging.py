"""Layers, loss and metric of sequence taggers: a linear-chain CRF written with Keras 3 ops,
per-word character CNN features, and the masked softmax alternative.

Targets of a tagger are ``tag id + 1`` with 0 at padded positions, so one int tensor carries the
tags and the mask; the CRF's own forward algorithm and Viterbi decoder read the same mask.
"""

from __future__ import annotations

from typing import Any

import keras

ops = keras.ops


def _targets(y_true: Any) -> tuple[Any, Any]:
    """``(tags, mask)`` from targets holding ``tag + 1`` (0: padding)."""
    y = ops.cast(y_true, "int32")
    return ops.maximum(y - 1, 0), ops.cast(ops.greater(y, 0), "float32")


def crf_log_likelihood(emissions: Any, tags: Any, mask: Any, transitions: Any, start: Any,
                       end: Any) -> Any:
    """Per-sequence log p(tags | emissions) of a linear-chain CRF, [batch].

    ``emissions`` [batch, time, K]; ``tags`` [batch, time] int; ``mask`` [batch, time] 0/1,
    post-padded with at least one valid step per row; ``transitions[i, j]`` scores tag i
    followed by tag j, ``start``/``end`` the first and last tag. The partition function is the
    forward algorithm in log space."""
    emissions = ops.cast(emissions, "float32")
    mask = ops.cast(mask, "float32")
    num_tags = ops.shape(emissions)[-1]
    onehot = ops.one_hot(tags, num_tags, dtype="float32")
    unary = ops.sum(ops.sum(emissions * onehot, axis=-1) * mask, axis=1)
    flat = ops.reshape(transitions, (-1,))
    pair = ops.take(flat, tags[:, :-1] * num_tags + tags[:, 1:])
    binary = ops.sum(pair * mask[:, 1:], axis=1)
    last = ops.cast(ops.sum(mask, axis=1), "int32") - 1
    last_tag = ops.squeeze(ops.take_along_axis(tags, last[:, None], axis=1), axis=1)
    score = unary + binary + ops.take(start, tags[:, 0]) + ops.take(end, last_tag)
    return score - crf_log_partition(emissions, mask, transitions, start, end)


def _time_major(emissions: Any, mask: Any) -> Any:
    """[time, batch, K + 1]: the emissions with the mask as a last channel, step 0 masked out
    (it initialises the scan). One tensor, because Keras' TensorFlow scan fails on several
    inputs whose time axis is dynamic."""
    em = ops.transpose(emissions, (1, 0, 2))
    m = ops.transpose(ops.cast(mask, "float32"), (1, 0))
    m = ops.concatenate([ops.zeros_like(m[:1]), m[1:]], axis=0)
    return ops.concatenate([em, m[:, :, None]], axis=-1)


def crf_log_partition(emissions: Any, mask: Any, transitions: Any, start: Any, end: Any) -> Any:
    """log Z per sequence, [batch] (forward algorithm)."""
    emissions = ops.cast(emissions, "float32")
    xs = _time_major(emissions, mask)

    def step(alpha: Any, x: Any) -> tuple[Any, Any]:
        e, valid = x[:, :-1], x[:, -1]
        scores = alpha[:, :, None] + transitions[None, :, :] + e[:, None, :]
        new = ops.logsumexp(scores, axis=1)
        valid = valid[:, None]
        alpha = valid * new + (1.0 - valid) * alpha
        return alpha, alpha

    alpha, _ = ops.scan(step, start[None, :] + emissions[:, 0], xs)
    return ops.logsumexp(alpha + end[None, :], axis=1)


def crf_decode(emissions: Any, mask: Any, transitions: Any, start: Any, end: Any) -> Any:
    """Viterbi: the best tag path per sequence, [batch, time] int32 (padded steps repeat the
    last valid tag). The runtime's numpy decoder
    (``rnnzoo.apps.token_classification.inference.viterbi``) computes the same paths."""
    emissions = ops.cast(emissions, "float32")
    xs = _time_major(emissions, mask)
    num_tags = ops.shape(emissions)[-1]
    identity = ops.arange(num_tags, dtype="int32")

    # The TensorFlow backend's scan stacks outputs shaped like the carry: the carry is
    # (scores, back-pointers) and the back-pointers of every step are the stacked output.
    def forward(carry: Any, x: Any) -> tuple[Any, Any]:
        delta, _ = carry
        e, valid = x[:, :-1], x[:, -1]
        scores = delta[:, :, None] + transitions[None, :, :]
        best = ops.max(scores, axis=1) + e
        back = ops.cast(ops.argmax(scores, axis=1), "int32")
        keep = ops.cast(valid[:, None], "bool")
        out = (ops.where(keep, best, delta), ops.where(keep, back, identity[None, :]))
        return out, out

    first = start[None, :] + emissions[:, 0]
    (delta, _), (_, backs) = ops.scan(forward, (first, ops.zeros_like(first, dtype="int32")),
                                      xs)
    last = ops.cast(ops.argmax(delta + end[None, :], axis=1), "int32")

    def backward(tag: Any, back: Any) -> tuple[Any, Any]:
        prev = ops.squeeze(ops.take_along_axis(back, tag[:, None], axis=1), axis=1)
        return prev, tag

    _, path = ops.scan(backward, last, backs, reverse=True)
    return ops.transpose(path, (1, 0))


@keras.saving.register_keras_serializable(package="rnnzoo")
class ChainCRF(keras.layers.Layer):
    """The CRF output layer: passes the emission scores through unchanged (they are what the
    exported graph computes) and owns the transition, start and end scores that the loss
    (``CRFLoss``) and the decoders read. Its output carries no mask: the loss is per
    sequence."""

    def __init__(self, num_tags: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_tags = num_tags

    def build(self, input_shape: Any) -> None:
        k = self.num_tags
        self.transitions = self.add_weight(name="transitions", shape=(k, k),
                                           initializer="zeros")
        self.start = self.add_weight(name="start", shape=(k,), initializer="zeros")
        self.end = self.add_weight(name="end", shape=(k,), initializer="zeros")

    def call(self, emissions: Any) -> Any:
        # A new tensor: returning the input object would keep the mask Keras attached to it.
        return ops.copy(ops.cast(emissions, "float32"))

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def log_likelihood(self, emissions: Any, tags: Any, mask: Any) -> Any:
        return crf_log_likelihood(emissions, tags, mask, self.transitions, self.start,
                                  self.end)

    def decode(self, emissions: Any, mask: Any) -> Any:
        return crf_decode(emissions, mask, self.transitions, self.start, self.end)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_tags": self.num_tags}


@keras.saving.register_keras_serializable(package="rnnzoo")
class DropMask(keras.layers.Layer):
    """Identity that ends the Keras mask (a per-sequence loss must not be re-masked per step)."""

    def call(self, x: Any) -> Any:
        return ops.copy(ops.cast(x, "float32"))

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


@keras.saving.register_keras_serializable(package="rnnzoo")
class CharCNN(keras.layers.Layer):
    """Per-word character features (Ma & Hovy 2016): character embedding, one convolution,
    max over the word's characters. Padding characters are zeroed before and after the
    convolution (ReLU outputs are >= 0), so a word's features do not depend on how wide its
    batch is padded. Input [batch, time, chars] int32 -> [batch, time, filters]."""

    def __init__(self, vocab_size: int, embedding_dim: int, filters: int, kernel_size: int = 3,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.filters = filters
        self.kernel_size = kernel_size
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="char_embedding")
        self.conv = keras.layers.Conv1D(filters, kernel_size, padding="same", activation="relu",
                                        name="char_conv")

    def build(self, input_shape: Any) -> None:
        self.embedding.build((None, None))
        self.conv.build((None, None, self.embedding_dim))

    def call(self, chars: Any) -> Any:
        chars = ops.cast(chars, "int32")
        shape = ops.shape(chars)
        flat = ops.reshape(chars, (-1, shape[2]))
        valid = ops.cast(ops.greater(flat, 0), self.compute_dtype)[:, :, None]
        h = self.conv(self.embedding(flat) * valid) * valid
        feats = ops.max(h, axis=1)
        return ops.reshape(feats, (shape[0], shape[1], self.filters))

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        # A real word has at least one character: the mask of the words it is joined to. (With
        # no mask here, Keras' Concatenate would treat every step as valid.)
        return ops.greater(inputs[:, :, 0], 0)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], input_shape[1], self.filters)

    def get_config(self) -> dict:
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "filters": self.filters,
                "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="rnnzoo")
class CRFLoss(keras.losses.Loss):
    """Negative CRF log-likelihood per sentence, averaged over the batch; reads the
    transitions of ``crf`` (a layer of the model), so they train with everything else.

    A layer cannot be serialised into a loss's config: a ``.keras`` archive restores this loss
    without it, and training such a model asks for ``CRFLoss(model.get_layer("crf"))``."""

    def __init__(self, crf: ChainCRF | None = None, name: str = "crf_nll",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.crf = crf

    def call(self, y_true: Any, emissions: Any) -> Any:
        if self.crf is None:
            raise ValueError("CRFLoss has no CRF layer (it was restored from a saved config); "
                             "compile with loss=CRFLoss(model.get_layer('crf'))")
        tags, mask = _targets(y_true)
        return -self.crf.log_likelihood(emissions, tags, mask)


@keras.saving.register_keras_serializable(package="rnnzoo")
class TagCrossEntropy(keras.losses.Loss):
    """Softmax cross-entropy summed over a sentence's tokens (the CRF loss's scale),
    averaged over the batch; padded positions (target 0) are ignored."""

    def __init__(self, name: str = "tag_xent", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, logits: Any) -> Any:
        tags, mask = _targets(y_true)
        xent = keras.losses.sparse_categorical_crossentropy(
            tags, ops.cast(logits, "float32"), from_logits=True)
        return ops.sum(xent * mask, axis=1)


@keras.saving.register_keras_serializable(package="rnnzoo")
class TagAccuracy(keras.metrics.Mean):
    """Token accuracy of the per-token argmax over non-padding positions (a cheap training
    signal; the reported numbers come from Viterbi decoding)."""

    def __init__(self, name: str = "accuracy", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        tags, mask = _targets(y_true)
        hit = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), tags),
                       "float32")
        return super().update_state(hit, sample_weight=mask)


# Word shapes of CaseFeatures (index = pattern id; 0 is a padded word).
CASE_PATTERNS = ("pad", "lower", "upper", "title", "mixed", "numeric", "has_digit", "other")


def char_classes(symbols: Any) -> list[list[float]]:
    """Rows of CaseFeatures' table for a character vocabulary (``symbols[i]`` is id i, ids 0
    and 1 are <pad> and <unk>): one-hot lower / upper / digit / other; <pad> is all zero."""
    rows = []
    for i, s in enumerate(symbols):
        if i == 0:
            rows.append([0.0, 0.0, 0.0, 0.0])
        elif i > 1 and len(s) == 1 and s.isalpha() and s.lower() != s:
            rows.append([0.0, 1.0, 0.0, 0.0])
        elif i > 1 and len(s) == 1 and s.isalpha():
            rows.append([1.0, 0.0, 0.0, 0.0])
        elif i > 1 and len(s) == 1 and s.isdigit():
            rows.append([0.0, 0.0, 1.0, 0.0])
        else:
            rows.append([0.0, 0.0, 0.0, 1.0])
    return rows


@keras.saving.register_keras_serializable(package="rnnzoo")
class CaseFeatures(keras.layers.Layer):
    """The case pattern of each word (Chiu & Nichols 2016), embedded: word ids are lowercased,
    so this gives the recurrent layer "Title", "UPPER", "mixedCase", "1996", "F16" as one of
    :data:`CASE_PATTERNS`. It reads the character ids (which keep the case) through a fixed
    per-character table (lower / upper / digit / other, a non-trainable weight set from the
    character vocabulary), so the exported graph and the runtime need no new input.
    Input [batch, time, chars] int32 -> [batch, time, embedding_dim]."""

    def __init__(self, char_vocab_size: int, embedding_dim: int,
                 classes: list[list[float]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.char_vocab_size = char_vocab_size
        self.embedding_dim = embedding_dim
        self._initial = classes
        self.embedding = keras.layers.Embedding(len(CASE_PATTERNS), embedding_dim,
                                                name="case_embedding")

    def build(self, input_shape: Any) -> None:
        rows = list(self._initial or [])[: self.char_vocab_size]
        rows += [[0.0, 0.0, 0.0, 1.0]] * (self.char_vocab_size - len(rows))
        rows[0] = [0.0, 0.0, 0.0, 0.0]
        self.classes = self.add_weight(name="char_classes", shape=(self.char_vocab_size, 4),
                                       initializer=keras.initializers.Constant(rows),
                                       trainable=False, dtype="float32")
        self.embedding.build((None, None))

    def patterns(self, chars: Any) -> Any:
        """Pattern ids [batch, time] (int32) of character ids [batch, time, chars]."""
        chars = ops.cast(chars, "int32")
        per_char = ops.take(self.classes, chars, axis=0)  # [b, t, c, 4]
        counts = ops.sum(per_char, axis=2)
        n_lower, n_upper, n_digit = counts[..., 0], counts[..., 1], counts[..., 2]
        first_upper = per_char[:, :, 0, 1] > 0.5
        letters = (n_lower + n_upper) > 0.5
        digits = n_digit > 0.5
        has_lower, has_upper = n_lower > 0.5, n_upper > 0.5
        no_digit = ops.logical_not(digits)
        cases = [
            (ops.logical_and(ops.logical_and(has_lower, ops.logical_not(has_upper)), no_digit), 1),
            (ops.logical_and(ops.logical_and(has_upper, ops.logical_not(has_lower)), no_digit), 2),
            (ops.logical_and(ops.logical_and(first_upper, has_lower), no_digit), 3),
            (ops.logical_and(ops.logical_and(ops.logical_not(first_upper),
                                             ops.logical_and(has_lower, has_upper)), no_digit), 4),
            (ops.logical_and(digits, ops.logical_not(letters)), 5),
            (ops.logical_and(digits, letters), 6),
        ]
        out = ops.zeros_like(chars[:, :, 0])
        for cond, value in cases:
            out = out + ops.cast(cond, "int32") * value
        other = ops.logical_and(ops.equal(out, 0), ops.greater(chars[:, :, 0], 0))
        return out + ops.cast(other, "int32") * 7

    def call(self, chars: Any) -> Any:
        return self.embedding(self.patterns(chars))

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return ops.greater(inputs[:, :, 0], 0)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], input_shape[1], self.embedding_dim)

    def get_config(self) -> dict:
        # The table is a weight (restored with the others), not config.
        return {**super().get_config(), "char_vocab_size": self.char_vocab_size,
                "embedding_dim": self.embedding_dim}
