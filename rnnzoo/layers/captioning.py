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


@keras.saving.register_keras_serializable(package="rnnzoo")
class GridPosition(keras.layers.Layer):
    """Adds a learned vector per grid cell to image features [B, N, C]. Convolutions share
    weights across positions, so without it neither attention (which scores cells by content)
    nor the pooled features could tell "a red circle above a blue square" from the reverse."""

    def build(self, shape: Any) -> None:
        self.position = self.add_weight(name="position", shape=(int(shape[1]), int(shape[2])),
                                        initializer=keras.initializers.RandomNormal(stddev=0.1))
        self.built = True

    def call(self, grid: Any) -> Any:
        return grid + keras.ops.cast(self.position, grid.dtype)[None, :, :]

    def compute_output_shape(self, shape: Any) -> Any:
        return shape
