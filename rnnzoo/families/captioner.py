"""Image captioner: a CNN encoder producing a grid of feature vectors, a recurrent decoder
started from the pooled image features, and (optionally) soft attention over the grid.

Three Keras models share one set of layers:

* ``model`` (training, teacher forcing): ``(target_in [B,T], image [B,S,S,3]) -> logits
  [B,T,V]``
* ``encoder``: ``image -> (encoder_outputs [B,N,C], encoder_keys [B,N,K], initial states...)``
  (keys only with attention; projected once per image, not once per word)
* ``decoder_step``: ``(token [B], states..., encoder_outputs, encoder_keys) -> (logits [B,V],
  new states..., attention [B,N])``

The attention is Luong-style (Luong et al. 2015): the recurrent layer reads the previous word,
its output queries the grid, and output layer reads both. Unlike Show, Attend and Tell, whose
context feeds the recurrent cell's input, this keeps the whole decoder one fused recurrent
operator in training and in the exported step. ``attention: none`` is the Show and Tell style
baseline (the image only sets the initial state).

The encoder is a small CNN trained from scratch (``backbone: cnn``), or a ``keras.applications``
model (``backbone: MobileNetV2`` ...) with weights read from a local file (``backbone_weights``):
nothing is downloaded. Pixels enter as 0..255 and are scaled to [-1, 1] inside the model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.apps.image_captioning.model import DataConfig, ImageCaptioningTask
from rnnzoo.config import rule
from rnnzoo.engines.stream import state_names as stream_state_names
from rnnzoo.families._attention_decoder import AttentionDecoderGraphs

__all__ = ["DataConfig", "ModelConfig", "Task"]


@dataclasses.dataclass
class ModelConfig:
    image_size: int = rule(96, min=8)  # square input, pixels
    # "cnn": the from-scratch encoder below; otherwise a keras.applications class name
    # (MobileNetV2, ResNet50, EfficientNetB0, ...) used without its classifier.
    backbone: str = "cnn"
    # keras.applications backbone: a local weights file (.h5/.weights.h5) for it; empty means
    # random initialisation (no download ever happens).
    backbone_weights: str = ""
    backbone_trainable: bool = True
    conv_filters: int = rule(32, min=1)  # first block; doubled per block up to 4x
    conv_blocks: int = rule(4, min=1, max=6)  # each halves the grid side (max pooling)
    convs_per_block: int = rule(1, min=1, max=3)
    feature_dim: int = rule(128, min=1)  # width of each grid vector after the projection
    # A learned vector per grid cell, added before the projection: where a thing is (a red
    # circle *above* a blue square) becomes part of its features.
    grid_positions: bool = True
    vocab_size: int = rule(2000, min=5)  # <pad>, <unk>, <s>, </s> plus words
    embedding_dim: int = rule(128, min=1)
    cell: Literal["simple", "lstm", "gru"] = "lstm"
    decoder_units: int = rule(256, min=1)
    attention: Literal["additive", "multiplicative", "none"] = "additive"
    attention_units: int = rule(128, min=1)
    output_units: int = rule(0, min=0)  # 0: decoder_units
    dropout: float = rule(0.3, min=0.0, max=1.0, max_exclusive=True)

    def check(self) -> list[str]:
        problems = []
        if self.backbone == "cnn" and self.image_size % (2 ** self.conv_blocks):
            problems.append(f"image_size: must be divisible by 2**conv_blocks "
                            f"({2 ** self.conv_blocks}) so the grid is whole, found "
                            f"{self.image_size}")
        if self.backbone != "cnn" and not self.backbone.isidentifier():
            problems.append(f"backbone: expected 'cnn' or a keras.applications class name "
                            f"such as 'MobileNetV2', found {self.backbone!r}")
        if self.backbone_weights and self.backbone == "cnn":
            problems.append("backbone_weights: only for a keras.applications backbone (the "
                            "cnn encoder trains from scratch; its weights are the model's)")
        return problems


def state_names(cfg: ModelConfig) -> list[str]:
    return stream_state_names(cfg.cell, 1)


def _backbone(m: ModelConfig) -> Any:
    """A keras.applications model without its top, weights from a local file or random."""
    import keras

    from rnnzoo.errors import ConfigError

    factory = getattr(keras.applications, m.backbone, None)
    if factory is None or not callable(factory):
        raise ConfigError(f"backbone: keras.applications has no model {m.backbone!r} (e.g. "
                          "MobileNetV2, ResNet50, EfficientNetB0), or use backbone: cnn")
    weights = None
    if m.backbone_weights:
        path = Path(m.backbone_weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"backbone_weights: no such file {path}; give the local path of "
                              f"the {m.backbone} weights (no download happens here)")
        weights = str(path)
    try:
        net = factory(include_top=False, weights=weights,
                      input_shape=(m.image_size, m.image_size, 3))
    except ValueError as exc:
        raise ConfigError(f"backbone {m.backbone}: {exc}") from None
    net.trainable = m.backbone_trainable
    return net


class Task(AttentionDecoderGraphs, ImageCaptioningTask):
    """An image captioner. ``caption("photo.jpg", beam=3)`` returns a sentence."""

    encoder_name = "image_encoder"
    state_names = staticmethod(state_names)

    def build_model(self) -> Any:
        """The CNN (or keras.applications) encoder and its grid projection, pooled into the
        decoder's initial states; the decoder and its attention come from
        ``AttentionDecoderGraphs``."""
        import keras

        from rnnzoo.layers import GridMask, GridPosition

        m = self.config.model
        L = keras.layers
        self.layers_: dict[str, Any] = {}
        lay = self.layers_
        lay["scale"] = L.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_pixels")
        if m.backbone == "cnn":
            blocks = []
            for b in range(m.conv_blocks):
                width = m.conv_filters * 2 ** min(b, 2)
                for c in range(m.convs_per_block):
                    blocks += [L.Conv2D(width, 3, padding="same", use_bias=False,
                                        name=f"conv_{b}_{c}"),
                               L.BatchNormalization(name=f"bn_{b}_{c}"),
                               L.ReLU(name=f"relu_{b}_{c}")]
                blocks.append(L.MaxPooling2D(2, name=f"pool_{b}"))
            lay["cnn"] = blocks
        else:
            lay["cnn"] = [_backbone(m)]
        if m.grid_positions:
            lay["position"] = GridPosition(name="grid_position")
        lay["project"] = L.Dense(m.feature_dim, activation="relu", name="grid_projection")
        lay["grid_drop"] = L.Dropout(m.dropout, name="grid_dropout")
        lay["pool"] = L.GlobalAveragePooling1D(name="pool_grid")
        lay["init"] = [L.Dense(m.decoder_units, activation="tanh", name=f"init_{i}")
                       for i in range(len(state_names(m)))]
        lay["emb"] = L.Embedding(m.vocab_size, m.embedding_dim, mask_zero=True,
                                 name="word_embedding")
        lay["emb_drop"] = L.Dropout(m.dropout, name="embedding_dropout")
        self._decoder_layers(num_layers=1, dropout=0.0)  # dropout: the embedding's and output's
        if "attention" in lay:
            lay["grid_mask"] = GridMask(name="grid_mask")
        lay["logits"] = L.Dense(m.vocab_size, name="logits", dtype="float32")

        tgt = keras.Input((None,), dtype="int32", name="target_in")
        image = keras.Input((m.image_size, m.image_size, 3), name="image")
        return self._teacher_forcing([tgt, image], image, tgt)

    def _encode(self, image: Any) -> tuple[Any, list]:
        import keras

        lay = self.layers_
        x = lay["scale"](image)
        for layer in lay["cnn"]:
            x = layer(x)
        side, channels = int(x.shape[1]), int(x.shape[3])
        x = keras.layers.Reshape((side * int(x.shape[2]), channels), name="flatten_grid")(x)
        if "position" in lay:
            x = lay["position"](x)
        grid = lay["grid_drop"](lay["project"](x))
        pooled = lay["pool"](grid)
        return grid, [dense(pooled) for dense in lay["init"]]

    def _attention_mask(self, grid: Any) -> Any:
        return self.layers_["grid_mask"](grid)

    def _encoder_input(self) -> Any:
        import keras

        m = self.config.model
        return keras.Input((m.image_size, m.image_size, 3), name="image")

    def _step_inputs(self) -> tuple[Any, list]:
        import keras

        grid_size = int(self.encoder.outputs[0].shape[1])
        return keras.Input((grid_size, self.config.model.feature_dim), name="encoder_outputs"), []


# -- test support -------------------------------------------------------------------------------
TINY_OVERRIDES = {
    "model": {"image_size": 16, "conv_filters": 4, "conv_blocks": 2, "feature_dim": 8,
              "vocab_size": 40, "embedding_dim": 8, "decoder_units": 16, "attention_units": 8,
              "dropout": 0.0},
    "data": {"max_length": 10, "min_count": 1, "dev_fraction": 0.1, "test_fraction": 0.1},
    "training": {"epochs": 1, "batch_size": 32, "warmup_steps": 0, "early_stopping_patience": 0},
}

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (40, 60, 230),
           "yellow": (240, 220, 30)}
SHAPES = ("circle", "square", "triangle")


def draw_shapes(top: tuple[str, str], bottom: tuple[str, str], size: int,
                rng: np.random.Generator) -> Any:
    """A Pillow image: a (colour, shape) in the upper half above another in the lower half,
    jittered in position and size on a light grey background."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (235, 235, 235))
    draw = ImageDraw.Draw(image)
    for (colour, shape), y0 in ((top, 0), (bottom, size // 2)):
        r = int(rng.integers(size // 8, size // 5 + 1))
        cx = int(rng.integers(r + 1, size - r - 1))
        cy = y0 + int(rng.integers(r + 1, size // 2 - r))
        box = (cx - r, cy - r, cx + r, cy + r)
        fill = COLOURS[colour]
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return image


def synthetic_dataset(directory: str | Path, n: int = 600, seed: int = 0,
                      image_size: int = 32) -> Path:
    """Coloured shapes in the Flickr8k layout (``captions.txt`` + ``Images/``, no split lists:
    a seeded split): "a red circle above a blue square". Learnable fast, and a caption is
    right or wrong word for word."""
    rng = np.random.default_rng(seed)
    root = Path(directory) / "shapes"
    images = root / "Images"
    images.mkdir(parents=True, exist_ok=True)
    colours = list(COLOURS)
    lines = ["image,caption"]
    for i in range(n):
        top = (colours[rng.integers(len(colours))], SHAPES[rng.integers(len(SHAPES))])
        bottom = (colours[rng.integers(len(colours))], SHAPES[rng.integers(len(SHAPES))])
        name = f"shape_{i:05d}.png"
        draw_shapes(top, bottom, image_size, rng).save(images / name)
        lines.append(f"{name},a {top[0]} {top[1]} above a {bottom[0]} {bottom[1]} .")
    (root / "captions.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
