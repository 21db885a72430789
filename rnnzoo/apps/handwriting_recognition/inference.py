"""Handwriting recognition, the user calls: ``recognize`` and ``evaluate``, written once over
both backends, and the onnxruntime runtime (``RUNTIME_CLASS``).

User call (Keras and runtime alike): ``recognize(ink, beam_width=0)`` -> list of strings, one
per line, where ``ink`` is an InkML / IAM-OnDB XML path, an IAM-OnDB ``.npz``/``.tsv`` (every
line), a list of strokes (``[n, 2]`` / ``[n, 3]`` arrays: one line), an :class:`Ink`, or a list
of those; ``frame_log_probs(ink)`` -> per line ``[frames, 1 + K]`` log-probabilities (blank
first); ``evaluate(ink, references)`` -> character and word error rates. Decoding and scoring
come from :class:`rnnzoo.engines.ctc.CTCRecognizer` (shared with speech recognition); this
module adds reading ink. An optional character n-gram language model
(:class:`rnnzoo.engines.ctc.CharNgramLM`) rescores the prefix beam search (``lm=``). TF-free.

Streaming (a ``streaming: true`` entry, ``handwriting_lstm_stream``): ``s = model.stream()``;
``s.step(stroke)`` feeds the next pen-down stroke (``[n, 2]``/``[n, 3]``) and returns the
transcript of the line so far, which is exactly ``recognize`` (greedy) of the strokes so far
with the same ``line_height``: the features of a stroke need only the previous point, and the
recurrent states and the best-path decoder's last label are carried in ``s.state``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnzoo.apps.handwriting_recognition.data import (
    ASSET_FILE,
    HandwritingPreprocessor,
    StrokeFeaturizer,
)
from rnnzoo.apps.handwriting_recognition.ink import (
    Ink,
    as_strokes,
    read_ink_file,
    read_npz,
    read_tsv,
)
from rnnzoo.engines.ctc import (
    CharNgramLM,
    CTCBundleMixin,
    CTCRecognizer,
    check_beam_width,
    ctc_greedy_continue,
    score_transcripts,
)
from rnnzoo.engines.stream import Stream
from rnnzoo.errors import DataError, short_repr
from rnnzoo.export.bundle import BundleRuntime, check_count
from rnnzoo.progress import Progress, model_label, reporting

UNIT = "lines"  # what the progress line counts


def read_ink(item: Any, where: str = "ink") -> list[Ink]:
    """The lines of one input: a file (InkML/XML: one line; .npz/.tsv: all), an Ink, or a
    list of strokes (one line)."""
    if isinstance(item, Ink):
        return [item]
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if path.suffix == ".npz":
            return read_npz(path)
        if path.suffix == ".tsv":
            return read_tsv(path)
        return [read_ink_file(path)]
    return [Ink(as_strokes(item, where))]


def _is_stroke(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim == 2
    try:
        return np.asarray(x, dtype=np.float64).ndim == 2
    except (TypeError, ValueError):
        return False


def as_lines(ink: Any) -> list[Ink]:
    """Every line of a user's input (see the module docstring), each checked."""
    if isinstance(ink, (str, os.PathLike, Ink, np.ndarray)):
        return read_ink(ink)
    if not isinstance(ink, (list, tuple)) or not ink:
        raise DataError(f"recognize: expected an ink file path, a list of strokes ([n, 2] "
                        f"arrays) or a list of those, found {short_repr(ink, 80)}")
    if _is_stroke(ink[0]):  # one line given as its strokes
        return read_ink(ink)
    out = []
    for k, item in enumerate(ink):
        out += read_ink(item, f"ink[{k}]")
    return out


class _Recognizer(CTCRecognizer):
    """``recognize`` and ``evaluate`` on ink, over ``_log_probs_of(features, mask)``."""

    preprocessor: HandwritingPreprocessor
    # 81 labels, none of them below -30 on most frames of the small preset: the beam search
    # extends only labels above e^-8 (on 20 val1 lines the same transcripts as -30, 7x faster).
    beam_prune = -8.0

    def features_of_ink(self, lines: Sequence[Ink], line_height: float | None = None
                        ) -> list[np.ndarray]:
        return [self.preprocessor.features(ln.strokes, line_height) for ln in lines]

    def frame_log_probs(self, ink: Any, line_height: float | None = None,
                        batch_size: int = 32, progress: Progress | None = None
                        ) -> list[np.ndarray]:
        """Per line, ``[frames, 1 + K]`` log-probabilities (column 0 the blank)."""
        lines = as_lines(ink)
        if progress is not None:
            progress.stage("network", len(lines))
        return self.log_probs_of_features(self.features_of_ink(lines, line_height),
                                          batch_size, progress=progress)

    def recognize(self, ink: Any, beam_width: int = 0, lm: CharNgramLM | None = None,
                  lm_weight: float = 0.5, line_height: float | None = None,
                  batch_size: int = 32, progress: bool | Progress = False,
                  lm_bonus: float = 0.0) -> list[str]:
        """The text of each line of ``ink``: best path, or CTC prefix beam search of width
        ``beam_width`` (with ``lm``, a character n-gram model, weighted by ``lm_weight``).
        ``line_height``: the height unit in ink coordinates (default: measured per line, or
        the training median for a ``height: fixed`` model)."""
        beam_width = check_beam_width(beam_width)
        with reporting(progress, model_label(self, "recognize"), None, UNIT) as bar:
            lps = self.frame_log_probs(ink, line_height, batch_size, progress=bar)
            bar.stage("decoding", len(lps))
            return [self.decode(lp, beam_width, lm, lm_weight, lm_bonus)
                    for lp in bar.over(lps)]

    def evaluate(self, ink: Any, references: Sequence[str] | None = None, beam_width: int = 0,
                 lm: CharNgramLM | None = None, lm_weight: float = 0.5,
                 lm_bonus: float = 0.0, progress: bool = False) -> dict:
        """Character error rate (``cer``), word error rate (``wer``) and line accuracy of the
        transcripts of ``ink`` against ``references`` (default: the transcripts the ink
        files carry). The same call on the Keras task and the runtime."""
        lines = as_lines(ink)
        if references is None:
            references = [ln.text for ln in lines]
            if not all(references):
                raise DataError("evaluate: some lines carry no transcript; pass references")
        label = f"{model_label(self, 'evaluate')} " \
                f"({f'beam {beam_width}' if beam_width else 'best path'})"
        with reporting(progress, label, None, UNIT) as bar:
            hyps = self.recognize(lines, beam_width, lm, lm_weight, progress=bar,
                                  lm_bonus=lm_bonus)
        report = score_transcripts(references, hyps, self.alphabet, "ink lines")
        report["cer"] = report.pop("ler")  # the label error rate of characters
        return report

    # -- streaming ------------------------------------------------------------------------------
    stream_hint = ("its bidirectional recurrent layers read the whole line before any output; "
                   "use the streaming entry handwriting_lstm_stream, or recognize the whole line")

    def initial_state(self, batch: int = 1, line_height: float | None = None
                      ) -> dict[str, np.ndarray]:
        """The state of ``batch`` lines before any stroke: the featurizer's ``last_point``,
        ``y_ref``, ``height`` and ``strokes`` count, the stream graph's ``state_<i>``, and the
        best-path decoder's ``last_label`` and ``text``."""
        self._require_stream()
        batch = check_count("batch", batch)
        h = self.preprocessor.height_of(line_height) or self.preprocessor.unit
        state = {"last_point": np.zeros((batch, 2)), "y_ref": np.zeros((batch,)),
                 "height": np.full((batch,), h), "strokes": np.zeros((batch,), np.int64)}
        return {**state, **self._stream_zero_state(batch)}

    def stream(self, batch: int = 1, line_height: float | None = None) -> Stream:
        """A :class:`rnnzoo.engines.stream.Stream`: ``s.step(stroke)`` feeds the next stroke
        (``[n, 2]``, or a list of ``batch`` strokes) and returns the transcript so far."""
        return Stream(self.step, self.initial_state(batch, line_height))

    def step(self, x: Any, state: Mapping[str, np.ndarray]
             ) -> tuple[str | list[str], dict[str, np.ndarray]]:
        """Feed one stroke per stream from ``state``: the transcript of each line so far and
        the state after it."""
        self._require_stream()
        state = {n: np.asarray(v) for n, v in state.items()}
        batch = len(state["strokes"])
        single = _is_stroke(x)
        strokes = [x] if single else list(x) if isinstance(x, (list, tuple)) else None
        if strokes is None or len(strokes) != batch:
            raise DataError(f"step: the stream has batch {batch}; feed one stroke ([n, 2]) "
                            f"per stream, found {short_repr(x, 60)}")
        strokes = [as_strokes([s], f"step: stroke {b}")[0] for b, s in enumerate(strokes)]
        pre = self.preprocessor
        rows, last_points, y_refs = [], [], []
        for b, s in enumerate(strokes):
            started = bool(state["strokes"][b])
            fz = StrokeFeaturizer(pre.params, float(state["height"][b]),
                                  float(state["y_ref"][b]) if started else None)
            fz.last = state["last_point"][b] if started else None
            rows.append(pre.normalise(fz.add(s)))
            last_points.append(fz.last)
            y_refs.append(fz.y_ref)
        width = max(len(r) for r in rows)
        carried = {n: state[n] for n in self._stream_state_shapes()}
        last = state["last_label"].astype(np.int32).copy()
        texts = [str(t) for t in state["text"]]
        # Rows of different lengths run one at a time (padding would move the states).
        groups = [list(range(batch))] if all(len(r) == width for r in rows) else \
            [[b] for b in range(batch)]
        new_states = {n: v.copy() for n, v in carried.items()}
        for idx in groups:
            out = self._stream_run({"features": np.stack([rows[b] for b in idx]),
                                    **{n: v[idx] for n, v in carried.items()}})
            for n in carried:
                new_states[n][idx] = out[f"new_{n}"]
            for k, b in enumerate(idx):
                ids, last[b] = ctc_greedy_continue(out["log_probs"][k], int(last[b]))
                texts[b] += pre.decode(ids)
        new = {"last_point": np.stack(last_points), "y_ref": np.array(y_refs, np.float64),
               "height": state["height"], "strokes": state["strokes"] + 1, **new_states,
               "last_label": last, "text": np.array(texts, dtype=object)}
        return (texts[0] if single else texts), new


class HandwritingRecognizerRuntime(CTCBundleMixin, _Recognizer, BundleRuntime):
    """``recognize(ink)`` for a handwriting bundle with onnxruntime and numpy only."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._init_ctc(HandwritingPreprocessor, ASSET_FILE)

    # -- rnnzoo serve (rnnzoo.serving) ------------------------------------------------------------
    serve_options: ClassVar[dict[str, Any]] = {"beam_width": 0}
    # The demo page's drawing pad sends {"strokes": [[[x, y], ...], ...]} (canvas pixels).
    serve_demo: ClassVar[dict[str, Any]] = {"input": "ink", "example": {"strokes": [
        [[10, 40], [10, 110]], [[30, 70], [60, 70], [60, 110], [30, 110], [30, 70]]]}}

    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One ``{"text"}`` per instance: ``{"strokes": [[[x, y], ...], ...]}`` (a line's
        strokes, y down) or the strokes list itself."""
        lines = []
        for i, item in enumerate(instances):
            if isinstance(item, Mapping):
                if set(item) != {"strokes"}:
                    raise DataError(f"instances[{i}]: expected {{\"strokes\": [[[x, y], ...], "
                                    f"...]}} or the strokes list, found keys {sorted(item)}")
                item = item["strokes"]
            lines.append(Ink(as_strokes(item, f"instances[{i}]")))
        return [{"text": t} for t in self.recognize(lines, **dict(options))]


RUNTIME_CLASS = HandwritingRecognizerRuntime
