"""Speech recognition data: WAV reading, log-mel features, the dataset layouts, the preprocessor.

Audio is read as WAV (``scipy.io.wavfile``: 8/16/24/32-bit PCM or float, any channel count,
mixed down to mono, resampled to the model's rate with a polyphase filter), turned into log-mel
frames by :func:`log_mel` (numpy only, librosa-compatible: the test compares them) and
normalised with per-band statistics of the training data (:class:`SpeechPreprocessor`).

Data layouts (``load_speech``):

* the Free Spoken Digit Dataset folder (``recordings/{digit}_{speaker}_{index}.wav``): spoken
  digit *strings* of 1-7 utterances joined by short random silences with random gains, built
  deterministically from ``data.string_seed``. Official split: test strings only from the test
  recordings (index 0-4), dev from index 5-9, train from 10-49; ``held_out_speaker`` instead
  keeps one speaker for the test strings only. The isolated test recordings are scored too.
* a folder of WAV files with ``transcripts.tsv`` (``file<TAB>text`` per line, paths relative to
  the folder), any alphabet (learned from the training transcripts unless ``data.alphabet`` is
  set); dev/test are seeded fractions of the lines.

What is not speech-specific (label ids, the alphabet check, scores, padded CTC batches) is in
``rnnzoo.engines.ctc``. TF-free.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rnnzoo import limits
from rnnzoo.config import rule
from rnnzoo.data.splits import HeldOutFractions, Splits
from rnnzoo.engines.ctc import check_alphabet, decode_labels, encode_labels, read_transcript_lines
from rnnzoo.errors import DataError, short_repr
from rnnzoo.io import read_json
from rnnzoo.io.inputs import check_finite, wav_seconds

ASSET_FILE = "speech.json"
ASSET_FORMAT = "rnnzoo.speech_preprocessor.v1"
TRANSCRIPTS = "transcripts.tsv"
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
DIGITS = "0123456789"
CONVERT_HINT = "convert it, e.g. ffmpeg -i INPUT -ac 1 -ar 8000 -c:a pcm_s16le OUTPUT.wav"


@dataclasses.dataclass
class DataConfig(HeldOutFractions):
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
        """Cross-field rules (the held-out fractions: ``HeldOutFractions``)."""
        problems = []
        if self.min_digits > self.max_digits:
            problems.append(f"max_digits: must be >= min_digits ({self.min_digits}), found "
                            f"{self.max_digits}")
        if self.fmax and self.fmax > self.sample_rate / 2:
            problems.append(f"fmax: must be <= sample_rate / 2 = {self.sample_rate / 2:g}, "
                            f"found {self.fmax:g}")
        problems += HeldOutFractions.check(self)
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
    check_finite(audio, where, dtype=None, axes=("sample",))
    return audio


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``audio`` at ``rate`` Hz resampled to ``target`` Hz (scipy's polyphase filter)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1:
        raise DataError(f"sample_rate: expected an integer >= 1 (Hz), found {_short(rate)}")
    limits.check("max_audio_seconds", round(len(audio) / rate, 3), "seconds of audio")
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
    seconds = wav_seconds(path)  # from the header, before the samples are read
    if seconds is not None:
        limits.check("max_audio_seconds", round(seconds, 3), f"{path}: seconds of audio")
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
    # False: frames centred on every hop (librosa's center=True; they read 12.5 ms ahead).
    # True: frame t is the window that *ends* at sample (t + 1) * hop_length, so it can be
    # computed as soon as that sample arrives (streaming; files saved before this field
    # existed read as False).
    causal: bool = False

    @classmethod
    def from_config(cls, d: DataConfig, causal: bool = False) -> FeatureParams:
        win = int(round(d.sample_rate * d.win_ms / 1000))
        hop = max(1, int(round(d.sample_rate * d.hop_ms / 1000)))
        n_fft = 1 << max(0, (win - 1).bit_length())
        return cls(d.sample_rate, d.n_mels, n_fft, win, hop, float(d.fmin),
                   float(d.fmax or d.sample_rate / 2), bool(causal))


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


def _window_and_filters(params: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """The Hann window (``n_fft`` long, the ``win_length`` window centred in it) and the mel
    filters of ``params``, built once."""
    from scipy.signal import get_window

    if params not in _FILTERS:
        window = np.zeros(params.n_fft)
        lpad = (params.n_fft - params.win_length) // 2
        window[lpad:lpad + params.win_length] = get_window("hann", params.win_length,
                                                          fftbins=True)
        _FILTERS[params] = (window, mel_filterbank(params.sample_rate, params.n_fft,
                                                   params.n_mels, params.fmin, params.fmax))
    return _FILTERS[params]


def _log_mel_of_frames(frames: np.ndarray, window: np.ndarray, n_fft: int,
                       filters: np.ndarray) -> np.ndarray:
    """float32 ``log(mel power + 1e-6)`` of windowed frames, one row at a time through the same
    FFT and dot products whatever the row count, so a frame computed in a chunk is bitwise the
    frame computed with the whole signal."""
    if not len(frames):
        return np.zeros((0, filters.shape[0]), np.float32)
    spec = np.abs(np.fft.rfft(frames * window, n=n_fft, axis=-1)) ** 2
    mel = np.einsum("tf,mf->tm", spec, filters, optimize=False)
    return np.log(mel + 1e-6).astype(np.float32)


def log_mel(audio: np.ndarray, params: FeatureParams) -> np.ndarray:
    """float32 ``[frames, n_mels]`` natural-log mel power spectrogram (+1e-6).

    Centred framing (``params.causal`` False): frames centred every ``hop_length`` samples
    (``1 + n // hop`` frames, zero padding at the edges), what
    ``log(librosa.feature.melspectrogram(..., center=True, pad_mode="constant") + 1e-6)``
    computes. Causal framing: ``n // hop`` frames, frame t the window ending at sample
    ``(t + 1) * hop`` (zeros before the start), exactly what :class:`CausalLogMel` yields
    chunk by chunk. One function for training, Keras inference and the runtime."""
    if params.causal:
        return CausalLogMel(params).frames(np.asarray(audio, np.float32))
    window, filters = _window_and_filters(params)
    x = np.asarray(audio, dtype=np.float64)
    half = params.n_fft // 2
    x = np.pad(x, (half, half))
    n_frames = 1 + (len(x) - params.n_fft) // params.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(x, params.n_fft)[::params.hop_length]
    spec = np.abs(np.fft.rfft(frames[:n_frames] * window, axis=-1)) ** 2
    return np.log(spec @ filters.T + 1e-6).astype(np.float32)


class CausalLogMel:
    """Causal log-mel frames of audio that arrives in pieces: frame t is the ``win_length``
    window ending at sample ``(t + 1) * hop_length``, so it is complete once that sample has
    arrived; no frame reads ahead. ``frames(chunk, tail, seen)`` returns the frames the chunk
    completes and the new ``tail`` (the last ``win_length`` samples, zeros before the start):
    the stream's feature state with ``seen``, the sample count. Feeding a signal in any pieces
    gives bitwise the frames of ``log_mel`` on the whole signal (the partial last hop waits for
    more samples, as the whole signal drops it)."""

    def __init__(self, params: FeatureParams) -> None:
        self.params = params
        window, self.filters = _window_and_filters(params)
        lpad = (params.n_fft - params.win_length) // 2
        self.window = window[lpad:lpad + params.win_length]  # the Hann window itself

    def initial_tail(self, batch: int | None = None) -> np.ndarray:
        shape = (self.params.win_length,) if batch is None else (batch, self.params.win_length)
        return np.zeros(shape, np.float32)

    def frames(self, chunk: np.ndarray, tail: np.ndarray | None = None, seen: int = 0
               ) -> np.ndarray:
        """The frames completed by ``chunk`` after ``seen`` samples whose last ``win_length``
        are ``tail`` (zeros: the start of a signal)."""
        return self.advance(chunk, tail, seen)[0]

    def advance(self, chunk: np.ndarray, tail: np.ndarray | None = None, seen: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
        """``(frames [k, n_mels] float32, new tail)`` for one signal's next ``chunk``."""
        p = self.params
        win, hop = p.win_length, p.hop_length
        tail = self.initial_tail() if tail is None else np.asarray(tail, np.float32)
        buf = np.concatenate([tail, np.asarray(chunk, np.float32)])
        # buf[i] is sample seen - win + i; frame t ends at sample (t + 1) * hop.
        first, end = seen // hop, (seen + len(chunk)) // hop
        starts = np.arange(first, end) * hop + hop - seen  # buf index of each frame's start
        idx = starts[:, None] + np.arange(win)[None, :]
        frames = buf.astype(np.float64)[idx]
        return (_log_mel_of_frames(frames, self.window, p.n_fft, self.filters),
                buf[len(buf) - win:].copy())


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
        return self.compose(sample_rate)[0]

    def segments(self, sample_rate: int) -> list[tuple[int, int]]:
        """``(start, end)`` sample of each utterance in :meth:`audio` (the end exclusive):
        where each digit begins and ends, for measuring a streaming recognizer's latency."""
        return self.compose(sample_rate)[1]

    def compose(self, sample_rate: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """The string's audio and each utterance's ``(start, end)`` sample in it."""
        rng = np.random.default_rng(self.seed)
        gap = int(self.max_gap_s * sample_rate)
        pieces = [np.zeros(int(rng.integers(0, gap // 2 + 1)), np.float32)]
        bounds = []
        at = len(pieces[0])
        for k, i in enumerate(self.ids):
            gain = 10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0)
            pieces.append(self.bank.audio(i, sample_rate) * np.float32(gain))
            bounds.append((at, at + len(pieces[-1])))
            at += len(pieces[-1])
            if k + 1 < len(self.ids):
                pieces.append(np.zeros(int(rng.integers(gap // 5, gap + 1)), np.float32))
                at += len(pieces[-1])
        pieces.append(np.zeros(int(rng.integers(0, gap // 2 + 1)), np.float32))
        audio = np.concatenate(pieces)
        noise = 10.0 ** (rng.uniform(-70.0, -50.0) / 20.0)
        audio = audio + rng.normal(0.0, noise, size=audio.shape).astype(np.float32)
        return np.clip(audio, -1.0, 1.0), bounds


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
    out = []
    for n, audio, text in read_transcript_lines(path):
        if not audio.is_file():
            raise DataError(f"{path}, line {n}: no such audio file {audio}")
        out.append(FileExample(audio, text))
    return out


def load_folder(path: Path, d: DataConfig, seed: int) -> SpeechData:
    """A folder with ``transcripts.tsv``, split into seeded dev/test fractions."""
    tsv = path / TRANSCRIPTS if path.is_dir() else path
    examples = read_transcripts(tsv)
    n = len(examples)
    train, dev, test = d.hold_out(examples, seed)
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
        return self.normalise(log_mel(audio, self.params))

    def normalise(self, frames: np.ndarray) -> np.ndarray:
        """Log-mel frames normalised with the training set's per-band statistics (the same for
        every utterance, so frames computed as audio arrives need nothing from the future)."""
        return ((frames - self.mean) / self.std).astype(np.float32)

    def encode(self, text: str) -> np.ndarray:
        return encode_labels(text, self.alphabet)

    def decode(self, ids: Sequence[int]) -> str:
        return decode_labels(ids, self.alphabet)

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


def tone_bursts(freqs: Sequence[float], rate: int, seconds: float = 0.2) -> np.ndarray:
    """Sine bursts of ``seconds`` each, 50 ms of silence after each (example inputs)."""
    t = np.arange(int(seconds * rate)) / rate
    gap = np.zeros(int(0.05 * rate))
    return np.concatenate([np.concatenate([0.3 * np.sin(2 * np.pi * f * t), gap])
                           for f in freqs]).astype(np.float32)
