"""Action recognition data: 3-D skeleton sequences, their readers, the per-sequence
normalisation and features, training augmentation and the subject split. TF-free.

Layouts (``load_action_data``):

* a folder of MSR Action3D skeleton files ``aAA_sSS_eEE_skeleton3D.txt`` (action AA, subject
  SS, repetition EE): plain text, 4 numbers per line (x y z confidence; 3 are accepted), 20
  lines per frame, one frame after another. All-zero frames (frames where the tracker lost the
  body, as in 5 files of the dataset) are dropped; a file with none left is skipped and named
  in the data's description. Whole subjects are held out as the dev split (``dev_subjects``).
* one ``.npz`` file with ``x`` ``[N, T, 20, 3]`` (or ``[N, T, 20, 4]``; post-padded), optional
  ``lengths`` ``[N]``, ``labels`` ``[N]`` (action numbers 1-20 or names) and optional
  ``subjects`` ``[N]``.

A user's input (``as_sequences``): a skeleton ``.txt`` file, a ``.npy`` of one ``[T, 20, 3]``
sequence or a batch ``[N, T, 20, 3]``, a ``.npz`` (every sequence in it), an array ``[T, 20,
3]`` / ``[T, 20, 4]`` / ``[T, 60]``, or a list of those. Every reader error is a ``DataError``
naming the file (and line) and what to fix.

Features (``skeleton_features``): per frame, the 19 other joints relative to the hip centre,
and the hip centre's path since the first frame, divided by the sequence's torso length
(median hip-centre-to-shoulder-centre distance), so a translated or uniformly scaled body
gives the same features; with ``arms``, the arm joints and the head relative to the shoulder
centre as well (a part-based reading: the trunk's bend and lean do not move them); with
``velocities``, the frame-to-frame differences of all of these too. A sequence
longer than ``max_frames`` is read at ``max_frames`` evenly spaced frames.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo import limits
from rnnzoo.config import rule
from rnnzoo.errors import ConfigError, DataError, short_repr

NUM_JOINTS = 20
#: Joint order of MSR Action3D (0-based): 0 left shoulder, 1 right shoulder, 2 shoulder centre
#: (neck), 3 spine, 4 left hip, 5 right hip, 6 hip centre, 7/8 elbows, 9/10 wrists, 11/12
#: hands, 13/14 knees, 15/16 ankles, 17/18 feet, 19 head (y up, z away from the camera, metres).
HIP_CENTRE = 6
SHOULDER_CENTRE = 2
#: The joints ``arms`` reads from the shoulder centre: shoulders, elbows, wrists, hands, head.
ARM_JOINTS = (0, 1, 7, 8, 9, 10, 11, 12, 19)
#: The 20 actions of MSR Action3D (Li, Zhang & Liu 2010), a01 ... a20.
ACTIONS = ("high_arm_wave", "horizontal_arm_wave", "hammer", "hand_catch", "forward_punch",
           "high_throw", "draw_x", "draw_tick", "draw_circle", "hand_clap", "two_hand_wave",
           "side_boxing", "bend", "forward_kick", "side_kick", "jogging", "tennis_swing",
           "tennis_serve", "golf_swing", "pick_up_and_throw")
FILE_RE = re.compile(r"^a(\d{1,2})_s(\d{1,2})_e(\d{1,2})_skeleton3D\.txt$", re.IGNORECASE)
ASSET_FILE = "skeleton.json"
#: Velocities are frame-to-frame differences (about a twentieth of the positions at 15 fps):
#: scaled up to the positions' range so one learning rate suits both.
VELOCITY_SCALE = 10.0


@dataclasses.dataclass
class DataConfig:
    # Subjects held out as the dev split of a skeleton folder (the MSR Action3D training half
    # holds subjects 1, 3, 5, 7, 9; the official test subjects 2, 4, ... are kept elsewhere).
    dev_subjects: list[int] = dataclasses.field(default_factory=lambda: [9],
                                                metadata={"min": 1})
    # Frames the model reads: a longer sequence is read at this many evenly spaced frames.
    max_frames: int = rule(100, min=2)
    velocities: bool = True  # frame-to-frame differences beside the positions
    # The arm joints and the head relative to the shoulder centre as well (27 more positions,
    # and their velocities): arm actions read without the trunk's bend and lean.
    arms: bool = False
    # A moving average over this many frames before the features (1: off): the tracker's
    # joints jitter from frame to frame, which the velocities would amplify.
    smooth: int = rule(1, min=1, max=15)
    # Turn each sequence about the vertical axis so the body faces the camera (its shoulders
    # and hips, averaged over the frames, parallel to the x axis).
    align: bool = False
    # Training augmentation (0: off): a random rotation about the vertical axis of up to this
    # many degrees, and a random per-axis stretch of up to this fraction.
    rotate_degrees: float = rule(0.0, min=0.0, max=180.0)
    stretch: float = rule(0.0, min=0.0, max=0.5)
    # Training augmentation in time (0: off): the sequence played up to this fraction faster or
    # slower, from a random stretch of it at least (1 - time_warp) of its length; and Gaussian
    # noise of this deviation (metres) on every joint of every frame, as a tracker jitters.
    time_warp: float = rule(0.0, min=0.0, max=0.5)
    jitter: float = rule(0.0, min=0.0, max=0.1)
    # Training augmentation of the body's build (0: off): each joint moved by Gaussian noise of
    # this deviation (metres), the same in every frame, so the model cannot tell the few
    # training subjects apart by their posture and must read the movement.
    build: float = rule(0.0, min=0.0, max=0.1)


def num_features(velocities: bool, arms: bool = False) -> int:
    """Features per frame: 19 joints and the hip centre's path (x, y, z), with ``arms`` 9
    joints from the shoulder centre, doubled with velocities."""
    return 3 * (NUM_JOINTS + (len(ARM_JOINTS) if arms else 0)) * (2 if velocities else 1)


# -- features ------------------------------------------------------------------------------------


def resample(joints: np.ndarray, max_frames: int) -> np.ndarray:
    """At most ``max_frames`` evenly spaced frames (first and last kept)."""
    if len(joints) <= max_frames:
        return joints
    idx = np.round(np.linspace(0, len(joints) - 1, max_frames)).astype(np.int64)
    return joints[idx]


def smooth_frames(joints: np.ndarray, window: int) -> np.ndarray:
    """A centred moving average over ``window`` frames (the ends repeat their frame)."""
    if window <= 1 or len(joints) < 2:
        return joints
    half = window // 2
    padded = np.concatenate([joints[:1].repeat(half, 0), joints, joints[-1:].repeat(half, 0)])
    total = np.cumsum(np.concatenate([np.zeros_like(joints[:1]), padded]), axis=0)
    width = 2 * half + 1
    return (total[width:] - total[:-width]) / width


def facing_camera(joints: np.ndarray) -> np.ndarray:
    """The sequence turned about the vertical axis so that its right-to-left shoulder and hip
    directions, averaged over the frames, point along -x (a body facing the camera)."""
    v = (joints[:, 0] - joints[:, 1] + joints[:, 4] - joints[:, 5]).mean(axis=0)
    if np.hypot(v[0], v[2]) < 1e-6:
        return joints
    a = np.arctan2(-v[2], -v[0])
    c, s = np.cos(a), np.sin(a)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return joints @ rot.T


def skeleton_features(joints: np.ndarray, max_frames: int, velocities: bool, smooth: int = 1,
                      align: bool = False, rng: np.random.Generator | None = None,
                      rotate_degrees: float = 0.0, stretch: float = 0.0, time_warp: float = 0.0,
                      jitter: float = 0.0, build: float = 0.0, arms: bool = False) -> np.ndarray:
    """Float32 features ``[T', F]`` of one sequence ``[T, 20, 3]`` (see the module docstring):
    unchanged by translating every joint, or by scaling the whole body (and with ``align``,
    by turning it about the vertical axis). With ``rng``, a training copy: turned and
    stretched, played faster or slower and jittered at random after the alignment
    (``augment``)."""
    joints = smooth_frames(resample(np.asarray(joints, np.float64), max_frames), smooth)
    if align:
        joints = facing_camera(joints)
    if rng is not None:
        joints = resample(augment(joints, rng, rotate_degrees, stretch, time_warp, jitter,
                                  build), max_frames)
    hip = joints[:, HIP_CENTRE]
    centred = joints - hip[:, None, :]
    torso = np.linalg.norm(centred[:, SHOULDER_CENTRE], axis=-1)
    scale = float(np.median(torso)) if len(torso) else 1.0
    if not np.isfinite(scale) or scale < 1e-6:  # a degenerate body: keep metres
        scale = 1.0
    pos = np.delete(centred, HIP_CENTRE, axis=1).reshape(len(joints), -1)
    path = hip - hip[:1]
    parts = [pos, path]
    if arms:
        arm = joints[:, ARM_JOINTS] - joints[:, SHOULDER_CENTRE][:, None, :]
        parts.append(arm.reshape(len(joints), -1))
    feats = np.concatenate(parts, axis=1) / scale
    if velocities:
        vel = np.diff(feats, axis=0, prepend=feats[:1]) * VELOCITY_SCALE
        feats = np.concatenate([feats, vel], axis=1)
    return feats.astype(np.float32)


def warp_time(joints: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """A random part of the sequence (at least ``1 - amount`` of it) read at a random speed
    (up to ``amount`` faster or slower), frames linearly interpolated: the same action
    performed at another pace."""
    n = len(joints)
    if amount <= 0 or n < 3:
        return joints
    keep = rng.uniform(1.0 - amount, 1.0) * (n - 1)
    start = rng.uniform(0.0, (n - 1) - keep)
    frames = max(2, int(round(n * keep / (n - 1) * rng.uniform(1.0 - amount, 1.0 + amount))))
    t = np.linspace(start, start + keep, frames)
    lo = np.minimum(np.floor(t).astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    w = (t - lo)[:, None, None]
    return joints[lo] * (1.0 - w) + joints[hi] * w


def augment(joints: np.ndarray, rng: np.random.Generator, rotate_degrees: float,
            stretch: float, time_warp: float = 0.0, jitter: float = 0.0,
            build: float = 0.0) -> np.ndarray:
    """A randomly turned (about the vertical axis), stretched (per axis), re-paced,
    re-built (each joint moved, the same in every frame) and jittered copy of a sequence, for
    training: a subject seen from another angle, of another build, moving at another pace,
    tracked with other noise."""
    out = warp_time(np.asarray(joints, np.float64), rng, time_warp)
    if rotate_degrees:
        a = np.deg2rad(rng.uniform(-rotate_degrees, rotate_degrees))
        c, s = np.cos(a), np.sin(a)
        rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        hip = out[:1, HIP_CENTRE]  # a rigid turn about where the body starts
        out = (out - hip) @ rot.T + hip
    if stretch:
        out = out * rng.uniform(1.0 - stretch, 1.0 + stretch, size=3)
    if build:
        out = out + rng.normal(0.0, build, (1, *out.shape[1:]))
    if jitter:
        out = out + rng.normal(0.0, jitter, out.shape)
    return out


# -- readers -------------------------------------------------------------------------------------


def _frames_limit(frames: int, where: str) -> None:
    limits.check("max_skeleton_frames", frames, f"{where}: {frames} frames")


def drop_empty_frames(joints: np.ndarray) -> np.ndarray:
    """The frames where the tracker saw a body (not every coordinate zero)."""
    keep = np.any(joints != 0, axis=(1, 2))
    return joints if keep.all() else joints[keep]


def read_skeleton_text(path: str | os.PathLike) -> np.ndarray:
    """One MSR Action3D skeleton file -> ``[T, 20, 3]`` float32 (confidences dropped; all-zero
    frames kept: ``drop_empty_frames`` removes them). A malformed line raises ``DataError``
    naming the file and line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path}: a folder; give a skeleton file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not text (byte {exc.start}); a skeleton file "
                        "holds 4 numbers per line (x y z confidence)") from None
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    if not lines:
        raise DataError(f"{path}: empty file (no skeleton frames)")
    _frames_limit(len(lines) // NUM_JOINTS, str(path))
    width = len(lines[0][1].split())
    try:
        values = np.array(" ".join(ln for _, ln in lines).split(), dtype=np.float64)
    except ValueError:
        values = None
    if width not in (3, 4) or values is None or values.size != width * len(lines) \
            or not np.isfinite(values).all():
        for n, ln in lines:  # find the first bad line, to name it
            parts = ln.split()
            try:
                nums = [float(p) for p in parts]
            except ValueError:
                nums = None
            if nums is None or len(parts) != width or width not in (3, 4) \
                    or not all(np.isfinite(nums)):
                raise DataError(f"{path}, line {n}: expected {width if width in (3, 4) else 4} "
                                f"numbers (x y z confidence), found {short_repr(ln.strip(), 60)}")
    if len(lines) % NUM_JOINTS:
        raise DataError(f"{path}, line {lines[-1][0]}: {len(lines)} joint lines, not a multiple "
                        f"of {NUM_JOINTS} (one line per joint, {NUM_JOINTS} per frame); the "
                        "last frame is cut short")
    return values.reshape(-1, NUM_JOINTS, width)[..., :3].astype(np.float32)


def check_sequence(x: Any, where: str) -> np.ndarray:
    """One sequence as ``[T, 20, 3]`` float32 from ``[T, 20, 3]``, ``[T, 20, 4]`` (confidence
    dropped) or ``[T, 60]``; all-zero frames dropped."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected a skeleton sequence [frames, 20, 3] of numbers, "
                        f"found {short_repr(x, 60)}") from None
    if arr.ndim == 2 and arr.shape[1] == 3 * NUM_JOINTS:
        arr = arr.reshape(len(arr), NUM_JOINTS, 3)
    if arr.ndim != 3 or arr.shape[1] != NUM_JOINTS or arr.shape[2] not in (3, 4):
        raise DataError(f"{where}: expected a skeleton sequence [frames, {NUM_JOINTS}, 3] (or "
                        f"[frames, {NUM_JOINTS}, 4], [frames, {3 * NUM_JOINTS}]), found shape "
                        f"{arr.shape}")
    _frames_limit(len(arr), where)
    if not np.isfinite(arr).all():
        raise DataError(f"{where}: holds NaN or infinite coordinates")
    arr = drop_empty_frames(arr[..., :3])
    if not len(arr):
        raise DataError(f"{where}: no frame with a skeleton (every coordinate is zero)")
    return arr.astype(np.float32)


def _read_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({short_repr(exc)})") from None


def _sequences_of_batch(x: np.ndarray, lengths: Any, where: str) -> list[np.ndarray]:
    """The sequences of a padded batch ``[N, T, 20, 3|4]`` (rows cut to ``lengths``)."""
    if x.ndim != 4:
        raise DataError(f"{where}: expected sequences [N, frames, {NUM_JOINTS}, 3], found "
                        f"shape {x.shape}")
    if lengths is None:
        lengths = [len(x[0])] * len(x)
    lengths = np.asarray(lengths)
    if lengths.shape != (len(x),) or not np.issubdtype(lengths.dtype, np.integer) \
            or (lengths < 1).any() or (lengths > x.shape[1]).any():
        raise DataError(f"{where}: lengths must be {len(x)} integers in [1, {x.shape[1]}]")
    return [check_sequence(x[i, :n], f"{where}[{i}]") for i, n in enumerate(lengths.tolist())]


def read_sequences(path: str | os.PathLike) -> list[np.ndarray]:
    """Every sequence of a file: a skeleton ``.txt`` (one), a ``.npy`` (one ``[T, 20, 3]`` or a
    batch ``[N, T, 20, 3]``), a ``.npz`` (``x`` with optional ``lengths``)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable .npy file ({short_repr(exc)})") from None
        if arr.ndim == 4:
            return _sequences_of_batch(arr, None, str(path))
        return [check_sequence(arr, str(path))]
    if path.suffix.lower() == ".npz":
        arrays = _read_npz_arrays(path)
        if "x" not in arrays:
            raise DataError(f"{path}: expected an array 'x' [N, frames, {NUM_JOINTS}, 3] "
                            f"(optionally 'lengths', 'labels'), found {sorted(arrays)}")
        x = arrays["x"]
        if x.ndim == 3:
            return [check_sequence(x, f"{path}: x")]
        return _sequences_of_batch(x, arrays.get("lengths"), f"{path}: x")
    return [check_sequence(read_skeleton_text(path), str(path))]


def _is_one_sequence(x: Any) -> bool:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return (arr.ndim == 3 and arr.shape[1] == NUM_JOINTS) or \
        (arr.ndim == 2 and arr.shape[1] == 3 * NUM_JOINTS)


def as_sequences(x: Any, where: str = "classify") -> list[np.ndarray]:
    """A user's input (see the module docstring) as a list of ``[T, 20, 3]`` sequences."""
    if isinstance(x, (str, os.PathLike)):
        return read_sequences(x)
    if isinstance(x, np.ndarray) and x.ndim == 4:
        return _sequences_of_batch(x, None, where)
    if isinstance(x, np.ndarray) or (isinstance(x, (list, tuple)) and x
                                     and _is_one_sequence(x)):
        return [check_sequence(x, where)]
    if not isinstance(x, (list, tuple)) or not x:
        raise DataError(f"{where}: expected a skeleton file, a sequence [frames, {NUM_JOINTS}, "
                        f"3], or a list of those, found {short_repr(x, 60)}")
    out: list[np.ndarray] = []
    for i, item in enumerate(x):
        if isinstance(item, (str, os.PathLike)):
            out += read_sequences(item)
        else:
            out.append(check_sequence(item, f"{where}[{i}]"))
    return out


# -- datasets ------------------------------------------------------------------------------------


@dataclasses.dataclass
class ActionData:
    """Labelled skeleton sequences split by subject: ``train_*`` and ``dev_*`` lists (joints
    ``[T, 20, 3]``, action index 0-19, file name or row)."""

    train_sequences: list[np.ndarray]
    train_labels: list[int]
    train_names: list[str]
    dev_sequences: list[np.ndarray]
    dev_labels: list[int]
    dev_names: list[str]
    description: str
    label_names: list[str] = dataclasses.field(default_factory=lambda: list(ACTIONS))
    skipped: list[str] = dataclasses.field(default_factory=list)

    kind = "skeleton action data"

    @property
    def num_train(self) -> int:
        return len(self.train_sequences)

    @property
    def num_dev(self) -> int:
        return len(self.dev_sequences)

    def split(self, name: str) -> tuple[list[np.ndarray], list[int]]:
        """``(sequences, labels)`` of ``train``, ``dev`` (the held-out subjects) or ``all``."""
        if name == "train":
            return self.train_sequences, self.train_labels
        if name == "dev":
            return self.dev_sequences, self.dev_labels
        if name == "all":
            return (self.train_sequences + self.dev_sequences,
                    self.train_labels + self.dev_labels)
        raise ConfigError(f"split {name!r}: {self.kind} has the splits train, dev (the held-out "
                          "subjects) and all (every sequence of the data)")


def _label_index(value: Any, where: str) -> int:
    """An action number 1-20 or name -> index 0-19."""
    if isinstance(value, (str, np.str_)):
        text = str(value).strip()
        if text in ACTIONS:
            return ACTIONS.index(text)
        m = re.fullmatch(r"a?(\d{1,2})", text)
        value = int(m.group(1)) if m else text
    if isinstance(value, (int, np.integer)) and 1 <= int(value) <= len(ACTIONS):
        return int(value) - 1
    raise DataError(f"{where}: label {short_repr(value)} is not an action: expected a number "
                    f"1-{len(ACTIONS)} or one of {', '.join(ACTIONS[:3])}, ...")


def _split_rows(rows: list[tuple[np.ndarray, int, int, str]], dev_subjects: Sequence[int],
                description: str, skipped: list[str]) -> ActionData:
    dev = set(int(s) for s in dev_subjects)
    tr = [r for r in rows if r[2] not in dev]
    dv = [r for r in rows if r[2] in dev]
    if dv and tr:
        held = sorted(dev & {r[2] for r in rows})
        description += (f"; dev: subject{'s' if len(held) > 1 else ''} "
                        f"{', '.join(map(str, held))} ({len(dv)} sequences), train: "
                        f"{len(tr)} sequences")
    if skipped:
        description += f"; skipped {len(skipped)}: {', '.join(skipped)}"
    return ActionData([r[0] for r in tr], [r[1] for r in tr], [r[3] for r in tr],
                      [r[0] for r in dv], [r[1] for r in dv], [r[3] for r in dv],
                      description, skipped=skipped)


def load_action_data(path: str | os.PathLike, cfg: DataConfig) -> ActionData:
    """A skeleton folder or ``.npz`` dataset (see the module docstring), with the subjects
    ``cfg.dev_subjects`` held out as the dev split."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise DataError(f"{path}: expected a folder of aAA_sSS_eEE_skeleton3D.txt files or "
                            "an .npz file with x, labels (and lengths, subjects)")
        arrays = _read_npz_arrays(path)
        if "labels" not in arrays:
            raise DataError(f"{path}: no 'labels' array (action numbers 1-20 or names, one "
                            "per sequence)")
        seqs = read_sequences(path)
        labels = arrays["labels"].tolist()
        subjects = arrays.get("subjects", np.zeros(len(seqs), np.int64)).tolist()
        if len(labels) != len(seqs) or len(subjects) != len(seqs):
            raise DataError(f"{path}: {len(seqs)} sequences but {len(labels)} labels and "
                            f"{len(subjects)} subjects")
        rows = [(s, _label_index(y, f"{path}: labels[{i}]"), int(subj), f"row {i}")
                for i, (s, y, subj) in enumerate(zip(seqs, labels, subjects))]
        return _split_rows(rows, cfg.dev_subjects, f"{path} ({len(rows)} sequences)", [])
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".txt")
    if not files:
        raise DataError(f"{path}: no skeleton files (aAA_sSS_eEE_skeleton3D.txt)")
    rows, skipped = [], []
    for f in files:
        m = FILE_RE.match(f.name)
        if m is None:
            raise DataError(f"{f}: the name does not say the action and subject; name skeleton "
                            "files aAA_sSS_eEE_skeleton3D.txt (action AA 01-20, subject SS, "
                            "repetition EE), as MSR Action3D does")
        label = _label_index(int(m.group(1)), str(f))
        joints = drop_empty_frames(read_skeleton_text(f))
        if not len(joints):
            skipped.append(f"{f.stem.replace('_skeleton3D', '')} (every frame zero)")
            continue
        rows.append((joints, label, int(m.group(2)), f.name))
    subjects = sorted({r[2] for r in rows})
    return _split_rows(rows, cfg.dev_subjects,
                       f"{path} ({len(rows)} sequences, subjects "
                       f"{', '.join(map(str, subjects))})", skipped)


# -- preprocessor --------------------------------------------------------------------------------


class SkeletonPreprocessor:
    """Sequences -> standardised, padded features and masks; knows the action names. ``fit``
    sets the features' mean and deviation from training sequences (the normalisation to the
    body is per sequence and needs no fitting)."""

    def __init__(self, label_names: Sequence[str], max_frames: int, velocities: bool,
                 mean: Any = None, std: Any = None, smooth: int = 1,
                 align: bool = False, arms: bool = False) -> None:
        self.label_names = list(label_names)
        self.max_frames = int(max_frames)
        self.velocities = bool(velocities)
        self.smooth = int(smooth)
        self.align = bool(align)
        self.arms = bool(arms)
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.std = None if std is None else np.asarray(std, np.float32)

    @property
    def is_fitted(self) -> bool:
        return self.mean is not None

    @property
    def num_features(self) -> int:
        return num_features(self.velocities, self.arms)

    def raw_features(self, joints: np.ndarray, rng: np.random.Generator | None = None,
                     rotate_degrees: float = 0.0, stretch: float = 0.0, time_warp: float = 0.0,
                     jitter: float = 0.0, build: float = 0.0) -> np.ndarray:
        return skeleton_features(joints, self.max_frames, self.velocities, self.smooth,
                                 self.align, rng, rotate_degrees, stretch, time_warp, jitter,
                                 build, self.arms)

    def fit(self, sequences: Sequence[np.ndarray]) -> None:
        """Mean and deviation of every feature over the frames of ``sequences``."""
        feats = np.concatenate([self.raw_features(s) for s in sequences]).astype(np.float64)
        self.mean = feats.mean(axis=0).astype(np.float32)
        self.std = np.maximum(feats.std(axis=0), 1e-3).astype(np.float32)

    def features(self, joints: np.ndarray, rng: np.random.Generator | None = None,
                 rotate_degrees: float = 0.0, stretch: float = 0.0, time_warp: float = 0.0,
                 jitter: float = 0.0, build: float = 0.0) -> np.ndarray:
        """Standardised features ``[T', F]`` of one checked sequence ``[T, 20, 3]`` (with
        ``rng``: of a random training copy, see ``augment``)."""
        feats = self.raw_features(joints, rng, rotate_degrees, stretch, time_warp, jitter,
                                  build)
        if self.mean is None or self.std is None:
            return feats
        return ((feats - self.mean) / self.std).astype(np.float32)

    def batch(self, feats: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Post-padded ``features [B, T, F]`` and ``mask [B, T]`` (float32, 1 on frames)."""
        width = max(len(f) for f in feats)
        x = np.zeros((len(feats), width, self.num_features), np.float32)
        mask = np.zeros((len(feats), width), np.float32)
        for i, f in enumerate(feats):
            x[i, :len(f)] = f
            mask[i, :len(f)] = 1.0
        return x, mask

    def to_json(self) -> str:
        stats = {} if self.mean is None or self.std is None else {
            "mean": [round(float(v), 7) for v in self.mean],
            "std": [round(float(v), 7) for v in self.std]}
        return json.dumps({"labels": self.label_names, "max_frames": self.max_frames,
                           "velocities": self.velocities, "smooth": self.smooth,
                           "align": self.align, "arms": self.arms, "joints": NUM_JOINTS,
                           "hip_centre": HIP_CENTRE, "shoulder_centre": SHOULDER_CENTRE,
                           "velocity_scale": VELOCITY_SCALE, **stats})

    @classmethod
    def from_file(cls, path: str | os.PathLike, error: type[Exception]) -> SkeletonPreprocessor:
        path = Path(path)
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise error(f"{path}: cannot read it ({short_repr(exc)})") from None
        ok = isinstance(info, dict) and isinstance(info.get("labels"), list) \
            and isinstance(info.get("max_frames"), int) and isinstance(info.get("velocities"),
                                                                       bool)
        if not ok or info.get("joints") != NUM_JOINTS or info.get("hip_centre") != HIP_CENTRE:
            raise error(f"{path}: expected labels, max_frames, velocities and the joint layout "
                        f"of {NUM_JOINTS} joints, found {short_repr(info)}")
        arms = info.get("arms", False)  # bundles before the option read no arms
        if not isinstance(arms, bool):
            raise error(f"{path}: arms must be true or false, found {short_repr(arms)}")
        width = num_features(info["velocities"], arms)
        stats = [info.get("mean"), info.get("std")]
        if stats != [None, None] and not all(isinstance(v, list) and len(v) == width
                                             for v in stats):
            raise error(f"{path}: mean and std must be lists of {width} numbers")
        smooth, align = info.get("smooth", 1), info.get("align", False)
        if not isinstance(smooth, int) or smooth < 1 or not isinstance(align, bool):
            raise error(f"{path}: smooth must be an integer >= 1 and align true or false")
        return cls(info["labels"], info["max_frames"], info["velocities"], *stats,
                   smooth=smooth, align=align, arms=arms)
