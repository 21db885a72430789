"""Reusable Keras layers (importing this package imports Keras)."""

from rnnzoo.layers.recurrent import CELLS, MaskedGlobalPooling1D, RecurrentStack

__all__ = ["CELLS", "MaskedGlobalPooling1D", "RecurrentStack"]
