"""Video-prediction data: frame-sequence readers, the Moving MNIST generator, metrics. TF-free.

Sequences are kept as uint8 ``[N, T, H, W, C]`` (0-255); models and metrics see them divided by
255. Readers:

* ``.npy`` / ``.npz``: ``[N, T, H, W]`` or ``[N, T, H, W, C]`` uint8 (floats in [0, 1] are
  rounded to uint8), and the original ``mnist_test_seq.npy`` layout ``[T, N, H, W]`` (detected
  when the first axis has the model's frame count and the second does not; ``layout`` forces
  it); the description says which layout was read.
* a folder of PNG frames (one sequence), or a folder of such folders (one sequence each).
* a folder holding the MNIST training digits (``train-images-idx3-ubyte.gz``, or its parent):
  Moving MNIST generated on the fly with Srivastava et al.'s protocol (2 digits, 64x64, 20
  frames, step 0.1, bounce, ``np.maximum``), training sequences from digits 0..49,999 and a
  fixed, seeded validation set from the held-out digits 50,000..59,999.

Metrics (as the Moving MNIST tables compute them): MSE per frame = sum over the pixels of the
squared error with pixels in [0, 1], averaged over predicted frames and sequences; MAE likewise;
SSIM per frame (Gaussian window 11, sigma 1.5, as in skimage / the PredRNN code); per-step
curves of each.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo import limits
from rnnzoo.config import rule
from rnnzoo.errors import DataError

MNIST_IMAGES = "train-images-idx3-ubyte.gz"
#: The MNIST training digits used for training sequences; the rest are the validation digits.
MNIST_TRAIN_DIGITS = 50_000
NPZ_KEYS = ("frames", "sequences", "videos", "clips", "x", "arr_0")
IMAGE_SUFFIXES = (".png",)


@dataclasses.dataclass
class DataConfig:
    image_size: int = rule(64, min=8)  # height = width of a frame
    channels: int = rule(1, min=1, max=4)
    input_frames: int = rule(10, min=1)  # frames the model reads
    output_frames: int = rule(10, min=1)  # frames it predicts after them
    # Moving MNIST (generated): digits per sequence, step length per frame (of the canvas).
    num_digits: int = rule(2, min=1, max=4)
    step_length: float = rule(0.1, gt=0.0, max=1.0)
    # Sequences generated per training epoch (a new random stream every epoch).
    train_sequences: int = rule(2048, min=1)
    # The fixed validation set (held-out digits, seeded): its size and seed.
    val_sequences: int = rule(2000, min=1)
    val_seed: int = rule(7, min=0)
    # Validation sequences scored after each epoch (the first ones of the validation set).
    dev_sequences: int = rule(256, min=1)
    # Files of sequences: the part kept for validation (the last sequences).
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    # Axis order of a 4-D array file: "auto" detects mnist_test_seq.npy's [T, N, H, W].
    layout: Literal["auto", "NTHW", "TNHW"] = "auto"

    @property
    def frames(self) -> int:
        return self.input_frames + self.output_frames


# -- Moving MNIST ----------------------------------------------------------------------------------
def read_mnist_images(path: str | os.PathLike) -> np.ndarray:
    """``[N, 28, 28]`` uint8 from an IDX image file (gzip or raw)."""
    path = Path(path)
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the MNIST images ({exc})") from None
    if len(raw) < 16 or int.from_bytes(raw[:4], "big") != 2051:
        raise DataError(f"{path}: not an IDX image file (expected magic 2051 in the first 4 "
                        "bytes, as in train-images-idx3-ubyte)")
    n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + n * rows * cols:
        raise DataError(f"{path}: expected {n}x{rows}x{cols} pixels after the header, found "
                        f"{len(raw) - 16} bytes")
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols)


def bouncing_positions(rng: np.random.Generator, n: int, num_digits: int, frames: int,
                       step_length: float) -> np.ndarray:
    """``[n, num_digits, frames, 2]`` (y, x) in [0, 1]: start uniform, direction uniform in
    [0, 2 pi), step first then bounce off the walls, record (frame 0 is one step in)."""
    y = rng.random((n, num_digits))
    x = rng.random((n, num_digits))
    theta = rng.random((n, num_digits)) * 2 * np.pi
    vy, vx = np.sin(theta), np.cos(theta)
    out = np.empty((n, num_digits, frames, 2))
    for t in range(frames):
        y = y + vy * step_length
        x = x + vx * step_length
        for pos, vel in ((x, vx), (y, vy)):
            low, high = pos <= 0, pos >= 1
            pos[low], pos[high] = 0.0, 1.0
            vel[low | high] *= -1
        out[:, :, t, 0], out[:, :, t, 1] = y, x
    return out


def render(digits: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """``[n, frames, size, size]`` uint8: digit ``digits[i, d]`` pasted at ``int(canvas * y)``,
    ``int(canvas * x)`` of each frame, digits combined with ``np.maximum``."""
    n, num_digits, frames, _ = positions.shape
    h, w = digits.shape[-2:]
    out = np.zeros((n, frames, size, size), np.uint8)
    corner = (positions * np.array([size - h, size - w])).astype(np.int64)  # truncation
    for i in range(n):
        for d in range(num_digits):
            img = digits[i, d]
            for t in range(frames):
                top, left = corner[i, d, t]
                view = out[i, t, top:top + h, left:left + w]
                np.maximum(view, img, out=view)
    return out


class MovingMnist:
    """Moving MNIST sequences drawn from a pool of digits: each draw takes ``num_digits`` digits
    from a shuffled pool without replacement (reshuffled when exhausted)."""

    def __init__(self, digits: np.ndarray, config: DataConfig, seed: int) -> None:
        if digits.ndim != 3 or digits.shape[1] > config.image_size:
            raise DataError(f"digits: expected [N, h, w] with h <= image_size "
                            f"({config.image_size}), found {list(digits.shape)}")
        self.digits = digits
        self.config = config
        self.rng = np.random.default_rng(seed)
        self._order = np.empty(0, np.int64)

    def _take(self, count: int) -> np.ndarray:
        picked = []
        while count:
            if not len(self._order):
                self._order = self.rng.permutation(len(self.digits))
            got = self._order[:count]
            self._order = self._order[count:]
            picked.append(got)
            count -= len(got)
        return np.concatenate(picked)

    def sample(self, n: int) -> np.ndarray:
        """``[n, frames, size, size, 1]`` uint8, drawn one sequence after another (digits,
        then motion), so the first ``k`` of a draw of ``n`` are a draw of ``k``: a validation
        subset is the same whatever the size of the set it was cut from."""
        c = self.config
        out = np.empty((n, c.frames, c.image_size, c.image_size, 1), np.uint8)
        for i in range(n):
            ids = self._take(c.num_digits)[None]
            pos = bouncing_positions(self.rng, 1, c.num_digits, c.frames, c.step_length)
            out[i, ..., 0] = render(self.digits[ids], pos, c.image_size)[0]
        return out


def mnist_images_path(path: Path) -> Path | None:
    """The IDX image file of an MNIST folder (or of its parent's ``mnist_train/``), if any."""
    for candidate in (path / MNIST_IMAGES, path / "mnist_train" / MNIST_IMAGES,
                      path / MNIST_IMAGES[:-3]):
        if candidate.is_file():
            return candidate
    return None


# -- the data object ----------------------------------------------------------------------------
@dataclasses.dataclass
class VideoData:
    """Sequences ``[N, T, H, W, C]`` uint8 per split, or a generator for the training split.

    ``train``/``dev`` hold fixed sequences; ``generator`` (Moving MNIST) makes training
    sequences on the fly (``train_sequences`` per epoch)."""

    description: str
    train: np.ndarray
    dev: np.ndarray
    generator: MovingMnist | None = None
    train_per_epoch: int = 0
    layout: str = "NTHWC"

    @property
    def num_train(self) -> int:
        return self.train_per_epoch if self.generator is not None else len(self.train)

    @property
    def num_dev(self) -> int:
        return len(self.dev)

    def split(self, name: str) -> np.ndarray:
        """The sequences of a split: ``train``, ``dev`` or ``all`` (both; for a generated set,
        the validation set)."""
        if name == "train":
            if self.generator is not None:
                raise DataError(f"{self.description}: the training sequences are generated "
                                "on the fly; evaluate on the dev split")
            return self.train
        if name in ("dev", "val", "validation", "test"):
            return self.dev
        if name == "all":
            if self.generator is not None or not len(self.train):
                return self.dev
            return np.concatenate([self.train, self.dev]) if len(self.dev) else self.train
        raise DataError(f"split: expected train, dev or all, found {name!r}")

    def train_batches(self, batch_size: int, seed: int, epoch: int) -> Iterator[np.ndarray]:
        """The shuffled (or freshly generated) training batches of one epoch."""
        if self.generator is not None:
            gen = MovingMnist(self.generator.digits, self.generator.config, seed=[seed, epoch])
            left = self.train_per_epoch
            while left > 0:
                yield gen.sample(min(batch_size, left))
                left -= batch_size
            return
        order = np.random.default_rng([seed, epoch]).permutation(len(self.train))
        for i in range(0, len(order), batch_size):
            yield self.train[np.sort(order[i:i + batch_size])]


def moving_mnist_data(images: Path, config: DataConfig) -> VideoData:
    digits = read_mnist_images(images)
    if len(digits) <= MNIST_TRAIN_DIGITS:
        raise DataError(f"{images}: {len(digits)} digits; expected the 60,000 MNIST training "
                        f"digits (0..{MNIST_TRAIN_DIGITS - 1} train, the rest validation)")
    val = MovingMnist(digits[MNIST_TRAIN_DIGITS:], config, config.val_seed)
    dev = val.sample(config.val_sequences)
    gen = MovingMnist(digits[:MNIST_TRAIN_DIGITS], config, seed=0)
    desc = (f"Moving MNIST generated from {images} ({config.num_digits} digits, "
            f"{config.image_size}x{config.image_size}, {config.frames} frames; training from "
            f"digits 0..{MNIST_TRAIN_DIGITS - 1}, {config.val_sequences} validation sequences "
            f"from digits {MNIST_TRAIN_DIGITS}..{len(digits) - 1}, seed {config.val_seed})")
    return VideoData(desc, np.zeros((0,) + dev.shape[1:], np.uint8), dev, gen,
                     config.train_sequences, "generated")


# -- readers ------------------------------------------------------------------------------------
def as_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """uint8 frames from uint8 or from floats in [0, 1] (rounded)."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        if array.size and (np.nanmin(array) < 0 or np.nanmax(array) > 1 or
                           np.isnan(array).any()):
            raise DataError(f"{where}: float frames must lie in [0, 1]; expected uint8 0-255 "
                            "or floats in [0, 1]")
        return np.round(array * 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise DataError(f"{where}: integer frames must lie in 0..255")
        return array.astype(np.uint8)
    raise DataError(f"{where}: expected uint8 frames, found dtype {array.dtype}")


def to_sequences(array: Any, where: str, config: DataConfig,
                 min_frames: int | None = None) -> tuple[np.ndarray, str]:
    """``([N, T, H, W, C] uint8, layout read)`` from a 4-D or 5-D array (a 3-D array is one
    sequence ``[T, H, W]``); checks the frame size and channels against ``config``."""
    a = np.asarray(array)
    expected = (f"expected [N, T, H, W] or [N, T, H, W, C] (or mnist_test_seq's [T, N, H, W]) "
                f"with H = W = {config.image_size} and C = {config.channels}")
    if a.ndim == 3:
        a, layout = a[None], "THW (one sequence)"
    elif a.ndim == 4:
        layout = config.layout
        if layout == "auto":
            layout = ("TNHW" if a.shape[0] == config.frames and a.shape[1] != config.frames
                      else "NTHW")
        if layout == "TNHW":
            a = a.transpose(1, 0, 2, 3)
    elif a.ndim == 5:
        layout = "NTHWC"
    else:
        raise DataError(f"{where}: found shape {list(a.shape)}; {expected}")
    if a.ndim == 4:
        a = a[..., None]
    n, t, h, w, c = a.shape
    if (h, w) != (config.image_size, config.image_size) or c != config.channels:
        raise DataError(f"{where}: found frames of {h}x{w}x{c} (shape {list(a.shape)} read as "
                        f"{layout}); {expected}")
    need = config.frames if min_frames is None else min_frames
    if t < need:
        raise DataError(f"{where}: sequences of {t} frames; expected at least {need} "
                        f"({config.input_frames} in + {config.output_frames} out)")
    limits.check("max_video_frames", n * t, f"{where}: frames")
    return as_uint8(a, where), layout


def read_array_file(path: Path, config: DataConfig,
                    min_frames: int | None = None) -> tuple[np.ndarray, str]:
    """Sequences from a ``.npy`` or ``.npz`` file (a named key, or the only array)."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as {path.suffix} ({exc})") from None
    if isinstance(loaded, np.ndarray):
        return to_sequences(loaded, str(path), config, min_frames)
    with loaded:
        keys = list(loaded.files)
        key = next((k for k in NPZ_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise DataError(f"{path}: keys {keys}; expected one array, or one named "
                            f"{', '.join(NPZ_KEYS[:4])}")
        return to_sequences(loaded[key], f"{path}[{key!r}]", config, min_frames)


def _sorted_frames(folder: Path) -> list[Path]:
    def key(p: Path) -> list:
        return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]

    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=key)


def read_png_frames(files: list[Path], config: DataConfig) -> np.ndarray:
    """``[T, H, W, C]`` uint8 from image files (grey when ``channels`` is 1)."""
    from PIL import Image

    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(config.channels)
    if mode is None:
        raise DataError(f"PNG frames: channels {config.channels} has no image mode "
                        "(expected 1, 3 or 4)")
    frames = []
    for f in files:
        try:
            with Image.open(f) as img:
                limits.check("max_image_pixels", img.width * img.height, f"{f}: pixels")
                arr = np.asarray(img.convert(mode))
        except OSError as exc:
            raise DataError(f"{f}: cannot read as an image ({exc})") from None
        frames.append(arr.reshape(arr.shape[0], arr.shape[1], -1))
    shapes = {fr.shape for fr in frames}
    if len(shapes) > 1:
        raise DataError(f"{files[0].parent}: frames of different sizes {sorted(shapes)}")
    return np.stack(frames)


def read_png_folder(folder: Path, config: DataConfig,
                    min_frames: int | None = None) -> tuple[np.ndarray, str]:
    """A folder of PNG frames (one sequence) or of sequence folders."""
    frames = _sorted_frames(folder)
    if frames:
        seqs, layout = [read_png_frames(frames, config)], "PNG frames (one sequence)"
    else:
        subs = sorted(p for p in folder.iterdir() if p.is_dir())
        seqs = [read_png_frames(_sorted_frames(s), config) for s in subs if _sorted_frames(s)]
        layout = "folders of PNG frames"
        if not seqs:
            raise DataError(f"{folder}: no PNG frames; expected PNG files (one sequence) or "
                            f"folders of them (one sequence each), or the MNIST digits "
                            f"({MNIST_IMAGES})")
    lengths = {len(s) for s in seqs}
    if len(lengths) > 1:
        t = min(lengths)
        seqs = [s[:t] for s in seqs]
    return to_sequences(np.stack(seqs), str(folder), config, min_frames)[0], layout


def read_sequences(path: str | os.PathLike, config: DataConfig,
                   min_frames: int | None = None) -> tuple[np.ndarray, str]:
    """Sequences ``[N, T, H, W, C]`` uint8 from any supported file or folder (not the MNIST
    generator), and the layout read."""
    p = Path(path)
    if p.is_dir():
        return read_png_folder(p, config, min_frames)
    if not p.is_file():
        raise DataError(f"{p}: no such file or folder")
    if p.suffix.lower() in (".npy", ".npz"):
        return read_array_file(p, config, min_frames)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return to_sequences(read_png_frames([p], config)[None], str(p), config, min_frames)
    raise DataError(f"{p}: unsupported file type {p.suffix!r}; expected .npy, .npz, a folder "
                    "of PNG frames, or the MNIST digits folder")


def load_video_data(path: str | os.PathLike, config: DataConfig) -> VideoData:
    """A dataset: generated Moving MNIST from an MNIST folder, else sequences from a file or
    folder (the last ``dev_fraction`` of them for validation)."""
    p = Path(path)
    if p.is_dir():
        images = mnist_images_path(p)
        if images is not None:
            return moving_mnist_data(images, config)
    seqs, layout = read_sequences(p, config)
    n_dev = int(round(len(seqs) * config.dev_fraction))
    if config.dev_fraction and len(seqs) > 1:
        n_dev = max(1, n_dev)
    desc = f"{p} ({len(seqs)} sequences of {seqs.shape[1]} frames, read as {layout})"
    return VideoData(desc, seqs[:len(seqs) - n_dev], seqs[len(seqs) - n_dev:], layout=layout)


# -- metrics ------------------------------------------------------------------------------------
def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _filter(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering over the two axes before the last of ``[..., H, W, C]``."""
    k = len(g)
    h, w = img.shape[-3], img.shape[-2]
    out = sum(g[i] * img[..., i:h - k + 1 + i, :, :] for i in range(k))
    return sum(g[i] * out[..., :, i:w - k + 1 + i, :] for i in range(k))


def ssim(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """SSIM per frame of ``[..., H, W, C]`` arrays in [0, 1] (Gaussian window 11, sigma 1.5,
    K1 0.01, K2 0.03, data range 1, averaged over the valid window positions and channels:
    skimage's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``)."""
    g = _gaussian_window()
    x, y = pred.astype(np.float64), truth.astype(np.float64)
    mx, my = _filter(x, g), _filter(y, g)
    sxx = _filter(x * x, g) - mx * mx
    syy = _filter(y * y, g) - my * my
    sxy = _filter(x * y, g) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return s.mean(axis=(-3, -2, -1))


def frame_metrics(pred: np.ndarray, truth: np.ndarray, with_ssim: bool = True) -> dict:
    """Sums per sequence and step of ``[N, T, H, W, C]`` predictions vs truth in [0, 1]:
    ``{"se": [N, T], "ae": [N, T], "ssim": [N, T]}`` (squared / absolute error summed over
    the pixels of a frame)."""
    d = pred.astype(np.float64) - truth.astype(np.float64)
    out = {"se": (d * d).sum(axis=(2, 3, 4)), "ae": np.abs(d).sum(axis=(2, 3, 4))}
    if with_ssim:
        out["ssim"] = ssim(pred, truth)
    return out


def summarize(per: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """``mse_per_frame``, ``mae_per_frame``, ``ssim`` and their per-step curves from the
    ``frame_metrics`` of every batch."""
    se = np.concatenate(per["se"])
    ae = np.concatenate(per["ae"])
    report: dict[str, Any] = {
        "sequences": int(len(se)),
        "mse_per_frame": float(se.mean()), "mae_per_frame": float(ae.mean()),
    }
    if per.get("ssim"):
        s = np.concatenate(per["ssim"])
        report["ssim"] = float(s.mean())
        report["ssim_per_step"] = [round(float(v), 4) for v in s.mean(axis=0)]
    report["mse_per_step"] = [round(float(v), 3) for v in se.mean(axis=0)]
    report["mae_per_step"] = [round(float(v), 3) for v in ae.mean(axis=0)]
    return report


def baselines(sequences: np.ndarray, input_frames: int, output_frames: int,
              batch: int = 256) -> dict[str, dict]:
    """The trivial predictors on the same frames: all-black and copy-last-input-frame."""
    per: dict[str, dict[str, list]] = {"all_black": {"se": [], "ae": [], "ssim": []},
                                       "copy_last": {"se": [], "ae": [], "ssim": []}}
    for i in range(0, len(sequences), batch):
        seq = sequences[i:i + batch].astype(np.float32) / 255.0
        truth = seq[:, input_frames:input_frames + output_frames]
        last = np.repeat(seq[:, input_frames - 1:input_frames], output_frames, axis=1)
        for name, pred in (("all_black", np.zeros_like(truth)), ("copy_last", last)):
            m = frame_metrics(pred, truth)
            for k in m:
                per[name][k].append(m[k])
    return {name: summarize(v) for name, v in per.items()}
