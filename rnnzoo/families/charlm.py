"""Character-level language model (char-rnn): embedding -> recurrent stack -> softmax.

Three Keras models share one set of layers:

* ``model`` (training): ``chars [B, T]`` -> ``logits [B, T, V]`` of character t+1; its
  recurrent stack carries the state between training batches when ``stateful: true``
  (``rnnzoo.layers.stream.CarriedRecurrentStack``), and starts from zeros otherwise;
* ``score`` (the exported ``model`` graph): ``chars`` and the states -> logits and new states,
  so a long text is scored in chunks with the state carried;
* ``step`` (the exported ``decoder`` graph): one character and the states -> logits and states.

Data, the bpc metric, ``generate``, export and the runtime come from the ``text-generation``
task type; ``cell: simple | lstm | gru`` gives the three models of the published comparison
(Bai et al. 2018: vanilla RNN, LSTM, GRU on PTB-char).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from rnnzoo.apps.text_generation.data import DataConfig
from rnnzoo.apps.text_generation.model import TextGenerationTask
from rnnzoo.config import rule
from rnnzoo.engines.stream import state_names as stream_state_names

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    # Output classes: a cap on the character vocabulary (id 0 is the unknown symbol). Ids the
    # training text does not use are never predicted (masked), so a cap above the alphabet
    # only costs a few weights.
    vocab_size: int = rule(128, min=3)
    embedding_dim: int = rule(64, min=1)
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    units: int = rule(512, min=1)
    num_layers: int = rule(1, min=1)
    reset_after: bool = True  # GRU only
    # Dropout on the embeddings, between recurrent layers and before the softmax.
    embedding_dropout: float = rule(0.0, min=0.0, max=1.0, max_exclusive=True)
    dropout: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)
    # DropConnect on the recurrent matrices while training (AWD-LSTM's weight drop): one mask
    # per batch, shared across time steps. The exported graphs and the weights are unchanged.
    weight_dropout: float = rule(0.0, min=0.0, max=1.0, max_exclusive=True)


def state_names(cfg: ModelConfig) -> list[str]:
    return stream_state_names(cfg.cell, cfg.num_layers)


class Task(TextGenerationTask):
    """A character language model: ``generate("ROMEO:", 500, temperature=0.8, seed=0)``,
    ``evaluate(texts)`` -> bits per character."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers.stream import CarriedRecurrentStack

        m = self.config.model
        L = keras.layers
        self.layers_ = {
            "embedding": L.Embedding(m.vocab_size, m.embedding_dim, name="embedding"),
            "embedding_dropout": L.Dropout(m.embedding_dropout, name="embedding_dropout"),
            "rnn": CarriedRecurrentStack.from_model_config(m, return_sequences=True,
                                                           return_state=True, name="rnn"),
            "output_dropout": L.Dropout(m.dropout, name="output_dropout"),
            # float32 output even under a mixed-precision policy: the loss needs the range.
            "logits": L.Dense(m.vocab_size, name="logits", dtype="float32"),
        }
        self._graphs: dict[str, Any] = {}
        chars = keras.Input((None,), dtype="int32", name="chars")
        logits, _ = self._apply(chars, None)
        return keras.Model(chars, logits, name=self.config.name)

    def _apply(self, chars: Any, states: list | None) -> tuple[Any, list]:
        lay = self.layers_
        x = lay["embedding_dropout"](lay["embedding"](chars))
        x, new_states = lay["rnn"](x, initial_state=states)
        return lay["logits"](lay["output_dropout"](x)), new_states

    def carried_layer(self) -> Any:
        self.model  # noqa: B018 - built on first use
        return self.layers_["rnn"]

    def _graph(self, kind: str) -> tuple[Any, list[str]]:
        model = self.model
        cached = getattr(self, "_graphs", {}).get(kind)
        if cached is None or cached[0] is not model:
            import keras

            m = self.config.model
            names = state_names(m)
            states = [keras.Input((m.units,), name=n) for n in names]
            if kind == "score":
                chars = keras.Input((None,), dtype="int32", name="chars")
                logits, new = self._apply(chars, states)
            else:
                chars = keras.Input((), dtype="int32", name="char")
                logits, new = self._apply(keras.ops.expand_dims(chars, 1), states)
                logits = keras.ops.squeeze(logits, 1)
                new = list(new)
            graph = keras.Model([chars, *states], [logits, *new], name=f"charlm_{kind}")
            cached = (model, graph, ["logits", *[f"new_{n}" for n in names]])
            self._graphs[kind] = cached
        return cached[1], cached[2]

    def score_graph(self) -> tuple[Any, list[str]]:
        return self._graph("score")

    def step_graph(self) -> tuple[Any, list[str]]:
        return self._graph("step")


# -- test support -------------------------------------------------------------------------------
TINY_OVERRIDES = {
    "model": {"units": 16, "num_layers": 1, "embedding_dim": 8, "vocab_size": 32,
              "dropout": 0.0},
    "data": {"bptt_length": 16},
    "training": {"epochs": 1, "batch_size": 8, "warmup_steps": 0, "early_stopping_patience": 0},
}

PATTERNS = ("abcab.\n", "cabba!\n", "bacca?\n")


def periodic_text(n: int, seed: int = 0) -> str:
    """``n`` short lines, each one of three fixed patterns chosen at random: a small model
    learns every character after the first of a line exactly."""
    import random

    rng = random.Random(seed)
    return "".join(rng.choice(PATTERNS) for _ in range(n))


def synthetic_dataset(directory: str | Path, n: int = 300, seed: int = 0) -> Path:
    """A learnable UTF-8 text file: ``n`` lines of :func:`periodic_text` (the last 10% is the
    dev split)."""
    path = Path(directory) / "synthetic_text.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(periodic_text(n, seed), encoding="utf-8")
    return path
