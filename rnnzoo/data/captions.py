"""Image-caption datasets: the Flickr8k layout and COCO captions JSON, plus the one image
preprocessing function that training, Keras inference and the ONNX runtime all call.

Layouts (``read_captions`` detects them):

* **Flickr8k** (a folder): ``captions.txt`` (CSV, header ``image,caption``, the caption is
  everything after the first comma), ``Images/``, and optionally the split lists
  ``Flickr_8k.{train,dev,test}Images.txt`` (one file name a line). Without split lists the
  images are split by a seeded shuffle.
* **COCO** (a JSON file, or a folder holding ``annotations/captions_*.json``): ``images``
  (``id``, ``file_name``) and ``annotations`` (``image_id``, ``caption``); the images lie in
  the JSON's folder, its ``images/`` or the folder named like the JSON's split
  (``train2014``). Each JSON file is one split when the names say ``train``/``val``/``test``.

Every reference caption of an image is kept (BLEU is computed against all of them). An image
that is missing or cannot be decoded is named in one warning and skipped, or raises
``DataError`` with ``strict=True``. Numpy and Pillow only (the runtime imports this module).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import struct
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.data.splits import Splits
from rnnzoo.errors import DataError
from rnnzoo.extras import MissingDependencyError, has_module
from rnnzoo.io.inputs import check_finite, check_image_pixels, image_bomb_guard
from rnnzoo.limits import LimitError

IMAGE_EXTRA = 'pip install "rnnzoo[image]"'
SPLITS = ("train", "dev", "test")


def require_pillow(purpose: str) -> Any:
    """``PIL.Image``, or :class:`MissingDependencyError` naming the ``image`` extra."""
    if not has_module("PIL"):
        raise MissingDependencyError(f"{purpose} needs Pillow, which is not installed: "
                                     f"{IMAGE_EXTRA} (or pip install pillow)")
    from PIL import Image

    return Image


class ImageReadError(DataError):
    """An image file is missing or cannot be decoded (the message names it)."""


def to_rgb(image: Any) -> Any:
    """A Pillow image as RGB: grayscale and palette images are expanded, an alpha channel is
    composited on white (transparent pixels would otherwise turn black or keep garbage)."""
    Image = require_pillow("reading images")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(source: str | os.PathLike | bytes, where: str) -> Any:
    """A Pillow image decoded from a file path or the bytes of an image file, its size checked
    against ``max_image_pixels`` from the header before any pixel is decoded (Pillow opens
    lazily; a 164 KB PNG can hold 13000x13000 pixels). Raises :class:`ImageReadError` when it
    cannot be decoded and ``rnnzoo.limits.LimitError`` when it is too large."""
    import io

    Image = require_pillow("reading images")
    opener = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else Path(source)
    try:
        with image_bomb_guard(Image, where), Image.open(opener) as opened:
            check_image_pixels(*opened.size, where)
            opened.load()
            return opened.copy()
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        if isinstance(exc, LimitError):
            raise
        raise ImageReadError(f"{where}: cannot decode the image ({exc}); it is corrupt, "
                             "truncated or not an image file") from None


def preprocess_image(image: Any, size: int) -> np.ndarray:
    """``[size, size, 3]`` uint8 pixels of an image (a path, a Pillow image, or an array
    ``[H, W]``/``[H, W, 3|4]``): RGB, resized with Pillow's bilinear filter (aspect ratio not
    kept). The model scales pixels to [-1, 1] itself, so the same array goes into Keras and
    ONNX. Raises :class:`ImageReadError` naming the file when it cannot be read."""
    Image = require_pillow("reading images")
    where = "image"
    if isinstance(image, (str, os.PathLike)):
        where = str(image)
        path = Path(image)
        if not path.is_file():
            raise ImageReadError(f"{path}: no such image file")
        image = to_rgb(decode_image(path, str(path)))
    elif isinstance(image, Image.Image):
        check_image_pixels(*image.size, where)
        image = to_rgb(image)
    else:
        try:
            array = np.asarray(image) if isinstance(image, (list, tuple, np.ndarray)) else None
        except (ValueError, TypeError):  # ragged nested lists
            array = None
        if array is None or array.ndim not in (2, 3) or (
                array.ndim == 3 and array.shape[2] not in (1, 3, 4)) or 0 in array.shape:
            shape = getattr(array, "shape", None)
            raise DataError(f"image: expected a file path, a Pillow image or an array [H, W] / "
                            f"[H, W, 3], found {type(image).__name__}"
                            + (f" of shape {shape}" if shape is not None else ""))
        check_image_pixels(array.shape[1], array.shape[0], where)
        if array.dtype.kind == "f":
            check_finite(array, where, dtype=None, axes=("row", "column", "channel")[
                :array.ndim])
            if array.max() <= 1.0 and array.min() >= 0.0:
                array = array * 255.0  # floats in [0, 1]
            array = np.clip(np.round(array), 0, 255)
        elif array.dtype.kind not in "iub":
            raise DataError(f"image: expected numeric pixels, found dtype {array.dtype}")
        array = np.clip(array, 0, 255).astype(np.uint8)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        mode = {2: "L", 3: "RGB", 4: "RGBA"}[array.shape[2] if array.ndim == 3 else 2]
        image = to_rgb(Image.fromarray(array, mode))
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    out = np.asarray(image, dtype=np.uint8)
    if out.shape != (size, size, 3):
        raise ImageReadError(f"{where}: decoded to shape {out.shape}, expected "
                             f"({size}, {size}, 3)")
    return out


@dataclasses.dataclass
class CaptionedImage:
    """One image: its file name, every reference caption, and (once loaded) its pixels."""

    name: str
    path: Path
    captions: list[str]
    pixels: np.ndarray | None = None


@dataclasses.dataclass
class CaptionData(Splits):
    """Train/dev/test lists of :class:`CaptionedImage`; ``skipped`` names unreadable files."""

    kind = "caption data"

    train: list[CaptionedImage]
    dev: list[CaptionedImage]
    test: list[CaptionedImage]
    description: str
    skipped: list[str] = dataclasses.field(default_factory=list)


# -- Flickr8k -------------------------------------------------------------------------------------

FLICKR_CAPTIONS = "captions.txt"
FLICKR_IMAGES = "Images"
FLICKR_SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "dev": "Flickr_8k.devImages.txt",
                      "test": "Flickr_8k.testImages.txt"}


def read_flickr_captions(path: str | os.PathLike) -> dict[str, list[str]]:
    """``captions.txt`` -> {image file name: [captions in file order]}. The header must have
    the columns ``image`` and ``caption``; a row without a caption is an error naming its
    line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the caption file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lines = text.splitlines()
    if not lines:
        raise DataError(f"{path}: empty caption file; expected a header line 'image,caption'")
    header = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
    missing = [c for c in ("image", "caption") if c not in header]
    if missing:
        raise DataError(f"{path}: line 1: the header has no {' and no '.join(map(repr, missing))}"
                        f" column (found {', '.join(map(repr, header)) or 'nothing'}); expected "
                        "the header 'image,caption' (Flickr8k captions.txt)")
    image_col, caption_col = header.index("image"), header.index("caption")
    out: dict[str, list[str]] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if caption_col == len(header) - 1:
            # Flickr8k's file is not quoted: the caption is the rest of the line (commas
            # included); the other columns come first.
            head = line.split(",", len(header) - 1)
            row = head if len(head) == len(header) else None
            if row is not None and row[-1].startswith('"'):
                row = next(csv.reader([line]))
        else:
            row = next(csv.reader([line]))
        if row is None or len(row) < len(header):
            raise DataError(f"{path}: line {number}: expected {len(header)} columns "
                            f"({','.join(header)}), found {len(row or [line])}: "
                            f"{line[:80]!r}")
        image, caption = row[image_col].strip(), row[caption_col].strip()
        if not image or not caption:
            what = "image name" if not image else "caption"
            raise DataError(f"{path}: line {number}: empty {what}")
        out.setdefault(image, []).append(caption)
    if not out:
        raise DataError(f"{path}: no captions after the header")
    return out


def _read_split_list(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the split list ({exc})") from None


def _seeded_split(names: list[str], seed: int, dev_fraction: float, test_fraction: float
                  ) -> dict[str, list[str]]:
    order = sorted(names)
    random.Random(seed).shuffle(order)
    n_test = int(round(len(order) * test_fraction))
    n_dev = int(round(len(order) * dev_fraction))
    return {"test": order[:n_test], "dev": order[n_test:n_test + n_dev],
            "train": order[n_test + n_dev:]}


def read_flickr(directory: Path, seed: int, dev_fraction: float, test_fraction: float
                ) -> tuple[dict[str, list[CaptionedImage]], str]:
    """The Flickr8k layout: per split, the images whose file exists (or is named: checked
    later) and that have captions."""
    captions = read_flickr_captions(directory / FLICKR_CAPTIONS)
    images_dir = directory / FLICKR_IMAGES
    if not images_dir.is_dir():
        raise DataError(f"{directory}: no {FLICKR_IMAGES}/ folder next to {FLICKR_CAPTIONS} "
                        "(Flickr8k layout: captions.txt, Images/, Flickr_8k.*Images.txt)")
    present = {p.name for p in images_dir.iterdir() if p.is_file()}
    split_files = {s: directory / f for s, f in FLICKR_SPLIT_FILES.items()}
    if all(p.is_file() for p in split_files.values()):
        # The split lists name all of Flickr8k; a subset keeps the images present here. An
        # image listed but absent is not an error (the subset is the point), a captioned file
        # that is present but unreadable is (reported when it is decoded).
        names = {s: [n for n in _read_split_list(p) if n in present and n in captions]
                 for s, p in split_files.items()}
        how = "official Flickr_8k split lists"
    else:
        found = [n for n in captions if n in present]
        missing = [n for n in captions if n not in present]
        if missing and len(found) < len(captions):
            warnings.warn(f"{images_dir}: {len(missing)} captioned image(s) not found, e.g. "
                          f"{', '.join(missing[:3])}; skipped", stacklevel=3)
        names = _seeded_split(found, seed, dev_fraction, test_fraction)
        how = f"seeded split (seed {seed}, no Flickr_8k.*Images.txt)"
    splits = {s: [CaptionedImage(n, images_dir / n, list(captions[n])) for n in names[s]]
              for s in SPLITS}
    return splits, f"{directory.name} (Flickr8k layout, {how})"


# -- COCO -----------------------------------------------------------------------------------------

def _coco_split_name(path: Path) -> str | None:
    name = path.stem.lower()
    for key, split in (("train", "train"), ("val", "dev"), ("dev", "dev"), ("test", "test")):
        if key in name:
            return split
    return None


def _coco_image_dir(json_path: Path, root: Path, file_name: str) -> Path:
    stem = json_path.stem.split("_")[-1]  # captions_train2014 -> train2014
    for folder in (root / stem, root / "images" / stem, root / "images", root,
                   json_path.parent):
        if (folder / file_name).is_file():
            return folder
    return root / "images"


def read_coco_json(path: Path, root: Path) -> list[CaptionedImage]:
    """One COCO captions JSON -> images with all their captions (in annotation order)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the COCO captions file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DataError(f"{path}: expected a COCO captions object with 'images' and "
                        "'annotations' lists")
    files: dict[Any, str] = {}
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or \
                not isinstance(image.get("file_name"), str):
            raise DataError(f"{path}: images[{i}]: expected an object with 'id' and "
                            "'file_name'")
        files[image["id"]] = image["file_name"]
    captions: dict[Any, list[str]] = {}
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or \
                not isinstance(ann.get("caption"), str):
            raise DataError(f"{path}: annotations[{i}]: expected an object with 'image_id' "
                            "and a 'caption' string")
        if ann["image_id"] not in files:
            raise DataError(f"{path}: annotations[{i}]: image_id {ann['image_id']!r} is not "
                            "the id of any entry of 'images'; fix the id or add the image")
        captions.setdefault(ann["image_id"], []).append(ann["caption"].strip())
    out = []
    for image_id, name in files.items():
        if image_id in captions:
            folder = _coco_image_dir(path, root, name)
            out.append(CaptionedImage(name, folder / name, captions[image_id]))
    return out


def read_coco(path: Path, seed: int, dev_fraction: float, test_fraction: float
              ) -> tuple[dict[str, list[CaptionedImage]], str]:
    if path.is_file():
        jsons, root = [path], path.parent
        if root.name == "annotations":
            root = root.parent
    else:
        jsons = sorted((path / "annotations").glob("captions_*.json"))
        root = path
    by_split: dict[str, list[CaptionedImage]] = {}
    for j in jsons:
        split = _coco_split_name(j) if len(jsons) > 1 else None
        by_split.setdefault(split or "all", []).extend(read_coco_json(j, root))
    if "all" in by_split or "train" not in by_split:
        items = [x for v in by_split.values() for x in v]
        index = {x.name: x for x in items}
        names = _seeded_split(list(index), seed, dev_fraction, test_fraction)
        splits = {s: [index[n] for n in names[s]] for s in SPLITS}
        return splits, f"{path.name} (COCO captions, seeded split, seed {seed})"
    splits = {s: by_split.get(s, []) for s in SPLITS}
    return splits, f"{path.name} (COCO captions, splits from the file names)"


# -- entry point ----------------------------------------------------------------------------------

def read_captions(path: str | os.PathLike, seed: int = 0, dev_fraction: float = 0.1,
                  test_fraction: float = 0.1) -> tuple[dict[str, list[CaptionedImage]], str]:
    """Detect the layout of ``path`` and read it: ``({split: images}, description)``."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        return read_coco(path, seed, dev_fraction, test_fraction)
    if path.is_file() and path.name == FLICKR_CAPTIONS:
        path = path.parent
    if path.is_dir():
        if (path / FLICKR_CAPTIONS).is_file():
            return read_flickr(path, seed, dev_fraction, test_fraction)
        if list((path / "annotations").glob("captions_*.json")):
            return read_coco(path, seed, dev_fraction, test_fraction)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    raise DataError(f"{path}: not a captioning dataset; expected a Flickr8k folder "
                    "(captions.txt + Images/), a COCO captions JSON, or a folder with "
                    "annotations/captions_*.json")


def load_pixels(items: Iterable[CaptionedImage], size: int, strict: bool = False
                ) -> tuple[list[CaptionedImage], list[str]]:
    """Decode and resize every image (``preprocess_image``); the unreadable ones are skipped
    with one warning naming them, or raise with ``strict``. Returns (kept, skipped names)."""
    kept, skipped = [], []
    for item in items:
        try:
            pixels = preprocess_image(item.path, size)
        except ImageReadError as exc:
            if strict:
                raise ImageReadError(f"{exc} (strict_images: unreadable images are errors; "
                                     "drop strict_images to skip them)") from None
            skipped.append(f"{item.name} ({str(exc).split(': ', 1)[-1][:80]})")
            continue
        kept.append(dataclasses.replace(item, pixels=pixels))
    return kept, skipped


def warn_skipped(skipped: Sequence[str], where: str) -> None:
    if skipped:
        shown = "; ".join(skipped[:5]) + (f"; and {len(skipped) - 5} more"
                                          if len(skipped) > 5 else "")
        warnings.warn(f"{where}: skipped {len(skipped)} unreadable image(s): {shown}",
                      stacklevel=3)
