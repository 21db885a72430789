"""GRU4Rec-style next-item recommender: item embedding -> recurrent stack -> softmax over items.

Hidasi et al. (ICLR 2016) read a session through a GRU and score every item from its state.
Trained here with a full softmax cross-entropy over the catalogue at every position (the loss
that lifts GRU4Rec and SASRec under full ranking; Klenitskiy & Vasilev, RecSys 2023), with
dropout on the item embeddings and on the state before the output layer. Three Keras models
share one set of layers:

* ``model`` (training): ``items [B, T]`` -> ``logits [B, T, V]`` of the next item;
* ``score`` (the exported ``model`` graph): ``items`` and the states -> ``logits [B, V]`` after
  the last item and the new states (a history read at once);
* ``step`` (the exported ``decoder`` graph): one item and the states -> logits and states (a
  user's state carried from interaction to interaction).

``cell: gru | lstm | simple`` gives GRU4Rec and its LSTM and vanilla-RNN variants. Data,
ranking metrics, ``recommend``, export and the runtime come from the ``recommendation`` task
type.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.apps.recommendation.data import DataConfig
from rnnzoo.apps.recommendation.model import RecommendationTask
from rnnzoo.config import rule
from rnnzoo.engines.stream import state_names as stream_state_names

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    # Items the model ranks (the catalogue's cap; index 0 is padding): the most frequent
    # training items up to this many. MovieLens-1M in SASRec's form has 3,416.
    num_items: int = rule(3416, min=2)
    embedding_dim: int = rule(128, min=1)
    cell: Literal["simple", "lstm", "gru"] = "gru"
    units: int = rule(128, min=1)
    num_layers: int = rule(1, min=1)
    reset_after: bool = True  # GRU only
    # Dropout on the item embeddings, between recurrent layers, and before the output layer.
    embedding_dropout: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)
    dropout: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)


def state_names(cfg: ModelConfig) -> list[str]:
    return stream_state_names(cfg.cell, cfg.num_layers)


class Task(RecommendationTask):
    """A GRU4Rec recommender: ``recommend([2858, 1196, 260], k=10)``, ``stream()``,
    ``evaluate(histories, next_items)`` -> HR@10, NDCG@10, MRR@20, Recall@20."""

    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack

        m = self.config.model
        L = keras.layers
        self.layers_ = {
            "embedding": L.Embedding(m.num_items + 1, m.embedding_dim, name="embedding"),
            "embedding_dropout": L.Dropout(m.embedding_dropout, name="embedding_dropout"),
            "rnn": RecurrentStack.from_model_config(m, return_sequences=True,
                                                    return_state=True, name="rnn"),
            "output_dropout": L.Dropout(m.dropout, name="output_dropout"),
            # float32 output even under a mixed-precision policy: the loss needs the range.
            "logits": L.Dense(m.num_items + 1, name="logits", dtype="float32"),
        }
        self._graphs: dict[str, Any] = {}
        items = keras.Input((None,), dtype="int32", name="items")
        x, _ = self._recur(items, None)
        logits = self.layers_["logits"](self.layers_["output_dropout"](x))
        return keras.Model(items, logits, name=self.config.name)

    def _recur(self, items: Any, states: list | None) -> tuple[Any, list]:
        lay = self.layers_
        x = lay["embedding_dropout"](lay["embedding"](items))
        x, new_states = lay["rnn"](x, initial_state=states)
        return x, list(new_states)

    def _last_output(self, new_states: list) -> Any:
        """The last layer's output after the last item: its ``h`` state (an LSTM's first)."""
        return new_states[-2] if self.config.model.cell == "lstm" else new_states[-1]

    def _graph(self, kind: str) -> tuple[Any, list[str]]:
        model = self.model
        cached = getattr(self, "_graphs", {}).get(kind)
        if cached is None or cached[0] is not model:
            import keras

            m = self.config.model
            names = state_names(m)
            states = [keras.Input((m.units,), name=n) for n in names]
            if kind == "score":
                items = keras.Input((None,), dtype="int32", name="items")
                _, new = self._recur(items, states)
            else:
                items = keras.Input((), dtype="int32", name="item")
                _, new = self._recur(keras.ops.expand_dims(items, 1), states)
            logits = self.layers_["logits"](self._last_output(new))
            graph = keras.Model([items, *states], [logits, *new], name=f"gru4rec_{kind}")
            cached = (model, graph, ["logits", *[f"new_{n}" for n in names]])
            self._graphs[kind] = cached
        return cached[1], cached[2]

    def score_graph(self) -> tuple[Any, list[str]]:
        return self._graph("score")

    def step_graph(self) -> tuple[Any, list[str]]:
        return self._graph("step")


# -- test support -------------------------------------------------------------------------------
TINY_OVERRIDES = {
    "model": {"num_items": 12, "embedding_dim": 8, "units": 16, "num_layers": 1,
              "embedding_dropout": 0.0, "dropout": 0.0},
    "data": {"max_length": 12},
    "training": {"epochs": 1, "batch_size": 16, "warmup_steps": 0,
                 "early_stopping_patience": 0},
}


def synthetic_dataset(directory: str | Path, n: int = 300, seed: int = 0) -> Path:
    """``n`` users in ``user item`` lines, each walking a cycle of 10 items (1 -> 2 -> ... ->
    10 -> 1) from a random start for 4 to 10 steps (no repeats): the next item is always
    learnable."""
    rng = np.random.default_rng(seed)
    lines = []
    for user in range(1, n + 1):
        start = int(rng.integers(0, 10))
        for t in range(int(rng.integers(4, 11))):
            lines.append(f"{user} {(start + t) % 10 + 1}")
    path = Path(directory) / "synthetic_sequences.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
