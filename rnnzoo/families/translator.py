"""Seq2seq translator: recurrent encoder, recurrent decoder, attention over the encoder outputs.

Three Keras models share one set of layers:

* ``model`` (training, teacher forcing): ``(source [B,S], target_in [B,T]) -> logits [B,T,V]``
* ``encoder``: ``source -> (encoder_outputs [B,S,H], encoder_keys [B,S,K], decoder initial
  states...)``; the attention keys are projected once per sentence, not once per step
* ``decoder_step``: ``(token [B], states..., encoder_outputs, encoder_keys, source_mask) ->
  (logits [B,V], new states..., attention [B,S])``

Data, ``translate``, evaluation, export and the runtime come from the ``translation`` task type,
which decodes ``decoder_step`` with the samplers of ``rnnzoo.engines``; the ONNX bundle holds
the same two graphs. ``attention: none`` gives the classic encoder-final-state seq2seq.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from rnnzoo.apps.translation.model import DataConfig, TranslationTask
from rnnzoo.config import rule
from rnnzoo.engines.stream import state_names as stream_state_names
from rnnzoo.families._attention_decoder import AttentionDecoderGraphs

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    # Ranges are checked when a config is read (rnnzoo.config), before anything is built or
    # written. Vocabularies hold <pad>, <unk> (and <s>, </s> on the target side) plus a word.
    src_vocab_size: int = rule(16000, min=3)
    tgt_vocab_size: int = rule(12000, min=5)
    embedding_dim: int = rule(256, min=1)
    cell: Literal["simple", "lstm", "gru"] = "gru"
    encoder_units: int = rule(256, min=1)  # per direction
    encoder_layers: int = rule(1, min=1)
    encoder_bidirectional: bool = True
    decoder_units: int = rule(512, min=1)
    decoder_layers: int = rule(1, min=1)
    attention: Literal["additive", "multiplicative", "none"] = "additive"
    attention_units: int = rule(256, min=1)
    # Width of the vector fed to the output projection (Luong's attentional hidden state):
    # 0 means decoder_units. At batch 1 a decoding step is bound by reading the weights, and the
    # [output_units, tgt_vocab_size] projection is most of them, so a narrower output layer
    # decodes proportionally faster.
    output_units: int = rule(0, min=0)
    dropout: float = rule(0.2, min=0.0, max=1.0, max_exclusive=True)


def state_names(cfg: ModelConfig) -> list[str]:
    return stream_state_names(cfg.cell, cfg.decoder_layers)


class Task(AttentionDecoderGraphs, TranslationTask):
    """A translator. ``translate(texts, beam=5)`` returns strings."""

    token_embedding = "tgt_emb"  # the decoder's token embedding in ``layers_``
    state_names = staticmethod(state_names)

    # -- model ---------------------------------------------------------------------------------
    def build_model(self) -> Any:
        """Embedding and (bi)recurrent encoder, its final states bridged to the decoder's
        initial states; the decoder and its attention come from ``AttentionDecoderGraphs``."""
        import keras

        from rnnzoo.layers import RecurrentStack, TokenMask

        m = self.config.model
        self.layers_: dict[str, Any] = {
            "src_emb": keras.layers.Embedding(m.src_vocab_size, m.embedding_dim, mask_zero=True,
                                              name="source_embedding"),
            "encoder": RecurrentStack(m.encoder_units, cell=m.cell, num_layers=m.encoder_layers,
                                      bidirectional=m.encoder_bidirectional, dropout=m.dropout,
                                      return_sequences=True, return_state=True, name="encoder"),
            "bridge": [keras.layers.Dense(m.decoder_units, activation="tanh", name=f"bridge_{i}")
                       for i in range(len(state_names(m)))],
            "tgt_emb": keras.layers.Embedding(m.tgt_vocab_size, m.embedding_dim, mask_zero=True,
                                              name="target_embedding"),
        }
        self._decoder_layers(num_layers=m.decoder_layers, dropout=m.dropout)
        lay = self.layers_
        lay["emb_drop"] = keras.layers.Dropout(m.dropout, name="embedding_dropout")
        lay["logits"] = keras.layers.Dense(m.tgt_vocab_size, name="logits", dtype="float32")
        lay["src_mask"] = TokenMask(name="source_mask")
        src = keras.Input((None,), dtype="int32", name="source")
        tgt = keras.Input((None,), dtype="int32", name="target_in")
        return self._teacher_forcing([src, tgt], src, tgt)

    def _encode(self, src: Any) -> tuple[Any, list]:
        m = self.config.model
        lay = self.layers_
        enc_out, states = lay["encoder"](lay["emb_drop"](lay["src_emb"](src)))
        # Final states of the last encoder layer, directions concatenated, bridged to each
        # decoder layer's initial state (h, and c for LSTM).
        per_dir = 2 if m.cell == "lstm" else 1
        dirs = 2 if m.encoder_bidirectional else 1
        last = states[-per_dir * dirs:]
        import keras

        init = []
        for i, bridge in enumerate(lay["bridge"]):
            kind = i % per_dir
            parts = [last[d * per_dir + kind] for d in range(dirs)]
            joined = parts[0] if dirs == 1 else keras.layers.Concatenate()(parts)
            init.append(bridge(joined))
        return enc_out, init

    def _memory_extras(self, src: Any) -> list:
        return [self.layers_["src_mask"](src)]

    def _attention_mask(self, memory: Any, src_mask: Any) -> Any:
        return src_mask

    def _encoder_input(self) -> Any:
        import keras

        return keras.Input((None,), dtype="int32", name="source")

    def _step_inputs(self) -> tuple[Any, list]:
        import keras

        m = self.config.model
        enc_dim = m.encoder_units * (2 if m.encoder_bidirectional else 1)
        return (keras.Input((None, enc_dim), name="encoder_outputs"),
                [keras.Input((None,), name="source_mask")])


# -- test support -------------------------------------------------------------------------------
TINY_OVERRIDES = {
    "model": {"src_vocab_size": 40, "tgt_vocab_size": 40, "embedding_dim": 16,
              "encoder_units": 16, "decoder_units": 32, "attention_units": 16, "output_units": 16,
              "dropout": 0.0},
    "data": {"max_length": 12, "dev_fraction": 0.1, "test_fraction": 0.1},
    "training": {"epochs": 1, "batch_size": 32, "warmup_steps": 0, "early_stopping_patience": 0},
}


def synthetic_dataset(directory: str | Path, n: int = 1500, seed: int = 0) -> Path:
    """A learnable toy language pair in the Anki format (``target<TAB>source``): the "source"
    is a sentence of English-like words, the "target" reverses it and renames every word
    (word -> word + 'o'), so the model must learn a lexicon and a long-range reordering."""
    import random

    rng = random.Random(seed)
    words = ("cat dog bird fish red blue green big small runs eats sees the a one two three "
             "sun moon tree").split()
    path = Path(directory) / "toy.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    seen = set()
    lines = []
    while len(lines) < n:
        src = rng.choices(words, k=rng.randint(2, 7))
        if tuple(src) in seen:
            continue
        seen.add(tuple(src))
        tgt = [w + "o" for w in reversed(src)]
        lines.append(f"{' '.join(tgt)} .\t{' '.join(src)} .")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
