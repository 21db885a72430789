"""Long-dependency problems, the user calls: ``solve(x)`` (alias ``predict``; adding: sums
``[n]``; copy: digits ``[n, T+20]``) and ``evaluate(x, references)``, written once over both
backends, and the onnxruntime runtime (``RUNTIME_CLASS``). One exported graph: float ``x
[batch, time, features]`` -> ``y``. TF-free.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from rnnzoo.apps.long_dependency.data import (
    ADDING_BASELINE,
    COPY_DIGITS,
    PROBLEMS,
    LongDependencyPreprocessor,
    copy_baseline,
    features,
)
from rnnzoo.engines.ctc import NotStreamableError
from rnnzoo.engines.stream import Stream, state_feeds, zero_state
from rnnzoo.errors import DataError, short_repr
from rnnzoo.export.bundle import BundleError, BundleRuntime, check_count
from rnnzoo.progress import Progress, model_label, reporting

STREAM_GRAPH = "step"  # the graph that carries the recurrent state between calls
STEP_FILE = "step_model.onnx"


def no_stream(name: str) -> str:
    return (f"{name}: no stream: its bundle has no step graph (exported before streaming); "
            "re-export it, or solve whole sequences")


# -- the user call, once for Keras and the runtime --------------------------------------------
class _Solver(abc.ABC):
    preprocessor: LongDependencyPreprocessor

    @abc.abstractmethod
    def _outputs(self, feats: np.ndarray) -> np.ndarray:
        """The model's raw output for float features ``[n, time, features]``."""

    @property
    def problem(self) -> str:
        return self.preprocessor.problem

    def predict_raw(self, x: Any, batch_size: int = 256,
                    progress: bool | Progress = False) -> np.ndarray:
        """Model outputs: adding ``[n, 1]`` sums; copy ``[n, time, 10]`` probabilities.
        ``progress=True``: a progress line on stderr."""
        feats = features(self.problem, x)
        batch_size = check_count("batch_size", batch_size)
        n = len(feats)
        with reporting(progress, model_label(self, "solve"), n, "sequences") as bar:
            parts = [np.asarray(self._outputs(feats[i:i + batch_size]), np.float32)
                     for i in bar.over(range(0, n, batch_size),
                                       lambda i: min(batch_size, n - i))]
        return np.concatenate(parts)

    def solve(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """The user call (``rnnzoo solve``). Adding: the predicted sums ``[n]``; copy: the
        predicted digit at every step ``[n, T+20]``."""
        out = self.predict_raw(x, batch_size)
        return out[:, 0] if self.problem == "adding" else out.argmax(-1).astype(np.int32)

    def predict(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """The same as :meth:`solve`."""
        return self.solve(x, batch_size)

    def evaluate(self, x: Any, y: Any, batch_size: int = 256,
                 progress: bool = False) -> dict[str, Any]:
        """The problem's metrics against references in the form ``predict`` returns them
        (adding: sums ``[n]``; copy: digits ``[n, T+20]``): see :meth:`score`.
        ``progress=True``: a progress line on stderr."""
        with reporting(progress, model_label(self, "evaluate"), None, "sequences") as bar:
            return self.score(x, y, batch_size, progress=bar)

    def score(self, x: Any, y: Any, batch_size: int = 256,
              progress: bool | Progress = False) -> dict[str, Any]:
        """The problem's loss against targets ``y``, with its memoryless baseline
        (``progress=True``: a progress line on stderr)."""
        out = self.predict_raw(x, batch_size, progress=progress)
        y = np.asarray(y)
        if len(y) != len(out):
            raise DataError(f"score: {len(out)} inputs but {len(y)} targets")
        n = len(out)
        if self.problem == "adding":
            mse = float(np.mean((out[:, 0] - y.reshape(n)) ** 2))
            length = out.shape[0] and np.asarray(x).shape[1]
            return {"problem": "adding", "T": int(length), "examples": n, "mse": mse,
                    "loss": mse, "baseline": ADDING_BASELINE}
        probs = np.clip(out, 1e-12, 1.0)
        y = y.astype(np.int64)
        nll = -np.log(np.take_along_axis(probs, y[..., None], -1)[..., 0])
        pred = out.argmax(-1)
        tail = slice(-COPY_DIGITS, None)
        length = out.shape[1] - 2 * COPY_DIGITS
        return {"problem": "copy", "T": int(length), "examples": n, "loss": float(nll.mean()),
                "recall_accuracy": float((pred[:, tail] == y[:, tail]).mean()),
                "baseline": copy_baseline(length)}


    # -- streaming -----------------------------------------------------------------------------
    # The exported ``step`` graph: ``x`` [batch, n, features] and ``state_<i>`` [batch, units]
    # -> ``y`` (adding: the sum read from the state after the last step [batch, 1]; copy: the
    # digit probabilities at each fed step [batch, n, 10]) and ``new_state_<i>``.
    def _stream_graph(self) -> tuple[Callable[[dict], dict], dict[str, int]]:
        """``(run, widths)``: the ``step`` graph and the width of each state input."""
        raise NotStreamableError(no_stream(getattr(self, "name", type(self).__name__)))

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """The state before the first step: zeros, as ``solve`` starts every sequence."""
        batch = check_count("batch", batch)
        _, widths = self._stream_graph()
        return zero_state(widths, batch)

    def _stream_steps(self, x: Any) -> tuple[np.ndarray, bool]:
        """``(features [B, n, F], batched)`` from one step, steps ``[n, ...]`` or a batch."""
        arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
        one = 1 if self.problem == "adding" else 0  # the dims of one step
        if not one <= arr.ndim <= one + 2 or (one and arr.shape[-1] != 2):
            forms = ("one step [value, marker], steps [n, 2] or a batch [batch, n, 2]"
                     if one else "one digit, digits [n] or a batch [batch, n]")
            raise DataError(f"step: expected {forms}, found shape {arr.shape}")
        if arr.ndim == one:
            arr, batched = arr[None, None], False
        elif arr.ndim == one + 1:
            arr, batched = arr[None], False
        else:
            batched = True
        return features(self.problem, arr, "step"), batched

    def step(self, x: Any, state: dict[str, np.ndarray]) -> tuple[Any, dict[str, np.ndarray]]:
        """Feed input steps ``x`` (adding: one ``[value, marker]``, steps ``[n, 2]`` or a batch
        ``[batch, n, 2]``; copy: one digit, digits ``[n]`` or ``[batch, n]``) from ``state``
        (from ``initial_state``): the output after the last step (adding: the predicted sum,
        a float, ``[batch]`` for a batch; copy: the digit probabilities ``[10]``, ``[batch,
        10]``) and the state after it. From ``initial_state``, feeding a sequence step by step
        ends at ``predict_raw``'s output for it."""
        run, widths = self._stream_graph()
        feats, batched = self._stream_steps(x)
        feeds = {"x": feats, **state_feeds(state, widths, len(feats))}
        out = run(feeds)
        y = np.asarray(out["y"], np.float32)
        y = y[:, 0] if self.problem == "adding" else y[:, -1]
        new = {n: np.asarray(out[f"new_{n}"], np.float32) for n in widths}
        if batched:
            return y, new
        return (float(y[0]) if self.problem == "adding" else y[0]), new

    def stream(self, batch: int = 1) -> Stream:
        """A :class:`rnnzoo.engines.stream.Stream` from ``initial_state(batch)``: ``step(x)``
        feeds input steps and returns the output after them."""
        return Stream(self.step, self.initial_state(batch))


class LongDependencyRuntime(_Solver, BundleRuntime):
    """``predict(x)`` for a long-dependency bundle, with onnxruntime and numpy only."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        problem = self.manifest.get("preprocessing", {}).get("problem")
        if problem not in PROBLEMS:
            raise BundleError(f"{self.path}: preprocessing.problem must be one of "
                              f"{', '.join(PROBLEMS)}, found {short_repr(problem)}; re-export "
                              "the bundle")
        self.preprocessor = LongDependencyPreprocessor(problem)

    def _outputs(self, feats: np.ndarray) -> np.ndarray:
        return self.run("model", {"x": feats})["y"]

    def _stream_graph(self) -> tuple[Callable[[dict], dict], dict[str, int]]:
        """The bundle's ``step`` graph."""
        if STREAM_GRAPH not in self.sessions:
            raise NotStreamableError(no_stream(self.entry))
        sess = self.sessions[STREAM_GRAPH]
        widths = {i.name: int(i.shape[1]) for i in sess.get_inputs()
                  if i.name.startswith("state_")}
        return (lambda feeds: self.run(STREAM_GRAPH, feeds)), widths


RUNTIME_CLASS = LongDependencyRuntime
