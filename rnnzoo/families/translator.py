"""Seq2seq translator: recurrent encoder, recurrent decoder, attention over the encoder outputs.

Three Keras models share one set of layers:

* ``model`` (training, teacher forcing): ``(source [B,S], target_in [B,T]) -> logits [B,T,V]``
* ``encoder``: ``source -> (encoder_outputs [B,S,H], encoder_keys [B,S,K], decoder initial
  states...)``; the attention keys are projected once per sentence, not once per step
* ``decoder_step``: ``(token [B], states..., encoder_outputs, encoder_keys, source_mask) ->
  (logits [B,V], new states..., attention [B,S])``

Data, ``translate``, evaluation, export and the runtime come from the ``translation`` task type,
which decodes ``decoder_step`` with the samplers of ``rnnzoo.generation``; the ONNX bundle holds
the same two graphs. ``attention: none`` gives the classic encoder-final-state seq2seq.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from rnnzoo.config import rule
from rnnzoo.families._attention_decoder import AttentionDecoderGraphs
from rnnzoo.tasks.translation import DataConfig, TranslationTask

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


def key_dim(cfg: ModelConfig) -> int:
    """Width of the projected attention keys: additive scores project to ``attention_units``,
    multiplicative ones to the decoder's query width."""
    return cfg.attention_units if cfg.attention == "additive" else cfg.decoder_units


def state_names(cfg: ModelConfig) -> list[str]:
    per_layer = 2 if cfg.cell == "lstm" else 1
    return [f"state_{i}" for i in range(cfg.decoder_layers * per_layer)]


class Task(AttentionDecoderGraphs, TranslationTask):
    """A translator. ``translate(texts, beam=5)`` returns strings."""

    token_embedding = "tgt_emb"  # the decoder's token embedding in ``layers_``
    encoder_name = "encoder"
    state_names = staticmethod(state_names)
    key_dim = staticmethod(key_dim)

    # -- model ---------------------------------------------------------------------------------
    def build_model(self) -> Any:
        import keras

        from rnnzoo.layers import RecurrentStack, SequenceAttention, TokenMask

        m = self.config.model
        L = keras.layers
        self.layers_: dict[str, Any] = {}
        lay = self.layers_
        lay["src_emb"] = L.Embedding(m.src_vocab_size, m.embedding_dim, mask_zero=True,
                                     name="source_embedding")
        lay["encoder"] = RecurrentStack(m.encoder_units, cell=m.cell,
                                        num_layers=m.encoder_layers,
                                        bidirectional=m.encoder_bidirectional, dropout=m.dropout,
                                        return_sequences=True, return_state=True, name="encoder")
        n_states = len(state_names(m))
        lay["bridge"] = [L.Dense(m.decoder_units, activation="tanh", name=f"bridge_{i}")
                         for i in range(n_states)]
        lay["tgt_emb"] = L.Embedding(m.tgt_vocab_size, m.embedding_dim, mask_zero=True,
                                     name="target_embedding")
        lay["decoder"] = RecurrentStack(m.decoder_units, cell=m.cell,
                                        num_layers=m.decoder_layers, dropout=m.dropout,
                                        return_sequences=True, return_state=True, name="decoder")
        if m.attention != "none":
            lay["attention"] = SequenceAttention(m.attention_units, score=m.attention,
                                                 name="attention")
        out_units = m.output_units or m.decoder_units
        if m.attention != "none" or out_units != m.decoder_units:
            lay["combine"] = L.Dense(out_units, activation="tanh", name="combine")
        lay["drop"] = L.Dropout(m.dropout, name="output_dropout")
        lay["emb_drop"] = L.Dropout(m.dropout, name="embedding_dropout")
        lay["logits"] = L.Dense(m.tgt_vocab_size, name="logits", dtype="float32")
        lay["src_mask"] = TokenMask(name="source_mask")

        src = keras.Input((None,), dtype="int32", name="source")
        tgt = keras.Input((None,), dtype="int32", name="target_in")
        enc_out, init = self._encode(src)
        x = lay["emb_drop"](lay["tgt_emb"](tgt))
        dec_out, _ = lay["decoder"](x, initial_state=init)
        logits, _ = self._head(dec_out, enc_out, lay["src_mask"](src))
        return keras.Model([src, tgt], logits, name=self.config.name)

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

    def _head(self, dec_out: Any, enc_out: Any, src_mask: Any, keys: Any = None
              ) -> tuple[Any, Any]:
        import keras

        lay = self.layers_
        weights = None
        if "attention" in lay:
            context, weights = lay["attention"](dec_out, enc_out, src_mask, keys=keys)
            dec_out = keras.layers.Concatenate()([dec_out, context])
        if "combine" in lay:
            dec_out = lay["combine"](dec_out)
        return lay["logits"](lay["drop"](dec_out)), weights

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
