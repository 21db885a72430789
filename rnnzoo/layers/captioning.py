"""Layers of the image captioner (``captioner`` family)."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="rnnzoo")
class GridMask(keras.layers.Layer):
    """1.0 for every position of an image feature grid [B, N, C] -> [B, N]: every grid cell
    is valid, so attention over it needs no mask input in the exported decoder step."""

    def call(self, grid: Any) -> Any:
        return keras.ops.ones_like(grid[:, :, 0])

    def compute_output_shape(self, shape: Any) -> Any:
        return tuple(shape[:2])
