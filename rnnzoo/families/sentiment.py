"""Sentiment (text) classifier: embedding -> recurrent stack -> pooling -> softmax.

Everything a user touches (data, metrics, ``predict``, export, runtime) comes from the
``text-classification`` task type; this family only builds the Keras model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from rnnzoo.apps.text_classification.data import DataConfig
from rnnzoo.apps.text_classification.model import TextClassificationTask
from rnnzoo.config import rule

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    # Ranges are checked when a config is read (rnnzoo.config), before anything is built or
    # written: a negative width or a dropout of 1.5 would otherwise fail deep inside Keras.
    # The vocabulary holds <pad> and <unk> plus at least one word.
    vocab_size: int = rule(20000, min=3)
    embedding_dim: int = rule(128, min=1)
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(128, min=1)
    num_layers: int = rule(1, min=1)
    bidirectional: bool = True
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"
    reset_after: bool = True  # GRU only
    # "max"/"mean" pool over valid steps of the sequence output ("max_mean": both,
    # concatenated); "last" uses the final state(s).
    pooling: Literal["max", "mean", "max_mean", "last"] = "max"
    embedding_dropout: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)
    # Training only: the share of words replaced by <unk> (trains the <unk> embedding that
    # every unseen word maps to; 0: off, the model has no such layer).
    word_dropout: float = rule(0.0, min=0.0, max=1.0, max_exclusive=True)
    # Training objective only (the built model is the same): targets smoothed towards uniform.
    label_smoothing: float = rule(0.0, min=0.0, max=1.0, max_exclusive=True)
    dropout: float = rule(0.3, min=0.0, max=1.0, max_exclusive=True)
    hidden_units: int = rule(0, min=0)  # optional dense layer before the classifier (0: none)
    num_classes: int = rule(2, min=2)


class Task(TextClassificationTask):
    """A text classifier. ``predict(texts)`` returns labels and probabilities."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import MaskedGlobalPooling1D, RecurrentStack

        m = self.config.model
        tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
        ids = tokens
        if m.word_dropout:
            from rnnzoo.layers.text import WordDropout

            ids = WordDropout(m.word_dropout, seed=self.config.training.seed,
                              name="word_dropout")(tokens)
        x = keras.layers.Embedding(m.vocab_size, m.embedding_dim, mask_zero=True,
                                   name="embedding")(ids)
        x = keras.layers.Dropout(m.embedding_dropout, name="embedding_dropout")(x)
        x = RecurrentStack.from_model_config(m, return_sequences=m.pooling != "last",
                                             name="encoder")(x)
        if m.pooling != "last":
            x = MaskedGlobalPooling1D(m.pooling, name="pooling")(x)
        x = keras.layers.Dropout(m.dropout, name="dropout")(x)
        if m.hidden_units:
            x = keras.layers.Dense(m.hidden_units, activation="relu", name="hidden")(x)
            x = keras.layers.Dropout(m.dropout, name="hidden_dropout")(x)
        # float32 output even under a mixed-precision policy: softmax/loss need the range.
        probs = keras.layers.Dense(m.num_classes, activation="softmax", dtype="float32",
                                   name="probs")(x)
        return keras.Model(tokens, probs, name=self.config.name)

    @property
    def streams(self) -> bool:  # type: ignore[override]
        """A unidirectional encoder: every prefix's probabilities follow from its state (and
        the running pooling state for mean/max)."""
        return not self.config.model.bidirectional

    @property
    def no_stream_reason(self) -> str:  # type: ignore[override]
        return ("its bidirectional encoder reads the whole text (backwards too) before any "
                "output") if self.config.model.bidirectional else ""

    def stream_graph(self) -> tuple[Any, list[str]] | None:
        """With ``streams``: the encoder from given states over the tokens, the pooling
        carried as a running state (mean: sum and count; max: maximum and count), then the
        head. States: the recurrent ones (``state_0``...), then the pooling's."""
        if not self.streams:
            return None
        model = self.model
        cached = getattr(self, "_stream", None)
        if cached is None or cached[0] is not model:
            import keras

            m = self.config.model
            encoder = model.get_layer("encoder")
            tokens = keras.Input((None,), dtype="int32", name="tokens")
            n_rnn = encoder.states_per_layer * m.num_layers
            states = [keras.Input((m.units,), dtype="float32", name=f"state_{i}")
                      for i in range(n_rnn)]
            x = model.get_layer("embedding")(tokens)
            seq, new = stateful_twin(encoder, return_sequences=m.pooling != "last")(
                x, initial_state=states)
            new = list(new)
            if m.pooling == "last":
                h = seq  # the top layer's output after the last token
            else:
                modes = _pool_modes(m.pooling)
                pools = [keras.Input((m.units,), dtype="float32", name=f"state_{n_rnn + i}")
                         for i in range(len(modes))]
                count = keras.Input((1,), dtype="float32",
                                    name=f"state_{n_rnn + len(modes)}")
                states += [*pools, count]
                h, *carried = _running_pooling(m.pooling)(seq, tokens, pools, count)
                new += carried
            names = {layer.name for layer in model.layers}
            for name in ("hidden", "probs"):  # dropout is inert at inference
                if name in names:
                    h = model.get_layer(name)(h)
            graph = keras.Model([tokens, *states], [h, *new], name="classifier_step")
            self._stream = cached = (model, graph, len(states))
        return cached[1], ["probs", *[f"new_state_{i}" for i in range(cached[2])]]


def stateful_twin(stack: Any, return_sequences: bool) -> Any:
    """A ``RecurrentStack`` like ``stack`` that also returns its states, sharing its cells (so
    its weights, also after more training): the exported step graph's recurrence."""
    from rnnzoo.layers import RecurrentStack

    twin = RecurrentStack(stack.units, cell=stack.cell, num_layers=stack.num_layers,
                          bidirectional=stack.bidirectional, merge_mode=stack.merge_mode,
                          return_sequences=return_sequences, return_state=True,
                          reset_after=stack.reset_after, name=f"{stack.name}_step")
    for mine, theirs in zip(twin.rnns, stack.rnns):
        mine.cell = theirs.cell
    return twin


def _pool_modes(pooling: str) -> tuple[str, ...]:
    """The running states a pooling carries, in order (``max_mean``: the max, then the sum)."""
    return ("max", "mean") if pooling == "max_mean" else (pooling,)


def _running_pooling(mode: str) -> Any:
    """A layer ``(seq, tokens, [pooled...], count) -> (pooled output, *new pooled, new
    count)``: ``MaskedGlobalPooling1D(mode)`` over the tokens so far, carried across calls
    (mean: the running sum; max: the running maximum, read only once ``count > 0``;
    max_mean: both, concatenated as the pooling layer does)."""
    import keras

    ops = keras.ops
    modes = _pool_modes(mode)

    class RunningPooling(keras.layers.Layer):
        # the mask is read from the tokens (0 is padding); none goes on to the head
        def call(self, seq: Any, tokens: Any, pooled: list, count: Any,
                 mask: Any = None) -> Any:
            m = ops.expand_dims(ops.cast(ops.not_equal(tokens, 0), seq.dtype), -1)
            new_count = count + ops.sum(m, axis=1)
            outs, carried = [], []
            for kind, prev_state in zip(modes, pooled):
                if kind == "mean":
                    total = prev_state + ops.sum(seq * m, axis=1)
                    outs.append(total / ops.maximum(new_count, 1.0))
                    carried.append(total)
                    continue
                neg = ops.cast(-1e4, seq.dtype)
                prev = ops.where(count > 0, prev_state, neg)
                top = ops.maximum(prev, ops.max(ops.where(m > 0, seq, neg), axis=1))
                outs.append(top * ops.cast(new_count > 0, seq.dtype))
                carried.append(top)
            out = outs[0] if len(outs) == 1 else ops.concatenate(outs, axis=-1)
            return (out, *carried, new_count)

        def compute_mask(self, *args: Any, **kwargs: Any) -> Any:
            return None

    return RunningPooling(name="running_pooling")


# -- test support: the registry-generated tests build every entry with these ---------------------
TINY_OVERRIDES = {
    "model": {"vocab_size": 64, "embedding_dim": 8, "units": 8},
    "data": {"max_length": 16},
    "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 0, "early_stopping_patience": 0},
}


def synthetic_dataset(directory: str | Path, n: int = 400, seed: int = 0) -> Path:
    """A learnable CSV dataset in the generic ``text,label`` format: the label is whether the
    sentence says 'good' or 'bad' (amid filler words), so a tiny model reaches ~100%."""
    import csv
    import random

    rng = random.Random(seed)
    filler = "the a movie film plot actors was is really quite story scene this that".split()
    path = Path(directory) / "synthetic_sentiment.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for _ in range(n):
            label = rng.choice(["pos", "neg"])
            words = rng.choices(filler, k=rng.randint(2, 10))
            words.insert(rng.randint(0, len(words)), "good" if label == "pos" else "bad")
            writer.writerow([" ".join(words), label])
    return path
