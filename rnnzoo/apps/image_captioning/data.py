"""Image-captioning data: the entry's data options, Flickr8k/COCO readers with the images loaded
once, the caption preprocessor and the arrays training reads. TF-free."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnzoo.config import rule
from rnnzoo.data.captions import (
    CaptionData,
    CaptionedImage,
    load_pixels,
    preprocess_image,
    read_captions,
    warn_skipped,
)
from rnnzoo.data.tokenizer import BOS, EOS, WordTokenizer
from rnnzoo.errors import DataError

__all__ = ["ASSET_SETTINGS", "ASSET_TOKENIZER", "CaptionData", "CaptionerPreprocessor",
           "DataConfig", "as_images", "caption_arrays", "read_caption_data"]

ASSET_TOKENIZER = "tokenizer.json"
ASSET_SETTINGS = "captioner.json"


@dataclasses.dataclass
class DataConfig:
    lowercase: bool = True
    # Words per caption: longer training captions are cut (references are never cut).
    max_length: int = rule(20, min=1)
    # Words seen fewer times in the training captions become <unk> (small vocabulary, small
    # preset; a rare word cannot be learnt from a handful of images anyway).
    min_count: int = rule(5, min=1)
    # Without split lists (Flickr_8k.*Images.txt, COCO train/val files) images are split by a
    # seeded shuffle.
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    # Random horizontal flips of training images (captions rarely say left/right).
    augment_flip: bool = True
    # Unreadable or missing images: skipped with a warning naming them, or an error.
    strict_images: bool = False


_PUNCT = set(".,;:!?\"'`()[]{}-")


class CaptionerPreprocessor:
    """Caption tokenizer (``<s>``/``</s>``, punctuation dropped) and the image size."""

    def __init__(self, tokenizer: WordTokenizer, image_size: int, max_length: int):
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.max_length = max_length

    @property
    def is_fitted(self) -> bool:
        return self.tokenizer.is_fitted

    def words(self, text: str) -> list[str]:
        """The caption's words as the model sees and BLEU scores them: lower-cased tokens
        without punctuation."""
        return [w for w in self.tokenizer.split(text) if not all(c in _PUNCT for c in w)]

    def normalize(self, text: str) -> str:
        return " ".join(self.words(text))

    def encode_caption(self, text: str) -> list[int]:
        index = self.tokenizer.index
        ids = [index.get(w, 1) for w in self.words(text)][: self.max_length]
        return [index[BOS], *ids, index[EOS]]

    def decode(self, ids: Sequence[int]) -> str:
        """Words up to ``</s>`` (decoding never picks ``<unk>``; were one given, it is left
        out)."""
        vocab, eos = self.tokenizer.vocab, self.tokenizer.index[EOS]
        special = {0, 1, self.tokenizer.index[BOS]}
        out = []
        for i in ids:
            i = int(i)
            if i == eos or i == 0:
                break
            if i not in special and 0 <= i < len(vocab):
                out.append(vocab[i])
        return " ".join(out)

    def pixels(self, images: Any) -> np.ndarray:
        """float32 [B, S, S, 3] pixels (0..255) of a list of images (paths, Pillow images,
        arrays)."""
        return np.stack([preprocess_image(x, self.image_size) for x in images]).astype(
            np.float32)


def as_images(images: Any, where: str = "caption") -> tuple[list, bool]:
    """``(list of images, single)``: one path / Pillow image / [H, W(, C)] array, or a list of
    them (a [B, H, W, C] array is a batch)."""
    if isinstance(images, (str, os.PathLike)):
        return [images], True
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return list(images), False
        return [images], True
    if type(images).__module__.startswith("PIL."):
        return [images], True
    if isinstance(images, (list, tuple)):
        if not images:
            raise DataError(f"{where}: empty list of images")
        return list(images), False
    raise DataError(f"{where}: expected an image path, a Pillow image, an array, or a list of "
                    f"them, found {type(images).__name__}")


def read_caption_data(path: str | os.PathLike, d: DataConfig, seed: int,
                      image_size: int) -> CaptionData:
    """Captions and their images, read and resized once (unreadable images skipped with a
    warning, or an error with ``strict_images``)."""
    splits, description = read_captions(path, seed, d.dev_fraction, d.test_fraction)
    kept, skipped = {}, []
    for name, items in splits.items():
        kept[name], lost = load_pixels(items, image_size, strict=d.strict_images)
        skipped += lost
    warn_skipped(skipped, str(path))
    if not kept["train"]:
        raise DataError(f"{path}: no readable training image with captions")
    return CaptionData(kept["train"], kept["dev"], kept["test"],
                       f"{description}, images {image_size}x{image_size}", skipped)


def caption_arrays(pre: CaptionerPreprocessor, items: Sequence[CaptionedImage], max_length: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels [N, S, S, 3] uint8, caption ids [M, L+2] post-padded, image index [M]): one row
    per caption, each pointing at its image (stored once)."""
    width = max_length + 2
    rows, owner = [], []
    for i, item in enumerate(items):
        for c in item.captions:
            ids = pre.encode_caption(c)
            rows.append(ids + [0] * (width - len(ids)))
            owner.append(i)
    pixels = np.stack([x.pixels for x in items])
    return pixels, np.asarray(rows, np.int32), np.asarray(owner, np.int32)
