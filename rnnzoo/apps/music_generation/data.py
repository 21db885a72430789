"""Music generation data: piano rolls, their readers and writers (MIDI, PNG, WAV). TF-free.

A piece is a binary piano roll ``[T, 88]`` (keys MIDI 21-108, one row per time step, quantised to
``steps_per_quarter``).

Data layouts (``load_music``): a Boulanger-Lewandowski ``.mat`` file (``traindata``/``validdata``/
``testdata`` cells of ``[T, 88]`` rolls), a JSON file ``{"train"|"valid"|"test": [piece, ...]}``
whose pieces are lists of steps, each a list of MIDI pitches (``jsb-chorales-quarter.json``), or
a MIDI file / folder of MIDI files (read with pretty_midi). MIDI, plotting and audio imports
happen inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import wave
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rnnzoo.config import rule
from rnnzoo.data.splits import HeldOutFractions, Splits
from rnnzoo.errors import DataError, short_repr
from rnnzoo.extras import require_module
from rnnzoo.io.inputs import midi_within_limits

NUM_KEYS = 88
LOWEST_PITCH = 21  # A0; key k is MIDI pitch 21 + k
HIGHEST_PITCH = LOWEST_PITCH + NUM_KEYS - 1  # C8 = 108
MIDI_SUFFIXES = (".mid", ".midi")
ASSET_FILE = "music.json"
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
class DataConfig(HeldOutFractions):
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
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{where}: expected a binary piano roll (0/1 values), found dtype "
                        f"{arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        step, key = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{where}: step {step}, key {key} (MIDI {LOWEST_PITCH + key}) is "
                        f"{arr[step, key].item()!r}; expected a binary piano roll (0/1 values)")
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
    # Length in seconds and frames from the event times, before pretty_midi builds its tick
    # table and this function a roll (rnnzoo.limits: a tiny file can hold hour-long notes).
    midi = midi_within_limits(path, steps_per_quarter)
    try:
        pm = (pretty_midi.PrettyMIDI(mido_object=midi) if "mido_object" in
              inspect.signature(pretty_midi.PrettyMIDI).parameters
              else pretty_midi.PrettyMIDI(str(path)))
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


def wav_bytes(roll: np.ndarray, qpm: float = DEFAULT_QPM, steps_per_quarter: int = 1,
              sample_rate: int = 22050) -> bytes:
    """16-bit mono WAV file contents of :func:`synthesize` (stdlib ``wave``)."""
    import io

    signal = synthesize(roll, qpm, steps_per_quarter, sample_rate)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes((signal * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def write_wav(roll: np.ndarray, path: str | os.PathLike, qpm: float = DEFAULT_QPM,
              steps_per_quarter: int = 1, sample_rate: int = 22050) -> Path:
    """16-bit mono WAV of :func:`synthesize`, written atomically."""
    data = wav_bytes(roll, qpm, steps_per_quarter, sample_rate)
    path, tmp = _atomic_target(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _short(value: Any, limit: int = 120) -> str:
    return short_repr(value, limit)
