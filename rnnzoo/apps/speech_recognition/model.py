"""Task type ``speech-recognition``: audio -> a label string, trained with CTC.

Audio is read as WAV (``scipy.io.wavfile``: 8/16/24/32-bit PCM or float, any channel count,
mixed down to mono, resampled to the model's rate with a polyphase filter), turned into log-mel
frames by :func:`log_mel` (numpy only, librosa-compatible: the test compares them) and
normalised with per-band statistics of the training data. The model maps
``features [B, T, n_mels]`` and a 0/1 frame ``mask [B, T]`` (the frame count of each row, so a
padded batch gives every row exactly what it gives alone) to per-frame log-probabilities
``log_probs [B, T', 1 + K]`` (class 0 is the CTC blank, 1..K the alphabet; ``T' = ceil(T /
stride)``, padded frames exact zeros). Decoding (best path or prefix beam search,
``rnnzoo.generation``) is numpy, shared by Keras and the onnxruntime runtime.

User call (Keras and runtime alike): ``transcribe(audio, beam_width=0)`` -> list of strings;
CLI verb ``rnnzoo transcribe NAME a.wav b.wav [--beam 8] [--plot out.png]``.

Data layouts (``load_data``):

* the Free Spoken Digit Dataset folder (``recordings/{digit}_{speaker}_{index}.wav``): spoken
  digit *strings* of 1-7 utterances joined by short random silences with random gains, built
  deterministically from ``data.string_seed``. Official split: test strings only from the test
  recordings (index 0-4), dev from index 5-9, train from 10-49; ``held_out_speaker`` instead
  keeps one speaker for the test strings only. The isolated test recordings are scored too.
* a folder of WAV files with ``transcripts.tsv`` (``file<TAB>text`` per line, paths relative to
  the folder), any alphabet (learned from the training transcripts unless ``data.alphabet`` is
  set); dev/test are seeded fractions of the lines.

This module is TF-free at import: the runtime half lives here.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from rnnzoo.config import EntryConfig, rule
from rnnzoo.data.batching import length_sorted_batches
from rnnzoo.data.splits import Splits
from rnnzoo.errors import ConfigError, DataError, RunDirError, short_repr
from rnnzoo.export.bundle import MODEL_FILE, BundleError, BundleRuntime, check_count
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.generation import ctc_greedy_decode, ctc_prefix_beam_search
from rnnzoo.io import atomic_write_text, read_json
from rnnzoo.metrics import label_error_rate
from rnnzoo.task import Task

ASSET_FILE = "speech.json"
ASSET_FORMAT = "rnnzoo.speech_preprocessor.v1"
TRANSCRIPTS = "transcripts.tsv"
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
DIGITS = "0123456789"
CONVERT_HINT = "convert it, e.g. ffmpeg -i INPUT -ac 1 -ar 8000 -c:a pcm_s16le OUTPUT.wav"


@dataclasses.dataclass
class DataConfig:
    # Audio front end: every input is resampled to sample_rate; log-mel frames of win_ms every
    # hop_ms (Hann window, n_fft = next power of two), n_mels Slaney mel bands up to fmax.
    sample_rate: int = rule(8000, min=1000)
    n_mels: int = rule(40, min=1, max=256)
    win_ms: float = rule(25.0, gt=0)
    hop_ms: float = rule(10.0, gt=0)
    fmin: float = rule(20.0, min=0)
    fmax: float = rule(0.0, min=0)  # 0: sample_rate / 2
    # The label alphabet; empty: learned from the training transcripts (FSDD: the digits).
    alphabet: str = ""
    # FSDD digit strings: how many per split, their length range, the silences between and
    # around the utterances (seconds) and the per-utterance gain range (dB).
    train_strings: int = rule(3000, min=1)
    dev_strings: int = rule(200, min=0)
    test_strings: int = rule(500, min=1)
    min_digits: int = rule(1, min=1)
    max_digits: int = rule(7, min=1)
    max_gap_s: float = rule(0.25, min=0)
    gain_db: float = rule(6.0, min=0)
    # The strings are drawn from this seed, not the training seed: every model of a split is
    # scored on the same test strings.
    string_seed: int = rule(0, min=0)
    # A speaker never heard in training (FSDD: george, jackson, lucas, nicolas, theo,
    # yweweler): test strings and recordings are that speaker's, train/dev the others'.
    held_out_speaker: str = ""
    # User folders (transcripts.tsv): held-out fractions of the lines (seeded).
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    # Decoding used by evaluate (0: best path only; N: also prefix beam search of width N).
    beam_width: int = rule(8, min=0)

    def check(self) -> list[str]:
        problems = []
        if self.min_digits > self.max_digits:
            problems.append(f"max_digits: must be >= min_digits ({self.min_digits}), found "
                            f"{self.max_digits}")
        if self.fmax and self.fmax > self.sample_rate / 2:
            problems.append(f"fmax: must be <= sample_rate / 2 = {self.sample_rate / 2:g}, "
                            f"found {self.fmax:g}")
        if self.dev_fraction + self.test_fraction >= 1:
            problems.append("test_fraction: dev_fraction + test_fraction must be < 1")
        if len(set(self.alphabet)) != len(self.alphabet):
            problems.append(f"alphabet: repeated characters in {self.alphabet!r}")
        return problems


# -- audio ---------------------------------------------------------------------------------------


def _short(value: Any, limit: int = 120) -> str:
    return short_repr(value, limit)


def to_float_audio(data: np.ndarray, where: str) -> np.ndarray:
    """PCM or float samples ``[n]`` or ``[n, channels]`` as float32 mono in [-1, 1]."""
    data = np.asarray(data)
    if data.dtype == np.uint8:
        audio = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype == np.int16:
        audio = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:  # 24-bit (left-justified by scipy) and 32-bit PCM
        audio = (data.astype(np.float64) / 2.0**31).astype(np.float32)
    elif data.dtype.kind == "f":
        audio = data.astype(np.float32)
    else:
        raise DataError(f"{where}: unsupported sample type {data.dtype}; {CONVERT_HINT}")
    if audio.ndim == 2:
        audio = audio.mean(axis=1)  # mono mixdown
    if audio.ndim != 1:
        raise DataError(f"{where}: expected samples [n] or [n, channels], found shape "
                        f"{audio.shape}")
    if not audio.size:
        raise DataError(f"{where}: the audio is empty (0 samples)")
    if not np.isfinite(audio).all():
        raise DataError(f"{where}: the audio holds NaN or infinite samples")
    return audio


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``audio`` at ``rate`` Hz resampled to ``target`` Hz (scipy's polyphase filter)."""
    if rate == target:
        return audio
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), int(target))
    return resample_poly(audio, target // g, rate // g).astype(np.float32)


def read_wav(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """``(float32 mono samples, rate)`` of a WAV file, resampled to ``sample_rate`` when given.
    Anything that is not a readable, non-empty WAV file is a ``DataError`` naming the file."""
    from scipy.io import wavfile

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such audio file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unknown chunks: the samples are still read
            rate, data = wavfile.read(str(path))
    except Exception as exc:  # noqa: BLE001 - scipy raises ValueError, EOFError, struct errors
        raise DataError(f"{path}: not a WAV file that can be read ({_short(exc, 80)}); "
                        f"{CONVERT_HINT}") from None
    audio = to_float_audio(data, str(path))
    if sample_rate is not None:
        audio = resample(audio, int(rate), int(sample_rate))
        rate = int(sample_rate)
    return audio, int(rate)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """16-bit PCM mono WAV (test data, synthetic datasets)."""
    from scipy.io import wavfile

    path = Path(path)
    pcm = np.clip(np.round(np.asarray(audio) * 32767.0), -32768, 32767).astype(np.int16)
    wavfile.write(str(path), int(sample_rate), pcm)
    return path


# -- features ------------------------------------------------------------------------------------


class FeatureParams(NamedTuple):
    sample_rate: int
    n_mels: int
    n_fft: int
    win_length: int
    hop_length: int
    fmin: float
    fmax: float

    @classmethod
    def from_config(cls, d: DataConfig) -> FeatureParams:
        win = int(round(d.sample_rate * d.win_ms / 1000))
        hop = max(1, int(round(d.sample_rate * d.hop_ms / 1000)))
        n_fft = 1 << max(0, (win - 1).bit_length())
        return cls(d.sample_rate, d.n_mels, n_fft, win, hop, float(d.fmin),
                   float(d.fmax or d.sample_rate / 2))


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)),
                    m * (200.0 / 3))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                   fmax: float) -> np.ndarray:
    """``[n_mels, 1 + n_fft // 2]`` triangular filters, Slaney-normalised (equal area), the
    same matrix as ``librosa.filters.mel(htk=False, norm="slaney")``."""
    freqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


_FILTERS: dict[FeatureParams, tuple[np.ndarray, np.ndarray]] = {}


def log_mel(audio: np.ndarray, params: FeatureParams) -> np.ndarray:
    """float32 ``[frames, n_mels]`` natural-log mel power spectrogram (+1e-6), frames centred
    every ``hop_length`` samples (``1 + n // hop`` frames, zero padding at the edges): what
    ``log(librosa.feature.melspectrogram(..., center=True, pad_mode="constant") + 1e-6)``
    computes. One function for training, Keras inference and the runtime."""
    from scipy.signal import get_window

    if params not in _FILTERS:
        window = np.zeros(params.n_fft)
        lpad = (params.n_fft - params.win_length) // 2
        window[lpad:lpad + params.win_length] = get_window("hann", params.win_length,
                                                          fftbins=True)
        _FILTERS[params] = (window, mel_filterbank(params.sample_rate, params.n_fft,
                                                   params.n_mels, params.fmin, params.fmax))
    window, filters = _FILTERS[params]
    x = np.asarray(audio, dtype=np.float64)
    half = params.n_fft // 2
    x = np.pad(x, (half, half))
    n_frames = 1 + (len(x) - params.n_fft) // params.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(x, params.n_fft)[::params.hop_length]
    spec = np.abs(np.fft.rfft(frames[:n_frames] * window, axis=-1)) ** 2
    return np.log(spec @ filters.T + 1e-6).astype(np.float32)


# -- examples and data ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FileExample:
    """One audio file and its transcript (the user-folder layout, isolated FSDD recordings)."""

    path: Path
    text: str

    def audio(self, sample_rate: int) -> np.ndarray:
        return read_wav(self.path, sample_rate)[0]

    @property
    def source(self) -> str:
        return str(self.path)


@dataclasses.dataclass(frozen=True)
class StringExample:
    """A spoken digit string: utterances joined by silences, each with its own gain, under a
    faint noise floor; everything drawn from ``seed``, so the audio is rebuilt, never stored."""

    bank: UtteranceBank
    ids: tuple[int, ...]
    seed: int
    max_gap_s: float
    gain_db: float

    @property
    def text(self) -> str:
        return "".join(self.bank.texts[i] for i in self.ids)

    @property
    def source(self) -> str:
        return "+".join(self.bank.names[i] for i in self.ids)

    def audio(self, sample_rate: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        gap = int(self.max_gap_s * sample_rate)
        pieces = [np.zeros(int(rng.integers(0, gap // 2 + 1)), np.float32)]
        for k, i in enumerate(self.ids):
            gain = 10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0)
            pieces.append(self.bank.audio(i, sample_rate) * np.float32(gain))
            if k + 1 < len(self.ids):
                pieces.append(np.zeros(int(rng.integers(gap // 5, gap + 1)), np.float32))
        pieces.append(np.zeros(int(rng.integers(0, gap // 2 + 1)), np.float32))
        audio = np.concatenate(pieces)
        noise = 10.0 ** (rng.uniform(-70.0, -50.0) / 20.0)
        audio = audio + rng.normal(0.0, noise, size=audio.shape).astype(np.float32)
        return np.clip(audio, -1.0, 1.0)


class UtteranceBank:
    """The FSDD recordings, read once (21 MB of 16-bit audio) and kept per sample rate."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.files = list(files)
        self.names = [f.stem for f in self.files]
        parsed = [FSDD_NAME.match(f.name) for f in self.files]
        self.texts = [m.group(1) for m in parsed]
        self.speakers = [m.group(2) for m in parsed]
        self.indices = [int(m.group(3)) for m in parsed]
        self._audio: dict[int, list[np.ndarray]] = {}

    def audio(self, i: int, sample_rate: int) -> np.ndarray:
        if sample_rate not in self._audio:
            self._audio[sample_rate] = [read_wav(f, sample_rate)[0] for f in self.files]
        return self._audio[sample_rate][i]


@dataclasses.dataclass
class SpeechData(Splits):
    """Examples per split (objects with ``text`` and ``audio(rate)``); ``isolated`` holds the
    single FSDD test recordings (isolated-digit accuracy), ``alphabet`` the characters seen in
    the training transcripts (or the configured alphabet)."""

    kind = "speech data"

    train: list
    dev: list
    test: list
    description: str
    alphabet: str
    isolated: list = dataclasses.field(default_factory=list)


def digit_strings(bank: UtteranceBank, pool: Sequence[int], n: int, seed: int,
                  d: DataConfig) -> list[StringExample]:
    """``n`` strings of ``min_digits..max_digits`` utterances drawn (with replacement) from
    ``pool``, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    pool = np.asarray(sorted(pool))
    out = []
    for _ in range(n):
        k = int(rng.integers(d.min_digits, d.max_digits + 1))
        ids = tuple(int(i) for i in rng.choice(pool, size=k))
        out.append(StringExample(bank, ids, int(rng.integers(2**31)), d.max_gap_s, d.gain_db))
    return out


def is_fsdd_folder(path: Path) -> bool:
    folder = path / "recordings" if (path / "recordings").is_dir() else path
    return path.is_dir() and any(FSDD_NAME.match(f.name) for f in folder.glob("*.wav"))


def load_fsdd(path: Path, d: DataConfig) -> SpeechData:
    """Digit strings from the FSDD recordings: the official split (test = recordings 0-4,
    dev = 5-9, train = 10-49) or, with ``held_out_speaker``, one speaker for testing only
    (dev = the other speakers' recordings 0-4)."""
    folder = path / "recordings" if (path / "recordings").is_dir() else path
    files = sorted(f for f in folder.glob("*.wav") if FSDD_NAME.match(f.name))
    bank = UtteranceBank(files)
    speakers = sorted(set(bank.speakers))
    everyone = range(len(files))
    if d.held_out_speaker:
        if d.held_out_speaker not in speakers:
            raise DataError(f"held_out_speaker: {d.held_out_speaker!r} is not a speaker of "
                            f"{folder} ({', '.join(speakers)})")
        test = [i for i in everyone if bank.speakers[i] == d.held_out_speaker]
        rest = [i for i in everyone if bank.speakers[i] != d.held_out_speaker]
        dev = [i for i in rest if bank.indices[i] < 5]
        train = [i for i in rest if bank.indices[i] >= 5]
        how = f"speaker {d.held_out_speaker} held out (test), others: dev index 0-4, train 5-49"
    else:
        test = [i for i in everyone if bank.indices[i] < 5]
        dev = [i for i in everyone if 5 <= bank.indices[i] < 10]
        train = [i for i in everyone if bank.indices[i] >= 10]
        how = "official split: test index 0-4, dev 5-9, train 10-49"
    if not train or not test:
        raise DataError(f"{folder}: {len(train)} training and {len(test)} test recordings; "
                        "the FSDD layout needs both (index 0-4 is the test set)")
    s = d.string_seed
    data = SpeechData(
        train=digit_strings(bank, train, d.train_strings, s * 3 + 1, d),
        dev=digit_strings(bank, dev, d.dev_strings, s * 3 + 2, d) if dev else [],
        test=digit_strings(bank, test, d.test_strings, s * 3 + 3, d),
        description=(f"FSDD digit strings ({d.min_digits}-{d.max_digits} digits, seed {s}; "
                     f"{how}; {len(files)} recordings)"),
        alphabet=d.alphabet or DIGITS,
        isolated=[FileExample(files[i], bank.texts[i]) for i in test])
    return data


def read_transcripts(path: Path) -> list[FileExample]:
    """The lines of ``transcripts.tsv``: ``file<TAB>text``, files relative to its folder."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip():
            raise DataError(f"{path}, line {n}: expected 'file<TAB>text', found "
                            f"{_short(line, 60)}")
        file, text = parts[0].strip(), parts[1].strip()
        if not text:
            raise DataError(f"{path}, line {n}: empty transcript for {file}")
        audio = (path.parent / file)
        if not audio.is_file():
            raise DataError(f"{path}, line {n}: no such audio file {audio}")
        out.append(FileExample(audio, text))
    if not out:
        raise DataError(f"{path}: no transcripts (expected lines 'file<TAB>text')")
    return out


def check_alphabet(examples: Sequence[Any], alphabet: str, where: str) -> None:
    """Every transcript's characters are in ``alphabet``, or a DataError naming the first
    example that is not."""
    allowed = set(alphabet)
    for ex in examples:
        bad = sorted(set(ex.text) - allowed)
        if bad:
            raise DataError(f"{where}: {ex.source}: transcript {ex.text!r} has character(s) "
                            f"{''.join(bad)!r} outside the alphabet {alphabet!r}; fix the "
                            "transcript or set data.alphabet to include them")


def load_folder(path: Path, d: DataConfig, seed: int) -> SpeechData:
    """A folder with ``transcripts.tsv``, split into seeded dev/test fractions."""
    tsv = path / TRANSCRIPTS if path.is_dir() else path
    examples = read_transcripts(tsv)
    order = np.random.default_rng(seed).permutation(len(examples))
    n = len(examples)
    n_test = int(round(n * d.test_fraction)) if n > 2 else 0
    n_dev = int(round(n * d.dev_fraction)) if n > 2 else 0
    test = [examples[i] for i in order[:n_test]]
    dev = [examples[i] for i in order[n_test:n_test + n_dev]]
    train = [examples[i] for i in order[n_test + n_dev:]]
    alphabet = d.alphabet or "".join(sorted({c for ex in train for c in ex.text}))
    check_alphabet(train + dev + test, alphabet, str(tsv))
    return SpeechData(train, dev, test, f"{tsv}: {n} recordings, split by line (seed {seed})",
                      alphabet)


def load_speech(path: str | os.PathLike, d: DataConfig, seed: int) -> SpeechData:
    """Read a dataset, its layout detected: an FSDD folder or a folder with transcripts.tsv."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.name == TRANSCRIPTS or (path.is_dir() and (path / TRANSCRIPTS).is_file()):
        return load_folder(path, d, seed)
    if is_fsdd_folder(path):
        data = load_fsdd(path, d)
        check_alphabet(data.train[:1] + data.isolated, data.alphabet, str(path))
        return data
    raise DataError(f"{path}: unknown speech data layout; expected the Free Spoken Digit "
                    f"Dataset folder (recordings/{{digit}}_{{speaker}}_{{index}}.wav) or a "
                    f"folder of WAV files with {TRANSCRIPTS} (file<TAB>text per line)")


# -- preprocessor --------------------------------------------------------------------------------


class SpeechPreprocessor:
    """Audio -> normalised log-mel frames, and label ids <-> text. Fitted on the training data
    (the alphabet and the per-band mean/std of the log-mel frames)."""

    def __init__(self, params: FeatureParams, alphabet: str = "",
                 mean: np.ndarray | None = None, std: np.ndarray | None = None) -> None:
        self.params = params
        self.alphabet = alphabet
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.std = None if std is None else np.asarray(std, np.float32)

    @property
    def is_fitted(self) -> bool:
        return bool(self.alphabet) and self.mean is not None

    def fit(self, frames: Sequence[np.ndarray]) -> None:
        stacked = np.concatenate(list(frames)).astype(np.float64)
        self.mean = stacked.mean(axis=0).astype(np.float32)
        self.std = np.maximum(stacked.std(axis=0), 1e-3).astype(np.float32)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Normalised log-mel frames ``[T, n_mels]`` of mono audio at the model's rate."""
        return ((log_mel(audio, self.params) - self.mean) / self.std).astype(np.float32)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i + 1 for i, c in enumerate(self.alphabet)}
        return np.array([index[c] for c in text], dtype=np.int32)

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.alphabet[i - 1] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"format": ASSET_FORMAT, "alphabet": self.alphabet,
                           "features": self.params._asdict(),
                           "mean": None if self.mean is None else self.mean.tolist(),
                           "std": None if self.std is None else self.std.tolist()})

    @classmethod
    def from_file(cls, path: Path, error: type[Exception]) -> SpeechPreprocessor:
        raw = read_json(path, error, "save or export the model again")
        try:
            if raw.get("format") != ASSET_FORMAT:
                raise ValueError(f"format {raw.get('format')!r}")
            params = FeatureParams(**raw["features"])
            if raw["mean"] is None and raw["std"] is None and not raw["alphabet"]:
                return cls(params)  # a model saved before training: no alphabet or statistics
            mean = np.asarray(raw["mean"], np.float32)
            std = np.asarray(raw["std"], np.float32)
            if mean.shape != (params.n_mels,) or std.shape != (params.n_mels,) or \
                    not isinstance(raw["alphabet"], str) or not raw["alphabet"]:
                raise ValueError("statistics or alphabet of the wrong shape")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise error(f"{path}: not a speech preprocessor file ({_short(exc, 80)}); save "
                        "or export the model again") from None
        return cls(params, raw["alphabet"], mean, std)


# -- the user calls, written once over _log_probs_of (Keras or onnxruntime) ----------------------


def _as_audio_list(audio: Any) -> list:
    if isinstance(audio, (str, os.PathLike, np.ndarray)):
        return [audio]
    if isinstance(audio, (list, tuple)):
        if audio and all(isinstance(a, (int, float)) and not isinstance(a, bool)
                         for a in audio):
            return [np.asarray(audio, np.float32)]  # one signal given as a list of samples
        if not audio:
            raise DataError("transcribe: empty list of audio inputs")
        return list(audio)
    raise DataError(f"transcribe: expected a WAV path, a numpy signal or a list of them, found "
                    f"{type(audio).__name__}")


class _Recognizer(abc.ABC):
    """``transcribe`` and ``evaluate`` over ``_log_probs_of(features, mask)``."""

    preprocessor: SpeechPreprocessor
    frame_stride: int

    @abc.abstractmethod
    def _log_probs_of(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``log_probs [B, ceil(T / stride), 1 + K]`` of a post-padded feature batch."""

    @property
    def alphabet(self) -> str:
        return self.preprocessor.alphabet

    def load_audio(self, item: Any, sample_rate: int | None = None) -> np.ndarray:
        """Mono float32 samples at the model's rate: a WAV path, or a numpy signal at
        ``sample_rate`` (default: the model's)."""
        rate = self.preprocessor.params.sample_rate
        if isinstance(item, (str, os.PathLike)):
            return read_wav(item, rate)[0]
        if isinstance(item, (list, tuple)):
            item = np.asarray(item, np.float32)
        if not isinstance(item, np.ndarray):
            raise DataError(f"transcribe: expected a WAV path or a numpy signal, found "
                            f"{type(item).__name__}")
        audio = to_float_audio(item, "audio array")
        return resample(audio, int(sample_rate or rate), rate)

    def frame_log_probs(self, audio: Any, sample_rate: int | None = None,
                        batch_size: int = 32) -> list[np.ndarray]:
        """Per input, the ``[frames, 1 + K]`` log-probabilities of its valid frames (column 0
        is the blank)."""
        items = _as_audio_list(audio)
        feats = [self.preprocessor.features(self.load_audio(a, sample_rate)) for a in items]
        return self.log_probs_of_features(feats, batch_size)

    def log_probs_of_features(self, feats: Sequence[np.ndarray],
                              batch_size: int = 32) -> list[np.ndarray]:
        batch_size = check_count("batch_size", batch_size)
        s = self.frame_stride
        out: list[Any] = [None] * len(feats)
        for idx, batch in length_sorted_batches(feats, batch_size, dtype=np.float32):
            lengths = np.array([len(feats[i]) for i in idx])
            mask = (np.arange(batch.shape[1])[None, :] < lengths[:, None]).astype(np.float32)
            lp = np.asarray(self._log_probs_of(batch, mask))
            for row, i in enumerate(idx):
                out[i] = lp[row, : -(-int(lengths[row]) // s)]
        return out

    def decode(self, log_probs: np.ndarray, beam_width: int = 0) -> str:
        """A transcript from ``[frames, 1 + K]`` log-probabilities: best path, or prefix beam
        search with ``beam_width`` >= 1."""
        if beam_width:
            ids = ctc_prefix_beam_search(log_probs, beam_width)[0][0]
        else:
            ids = ctc_greedy_decode(log_probs)
        return self.preprocessor.decode(ids)

    def transcribe(self, audio: Any, beam_width: int = 0, sample_rate: int | None = None,
                   batch_size: int = 32) -> list[str]:
        """Transcripts of WAV files (paths) or numpy signals (at ``sample_rate``, default the
        model's), one string per input: best-path decoding, or CTC prefix beam search of
        width ``beam_width``."""
        if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) \
                or beam_width < 0:
            raise ConfigError(f"beam_width: expected an integer >= 0 (0: best path), found "
                              f"{_short(beam_width)}")
        return [self.decode(lp, int(beam_width))
                for lp in self.frame_log_probs(audio, sample_rate, batch_size)]

    def evaluate(self, audio: Any, references: Sequence[str], beam_width: int = 0,
                 sample_rate: int | None = None) -> dict:
        """Label error rate and string accuracy of the transcripts of ``audio`` (as for
        :meth:`transcribe`) against ``references`` (one transcript per input; spaces ignored,
        as the digit alphabet has none). The same call on the Keras task and the runtime."""
        if isinstance(references, str):
            references = [references]
        hyps = self.transcribe(audio, beam_width, sample_rate)
        refs = ["".join(str(r).split()) for r in references]
        if len(refs) != len(hyps):
            raise DataError(f"evaluate: {len(hyps)} audio inputs but {len(refs)} references; "
                            "pass one reference transcript per input")
        unknown = sorted({c for r in refs for c in r} - set(self.preprocessor.alphabet))
        if unknown:
            raise DataError(f"evaluate: reference characters {''.join(unknown)!r} are not in "
                            f"this model's alphabet {self.preprocessor.alphabet!r}")
        report = label_error_rate(refs, hyps)
        report["examples"] = [{"ref": r, "hyp": h} for r, h in zip(refs[:5], hyps[:5])]
        return report

    def evaluate_examples(self, examples: Sequence[Any], beam_width: int = 0,
                          isolated: Sequence[Any] = ()) -> dict:
        """Label error rate and string accuracy on ``examples`` (``text`` and ``audio(rate)``);
        isolated-word accuracy on ``isolated`` when given."""
        rate = self.preprocessor.params.sample_rate
        feats = [self.preprocessor.features(ex.audio(rate)) for ex in examples]
        hyps = [self.decode(lp, beam_width) for lp in self.log_probs_of_features(feats)]
        report = label_error_rate([ex.text for ex in examples], hyps)
        if isolated:
            feats = [self.preprocessor.features(ex.audio(rate)) for ex in isolated]
            single = [self.decode(lp, beam_width) for lp in self.log_probs_of_features(feats)]
            report["isolated_accuracy"] = float(np.mean([h == ex.text for h, ex
                                                         in zip(single, isolated)]))
            report["isolated_recordings"] = len(isolated)
        report["examples"] = [{"ref": ex.text, "hyp": h} for ex, h in
                              zip(list(examples)[:5], hyps[:5])]
        return report


def plot_transcription(features: np.ndarray, log_probs: np.ndarray, labels: Sequence[str],
                       path: str | os.PathLike, title: str = "", stride: int = 1) -> Path:
    """The log-mel spectrogram over the per-frame label probabilities (blank first), one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnnzoo.io import save_figure

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    top.imshow(features.T, origin="lower", aspect="auto", cmap="magma",
               extent=(0, len(features), 0, features.shape[1]))
    top.set_ylabel("mel band")
    top.set_title(title)
    probs = np.exp(log_probs).T
    bottom.imshow(probs, origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1,
                  interpolation="nearest", extent=(0, len(log_probs) * stride, -0.5,
                                                   len(labels) - 0.5))
    bottom.set_yticks(range(len(labels)), labels)
    bottom.set_ylabel("label")
    bottom.set_xlabel("input frame (10 ms)")
    fig.tight_layout()
    return save_figure(fig, path)


# -- the Keras task ------------------------------------------------------------------------------


def ctc_batches(feats: Sequence[np.ndarray], labels: Sequence[np.ndarray], batch_size: int,
                shuffle: bool, seed: int) -> tuple[Any, int]:
    """``(tf.data of ((features [B, T, F], mask [B, T]), labels [B, L] padded with -1),
    batches per epoch)``: utterances of similar length batched together (sorted with a fresh
    jitter and batch order every epoch when ``shuffle``)."""
    import tensorflow as tf

    n_batches = -(-len(feats) // batch_size)
    lengths = np.array([len(f) for f in feats], dtype=np.float64)
    n_mels = feats[0].shape[1]
    epoch = [0]

    def batches() -> Iterator[tuple[tuple[np.ndarray, np.ndarray], np.ndarray]]:
        rng = np.random.default_rng(seed + epoch[0])
        epoch[0] += 1
        key = lengths * (rng.uniform(0.9, 1.1, len(lengths)) if shuffle else 1.0)
        order = np.argsort(key, kind="stable")
        groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        if shuffle:
            rng.shuffle(groups)
        for idx in groups:
            width = int(lengths[idx].max())
            x = np.zeros((len(idx), width, n_mels), np.float32)
            m = np.zeros((len(idx), width), np.float32)
            y = np.full((len(idx), max(len(labels[i]) for i in idx)), -1, np.int32)
            for row, i in enumerate(idx):
                x[row, : len(feats[i])] = feats[i]
                m[row, : len(feats[i])] = 1.0
                y[row, : len(labels[i])] = labels[i]
            yield (x, m), y

    sig = ((tf.TensorSpec([None, None, n_mels], tf.float32),
            tf.TensorSpec([None, None], tf.float32)), tf.TensorSpec([None, None], tf.int32))
    ds = tf.data.Dataset.from_generator(batches, output_signature=sig)
    ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    return ds.prefetch(2), n_batches


class SpeechRecognitionTask(_Recognizer, Task):
    """Keras side of a CTC recognizer; a family adds ``build_model`` (inputs ``features`` and
    ``mask``, output ``log_probs`` from :class:`rnnzoo.layers.ctc.MaskedLogSoftmax`) and
    ``frame_stride``."""

    task_type = "speech-recognition"
    verb = "transcribe"
    metric_directions = {"loss": "min", "ler": "min", "string_accuracy": "max",
                         "isolated_accuracy": "max"}
    head_layers = ("logits",)

    def new_preprocessor(self) -> SpeechPreprocessor:
        return SpeechPreprocessor(FeatureParams.from_config(self.config.data),
                                  self.config.data.alphabet)

    def save_assets(self, directory: Path) -> None:
        atomic_write_text(directory / ASSET_FILE, self.preprocessor.to_json() + "\n")

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> SpeechPreprocessor:
        pre = SpeechPreprocessor.from_file(directory / ASSET_FILE, RunDirError)
        if pre.is_fitted and len(pre.alphabet) != config.model.num_labels:
            raise RunDirError(f"{directory / ASSET_FILE}: alphabet of {len(pre.alphabet)} "
                              f"labels, but the model has num_labels={config.model.num_labels}")
        return pre

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[Any, np.ndarray]:
        rng = np.random.default_rng(seed)
        time = 24
        x = rng.normal(0, 1, (batch_size, time, self.config.data.n_mels)).astype(np.float32)
        lengths = rng.integers(1, time + 1, size=batch_size)
        lengths[0] = time
        if batch_size > 1:
            lengths[1] = 1
        mask = (np.arange(time)[None, :] < lengths[:, None]).astype(np.float32)
        x *= mask[..., None]
        y = np.full((batch_size, 2), -1, np.int32)
        y[:, 0] = rng.integers(1, self.config.model.num_labels + 1, size=batch_size)
        return (x, mask), y

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> SpeechData:
        return load_speech(path, self.config.data, seed)

    def adapt(self, data: SpeechData) -> None:
        """Set the alphabet (checked against ``num_labels``) and fit the normalisation (unless
        fitted, as when fine-tuning)."""
        pre = self.preprocessor
        if not data.train:
            raise DataError(f"{data.description}: no training examples")
        alphabet = pre.alphabet if pre.is_fitted else data.alphabet
        check_alphabet(data.train + data.dev, alphabet, data.description)
        n = self.config.model.num_labels
        if len(alphabet) != n:
            raise DataError(f"{data.description}: the alphabet {alphabet!r} has {len(alphabet)} "
                            f"labels, but {self.name!r} is configured for num_labels={n}; pass "
                            f"--set num_labels={len(alphabet)}")
        if not pre.is_fitted:
            pre.alphabet = alphabet
            rate = pre.params.sample_rate
            sample = data.train[:: max(1, len(data.train) // 500)]
            pre.fit([log_mel(ex.audio(rate), pre.params) for ex in sample])
        self._feature_cache = {}

    def features_of(self, examples: Sequence[Any]) -> list[np.ndarray]:
        """Normalised features of ``examples``, computed once per list (training reads the
        same strings every epoch)."""
        cache = self.__dict__.setdefault("_feature_cache", {})
        key = id(examples)
        if key not in cache or cache[key][0] is not examples:
            rate = self.preprocessor.params.sample_rate
            cache[key] = (examples, [self.preprocessor.features(ex.audio(rate))
                                     for ex in examples])
        return cache[key][1]

    def datasets(self, data: SpeechData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        pre = self.preprocessor
        feats = self.features_of(data.train)
        train, steps = ctc_batches(feats, [pre.encode(ex.text) for ex in data.train],
                                   batch_size, shuffle=True, seed=seed)
        dev = None
        if data.dev:
            dev = ctc_batches(self.features_of(data.dev),
                              [pre.encode(ex.text) for ex in data.dev], batch_size,
                              shuffle=False, seed=seed)[0]
        return train, dev, steps

    def loss(self) -> Any:
        from rnnzoo.layers.ctc import CTCLoss

        return CTCLoss()

    # -- inference and evaluation ---------------------------------------------------------------
    @property
    def frame_stride(self) -> int:
        return int(getattr(self.config.model, "conv_stride", 1) or 1)

    def _log_probs_of(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.require_fitted()
        return self.keras_graphs().run("model", {"features": features,
                                                 "mask": mask})["log_probs"]

    def head_overrides(self, data: SpeechData) -> dict[str, Any]:
        """Another alphabet than the model's: a fresh output layer for it."""
        if data.alphabet == self.alphabet:
            return {}
        return {"num_labels": len(data.alphabet), "reset_head": True}

    def evaluate_data(self, data: SpeechData, split: str = "dev", limit: int | None = None,
                      beam_width: int = 0, **options: Any) -> dict:
        examples = data.split(split)[:limit]
        if not examples:
            raise DataError(f"{data.description}: the {split} split is empty")
        check_alphabet(examples, self.alphabet, data.description)
        isolated = data.isolated[:limit] if split == "test" else []
        report = self.evaluate_examples(examples, beam_width, isolated)
        report.update(split=split, data=data.description,
                      decoding=f"beam {beam_width}" if beam_width else "greedy")
        return report

    def evaluate_reports(self, data: Any, split: str, options: Any) -> list[dict]:
        """Best path and prefix beam search of width ``--beam`` of ``rnnzoo evaluate`` (declared
        by the translation task type), else ``data.beam_width``; 0: best path only."""
        limit = options.get("limit")
        beam = options.get("beam")
        beam = self.config.data.beam_width if beam is None else beam
        reports = [self.evaluate_data(data, split, limit=limit)]
        if beam:
            reports.append(self.evaluate_data(data, split, limit=limit, beam_width=beam))
        return reports

    def format_report(self, report: dict) -> str:
        lines = [f"label error rate {report['ler']:.2%}, string accuracy "
                 f"{report['string_accuracy']:.2%} ({report['num_strings']} strings, "
                 f"{report['reference_labels']} labels; {report['decoding']})"]
        if "isolated_accuracy" in report:
            lines.append(f"isolated recordings: accuracy {report['isolated_accuracy']:.2%} "
                         f"({report['isolated_recordings']})")
        for ex in report.get("examples", []):
            lines.append(f"  ref {ex['ref']:<10} hyp {ex['hyp']}")
        return "\n".join(lines)

    # -- export ---------------------------------------------------------------------------------
    def graph_specs(self) -> list[GraphSpec]:
        features = InputSpec("features", "features", ("batch", "time", self.config.data.n_mels))
        mask = InputSpec("mask", "mask", ("batch", "time"))
        return [GraphSpec("model", MODEL_FILE, self.model, [features, mask], ["log_probs"])]

    def export_preprocessing(self) -> dict:
        return {"speech": f"assets/{ASSET_FILE}", "frame_stride": self.frame_stride,
                "sample_rate": self.preprocessor.params.sample_rate,
                "num_labels": len(self.alphabet), "blank": 0}

    def compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes the recognizer: label error rate of both on ``eval_data``'s
        test strings (first 200) when given, else transcript agreement and log-probability
        drift on random features."""
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            examples = (data.test or data.dev or data.train)[:200]
            a = reference.evaluate_examples(examples)["ler"]
            b = candidate.evaluate_examples(examples)["ler"]
            return {"strings": len(examples), "ler_fp32": a, "ler_int8": b,
                    "summary": f"label error rate fp32 {a:.4f} -> int8 {b:.4f} on "
                               f"{len(examples)} strings"}
        rng = np.random.default_rng(0)
        feats = [rng.normal(0, 1, (n, self.config.data.n_mels)).astype(np.float32)
                 for n in (60, 23, 1)]
        la, lb = reference.log_probs_of_features(feats), candidate.log_probs_of_features(feats)
        drift = max(float(np.abs(x - y).max()) for x, y in zip(la, lb))
        agree = float(np.mean([reference.decode(x) == candidate.decode(y)
                               for x, y in zip(la, lb)]))
        return {"transcript_agreement": agree, "max_log_prob_drift": drift,
                "summary": f"transcript agreement {agree:.0%}, max log-prob drift {drift:.4f}"}

    def int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when its label error rate is at most 0.5 points above fp32's (or, without
        data, every transcript of the random inputs is the same)."""
        if "ler_int8" in comparison:
            if comparison["ler_int8"] > comparison["ler_fp32"] + 0.005:
                return "int8 label error rate more than 0.5 points above fp32's"
            return None
        if comparison.get("transcript_agreement", 0.0) < 1.0:
            return "int8 transcripts differ from fp32's on random inputs"
        return None

    @classmethod
    def example_inputs(cls) -> list:
        """Tone-burst signals described by their pitches (one at 16 kHz, resampled), built by
        :func:`tone_bursts` in ``example_outputs``."""
        return [{"tones": [500, 1500], "sample_rate": 8000, "beam": 0},
                {"tones": [1000], "sample_rate": 8000, "beam": 3},
                {"tones": [700, 2100, 700], "sample_rate": 16000, "beam": 0}]

    @classmethod
    def example_outputs(cls, model: Any, inputs: list) -> Any:
        out = []
        for item in inputs:
            rate = item["sample_rate"]
            audio = tone_bursts(item["tones"], rate)
            lp = model.frame_log_probs([audio], sample_rate=rate)[0]
            text = model.transcribe([audio], beam_width=item["beam"], sample_rate=rate)[0]
            out.append({"text": text, "frames": len(lp),
                        "first_frame": [float(v) for v in lp[0]]})
        return out

    # -- command line ---------------------------------------------------------------------------
    @classmethod
    def add_verb_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("files", nargs="+", help="WAV files to transcribe")
        parser.add_argument("--beam", type=int, default=0,
                            help="prefix beam search width (default 0: best path)")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
        parser.add_argument("--plot", metavar="PNG", help="write the spectrogram with the "
                            "per-frame label probabilities (one file: PNG; several: "
                            "PNG stem + _<n>)")

    @classmethod
    def run_verb(cls, model: Any, args: argparse.Namespace) -> int:
        files = list(args.files)
        rate = model.preprocessor.params.sample_rate
        audio = [read_wav(f, rate)[0] for f in files]  # every file checked before any output
        lps = model.frame_log_probs(audio)
        labels = ["blank", *model.alphabet]
        for k, (f, a, lp) in enumerate(zip(files, audio, lps)):
            text = model.decode(lp, args.beam)
            if args.json:
                print(json.dumps({"file": f, "text": text}, ensure_ascii=False))
            else:
                print(f"{text}\t{f}")
            if args.plot:
                plot = Path(args.plot)
                if len(files) > 1:
                    plot = plot.with_name(f"{plot.stem}_{k}{plot.suffix or '.png'}")
                plot_transcription(log_mel(a, model.preprocessor.params), lp, labels, plot,
                                   title=f"{Path(f).name}: {text!r}",
                                   stride=model.frame_stride)
                print(f"plot: {plot}", file=sys.stderr)
        return 0


def tone_bursts(freqs: Sequence[float], rate: int, seconds: float = 0.2) -> np.ndarray:
    """Sine bursts of ``seconds`` each, 50 ms of silence after each (example inputs)."""
    t = np.arange(int(seconds * rate)) / rate
    gap = np.zeros(int(0.05 * rate))
    return np.concatenate([np.concatenate([0.3 * np.sin(2 * np.pi * f * t), gap])
                           for f in freqs]).astype(np.float32)


class SpeechRecognizerRuntime(_Recognizer, BundleRuntime):
    """``transcribe(audio)`` for a speech bundle with onnxruntime, numpy and scipy only."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.preprocessor = SpeechPreprocessor.from_file(self.asset(ASSET_FILE), BundleError)
        self.frame_stride = self.setting("frame_stride", 1)
        self.name = self.entry

    def _log_probs_of(self, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.run("model", {"features": features, "mask": mask})["log_probs"]

    # -- rnnzoo serve (rnnzoo.serving) ------------------------------------------------------------
    serve_options: ClassVar[dict[str, Any]] = {"beam_width": 0}
    serve_demo: ClassVar[dict[str, Any]] = {"input": "audio", "example": None}

    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One ``{"text"}`` per instance: a WAV file in base64 (the string itself, or
        ``{"wav_base64": ...}``), or ``{"samples": [floats in -1..1], "sample_rate": R}``."""
        import base64
        import binascii
        import tempfile

        audio = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, item in enumerate(instances):
                where = f"instances[{i}]"
                if isinstance(item, Mapping) and set(item) <= {"samples", "sample_rate"} \
                        and "samples" in item:
                    rate = item.get("sample_rate", self.preprocessor.params.sample_rate)
                    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
                        raise DataError(f"{where}: sample_rate must be an integer >= 1, found "
                                        f"{short_repr(rate)}")
                    try:
                        samples = np.asarray(item["samples"], np.float32)
                    except (ValueError, TypeError):
                        raise DataError(f"{where}: samples must be a list of numbers") from None
                    if samples.ndim != 1 or not samples.size:
                        raise DataError(f"{where}: samples must be a non-empty flat list")
                    audio.append(self.load_audio(samples, rate))
                    continue
                if isinstance(item, Mapping) and set(item) == {"wav_base64"}:
                    item = item["wav_base64"]
                if not isinstance(item, str):
                    raise DataError(f"{where}: expected a base64 WAV file (a string or "
                                    '{"wav_base64": ...}) or {"samples": [...], '
                                    f'"sample_rate": R}}, found {short_repr(item, 60)}')
                try:
                    data = base64.b64decode(item, validate=True)
                except (binascii.Error, ValueError):
                    raise DataError(f"{where}: not base64") from None
                path = Path(tmp) / f"{i}.wav"
                path.write_bytes(data)
                try:
                    audio.append(read_wav(path, self.preprocessor.params.sample_rate)[0])
                except DataError as exc:  # name the instance, not the temporary file
                    raise DataError(f"{where}: {str(exc).replace(str(path) + ': ', '')}") \
                        from None
        return [{"text": t} for t in self.transcribe(audio, **dict(options))]


TASK_CLASS = SpeechRecognitionTask
RUNTIME_CLASS = SpeechRecognizerRuntime
