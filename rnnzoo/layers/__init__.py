"""Reusable Keras layers (importing this package imports Keras)."""

from rnnzoo.layers.attention import SequenceAttention
from rnnzoo.layers.captioning import GridMask, GridPosition
from rnnzoo.layers.recurrent import CELLS, MaskedGlobalPooling1D, RecurrentStack
from rnnzoo.layers.seq2seq import ExpandTime, MaskedAccuracy, SqueezeTime, TokenMask
from rnnzoo.layers.stream import CarriedRecurrentStack

__all__ = [
    "CELLS",
    "CarriedRecurrentStack",
    "ExpandTime",
    "GridMask",
    "GridPosition",
    "MaskedAccuracy",
    "MaskedGlobalPooling1D",
    "RecurrentStack",
    "SequenceAttention",
    "SqueezeTime",
    "TokenMask",
]
