"""Forecasting, the user calls: ``forecast(window)``, ``forecast_csv(path)`` and ``evaluate``,
written once over both backends, and the onnxruntime runtime (``RUNTIME_CLASS``).

``forecast(window) -> [horizon, targets]`` in the series' own units (a batch ``[n, time,
columns]`` gives ``[n, horizon, targets]``); ``forecast_csv(path)`` for a CSV file with a date
column. The exported ``model`` graph: z-scored float32 ``window`` [batch, time, columns] ->
``forecast`` [batch, horizon, targets].

Streaming (``stream()``, ``initial_state``, ``step``): a model whose forecast is its recurrent
state after the rows (the echo-state network; a forecaster with global normalisation and a
direct head) also exports a ``step`` graph, ``window`` rows and ``state_<i>`` in,
``forecast`` and ``new_state_<i>`` out, so a live series is fed one observation at a time and
the forecast is updated without re-reading the window. TF-free.
"""

from __future__ import annotations

import abc
import csv
import datetime as dt
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rnnzoo.apps.forecasting.data import (
    ASSET_FILE,
    ForecastPreprocessor,
    Series,
    forecast_metrics,
    parse_date,
    read_series,
)
from rnnzoo.engines.stream import Stream, state_feeds, zero_state
from rnnzoo.errors import ConfigError, DataError, RunDirError, short_repr
from rnnzoo.export.bundle import BundleError, BundleRuntime, check_count, session_options
from rnnzoo.io.inputs import check_finite
from rnnzoo.progress import Progress, model_label, reporting

STREAM_GRAPH = "step"  # the graph that carries the recurrent state between calls
STEP_FILE = "step_model.onnx"


def no_stream(name: str) -> str:
    """Why ``name`` has no stream, and what has one."""
    return (f"{name}: no stream: its forecast reads the whole window at once (per-window "
            "normalisation or an attention decoder); the echo-state network and forecasters "
            "with normalize: none and decoder: direct (forecaster_lstm_stream) take one "
            "observation at a time")


class ForecastResult(NamedTuple):
    """What ``forecast_csv`` returns: the history used, the forecast after it (file units, one
    row per step ahead, one column per target) with its timestamps, and the truth when the file
    goes on past the forecast origin."""

    targets: list[str]
    history_times: list[Any]
    history: np.ndarray
    times: list[Any]
    forecast: np.ndarray
    truth: np.ndarray | None


def _future_times(last: Any, steps: int, step_seconds: float | None) -> list[Any]:
    if isinstance(last, dt.datetime):
        delta = dt.timedelta(seconds=step_seconds or 3600.0)
        return [last + delta * (k + 1) for k in range(steps)]
    return [int(last) + k + 1 for k in range(steps)]


def time_text(t: Any) -> str:
    return t.isoformat(sep=" ") if isinstance(t, dt.datetime) else str(t)


class _Forecaster(abc.ABC):
    """The user calls, written once over ``_predict_scaled(x) -> y`` (Keras or onnxruntime)."""

    preprocessor: ForecastPreprocessor

    @abc.abstractmethod
    def _predict_scaled(self, x: np.ndarray) -> np.ndarray:
        """z-scored float32 windows [n, time, columns] -> z-scored forecasts [n, H, targets]."""

    @property
    def lookback(self) -> int:
        return self.preprocessor.lookback

    @property
    def horizon(self) -> int:
        return self.preprocessor.horizon

    def predict_scaled(self, x: np.ndarray, batch_size: int = 256,
                       progress: bool | Progress = False) -> np.ndarray:
        """Scaled forecasts for scaled windows, in batches (``progress=True``: a progress line
        on stderr)."""
        with reporting(progress, model_label(self, "forecast"), len(x), "windows") as bar:
            out = [np.asarray(self._predict_scaled(np.ascontiguousarray(x[i:i + batch_size],
                                                                        np.float32)))
                   for i in bar.over(range(0, len(x), batch_size),
                                     lambda i: min(batch_size, len(x) - i))]
        d = len(self.preprocessor.targets)
        # A graph whose constants were edited (an out-of-range Slice bound) can return another
        # shape: a typed error here, not an IndexError from the caller's slicing.
        shape = (len(x), self.horizon, d)
        if out and (sum(len(y) for y in out), *out[0].shape[1:]) != shape:
            raise BundleError(f"{model_label(self, 'forecast')}: the model returned forecasts "
                              f"of shape {[list(y.shape) for y in out][:2]} for {len(x)} "
                              f"windows, expected {list(shape)}; the model's graph is damaged "
                              "(re-export the bundle or re-download the preset)")
        return np.concatenate(out) if out else np.zeros((0, self.horizon, d), np.float32)

    def _check_window(self, window: Any, where: str) -> np.ndarray:
        try:
            arr = np.asarray(window, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{where}: expected numbers [time, columns] (or [n, time, columns]),"
                            f" found {short_repr(window, 60)}") from None
        cols = self.preprocessor.columns
        if arr.ndim == 1 and len(cols) == 1:
            arr = arr[:, None]
        if arr.ndim not in (2, 3) or arr.shape[-1] != len(cols):
            raise DataError(f"{where}: expected shape [time, {len(cols)}] (columns "
                            f"{', '.join(cols)}) or [n, time, {len(cols)}], found "
                            f"{arr.shape}")
        if arr.shape[-2] < self.lookback:
            raise DataError(f"{where}: {arr.shape[-2]} time steps, but this model looks back "
                            f"{self.lookback}; pass at least {self.lookback} rows")
        # NaN, infinities and values float32 cannot hold (1e308 would become inf), by position;
        # then the same for the z-scores the model reads (a huge value over a small std).
        axes = ("row", "column") if arr.ndim == 2 else ("window", "row", "column")
        check_finite(arr, where, axes=axes, names=cols, hint="fill the gap or fix the value")
        pre = self.preprocessor
        if pre.is_fitted:
            with np.errstate(over="ignore", invalid="ignore"):
                scaled = (arr - pre.mean) / pre.std
            check_finite(scaled, f"{where} (scaled by the training mean and std)", axes=axes,
                         names=cols, hint="the value is far outside the training data's range")
        return arr

    def forecast(self, window: Any, horizon: int | None = None) -> np.ndarray:
        """The next ``horizon`` steps (default: the model's) after the last ``lookback`` rows of
        ``window`` [time, columns] (or a batch [n, time, columns]), in file units:
        [horizon, targets] (or [n, horizon, targets])."""
        self.require_fitted()
        arr = self._check_window(window, "forecast(window)")
        steps = self._check_horizon(horizon)
        single = arr.ndim == 2
        batch = arr[None] if single else arr
        x = self.preprocessor.scale(batch[:, -self.lookback:, :])
        y = self.preprocessor.unscale_targets(self.predict_scaled(x).astype(np.float64))
        y = y[:, :steps]
        return y[0] if single else y

    def evaluate(self, windows: Any, references: Any, progress: bool = False) -> dict[str, Any]:
        """Errors of the forecasts for ``windows`` ([n, time, columns], file units) against the
        true futures ``references`` ([n, steps, targets], steps <= the model's horizon): MSE, MAE
        and NRMSE on the z-scored scale the Informer tables use (float32, as training scales
        the series), plus MSE/MAE in file units. The same call on the Keras task and on the
        runtime, so a deployment can be re-scored; ``rnnzoo evaluate`` scores a split with it.
        ``progress=True``: a progress line on stderr."""
        self.require_fitted()
        arr = self._check_window(windows, "evaluate(windows)")
        batch = arr[None] if arr.ndim == 2 else arr
        try:
            refs = np.asarray(references, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("evaluate(references): expected numbers [n, steps, targets], found "
                            f"{short_repr(references, 60)}") from None
        d = len(self.preprocessor.targets)
        if refs.ndim == 2 and arr.ndim == 2:
            refs = refs[None]
        if refs.ndim == 2 and d == 1:
            refs = refs[:, :, None]
        if refs.ndim != 3 or refs.shape[0] != len(batch) or refs.shape[2] != d \
                or not 1 <= refs.shape[1] <= self.horizon:
            raise DataError(f"evaluate(references): expected shape [{len(batch)}, steps <= "
                            f"{self.horizon}, {d}] (targets {', '.join(self.preprocessor.targets)}"
                            f"), found {refs.shape}")
        check_finite(refs, "evaluate(references)", axes=("window", "step", "target"),
                     names=self.preprocessor.targets)
        pre = self.preprocessor
        steps = refs.shape[1]
        with reporting(progress, model_label(self, "evaluate"), len(batch), "windows") as bar:
            scaled = self.predict_scaled(pre.scale(batch[:, -self.lookback:, :]),
                                         progress=bar)[:, :steps]
        idx = pre.target_index
        truth = ((refs - pre.mean[idx]) / pre.std[idx]).astype(np.float32)
        pred = pre.unscale_targets(scaled.astype(np.float64))
        report = forecast_metrics(scaled, truth)
        report.update(mse_file_units=float(np.mean((pred - refs) ** 2)),
                      mae_file_units=float(np.mean(np.abs(pred - refs))),
                      num_windows=int(len(batch)), steps=int(steps))
        return report
    # -- streaming -----------------------------------------------------------------------------
    def _stream_graph(self) -> tuple[Callable[[dict], dict], dict[str, int]]:
        """``(run, widths)``: a function running the ``step`` graph on feeds, and the width of
        each of its state inputs. ConfigError where the model has none."""
        raise ConfigError(no_stream(getattr(self, "name", type(self).__name__)))

    def initial_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """The state before the first observation: zeros, as ``forecast(window)`` starts the
        recurrence at the window's first row."""
        batch = check_count("batch", batch)
        _, widths = self._stream_graph()
        return zero_state(widths, batch)

    def _observations(self, x: Any) -> tuple[np.ndarray, bool]:
        """``(rows [B, n, columns] in file units, batched)`` from what ``step`` accepts."""
        cols = self.preprocessor.columns
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"step: expected numbers (an observation of {len(cols)} "
                            f"column(s) {', '.join(cols)}), found {short_repr(x, 60)}") from None
        batched = arr.ndim == 3
        if arr.ndim == 0 and len(cols) == 1:
            arr = arr.reshape(1, 1)
        elif arr.ndim == 1:
            arr = arr[:, None] if len(cols) == 1 else arr[None]
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[-1] != len(cols) or arr.shape[1] < 1:
            raise DataError(f"step: expected one observation [{len(cols)}] (columns "
                            f"{', '.join(cols)}), rows [n, {len(cols)}] or a batch [batch, n, "
                            f"{len(cols)}], found shape {np.shape(x)}")
        if not np.isfinite(arr).all():
            raise DataError("step: an observation is not a finite number; fill the gap first")
        return arr, batched

    def step(self, x: Any, state: dict[str, np.ndarray]
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Feed observations ``x`` (file units: one row ``[columns]``, a scalar for one
        column, rows ``[n, columns]``, or a batch ``[batch, n, columns]``) from ``state`` (from
        ``initial_state``): the forecast after the last row, ``[horizon, targets]`` in file
        units (``[batch, horizon, targets]`` for a batch), and the state after it. From
        ``initial_state``, the ``lookback`` rows of a window give ``forecast(window)``."""
        self.require_fitted()
        run, widths = self._stream_graph()
        rows, batched = self._observations(x)
        feeds = {"window": self.preprocessor.scale(rows), **state_feeds(state, widths, len(rows))}
        out = run(feeds)
        forecast = self.preprocessor.unscale_targets(np.asarray(out["forecast"], np.float64))
        new = {n: np.asarray(out[f"new_{n}"]) for n in widths}
        return (forecast if batched else forecast[0]), new

    def stream(self, batch: int = 1) -> Stream:
        """A :class:`rnnzoo.engines.stream.Stream` from ``initial_state(batch)``: ``step(x)``
        feeds observations and returns the updated forecast, the state carried between
        calls."""
        return Stream(self.step, self.initial_state(batch))

    def _check_horizon(self, horizon: Any) -> int:
        if horizon is None:
            return self.horizon
        steps = check_count("horizon", horizon)
        if steps > self.horizon:
            raise ConfigError(f"horizon {steps}: this model forecasts {self.horizon} steps at "
                              f"once; pass --horizon {self.horizon} or less, or train one with "
                              f"--set horizon={steps}")
        return steps

    def require_fitted(self) -> None:
        if not self.preprocessor.is_fitted:
            raise RunDirError("this forecaster has no scaling statistics yet: train it "
                              "(rnnzoo.train) or load a trained run/preset (rnnzoo.load)")

    def forecast_csv(self, path: str | os.PathLike, target: str | None = None,
                     horizon: int | None = None, at: str | int | None = None
                     ) -> ForecastResult:
        """Forecast after row ``at`` of a CSV series (a 0-based row number or a date; default:
        the last row). ``target`` names the file's column for the model's target when it is
        called differently (univariate models)."""
        self.require_fitted()
        pre = self.preprocessor
        steps = self._check_horizon(horizon)
        rename = {}
        if target is not None and target not in pre.columns:
            if len(pre.targets) != 1:
                raise ConfigError(f"--target {target!r}: this model forecasts "
                                  f"{', '.join(pre.targets)}; give those columns")
            rename[pre.targets[0]] = target
        wanted = [rename.get(c, c) for c in pre.columns]

        def choose(header: Sequence[str]) -> list[str]:
            for c in wanted:
                if c not in header or c == pre.date_column:
                    raise DataError(f"{path}: no column {c!r}, which this model reads "
                                    f"(columns: {', '.join(header)}); pass --target NAME for "
                                    "the column to forecast")
            return wanted

        date_column = pre.date_column
        if date_column and Path(path).is_file():  # a file without the date column: row numbers
            try:
                with open(path, newline="", encoding="utf-8-sig") as f:
                    header = [h.strip() for h in next(csv.reader(f), [])]
            except (OSError, UnicodeDecodeError, csv.Error):
                header = [date_column]  # read_series reports the problem
            if date_column not in header:
                date_column = ""
        series = read_series(path, choose, date_column)
        rows = len(series.values)
        times = series.dates if series.dates is not None else list(range(rows))
        origin = rows - 1 if at is None else self._origin(at, series, times)
        if origin + 1 < self.lookback:
            raise DataError(f"{path}: {origin + 1} rows up to the forecast origin (line "
                            f"{origin + series.first_line}), but this model looks back "
                            f"{self.lookback} rows (column {wanted[pre.target_index[0]]!r}); "
                            "pass a longer file or a later --at")
        window = series.values[origin + 1 - self.lookback: origin + 1]
        pred = self.forecast(window, steps)
        truth = None
        if origin + 1 < rows:
            truth = series.values[origin + 1: origin + 1 + steps][:, pre.target_index]
        step_seconds = pre.step_seconds
        if series.dates is not None and len(series.dates) > 1:
            step_seconds = float(np.median(np.diff(
                [d.timestamp() for d in series.dates[-min(rows, 500):]])))
        hist = max(0, origin + 1 - max(self.lookback, 4 * steps))
        return ForecastResult(
            [rename.get(t, t) for t in pre.targets], list(times[hist:origin + 1]),
            series.values[hist:origin + 1][:, pre.target_index],
            _future_times(times[origin], steps, step_seconds), pred, truth)

    @staticmethod
    def _origin(at: str | int, series: Series, times: list[Any]) -> int:
        text = str(at).strip()
        if re.fullmatch(r"-?\d+", text):
            i = int(text)
            i = i + len(times) if i < 0 else i
            if not 0 <= i < len(times):
                raise ConfigError(f"--at {at}: {series.path} has rows 0..{len(times) - 1}")
            return i
        when = parse_date(text)
        if when is None or series.dates is None:
            raise ConfigError(f"--at {at!r}: expected a row number or a date of the file")
        for i, d in enumerate(series.dates):
            if d >= when:
                return i if d == when else i - 1
        return len(times) - 1



class ForecasterRuntime(_Forecaster, BundleRuntime):
    """``forecast(window)`` for a forecasting bundle, with onnxruntime and numpy only."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.preprocessor = ForecastPreprocessor.from_json(self.asset(ASSET_FILE), BundleError,
                                                           "re-export the bundle")
        if not self.preprocessor.is_fitted:
            raise BundleError(f"{self.path}: the preprocessor has no scaling; re-export")

    @property
    def name(self) -> str:
        return self.entry

    def _predict_scaled(self, x: np.ndarray) -> np.ndarray:
        return self.run("model", {"window": np.asarray(x, np.float32)})["forecast"]

    def _stream_graph(self) -> tuple[Callable[[dict], dict], dict[str, int]]:
        """The bundle's ``step`` graph; for an echo-state bundle exported without one, a step
        graph derived from its ``model`` graph (needs the ``onnx`` package)."""
        if STREAM_GRAPH in self.sessions:
            sess = self.sessions[STREAM_GRAPH]

            def run(feeds: dict) -> dict:
                return self.run(STREAM_GRAPH, feeds)
        elif self.family == "esn":
            sess = self._derived_step()

            def run(feeds: dict) -> dict:
                names = [o.name for o in sess.get_outputs()]
                return dict(zip(names, sess.run(names, feeds)))
        else:
            raise ConfigError(no_stream(self.entry))
        widths = {i.name: int(i.shape[1]) for i in sess.get_inputs()
                  if i.name.startswith("state_")}
        return run, widths

    def _derived_step(self) -> Any:
        """The onnxruntime session of ``derive_step_graph(model.onnx)``, opened once."""
        sess = getattr(self, "_derived", None)
        if sess is None:
            import onnxruntime as ort

            graph = self.manifest["graphs"]["model"]["file"]
            model = derive_step_graph(self.path / graph, f"{self.path}: {graph}")
            sess = self._derived = ort.InferenceSession(model, sess_options=session_options(),
                                                        providers=self._providers)
        return sess

    @property
    def serve_demo(self) -> dict[str, Any]:
        """``rnnzoo serve``'s demo input: one window of ``lookback`` rows, a daily cycle around
        the training mean (the server's default hook calls ``forecast`` on the instances)."""
        pre = self.preprocessor
        t = np.arange(self.lookback)[:, None]
        window = pre.mean + pre.std * np.sin(2 * np.pi * t / 24.0)
        return {"input": "json", "example": np.round(window, 3).tolist()}



def derive_step_graph(path: Path, where: str) -> bytes:
    """A ``step`` graph from an echo-state ``model`` graph exported before step graphs were:
    its one recurrent operator (which the graph starts from zeros) gets its initial state from
    a new input ``state_0`` ``[batch, units]`` and hands its final state to a new output
    ``new_state_0``; the readout already reads the state after the last row. Serialized
    ``ModelProto`` bytes. Needs the ``onnx`` package (``rnnzoo[train]``); re-exporting the
    bundle writes the step graph instead."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        raise BundleError(f"{where}: this bundle has no step graph (exported before streaming "
                          "was added); re-export it with rnnzoo export, or pip install onnx "
                          "to derive one") from None
    model = onnx.load(str(path))
    graph = model.graph
    recurrent = [n for n in graph.node if n.op_type in ("GRU", "RNN")]
    direction = [a.s for n in recurrent for a in n.attribute if a.name == "direction"]
    if len(recurrent) != 1 or direction not in ([], [b"forward"]):
        raise BundleError(f"{where}: expected one forward GRU or RNN operator to derive a step "
                          "graph from; re-export the bundle")
    node = recurrent[0]
    units = next(a.i for a in node.attribute if a.name == "hidden_size")
    axes = "stream_axes_0"
    graph.initializer.append(helper.make_tensor(axes, TensorProto.INT64, [1], [0]))
    while len(node.input) < 6:
        node.input.append("")
    node.input[5] = "stream_initial_h"
    while len(node.output) < 2:
        node.output.append("")
    if not node.output[1]:
        node.output[1] = "stream_final_h"
    nodes = list(graph.node)
    at = nodes.index(node)
    nodes[at:at + 1] = [helper.make_node("Unsqueeze", ["state_0", axes], ["stream_initial_h"]),
                        node,
                        helper.make_node("Squeeze", [node.output[1], axes], ["new_state_0"])]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.input.append(helper.make_tensor_value_info("state_0", TensorProto.FLOAT,
                                                     ["batch", units]))
    graph.output.append(helper.make_tensor_value_info("new_state_0", TensorProto.FLOAT,
                                                      ["batch", units]))
    # the nodes (and constants) that built the zero state now feed nothing: drop them
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    while True:
        dead = [n for n in graph.node if not any(o in used for o in n.output if o)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model.SerializeToString()


RUNTIME_CLASS = ForecasterRuntime
