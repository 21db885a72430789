"""Music generation inference: ``generate``, ``frame_probabilities`` and ``nll`` written once
over both backends, and the onnxruntime model (``RUNTIME_CLASS``). TF-free.

The model predicts frame ``t`` from an all-zero *start frame* and frames ``< t`` with 88
independent sigmoids, so it both scores music (frame NLL, the published metric) and generates
it (Bernoulli per key, with temperature and a seed). User call (Keras and runtime alike):
``generate(steps, primer=, temperature=, seed=)``. Two graphs: ``model`` (frames ``[B, T, 88]``
float32 -> ``logits [B, T, 88]``, for scoring) and ``decoder`` (one step: ``frame`` int32
multi-hot ``[B, 88]`` and the recurrent states -> ``logits``, ``new_<state>``), driven by the
primed sampling loop of ``rnnzoo.engines.primed`` (the one the character language models use)
over ``rnnzoo.engines.decoding.graph_step``, so the Keras model and the onnxruntime bundle share
it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnzoo import limits
from rnnzoo.apps.music_generation import nade
from rnnzoo.apps.music_generation.data import (
    NUM_KEYS,
    MusicPreprocessor,
    _check_roll,
    pitches_to_roll,
    read_midi,
    roll_to_pitches,
    wav_bytes,
    write_midi,
)
from rnnzoo.data.batching import length_sorted_batches
from rnnzoo.engines.decoding import StepFn
from rnnzoo.engines.primed import (
    BundleStates,
    PrimedGenerator,
    check_seed,
    generation_request,
    iter_primed,
    prime_steps,
    sample_primed,
)
from rnnzoo.errors import ConfigError, DataError
from rnnzoo.export.bundle import BundleRuntime
from rnnzoo.progress import Progress, model_label, reporting

DEFAULT_STEPS = 64


def frame_nll(logits: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Negative log-likelihood in nats of each frame: binary cross-entropy summed over the 88
    keys, from logits (``softplus(z) - y z``, exact where sigmoid probabilities round to 0/1)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(frames, dtype=np.float64)
    return (np.logaddexp(0.0, z) - y * z).sum(axis=-1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def sample_keys(logits: np.ndarray, temperature: float, rng: np.random.Generator,
                top_p: float = 1.0) -> np.ndarray:
    """One Bernoulli draw per key from ``sigmoid(logits / temperature)`` (int32 0/1);
    ``temperature=0`` keeps the keys with probability > 0.5; ``top_p < 1``: a key whose likelier
    outcome has probability >= ``top_p`` takes it (``nade.choose_keys``). A uniform number is
    drawn per key at every temperature, so the random stream (and a seed's output) is the same
    for Keras and the runtime."""
    u = rng.random(np.shape(logits))
    return nade.choose_keys(logits, u, temperature, top_p)


def sample_frames(step: StepFn, state: dict, feed: np.ndarray, steps: int, temperature: float,
                  rng: np.random.Generator) -> np.ndarray:
    """The primed generation loop over a ``graph_step`` step function: feed the ``[B, P, 88]``
    frames (start frame and primer) one at a time, then sample ``steps`` frames, each fed back
    (``rnnzoo.engines.primed``). Returns int32 ``[B, steps, 88]``."""
    logits, state = prime_steps(step, state, feed)
    return sample_primed(step, state, logits, steps,
                         lambda z, rng: sample_keys(z, temperature, rng), rng)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_top_p(value: Any) -> float:
    """``top_p``: None (off, 1.0) or a number in (0, 1]."""
    if value is None:
        return 1.0
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0 < value <= 1:
        raise DataError(f"top_p: expected a number in (0, 1] (per key: a key whose likelier "
                        f"outcome has at least this probability takes it; 1 = off), got "
                        f"{value!r}")
    return float(value)


def _check_temperature(value: Any) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise DataError(f"temperature: expected a number >= 0 (1 = the model's probabilities, "
                        f"0 = the most likely frame), got {value!r}")
    return float(value)


class _MusicGenerator(PrimedGenerator):
    """``generate``, ``frame_probabilities`` and ``nll``, written once over a
    :class:`GraphRunner` (Keras graphs or an onnxruntime bundle)."""

    preprocessor: MusicPreprocessor

    def _nade_weights(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(W, V)`` of a NADE model (``frame_distribution == "nade"``), else None."""
        return None

    def _chooser(self, temperature: float, top_p: float) -> Any:
        """``choose(logits, rng)`` for the primed sampling loop: 88 independent draws, or
        key by key through the NADE; one uniform per key either way."""
        weights = self._nade_weights()
        if weights is None:
            return lambda z, rng: sample_keys(z, temperature, rng, top_p)
        w, v = weights
        return lambda z, rng: nade.sample(z, w, v, temperature, top_p, rng)

    def _key_probabilities(self, logits: np.ndarray) -> np.ndarray:
        """The next-frame key probabilities ``step`` reports: the 88 sigmoids, or for a NADE
        each key's probability given the keys below it in the most likely frame."""
        weights = self._nade_weights()
        if weights is None:
            return _sigmoid(logits).astype(np.float32)
        return nade.greedy_probabilities(logits, *weights)

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

    def _logits(self, pieces: Sequence[np.ndarray], batch_size: int = 32,
                progress: Progress | None = None) -> list[np.ndarray]:
        """For each piece, ``[T, 88]`` logits of frame t given the start frame and frames < t
        (one ``model`` graph call per batch of similar lengths; ``progress`` counts pieces)."""
        runner = self._runner()
        inputs = [np.concatenate([np.zeros((1, NUM_KEYS), np.float32),
                                  np.asarray(p[:-1], np.float32)]) for p in pieces]
        # A NADE model also reads each frame's own keys (the conditional of key k given the
        # keys below it): the pieces, batched in the same order.
        keyed = self._nade_weights() is not None
        out: list[Any] = [None] * len(pieces)
        for idx, batch in length_sorted_batches(inputs, batch_size, dtype=np.float32,
                                                progress=progress):
            feeds = {"frames": batch}
            if keyed:
                targets = np.zeros(batch.shape, np.int32)
                for row, i in enumerate(idx):
                    targets[row, : len(inputs[i])] = pieces[i]
                feeds["targets"] = targets
            logits = runner.run("model", feeds)["logits"]
            for row, i in enumerate(idx):
                out[i] = np.asarray(logits[row, : len(inputs[i])])
        return out

    def frame_probabilities(self, piece: Any) -> np.ndarray:
        """float32 ``[T, 88]``: row t is P(key on at step t | start frame, steps < t) (for a
        NADE model, also given the piece's keys below it at step t)."""
        roll = self.as_roll(piece, "piece")
        return _sigmoid(self._logits([roll])[0]).astype(np.float32)

    def nll(self, pieces: Sequence[Any], batch_size: int = 32,
            progress: bool | Progress = False) -> dict:
        """Frame NLL as published: binary cross-entropy summed over the 88 keys, averaged over
        every predicted frame (frames 1..T-1 of each piece, frame 0 being the context).
        ``progress=True``: a progress line on stderr."""
        rolls = [self.as_roll(p, f"piece {i}") for i, p in enumerate(pieces)]
        if not rolls:
            raise DataError("nothing to score: no pieces")
        total, frames = 0.0, 0
        with reporting(progress, model_label(self, "nll"), len(rolls), "pieces") as bar:
            logits_of = self._logits(rolls, batch_size, progress=bar)
        for roll, logits in zip(rolls, logits_of):
            total += float(frame_nll(logits[1:], roll[1:]).sum())
            frames += len(roll) - 1
        if not frames:
            raise DataError("nothing to score: every piece has a single frame")
        return {"nll": total / frames, "frames": frames, "pieces": len(rolls)}

    def evaluate(self, pieces: Sequence[Any], references: Sequence[Any] | None = None,
                 batch_size: int = 32, progress: bool = False) -> dict:
        """The task's metrics on ``pieces`` (rolls, pitch lists or MIDI paths): frame NLL, as
        ``nll``. A piece is its own reference (frame t is predicted from frames < t), so
        ``references`` is accepted only as the same pieces, for the shared
        ``evaluate(inputs, references)`` shape. ``progress=True``: a progress line on
        stderr."""
        if references is not None and references is not pieces:
            rolls = [self.as_roll(p, f"piece {i}") for i, p in enumerate(pieces)]
            refs = [self.as_roll(p, f"reference {i}") for i, p in enumerate(references)]
            if len(rolls) != len(refs) or not all(np.array_equal(a, b)
                                                  for a, b in zip(rolls, refs)):
                raise DataError("evaluate: a music model scores pieces against themselves "
                                "(frame t from frames < t); call evaluate(pieces)")
        with reporting(progress, model_label(self, "evaluate"), len(pieces), "pieces") as bar:
            return self.nll(pieces, batch_size=batch_size, progress=bar)

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """The state a piece starts from: the zero state after the all-zero start frame, as
        ``generate`` and scoring begin."""
        start = np.zeros((batch, NUM_KEYS), np.int32)
        return self._decoder_step()(start, self._zero_state(batch))[1]

    def step(self, x: Any, state: dict[str, np.ndarray]) -> tuple[np.ndarray,
                                                                   dict[str, np.ndarray]]:
        """Feed piano-roll frames ``x`` from ``state`` (from ``initial_state``), through the
        one-step ``decoder`` graph as ``generate`` does: one frame ``[88]`` or a chunk
        ``[n, 88]`` (batch 1), or ``[B, n, 88]``; binary values; or, as a primer, a list of
        pitch lists (one per frame). Returns the next-frame key probabilities (float32
        ``[88]``, ``[B, 88]`` for a batch) and the state."""
        if isinstance(x, (list, tuple)) and x and all(isinstance(r, (list, tuple)) for r in x) \
                and not all(len(r) == NUM_KEYS for r in x):
            x = pitches_to_roll(list(x), "step(x)")
        try:
            arr = np.asarray(x)
        except ValueError:
            raise DataError("step(x): expected a frame [88], frames [n, 88], a batch "
                            "[batch, n, 88] or pitch lists, found ragged rows") from None
        batched = arr.ndim == 3
        if arr.ndim == 1:
            arr = arr[None]
        rows = list(arr) if batched else [arr]
        feed = np.stack([_check_roll(r, "step") for r in rows]).astype(np.int32)
        logits, state = prime_steps(self._decoder_step(), state, feed)
        probs = self._key_probabilities(logits)
        return (probs if batched else probs[0]), state

    def generate(self, steps: int = DEFAULT_STEPS, primer: Any = None, temperature: float = 1.0,
                 seed: int | None = None, include_primer: bool = False,
                 num_samples: int | None = None, stream: bool = False,
                 top_p: float | None = None) -> np.ndarray | Iterator[np.ndarray]:
        """Sample ``steps`` frames (uint8 roll ``[steps, 88]``; ``[num_samples, steps, 88]``
        when ``num_samples`` is given), Bernoulli per key at ``temperature`` from
        ``np.random.default_rng(seed)``, after the start frame and the ``primer`` (a roll, pitch
        lists or a MIDI file). The primer is returned too only with ``include_primer``.
        ``stream=True``: an iterator of the frames as they are sampled (uint8 ``[88]``, or
        ``[num_samples, 88]``; stacked, the roll the call returns without it); closing it
        stops the sampling. ``top_p`` (per key, None = off): a key whose likelier outcome has
        at least this probability takes it, the others are drawn (NADE models: key by key)."""
        if not isinstance(stream, bool):
            raise DataError(f"stream: expected True or False, found {stream!r}")
        steps = _check_int("steps", steps, 1)
        limits.check("max_generation_steps", steps, "steps")
        temperature = _check_temperature(temperature)
        top_p = _check_top_p(top_p)
        n = 1 if num_samples is None else _check_int("num_samples", num_samples, 1)
        limits.check("max_batch_size", n, "num_samples")
        check_seed(seed)
        prime = (np.zeros((0, NUM_KEYS), np.uint8) if primer is None
                 else self.as_roll(primer))
        feed = np.concatenate([np.zeros((1, NUM_KEYS), np.int32), prime.astype(np.int32)])
        feed = np.ascontiguousarray(np.broadcast_to(feed, (n, *feed.shape)))

        single = num_samples is None

        def frames() -> Iterator[np.ndarray]:  # [88], or [n, 88] with num_samples
            if include_primer:
                for frame in prime:
                    yield frame.copy() if single else np.repeat(frame[None], n, axis=0)
            step = self._decoder_step()
            logits, state = prime_steps(step, self._zero_state(n), feed)
            rng = np.random.default_rng(seed)
            for chosen in iter_primed(step, state, logits, steps,
                                      self._chooser(temperature, top_p), rng):
                yield chosen[0].astype(np.uint8) if single else chosen.astype(np.uint8)

        if stream:
            return frames()
        return np.stack(list(frames()), axis=-2)


class MusicGeneratorRuntime(BundleStates, _MusicGenerator, BundleRuntime):
    """``generate(steps, primer=, temperature=, seed=)`` for a music bundle with onnxruntime and
    numpy only: ``decoder_model.onnx`` once per frame, ``model.onnx`` for scoring, the same
    sampling loop and random stream as the Keras model."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        pre = self.manifest["preprocessing"]
        self.preprocessor = MusicPreprocessor(int(pre["steps_per_quarter"]), pre.get("program"))
        self.name = self.entry
        self._nade: tuple[np.ndarray, np.ndarray] | None = None
        if pre.get("frame_distribution", "independent") == "nade":
            self._nade = nade.weights_from_graph(self)

    def _nade_weights(self) -> tuple[np.ndarray, np.ndarray] | None:
        return self._nade

    # -- rnnzoo serve (rnnzoo.serving) ------------------------------------------------------------
    serve_options: ClassVar[dict[str, Any]] = {"audio": False}
    serve_demo: ClassVar[dict[str, Any]] = {
        "input": "json", "options": {},
        "example": {"steps": 32, "temperature": 1.0, "seed": 0, "primer": [[60, 64, 67], [62]]}}
    SERVE_MAX_STEPS: ClassVar[int] = 1024

    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One generated piece per instance, an object with ``generate``'s arguments
        (``steps``, ``temperature``, ``top_p``, ``seed``, ``primer`` as pitch lists) and/or
        ``primer_midi_base64``: ``{"pitches": [[...] per step], "steps_per_quarter",
        "midi_base64"}``, plus ``wav_base64`` (an 11.025 kHz rendering) with ``"audio": true``."""
        import base64
        import tempfile

        audio = options.get("audio", False)
        if not isinstance(audio, bool):
            raise ConfigError(f"audio: expected true or false, found {audio!r}")
        spq = self.preprocessor.steps_per_quarter
        out = []
        for i, item in enumerate(instances):
            where = f"instances[{i}]"
            known = {"steps", "temperature", "top_p", "seed", "primer", "primer_midi_base64"}
            item = generation_request(item, where, known, '{"steps": 32, "seed": 0}',
                                      DEFAULT_STEPS, self.SERVE_MAX_STEPS)
            args = {k: item[k] for k in ("steps", "temperature", "top_p", "seed") if k in item}
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
                except limits.LimitError as exc:  # the same error (413), naming the field
                    if isinstance(primer, Path):
                        exc.args = (str(exc).replace(str(primer),
                                                     f"{where}: primer_midi_base64"),)
                    raise
                except DataError as exc:  # name the field, not the temporary file
                    if not isinstance(primer, Path):
                        raise
                    raise DataError(f"{where}: primer_midi_base64: "
                                    f"{str(exc).replace(str(primer), 'the file')}") from None
                midi = write_midi(roll, Path(tmp) / "out.mid", steps_per_quarter=spq)
                piece = {"pitches": roll_to_pitches(roll), "steps_per_quarter": spq,
                         "midi_base64": base64.b64encode(midi.read_bytes()).decode("ascii")}
            if audio:
                wav = wav_bytes(roll, steps_per_quarter=spq, sample_rate=11025)
                piece["wav_base64"] = base64.b64encode(wav).decode("ascii")
            out.append(piece)
        return out


RUNTIME_CLASS = MusicGeneratorRuntime
