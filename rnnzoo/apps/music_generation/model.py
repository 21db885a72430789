"""Task type ``music-generation``: polyphonic piano rolls, frame by frame.

A piece is a binary piano roll ``[T, 88]`` (keys MIDI 21-108, one row per time step, quantised to
``steps_per_quarter``). The model predicts frame ``t`` from an all-zero *start frame* and frames
``< t`` with 88 independent sigmoids, so it both scores music (frame NLL, the published metric)
and generates it (Bernoulli per key, with temperature and a seed).

User call (Keras and runtime alike): ``generate(steps, primer=, temperature=, seed=)``; CLI verb
``rnnzoo generate`` (MIDI out, optional piano-roll PNG and WAV). Two graphs: ``model`` (frames
``[B, T, 88]`` float32 -> ``logits [B, T, 88]``, for scoring) and ``decoder`` (one step:
``frame`` int32 multi-hot ``[B, 88]`` and the recurrent states -> ``logits``, ``new_<state>``),
driven by ``rnnzoo.generation.graph_step`` over a :class:`GraphRunner`, so the Keras model and the
onnxruntime bundle share one sampling loop. A family implements ``build_model`` and
``step_graph()``.

Data layouts (``load_data``): a Boulanger-Lewandowski ``.mat`` file (``traindata``/``validdata``/
``testdata`` cells of ``[T, 88]`` rolls), a JSON file ``{"train"|"valid"|"test": [piece, ...]}``
whose pieces are lists of steps, each a list of MIDI pitches (``jsb-chorales-quarter.json``), or
a MIDI file / folder of MIDI files (read with pretty_midi, the optional ``music`` extra).

This module is TF-free at import (the runtime half lives here); MIDI, plotting and audio imports
happen inside the functions that need them.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import json
import math
import os
import sys
import wave
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from rnnzoo.config import EntryConfig, rule
from rnnzoo.data.batching import length_sorted_batches
from rnnzoo.data.splits import Splits
from rnnzoo.errors import ConfigError, DataError, short_repr
from rnnzoo.export.bundle import DECODER_FILE, MODEL_FILE, BundleRuntime
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.extras import require_module
from rnnzoo.generation import GraphRunner, graph_step
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task

NUM_KEYS = 88
LOWEST_PITCH = 21  # A0; key k is MIDI pitch 21 + k
HIGHEST_PITCH = LOWEST_PITCH + NUM_KEYS - 1  # C8 = 108
MIDI_SUFFIXES = (".mid", ".midi")
ASSET_FILE = "music.json"
DEFAULT_STEPS = 64
DEFAULT_QPM = 100.0
INSTALL_HINT = 'pip install "rnnzoo[music]" (or pip install pretty_midi)'

# Test NLL in nats per frame (lower is better), Bai, Kolter & Koltun (2018), arXiv:1803.01271,
# Table 1; see ../shared/data/polyphonic_music/SOURCE.md.
PUBLISHED = {
    "jsb": {"LSTM": 8.45, "GRU": 8.43, "vanilla RNN": 8.91, "TCN": 8.10},
    "nottingham": {"LSTM": 3.29, "GRU": 3.46, "vanilla RNN": 4.05, "TCN": 3.07},
}
PUBLISHED_SOURCE = "Bai, Kolter & Koltun 2018, Table 1"
_BENCHMARK_FILES = {"jsb_chorales.mat": "jsb", "jsb-chorales-quarter.json": "jsb",
                    "nottingham.mat": "nottingham"}


@dataclasses.dataclass
class DataConfig:
    # Time steps per quarter note when reading MIDI (and writing it: a generated frame lasts
    # 1/steps_per_quarter of a quarter note). The .mat/.json benchmark files are already rolls;
    # JSB Chorales is at quarter-note resolution (1).
    steps_per_quarter: int = rule(1, min=1, max=96)
    # MIDI: read only this General MIDI program (0-127); null reads every pitched instrument.
    program: int | None = rule(None, min=0, max=127)
    # MIDI: drum tracks hold percussion sounds, not pitches; true reads them as pitches.
    include_drums: bool = False
    # MIDI notes outside the piano's 21-108: fail (naming the file), drop them, or fold them
    # by octaves into range.
    out_of_range: Literal["error", "drop", "fold"] = "error"
    # MIDI folders: skip unreadable/empty files (counted in the data description) instead of
    # failing on the first.
    skip_invalid: bool = False
    # Training windows in frames: longer pieces are cut into windows (evaluation always scores
    # whole pieces).
    max_length: int = rule(256, min=2)
    # Augmentation: every epoch each training window is transposed by a random number of
    # semitones in [-transpose, transpose] (kept within the piano's range); 0 turns it off.
    # Dev and test pieces are never transposed.
    transpose: int = rule(0, min=0, max=24)
    # MIDI folders have no standard split: held-out fractions of the files (seeded).
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)

    def check(self) -> list[str]:
        """Cross-field rule: something is left to train on."""
        if self.dev_fraction + self.test_fraction >= 1:
            return [f"test_fraction: dev_fraction + test_fraction must be < 1 (the rest is the "
                    f"training split), found {self.dev_fraction:g} + {self.test_fraction:g}"]
        return []


@dataclasses.dataclass
class MusicData(Splits):
    """Pieces (uint8 rolls ``[T, 88]``) per split; ``benchmark`` names the published table
    (``"jsb"``, ``"nottingham"``) when the file is one of the benchmark files."""

    kind = "music data"

    train: list[np.ndarray]
    dev: list[np.ndarray]
    test: list[np.ndarray]
    description: str
    benchmark: str | None = None


class MusicPreprocessor:
    """Nothing to fit: the time resolution (for MIDI in and out) and the key range."""

    is_fitted = True

    def __init__(self, steps_per_quarter: int, program: int | None = None) -> None:
        self.steps_per_quarter = int(steps_per_quarter)
        self.program = program

    def to_json(self) -> str:
        return json.dumps({"steps_per_quarter": self.steps_per_quarter, "program": self.program,
                           "num_keys": NUM_KEYS, "lowest_pitch": LOWEST_PITCH,
                           "start_frame": "zeros"}, sort_keys=True)


# -- readers ------------------------------------------------------------------------------------


def _check_roll(roll: Any, where: str) -> np.ndarray:
    """A binary ``[T >= 1, 88]`` roll as uint8, or a DataError naming ``where``."""
    arr = np.asarray(roll)
    if arr.ndim != 2 or arr.shape[1] != NUM_KEYS:
        raise DataError(f"{where}: expected a piano roll of shape (T, {NUM_KEYS}) (keys MIDI "
                        f"{LOWEST_PITCH}-{HIGHEST_PITCH}), found shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{where}: empty piece (no time steps)")
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        raise DataError(f"{where}: expected a binary piano roll (0/1 values)")
    return arr.astype(np.uint8)


def read_mat(path: str | os.PathLike) -> tuple[list, list, list]:
    """Train/valid/test rolls of a Boulanger-Lewandowski ``.mat`` file (MATLAB v5 cells
    ``traindata``, ``validdata``, ``testdata`` of ``[T, 88]`` arrays)."""
    scipy_io = require_module("scipy.io", f"reading {Path(path).name} (a .mat file)", "scipy")

    path = Path(path)
    try:
        mat = scipy_io.loadmat(str(path))
    except Exception as exc:  # noqa: BLE001 - scipy raises MatReadError, ValueError, ...
        raise DataError(f"{path}: not a MATLAB .mat file scipy can read ({_short(exc)}); "
                        "expected the Boulanger-Lewandowski files (JSB_Chorales.mat)") from None
    keys = ("traindata", "validdata", "testdata")
    missing = [k for k in keys if k not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: expected the cells {', '.join(keys)} (the "
                        f"Boulanger-Lewandowski layout), missing {', '.join(missing)}; found "
                        f"{', '.join(found) or 'no variables'}")
    out = []
    for key in keys:
        cells = np.asarray(mat[key], dtype=object).reshape(-1)
        out.append([_check_roll(c, f"{path}: {key}[{i}]") for i, c in enumerate(cells)])
    return out[0], out[1], out[2]


def pitches_to_roll(steps: Any, where: str) -> np.ndarray:
    """A list of steps, each a list of MIDI pitches (21-108), as a uint8 roll ``[T, 88]``."""
    if not isinstance(steps, list) or not steps:
        raise DataError(f"{where}: expected a non-empty list of time steps (lists of MIDI "
                        f"pitches), found {_short(steps)}")
    roll = np.zeros((len(steps), NUM_KEYS), dtype=np.uint8)
    for t, notes in enumerate(steps):
        if not isinstance(notes, list):
            raise DataError(f"{where}, step {t}: expected a list of MIDI pitches, found "
                            f"{_short(notes)}")
        for p in notes:
            if isinstance(p, bool) or not isinstance(p, (int, float)) or p != int(p):
                raise DataError(f"{where}, step {t}: expected integer MIDI pitches, found "
                                f"{_short(p)}")
            if not LOWEST_PITCH <= p <= HIGHEST_PITCH:
                raise DataError(f"{where}, step {t}: note {int(p)} is outside the piano range "
                                f"{LOWEST_PITCH}-{HIGHEST_PITCH}")
            roll[t, int(p) - LOWEST_PITCH] = 1
    return roll


def roll_to_pitches(roll: np.ndarray) -> list[list[int]]:
    """The inverse of :func:`pitches_to_roll`: per step, the sounding MIDI pitches."""
    return [[int(k) + LOWEST_PITCH for k in np.flatnonzero(row)] for row in np.asarray(roll)]


def read_json_rolls(path: str | os.PathLike) -> tuple[list, list, list]:
    """Train/valid/test rolls of a JSON file ``{"train": [...], "valid": [...], "test":
    [...]}`` whose pieces are lists of steps of MIDI pitches (``jsb-chorales-quarter.json``)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a JSON file ({_short(exc)}); expected "
                        '{"train": [...], "valid": [...], "test": [...]}') from None
    if not isinstance(raw, dict) or "train" not in raw:
        found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise DataError(f"{path}: expected an object with the keys train, valid and test (lists "
                        f"of pieces), found {found}")
    out = []
    for key in ("train", ("valid", "dev"), "test"):
        names = key if isinstance(key, tuple) else (key,)
        name = next((n for n in names if n in raw), names[0])
        pieces = raw.get(name, [])
        if not isinstance(pieces, list):
            raise DataError(f"{path}: {name}: expected a list of pieces, found "
                            f"{type(pieces).__name__}")
        out.append([pitches_to_roll(p, f"{path}: {name} piece {i}")
                    for i, p in enumerate(pieces)])
    return out[0], out[1], out[2]


def _pretty_midi() -> Any:
    try:
        import pretty_midi
    except ImportError:
        raise DataError(f"reading and writing MIDI needs pretty_midi: {INSTALL_HINT}") from None
    return pretty_midi


def read_midi(path: str | os.PathLike, steps_per_quarter: int = 4, program: int | None = None,
              include_drums: bool = False,
              out_of_range: Literal["error", "drop", "fold"] = "error") -> np.ndarray:
    """A MIDI file as a uint8 piano roll ``[T, 88]``, quantised to ``steps_per_quarter``.

    Times are read in ticks (musical time), so tempo changes do not move the grid. A note
    covers the steps from its rounded start to its rounded end (at least one step)."""
    pretty_midi = _pretty_midi()
    path = Path(path)
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # noqa: BLE001 - mido/pretty_midi raise many types on bad bytes
        raise DataError(f"{path}: not a MIDI file pretty_midi can read ({_short(exc)}); give a "
                        "Standard MIDI File (.mid)") from None
    instruments = [i for i in pm.instruments if i.notes]
    if not instruments:
        raise DataError(f"{path}: the piece is empty (no notes)")
    pitched = [i for i in instruments if include_drums or not i.is_drum]
    if not pitched:
        raise DataError(f"{path}: only drum notes (MIDI channel 10), which are excluded; pass "
                        "--set include_drums=true to read them as pitches")
    if program is not None:
        chosen = [i for i in pitched if i.program == program]
        if not chosen:
            have = sorted({i.program for i in pitched})
            raise DataError(f"{path}: no notes for program {program} (programs in the file: "
                            f"{', '.join(map(str, have))}); pass --set program=null to read "
                            "every instrument")
        pitched = chosen
    ticks_per_step = pm.resolution / steps_per_quarter
    notes = []
    for inst in pitched:
        for n in inst.notes:
            start = int(round(pm.time_to_tick(n.start) / ticks_per_step))
            end = max(start + 1, int(round(pm.time_to_tick(n.end) / ticks_per_step)))
            pitch = n.pitch
            if not LOWEST_PITCH <= pitch <= HIGHEST_PITCH:
                if out_of_range == "drop":
                    continue
                if out_of_range == "fold":
                    while pitch < LOWEST_PITCH:
                        pitch += 12
                    while pitch > HIGHEST_PITCH:
                        pitch -= 12
                else:
                    raise DataError(
                        f"{path}: note {pitch} at step {start} is outside the piano range "
                        f"{LOWEST_PITCH}-{HIGHEST_PITCH}; pass --set out_of_range=drop (skip "
                        "such notes) or --set out_of_range=fold (move them by octaves)")
            notes.append((start, end, pitch))
    if not notes:
        raise DataError(f"{path}: no notes left within the piano range {LOWEST_PITCH}-"
                        f"{HIGHEST_PITCH}")
    roll = np.zeros((max(e for _, e, _ in notes), NUM_KEYS), dtype=np.uint8)
    for start, end, pitch in notes:
        roll[start:end, pitch - LOWEST_PITCH] = 1
    return roll


def _midi_files(path: Path) -> list[Path]:
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES
                   and p.is_file())
    if not files:
        raise DataError(f"{path}: no MIDI files (*.mid, *.midi) in this folder")
    return files


def read_midi_folder(path: str | os.PathLike, d: DataConfig) -> tuple[list[np.ndarray], int]:
    """Rolls of every MIDI file under ``path`` (sorted by path), and how many were skipped
    (``skip_invalid``)."""
    _pretty_midi()  # the install hint before any file is tried
    path = Path(path)
    files = _midi_files(path) if path.is_dir() else [path]
    rolls, skipped = [], 0
    for f in files:
        try:
            rolls.append(read_midi(f, d.steps_per_quarter, d.program, d.include_drums,
                                   d.out_of_range))
        except DataError as exc:
            if d.skip_invalid:
                skipped += 1
                continue
            if path.is_dir():
                raise DataError(f"{exc} (or --set skip_invalid=true to skip such files)"
                                ) from None
            raise
    if not rolls:
        raise DataError(f"{path}: none of the {len(files)} MIDI files could be read")
    return rolls, skipped


def load_music(path: str | os.PathLike, d: DataConfig, seed: int) -> MusicData:
    """Read a dataset, its layout detected from the path (``.mat``, ``.json``, a MIDI file or a
    folder of MIDI files)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    benchmark = _BENCHMARK_FILES.get(path.name.lower())
    if path.is_file() and suffix == ".mat":
        train, dev, test = read_mat(path)
        return MusicData(train, dev, test, f"{path.name} (standard train/valid/test split)",
                         benchmark)
    if path.is_file() and suffix == ".json":
        train, dev, test = read_json_rolls(path)
        return MusicData(train, dev, test, f"{path.name} (standard train/valid/test split)",
                         benchmark)
    if path.is_dir() or suffix in MIDI_SUFFIXES:
        rolls, skipped = read_midi_folder(path, d)
        order = np.random.default_rng(seed).permutation(len(rolls))
        n_test = int(round(len(rolls) * d.test_fraction)) if len(rolls) > 2 else 0
        n_dev = int(round(len(rolls) * d.dev_fraction)) if len(rolls) > 2 else 0
        test = [rolls[i] for i in order[:n_test]]
        dev = [rolls[i] for i in order[n_test:n_test + n_dev]]
        train = [rolls[i] for i in order[n_test + n_dev:]]
        skip = f", {skipped} unreadable skipped" if skipped else ""
        return MusicData(train, dev, test, (
            f"{path.name}: {len(rolls)} MIDI file(s){skip}, {d.steps_per_quarter} step(s) per "
            f"quarter, split by file (seed {seed})"))
    raise DataError(f"{path}: unknown music data layout; expected a .mat file (traindata/"
                    "validdata/testdata), a .json file of pitch lists, a .mid file or a folder "
                    "of .mid files")


# -- MIDI, plot and audio output ------------------------------------------------------------------


def note_segments(roll: np.ndarray) -> list[tuple[int, int, int]]:
    """``(start step, end step, MIDI pitch)`` of every note: consecutive active frames of a key
    are one held note (a roll cannot tell a held note from a repeated one)."""
    roll = np.asarray(roll, dtype=np.int8)
    padded = np.zeros((roll.shape[0] + 2, roll.shape[1]), dtype=np.int8)
    padded[1:-1] = roll
    edges = np.diff(padded, axis=0)
    segments = []
    for key in range(roll.shape[1]):
        starts = np.flatnonzero(edges[:, key] == 1)
        ends = np.flatnonzero(edges[:, key] == -1)
        segments += [(int(s), int(e), key + LOWEST_PITCH) for s, e in zip(starts, ends)]
    return sorted(segments)


def _atomic_target(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    if path.parent and not path.parent.is_dir():
        raise DataError(f"{path}: the folder {path.parent} does not exist")
    return path, path.with_name(f".tmp-{path.name}")


def write_midi(roll: np.ndarray, path: str | os.PathLike, qpm: float = DEFAULT_QPM,
               program: int = 0, steps_per_quarter: int = 1, velocity: int = 90) -> Path:
    """Write a roll as a one-track MIDI file (pretty_midi), written atomically. Ticks per step
    are whole (480 per quarter), so reading it back at the same resolution gives the roll."""
    pretty_midi = _pretty_midi()
    roll = _check_roll(roll, "write_midi")
    if not (isinstance(qpm, (int, float)) and math.isfinite(qpm) and qpm > 0):
        raise DataError(f"qpm: expected a tempo > 0 (quarter notes per minute), got {qpm!r}")
    if isinstance(program, bool) or not isinstance(program, int) or not 0 <= program <= 127:
        raise DataError(f"program: expected a General MIDI program 0-127, got {program!r}")
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=float(qpm))
    inst = pretty_midi.Instrument(program=program, name="rnnzoo")
    step = 60.0 / float(qpm) / steps_per_quarter
    for start, end, pitch in note_segments(roll):
        inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=pitch, start=start * step,
                                           end=end * step))
    pm.instruments.append(inst)
    path, tmp = _atomic_target(path)
    pm.write(str(tmp))
    os.replace(tmp, path)
    return path


def plot_roll(roll: np.ndarray, path: str | os.PathLike, title: str = "",
              primer_steps: int = 0) -> Path:
    """A piano-roll PNG (time across, pitch up), the primer shaded; written atomically."""
    matplotlib = require_module("matplotlib", "a piano-roll image (--plot)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roll = np.asarray(roll)
    fig, ax = plt.subplots(figsize=(min(16.0, 3 + roll.shape[0] * 0.12), 4.5))
    ax.imshow(roll.T, origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
              extent=(0, roll.shape[0], LOWEST_PITCH - 0.5, HIGHEST_PITCH + 0.5), vmin=0, vmax=1)
    cs = list(range(24, HIGHEST_PITCH + 1, 12))
    ax.set_yticks(cs, [f"C{p // 12 - 1}" for p in cs])
    active = np.flatnonzero(roll.any(axis=0))
    if active.size:  # zoom on the played range, with a margin
        ax.set_ylim(max(LOWEST_PITCH, active[0] + LOWEST_PITCH - 4) - 0.5,
                    min(HIGHEST_PITCH, active[-1] + LOWEST_PITCH + 4) + 0.5)
    if primer_steps:
        ax.axvspan(0, primer_steps, color="tab:blue", alpha=0.12, label="primer")
        ax.legend(loc="upper right")
    ax.set_xlabel("time step")
    ax.set_ylabel("pitch")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path, tmp = _atomic_target(path)
    try:
        fig.savefig(tmp, dpi=100, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
    return path


def synthesize(roll: np.ndarray, qpm: float = DEFAULT_QPM, steps_per_quarter: int = 1,
               sample_rate: int = 22050) -> np.ndarray:
    """A mono float32 signal in [-1, 1]: each note a few decaying harmonics (an organ-ish
    additive tone) with short attack and release ramps, so no other software is needed to
    listen."""
    roll = np.asarray(roll)
    step = 60.0 / float(qpm) / steps_per_quarter
    total = int(math.ceil(roll.shape[0] * step * sample_rate)) + int(0.3 * sample_rate)
    out = np.zeros(total, dtype=np.float64)
    attack, release = int(0.01 * sample_rate), int(0.08 * sample_rate)
    for start, end, pitch in note_segments(roll):
        n = max(int((end - start) * step * sample_rate), attack) + release
        t = np.arange(n) / sample_rate
        freq = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        tone = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3, 4)
                   if freq * k < sample_rate / 2)
        env = np.exp(-1.2 * t)
        env[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False)
        env[-release:] *= np.linspace(1.0, 0.0, release)
        s = int(start * step * sample_rate)
        out[s:s + n] += (tone * env)[: total - s]
    peak = float(np.abs(out).max())
    return (out / peak * 0.8 if peak > 0 else out).astype(np.float32)


def write_wav(roll: np.ndarray, path: str | os.PathLike, qpm: float = DEFAULT_QPM,
              steps_per_quarter: int = 1, sample_rate: int = 22050) -> Path:
    """16-bit mono WAV of :func:`synthesize` (stdlib ``wave``), written atomically."""
    signal = synthesize(roll, qpm, steps_per_quarter, sample_rate)
    path, tmp = _atomic_target(path)
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes((signal * 32767).astype("<i2").tobytes())
    os.replace(tmp, path)
    return path


# -- the metric and the sampling engine ----------------------------------------------------------


def frame_nll(logits: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Negative log-likelihood in nats of each frame: binary cross-entropy summed over the 88
    keys, from logits (``softplus(z) - y z``, exact where sigmoid probabilities round to 0/1)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(frames, dtype=np.float64)
    return (np.logaddexp(0.0, z) - y * z).sum(axis=-1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def sample_keys(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """One Bernoulli draw per key from ``sigmoid(logits / temperature)`` (int32 0/1);
    ``temperature=0`` keeps the keys with probability > 0.5. A uniform number is drawn per key
    at every temperature, so the random stream (and a seed's output) is the same for Keras and
    the runtime."""
    u = rng.random(np.shape(logits))
    z = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return (z > 0).astype(np.int32)
    return (u < _sigmoid(z / temperature)).astype(np.int32)


def sample_frames(step: Any, state: dict, feed: np.ndarray, steps: int, temperature: float,
                  rng: np.random.Generator) -> np.ndarray:
    """The primed generation loop over a ``graph_step`` step function: feed the ``[B, P, 88]``
    frames (start frame and primer) one at a time, then sample ``steps`` frames, each fed back.
    Returns int32 ``[B, steps, 88]``."""
    logits = None
    for t in range(feed.shape[1]):
        logits, state = step(feed[:, t], state)
    out = np.zeros((feed.shape[0], steps, NUM_KEYS), dtype=np.int32)
    for t in range(steps):
        out[:, t] = sample_keys(logits, temperature, rng)
        if t + 1 < steps:
            logits, state = step(out[:, t], state)
    return out


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_temperature(value: Any) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise DataError(f"temperature: expected a number >= 0 (1 = the model's probabilities, "
                        f"0 = the most likely frame), got {value!r}")
    return float(value)


def _short(value: Any, limit: int = 120) -> str:
    return short_repr(value, limit)


class _MusicGenerator(abc.ABC):
    """``generate``, ``frame_probabilities`` and ``nll``, written once over a
    :class:`GraphRunner` (Keras graphs or an onnxruntime bundle)."""

    preprocessor: MusicPreprocessor

    @abc.abstractmethod
    def _runner(self) -> GraphRunner:
        """The graphs to run (``model`` and ``decoder``)."""

    @abc.abstractmethod
    def _state_sizes(self) -> dict[str, int]:
        """Width of each recurrent state input of the ``decoder`` graph."""

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        """Zero recurrent states for ``batch`` rows (what training starts every piece from)."""
        return {n: np.zeros((batch, w), np.float32) for n, w in self._state_sizes().items()}

    def as_roll(self, piece: Any, where: str = "primer") -> np.ndarray:
        """A uint8 roll ``[T, 88]`` from a roll, a list of pitch lists, or a MIDI file path
        (read at this model's ``steps_per_quarter``, every pitched instrument)."""
        if isinstance(piece, (str, os.PathLike)):
            return read_midi(piece, self.preprocessor.steps_per_quarter)
        if isinstance(piece, (list, tuple)) and not (
                piece and all(isinstance(r, (list, tuple, np.ndarray)) and len(r) == NUM_KEYS
                              for r in piece)):
            return pitches_to_roll(list(piece), where)
        return _check_roll(piece, where)

    def _logits(self, pieces: Sequence[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
        """For each piece, ``[T, 88]`` logits of frame t given the start frame and frames < t
        (one ``model`` graph call per batch of similar lengths)."""
        runner = self._runner()
        inputs = [np.concatenate([np.zeros((1, NUM_KEYS), np.float32),
                                  np.asarray(p[:-1], np.float32)]) for p in pieces]
        out: list[Any] = [None] * len(pieces)
        for idx, batch in length_sorted_batches(inputs, batch_size, dtype=np.float32):
            logits = runner.run("model", {"frames": batch})["logits"]
            for row, i in enumerate(idx):
                out[i] = np.asarray(logits[row, : len(inputs[i])])
        return out

    def frame_probabilities(self, piece: Any) -> np.ndarray:
        """float32 ``[T, 88]``: row t is P(key on at step t | start frame, steps < t)."""
        roll = self.as_roll(piece, "piece")
        return _sigmoid(self._logits([roll])[0]).astype(np.float32)

    def nll(self, pieces: Sequence[Any], batch_size: int = 32) -> dict:
        """Frame NLL as published: binary cross-entropy summed over the 88 keys, averaged over
        every predicted frame (frames 1..T-1 of each piece, frame 0 being the context)."""
        rolls = [self.as_roll(p, f"piece {i}") for i, p in enumerate(pieces)]
        if not rolls:
            raise DataError("nothing to score: no pieces")
        total, frames = 0.0, 0
        for roll, logits in zip(rolls, self._logits(rolls, batch_size)):
            total += float(frame_nll(logits[1:], roll[1:]).sum())
            frames += len(roll) - 1
        if not frames:
            raise DataError("nothing to score: every piece has a single frame")
        return {"nll": total / frames, "frames": frames, "pieces": len(rolls)}

    def evaluate(self, pieces: Sequence[Any], references: Sequence[Any] | None = None,
                 batch_size: int = 32) -> dict:
        """The task's metrics on ``pieces`` (rolls, pitch lists or MIDI paths): frame NLL, as
        ``nll``. A piece is its own reference (frame t is predicted from frames < t), so
        ``references`` is accepted only as the same pieces, for the shared
        ``evaluate(inputs, references)`` shape."""
        if references is not None and references is not pieces:
            rolls = [self.as_roll(p, f"piece {i}") for i, p in enumerate(pieces)]
            refs = [self.as_roll(p, f"reference {i}") for i, p in enumerate(references)]
            if len(rolls) != len(refs) or not all(np.array_equal(a, b)
                                                  for a, b in zip(rolls, refs)):
                raise DataError("evaluate: a music model scores pieces against themselves "
                                "(frame t from frames < t); call evaluate(pieces)")
        return self.nll(pieces, batch_size=batch_size)

    def generate(self, steps: int = DEFAULT_STEPS, primer: Any = None, temperature: float = 1.0,
                 seed: int | None = None, include_primer: bool = False,
                 num_samples: int | None = None) -> np.ndarray:
        """Sample ``steps`` frames (uint8 roll ``[steps, 88]``; ``[num_samples, steps, 88]``
        when ``num_samples`` is given), Bernoulli per key at ``temperature`` from
        ``np.random.default_rng(seed)``, after the start frame and the ``primer`` (a roll, pitch
        lists or a MIDI file). The primer is returned too only with ``include_primer``."""
        steps = _check_int("steps", steps, 1)
        temperature = _check_temperature(temperature)
        n = 1 if num_samples is None else _check_int("num_samples", num_samples, 1)
        prime = (np.zeros((0, NUM_KEYS), np.uint8) if primer is None
                 else self.as_roll(primer))
        feed = np.concatenate([np.zeros((1, NUM_KEYS), np.int32), prime.astype(np.int32)])
        feed = np.ascontiguousarray(np.broadcast_to(feed, (n, *feed.shape)))
        step = graph_step(self._runner(), "decoder")
        rng = np.random.default_rng(seed)
        out = sample_frames(step, self.initial_state(n), feed, steps, temperature, rng)
        out = out.astype(np.uint8)
        if include_primer:
            out = np.concatenate([np.broadcast_to(prime, (n, *prime.shape)), out], axis=1)
        return out[0] if num_samples is None else out


def _benchmark_line(data: MusicData, split: str) -> str:
    if data.benchmark is None or split != "test":
        return ""
    table = " · ".join(f"{k} {v:.2f}" for k, v in PUBLISHED[data.benchmark].items())
    return f"  published test NLL ({PUBLISHED_SOURCE}): {table}"


class MusicGenerationTask(_MusicGenerator, Task):
    """Keras side of a music generator; a family adds ``build_model`` and ``step_graph``."""

    task_type = "music-generation"
    verb = "generate"
    metric_directions = {"loss": "min", "nll": "min"}

    @abc.abstractmethod
    def step_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)`` of one step: inputs ``frame`` (int32 ``[B, 88]``)
        and the states ``state_<i>``; outputs ``logits`` and ``new_state_<i>``."""

    def new_preprocessor(self) -> MusicPreprocessor:
        return MusicPreprocessor(self.config.data.steps_per_quarter, self.config.data.program)

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / ASSET_FILE, self.preprocessor.to_json() + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> MusicPreprocessor:
        return MusicPreprocessor(config.data.steps_per_quarter, config.data.program)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        roll = (rng.random((batch_size, 9, NUM_KEYS)) < 0.05).astype(np.float32)
        x = np.concatenate([np.zeros((batch_size, 1, NUM_KEYS), np.float32), roll[:, :-1]], 1)
        lengths = rng.integers(1, 10, size=batch_size)
        lengths[0] = 9
        if batch_size > 1:
            lengths[1] = 1
        pad = np.arange(9)[None, :] >= lengths[:, None]
        x[pad] = 0.0
        roll[pad] = -1.0  # padding targets: ignored by the loss
        return x, roll

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> MusicData:
        return load_music(path, self.config.data, seed)

    def adapt(self, data: MusicData) -> None:
        """Nothing to fit: a roll has no vocabulary."""
        if not data.train:
            raise DataError(f"{data.description}: no training pieces")

    def windows(self, pieces: Sequence[np.ndarray]) -> tuple[list, list]:
        """Teacher-forcing ``(inputs, targets)`` per window of at most ``max_length`` frames:
        the input of frame t is frame t-1 (the start frame for t = 0)."""
        limit = self.config.data.max_length
        xs, ys = [], []
        for roll in pieces:
            shifted = np.concatenate([np.zeros((1, NUM_KEYS), np.uint8), roll[:-1]])
            for s in range(0, len(roll), limit):
                xs.append(shifted[s:s + limit])
                ys.append(roll[s:s + limit])
        return xs, ys

    def datasets(self, data: MusicData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        if not data.train:
            raise DataError(f"{data.description}: no training pieces")
        kw = {"batch_size": batch_size, "max_length": self.config.data.max_length,
              "bucketing": bucketing, "fixed_length": fixed_length}
        xs, ys = self.windows(data.train)
        train, steps = frame_dataset(xs, ys, shuffle=True, seed=seed,
                                     transpose=self.config.data.transpose, **kw)
        dev = frame_dataset(*self.windows(data.dev), **kw)[0] if data.dev else None
        return train, dev, steps

    def loss(self) -> Any:
        from rnnzoo.layers.losses import FrameNLL

        return FrameNLL()

    # -- inference and evaluation ---------------------------------------------------------------
    def _runner(self) -> GraphRunner:
        return self.keras_graphs()

    def _state_sizes(self) -> dict[str, int]:
        spec = {s.name: s for s in self.graph_specs()}["decoder"]
        return {i.name: int(i.shape[1]) for i in spec.inputs if i.kind == "state"}

    def evaluate_data(self, data: MusicData, split: str = "dev", limit: int | None = None,
                      **options: Any) -> dict:
        pieces = data.split(split)[:limit]
        if not pieces:
            raise DataError(f"{data.description}: the {split} split is empty")
        report = self.nll(pieces)
        report.update(split=split, data=data.description,
                      published=PUBLISHED.get(data.benchmark or "", {}) if split == "test"
                      else {}, benchmark=_benchmark_line(data, split))
        return report

    def format_report(self, report: dict) -> str:
        lines = [f"frame NLL {report['nll']:.4f} nats ({report['frames']} predicted frames in "
                 f"{report['pieces']} pieces; BCE summed over {NUM_KEYS} keys, lower is better)"]
        if report.get("benchmark"):
            lines.append(report["benchmark"])
        return "\n".join(lines)

    # -- export ---------------------------------------------------------------------------------
    def graph_specs(self) -> list[GraphSpec]:
        step, step_outputs = self.step_graph()
        frames = InputSpec("frames", "features", ("batch", "time", NUM_KEYS))
        # int32 multi-hot; random features cast to int32 give a mix of 0 and +-1 for parity.
        inputs = [InputSpec("frame", "features", ("batch", NUM_KEYS), "int32")]
        inputs += [InputSpec(t.name, "state", ("batch", int(t.shape[-1])))
                   for t in step.inputs[1:]]
        return [
            GraphSpec("model", MODEL_FILE, self.model, [frames], ["logits"]),
            GraphSpec("decoder", DECODER_FILE, step, inputs, step_outputs,
                      sizes=({"batch": 1}, {"batch": 6}, {"batch": 2})),
        ]

    def export_preprocessing(self) -> dict:
        return {"music": f"assets/{ASSET_FILE}", "num_keys": NUM_KEYS,
                "lowest_pitch": LOWEST_PITCH, "start_frame": "zeros",
                "steps_per_quarter": self.preprocessor.steps_per_quarter,
                "program": self.preprocessor.program}

    def compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes the model: frame NLL of both (on ``eval_data``'s test split
        when given, else on random sparse rolls) and the largest probability drift."""
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            pieces = (data.test or data.dev or data.train)[:50]
        else:
            rng = np.random.default_rng(0)
            pieces = [(rng.random((n, NUM_KEYS)) < 0.05).astype(np.uint8) for n in (17, 9, 1)]
        a, b = reference.nll(pieces), candidate.nll(pieces)
        drift = max(float(np.abs(reference.frame_probabilities(p)
                                 - candidate.frame_probabilities(p)).max()) for p in pieces[:5])
        return {"pieces": len(pieces), "nll_fp32": a["nll"], "nll_int8": b["nll"],
                "max_prob_drift": drift,
                "summary": f"frame NLL fp32 {a['nll']:.4f} -> int8 {b['nll']:.4f} on "
                           f"{len(pieces)} pieces; max probability drift {drift:.4f}"}

    def int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when its frame NLL is at most 0.5% above fp32's."""
        a, b = comparison.get("nll_fp32"), comparison.get("nll_int8")
        if a is None or b is None or b > a * 1.005:
            return "int8 frame NLL more than 0.5% above fp32's"
        return None

    @classmethod
    def example_inputs(cls) -> list:
        return [{"steps": 6, "seed": 0},
                {"steps": 5, "seed": 3, "temperature": 0.7, "primer": [[60, 64, 67], [], [62]]},
                {"steps": 4, "temperature": 0.0, "primer": [[48], [52, 55]]}]

    @classmethod
    def example_outputs(cls, model: Any, inputs: list) -> Any:
        out = []
        for item in inputs:
            roll = model.generate(**item)
            primer = item.get("primer") or [[60]]
            out.append({"frames": roll_to_pitches(roll),
                        "probs": model.frame_probabilities(primer).tolist()})
        return out

    # -- command line ---------------------------------------------------------------------------
    @classmethod
    def add_verb_arguments(cls, parser: argparse.ArgumentParser) -> None:
        # Defaults are applied in run_verb: options shared with other generate tasks (--steps,
        # --temperature, --seed, --primer, --out) keep no task-specific default in the parser.
        parser.add_argument("--steps", type=int, help=f"frames/tokens to generate (music: "
                            f"default {DEFAULT_STEPS})")
        parser.add_argument("--temperature", type=float,
                            help="sampling temperature (default 1; music: 0 = most likely frame)")
        parser.add_argument("--seed", type=int, help="random seed (same seed, same output)")
        parser.add_argument("--primer", metavar="FILE",
                            help="music: start from this MIDI file, or from a test piece of a "
                            ".mat/.json dataset (see --primer-piece)")
        parser.add_argument("--primer-piece", dest="primer_piece", type=int, default=0,
                            metavar="N", help="music: which test piece of a dataset primer")
        parser.add_argument("--primer-steps", dest="primer_steps", type=int, metavar="K",
                            help="music: use only the first K frames of the primer")
        parser.add_argument("--include-primer", dest="include_primer", action="store_true",
                            help="music: write the primer before the generated frames")
        parser.add_argument("--out", metavar="FILE",
                            help="music: the MIDI file to write (default: print the frames)")
        parser.add_argument("--qpm", type=float, help=f"music: tempo in quarter notes per "
                            f"minute (default {DEFAULT_QPM:g})")
        parser.add_argument("--program", type=int,
                            help="music: General MIDI program of the output (default 0, piano)")
        parser.add_argument("--plot", metavar="PNG", help="music: also save a piano-roll image")
        parser.add_argument("--wav", metavar="WAV",
                            help="music: also render audio with the built-in synthesizer")

    @classmethod
    def run_verb(cls, model: Any, args: argparse.Namespace) -> int:
        primer = _primer_from_args(model, args)
        steps = args.steps if args.steps is not None else DEFAULT_STEPS
        temperature = args.temperature if args.temperature is not None else 1.0
        qpm = args.qpm if args.qpm is not None else DEFAULT_QPM
        program = args.program if args.program is not None else 0
        roll = model.generate(steps=steps, primer=primer, temperature=temperature,
                              seed=args.seed, include_primer=args.include_primer)
        spq = model.preprocessor.steps_per_quarter
        primer_len = len(primer) if primer is not None and args.include_primer else 0
        if args.out:
            write_midi(roll, args.out, qpm=qpm, program=program, steps_per_quarter=spq)
            notes = len(note_segments(roll))
            print(f"wrote {args.out}: {len(roll)} frames, {notes} notes, "
                  f"{len(roll) * 60 / qpm / spq:.1f} s at {qpm:g} qpm", file=sys.stderr)
        else:
            for pitches in roll_to_pitches(roll):
                print(" ".join(map(str, pitches)))
        if args.plot:
            plot_roll(roll, args.plot, title=f"{model.name} (temperature {temperature:g}, "
                      f"seed {args.seed})",
                      primer_steps=primer_len)
            print(f"piano roll: {args.plot}", file=sys.stderr)
        if args.wav:
            write_wav(roll, args.wav, qpm=qpm, steps_per_quarter=spq)
            print(f"audio: {args.wav}", file=sys.stderr)
        return 0


def _primer_from_args(model: Any, args: argparse.Namespace) -> np.ndarray | None:
    """The CLI primer: a MIDI file, or test piece ``--primer-piece`` of a .mat/.json dataset,
    cut to ``--primer-steps``."""
    if not args.primer:
        return None
    path = Path(args.primer)
    if path.suffix.lower() in (".mat", ".json"):
        if not path.is_file():
            raise DataError(f"--primer {path}: no such file")
        train, dev, test = read_mat(path) if path.suffix.lower() == ".mat" \
            else read_json_rolls(path)
        pieces = test or dev or train
        index = args.primer_piece
        if not 0 <= index < len(pieces):
            raise DataError(f"--primer-piece {index}: {path} has {len(pieces)} test pieces "
                            f"(0-{len(pieces) - 1})")
        roll = pieces[index]
    else:
        if not path.is_file():
            raise DataError(f"--primer {path}: no such file")
        roll = model.as_roll(str(path))
    if args.primer_steps is not None:
        roll = roll[: _check_int("--primer-steps", args.primer_steps, 1)]
    return roll


class MusicGeneratorRuntime(_MusicGenerator, BundleRuntime):
    """``generate(steps, primer=, temperature=, seed=)`` for a music bundle with onnxruntime and
    numpy only: ``decoder_model.onnx`` once per frame, ``model.onnx`` for scoring, the same
    sampling loop and random stream as the Keras model."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        pre = self.manifest["preprocessing"]
        self.preprocessor = MusicPreprocessor(int(pre["steps_per_quarter"]), pre.get("program"))
        self.name = self.entry

    def _runner(self) -> GraphRunner:
        return self

    def _state_sizes(self) -> dict[str, int]:
        inputs = self.sessions["decoder"].get_inputs()[1:]
        return {i.name: int(i.shape[1]) for i in inputs}

    # -- rnnzoo serve (rnnzoo.serving) ------------------------------------------------------------
    serve_options: ClassVar[dict[str, Any]] = {"audio": False}
    serve_demo: ClassVar[dict[str, Any]] = {
        "input": "json", "options": {},
        "example": {"steps": 32, "temperature": 1.0, "seed": 0, "primer": [[60, 64, 67], [62]]}}
    SERVE_MAX_STEPS: ClassVar[int] = 1024

    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One generated piece per instance, an object with ``generate``'s arguments
        (``steps``, ``temperature``, ``seed``, ``primer`` as pitch lists) and/or
        ``primer_midi_base64``: ``{"pitches": [[...] per step], "steps_per_quarter",
        "midi_base64"}``, plus ``wav_base64`` (an 11.025 kHz rendering) with ``"audio": true``."""
        import base64
        import io
        import tempfile

        audio = options.get("audio", False)
        if not isinstance(audio, bool):
            raise ConfigError(f"audio: expected true or false, found {audio!r}")
        spq = self.preprocessor.steps_per_quarter
        out = []
        for i, item in enumerate(instances):
            where = f"instances[{i}]"
            item = {} if item is None else item
            if not isinstance(item, Mapping):
                raise DataError(f"{where}: expected an object such as {{\"steps\": 32, "
                                f"\"seed\": 0}}, found {short_repr(item)}")
            known = {"steps", "temperature", "seed", "primer", "primer_midi_base64"}
            unknown = sorted(set(item) - known)
            if unknown:
                raise DataError(f"{where}: unknown key(s) {', '.join(unknown)}; expected "
                                f"{', '.join(sorted(known))}")
            args = {k: item[k] for k in ("steps", "temperature", "seed") if k in item}
            steps = args.get("steps", DEFAULT_STEPS)
            if isinstance(steps, int) and steps > self.SERVE_MAX_STEPS:
                raise DataError(f"{where}: steps {steps} exceeds the server's limit of "
                                f"{self.SERVE_MAX_STEPS}")
            with tempfile.TemporaryDirectory() as tmp:
                primer = item.get("primer")
                if item.get("primer_midi_base64") is not None:
                    try:
                        data = base64.b64decode(item["primer_midi_base64"], validate=True)
                    except (ValueError, TypeError):
                        raise DataError(f"{where}: primer_midi_base64 is not base64") from None
                    primer = Path(tmp) / "primer.mid"
                    primer.write_bytes(data)
                try:
                    roll = self.generate(primer=primer, **args)
                except DataError as exc:  # name the field, not the temporary file
                    if not isinstance(primer, Path):
                        raise
                    raise DataError(f"{where}: primer_midi_base64: "
                                    f"{str(exc).replace(str(primer), 'the file')}") from None
                midi = write_midi(roll, Path(tmp) / "out.mid", steps_per_quarter=spq)
                piece = {"pitches": roll_to_pitches(roll), "steps_per_quarter": spq,
                         "midi_base64": base64.b64encode(midi.read_bytes()).decode("ascii")}
            if audio:
                buf = io.BytesIO()
                with wave.open(buf, "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(11025)
                    signal = synthesize(roll, steps_per_quarter=spq, sample_rate=11025)
                    w.writeframes((signal * 32767).astype("<i2").tobytes())
                piece["wav_base64"] = base64.b64encode(buf.getvalue()).decode("ascii")
            out.append(piece)
        return out


def transpose_ranges(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray],
                     transpose: int) -> np.ndarray:
    """``[n, 2]`` lowest and highest semitone shift of each window that keeps every note of
    its inputs and targets on the keyboard, within ``[-transpose, transpose]``."""
    out = np.zeros((len(xs), 2), np.int32)
    for i, (x, y) in enumerate(zip(xs, ys)):
        keys = np.flatnonzero(np.asarray(x).any(0) | np.asarray(y).any(0))
        if keys.size:
            out[i] = (max(-transpose, -int(keys[0])), min(transpose, NUM_KEYS - 1 - int(keys[-1])))
    return out


def frame_dataset(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], batch_size: int,
                  max_length: int, shuffle: bool = False, seed: int = 0, bucketing: bool = True,
                  fixed_length: bool = False, transpose: int = 0) -> tuple[Any, int]:
    """``(tf.data of (frames [B, T, 88] float32, targets [B, T, 88] with -1 at padding),
    batches per epoch)``, post-padded, bucketed by length like the token pipelines;
    ``transpose`` shifts each window by a fresh random number of semitones per epoch."""
    import tensorflow as tf

    from rnnzoo.data.pipeline import bucket_boundaries, count_batches

    lengths = np.array([len(x) for x in xs], dtype=np.int64)
    width = int(lengths.max())
    x_arr = np.zeros((len(xs), width, NUM_KEYS), np.uint8)
    y_arr = np.zeros((len(xs), width, NUM_KEYS), np.uint8)
    for i, (x, y) in enumerate(zip(xs, ys)):
        x_arr[i, : len(x)], y_arr[i, : len(y)] = x, y
    ranges = transpose_ranges(xs, ys, transpose)
    ds = tf.data.Dataset.from_tensor_slices((x_arr, y_arr, lengths, ranges))
    if shuffle:
        ds = ds.shuffle(len(xs), seed=seed, reshuffle_each_iteration=True)

    # A generator whose state advances across elements and epochs (a seeded stateless op in a
    # map function would draw the same shift every time).
    rng = tf.random.Generator.from_seed(seed) if transpose else None

    def window(x: Any, y: Any, n: Any, shifts: Any) -> tuple[Any, Any]:
        x, y = tf.cast(x[:n], tf.float32), tf.cast(y[:n], tf.float32)
        if rng is not None:  # a roll along the keys: no note wraps, the range was checked
            k = rng.uniform([], shifts[0], shifts[1] + 1, dtype=tf.int32)
            x, y = tf.roll(x, k, axis=1), tf.roll(y, k, axis=1)
        return x, y

    ds = ds.map(window)
    pad = (tf.constant(0.0), tf.constant(-1.0))
    if fixed_length or not bucketing:
        shape = [max_length if fixed_length else None, NUM_KEYS]
        ds = ds.padded_batch(batch_size, padded_shapes=(shape, shape), padding_values=pad)
    else:
        bounds = bucket_boundaries(max_length)
        ds = ds.bucket_by_sequence_length(
            element_length_func=lambda x, y: tf.shape(x)[0], bucket_boundaries=bounds,
            bucket_batch_sizes=[batch_size] * (len(bounds) + 1),
            padded_shapes=([None, NUM_KEYS], [None, NUM_KEYS]), padding_values=pad)
    n_batches = count_batches(lengths, batch_size, max_length, bucketing, fixed_length)
    ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    options = tf.data.Options()
    options.autotune.enabled = False  # measured to stall at the end of fit() on these machines
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.prefetch(2).with_options(options), n_batches


TASK_CLASS = MusicGenerationTask
RUNTIME_CLASS = MusicGeneratorRuntime
