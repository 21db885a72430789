"""What the gradient diagnostics measure: the recurrent layers of any Keras model, the temporal
profile ``||dL/dh_t||`` on a probe batch (see ``rnnzoo.diagnostics``), the effective memory
length, the spectrum of each recurrent matrix and gate saturation (LSTM/GRU)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rnnzoo.errors import ConfigError, DataError

DIAGNOSTICS_FILE = "diagnostics.json"
DIAGNOSTICS_PLOT = "diagnostics.png"
MEMORY_FLOOR = 1e-3  # effective memory: the lag where the profile falls below this x its peak
SATURATION = 0.05  # a gate value below 0.05 or above 0.95 counts as saturated
GATES = {"lstm": ("input", "forget", "cell", "output"), "gru": ("update", "reset", "candidate"),
         "simple": ("recurrent",)}


# -- finding recurrent layers ------------------------------------------------------------------
def cell_kind(layer: Any) -> str:
    """``"lstm"``, ``"gru"`` or ``"simple"`` for a Keras RNN layer (by its cell's weights: a
    custom cell with one recurrent matrix counts as simple)."""
    name = type(layer.cell).__name__.lower()
    for kind in ("lstm", "gru"):
        if kind in name:
            return kind
    return "simple"


def recurrent_layers(model: Any) -> list[tuple[str, Any]]:
    """``(path, layer)`` of every Keras ``RNN`` layer inside ``model``, in build order (stacked
    and bidirectional layers included)."""
    import keras

    found, seen = [], set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.RNN) and id(layer) not in seen:
            seen.add(id(layer))
            found.append((getattr(layer, "path", None) or layer.name, layer))
    return sorted(found, key=lambda item: item[0])


class _Segment:
    """The steps of one call of one recurrent layer."""

    def __init__(self, time: int | None, mask: Any, backwards: bool) -> None:
        self.time, self.mask, self.backwards = time, mask, backwards
        self.perturbations: list = []
        self.inputs: list = []
        self.states: list = []

    def steps(self) -> slice:
        """The recorded calls that are time steps: the TensorFlow loop calls the cell once
        more before it starts, to learn the output shape."""
        n = len(self.perturbations)
        extra = n - self.time if self.time is not None else 0
        return slice(max(0, extra), n)


@contextlib.contextmanager
def _record_steps(layers: Sequence[tuple[str, Any]], tape: Any, keep_inputs: bool = False
                  ) -> Iterator[dict[str, list[_Segment]]]:
    """While active, every step of the given layers adds a watched zero to the state it
    returns (so ``tape.gradient(loss, e_t)`` is ``dL/dh_t``) and, with ``keep_inputs``, keeps
    the step's input and previous state (for gate activations). Restores the layers after."""
    import tensorflow as tf

    record: dict[str, list[_Segment]] = {path: [] for path, _ in layers}
    saved = []
    for path, layer in layers:
        cell = layer.cell
        layer_call, cell_call = layer.call, cell.call

        def wrapped_layer(sequences: Any, *args: Any, _path: str = path, _layer: Any = layer,
                          _call: Any = layer_call, **kwargs: Any) -> Any:
            mask = kwargs.get("mask", args[1] if len(args) > 1 else None)
            if isinstance(mask, (list, tuple)):
                mask = mask[0]
            time = sequences.shape[1] if len(sequences.shape) > 1 else None
            record[_path].append(_Segment(time, mask, bool(getattr(_layer, "go_backwards",
                                                                   False))))
            return _call(sequences, *args, **kwargs)

        def wrapped_cell(inputs: Any, states: Any, *args: Any, _path: str = path,
                         _call: Any = cell_call, **kwargs: Any) -> Any:
            output, new_states = _call(inputs, states, *args, **kwargs)
            segment = record[_path][-1] if record[_path] else None
            if segment is None:  # a cell called outside its layer (a one-step decoder)
                return output, new_states
            e = tf.zeros_like(output)
            tape.watch(e)
            output = output + e
            if isinstance(new_states, (list, tuple)):
                new_states = [output, *list(new_states)[1:]]
            else:
                new_states = output
            segment.perturbations.append(e)
            if keep_inputs:
                segment.inputs.append(inputs)
                segment.states.append(states[0] if isinstance(states, (list, tuple))
                                      else states)
            return output, new_states

        saved.append((layer, cell, getattr(layer, "use_cudnn", None)))
        layer.__dict__["call"] = wrapped_layer
        cell.__dict__["call"] = wrapped_cell
        if hasattr(layer, "use_cudnn"):  # the fused cuDNN kernel never calls the cell
            layer.__dict__["use_cudnn"] = False
    try:
        yield record
    finally:
        for layer, cell, cudnn in saved:
            layer.__dict__.pop("call", None)
            cell.__dict__.pop("call", None)
            if cudnn is not None:
                layer.__dict__["use_cudnn"] = cudnn


# -- probe batches ------------------------------------------------------------------------------
def _split_batch(batch: Any) -> tuple[Any, Any, Any]:
    if isinstance(batch, (list, tuple)) and len(batch) in (2, 3):
        return batch[0], batch[1], batch[2] if len(batch) == 3 else None
    raise DataError("diagnostics: the task's dataset must yield (inputs, targets) batches")


def probe_batch(task: Any, dataset: Any, size: int = 32, seed: int = 0,
                split: str = "dev") -> tuple[Any, Any, Any]:
    """The first ``size`` examples of ``split`` (dev; train when there is no dev split), as
    one ``(inputs, targets, sample_weight)`` batch from the task's own pipeline. The pipeline is
    built afresh, so drawing the probe never advances the training input's shuffling."""
    if split not in ("dev", "train"):
        raise ConfigError(f"split {split!r}: diagnostics probe the dev or the train split")
    train, dev, _ = task.datasets(dataset, batch_size=size, seed=seed, bucketing=False,
                                  fixed_length=False)
    source = dev if split == "dev" and dev is not None else train
    for batch in source.take(1):
        return _split_batch(batch)
    raise DataError(f"{getattr(dataset, 'description', 'the data')}: no example to probe")


def _loss_value(task: Any, loss_fn: Any, x: Any, y: Any, w: Any) -> Any:
    pred = task.model(x, training=False)
    return loss_fn(y, pred) if w is None else loss_fn(y, pred, sample_weight=w)


def _valid_steps(segment: _Segment, batch: int, time: int) -> np.ndarray:
    if segment.mask is None:
        return np.ones((batch, time), bool)
    return np.asarray(segment.mask).astype(bool).reshape(batch, time)


def _profiles(record: dict[str, list[_Segment]], grads: dict[int, Any]) -> dict[str, dict]:
    """Per layer: the mean over the batch of ``||dL/dh_t||`` at each step (padded steps
    excluded), aligned with the input's time axis."""
    out = {}
    for path, segments in record.items():
        for k, seg in enumerate(segments):
            steps = seg.perturbations[seg.steps()]
            if not steps:
                continue
            norms = []
            for e in steps:
                g = grads.get(id(e))
                norms.append(np.zeros(e.shape[0]) if g is None
                             else np.linalg.norm(np.asarray(g, np.float64), axis=-1))
            norms_bt = np.stack(norms, axis=1)  # [batch, time] in processing order
            if seg.backwards:
                norms_bt = norms_bt[:, ::-1]
            valid = _valid_steps(seg, norms_bt.shape[0], norms_bt.shape[1])
            counts = valid.sum(0)
            mean = np.where(counts > 0, (norms_bt * valid).sum(0) / np.maximum(counts, 1), 0.0)
            key = path if len(segments) == 1 else f"{path}#{k}"
            out[key] = {"profile": [float(v) for v in mean], "valid_rows": counts.tolist(),
                        "direction": "backward" if seg.backwards else "forward"}
    return out


def temporal_profile(task: Any, x: Any, y: Any, sample_weight: Any = None,
                     loss_fn: Any = None, keep_inputs: bool = False) -> dict[str, Any]:
    """``{"loss", "layers": {path: {"profile": [||dL/dh_t|| per t], ...}}}`` on one batch
    (inference mode: no dropout), plus the per-layer gradient norms of the weights. With
    ``keep_inputs`` the step inputs are kept for :func:`gate_saturation`."""
    import tensorflow as tf

    model = task.model
    layers = recurrent_layers(model)
    loss_fn = loss_fn if loss_fn is not None else task.loss()
    weights = list(model.trainable_variables)
    with tf.GradientTape(persistent=True) as tape:
        with _record_steps(layers, tape, keep_inputs) as record:
            loss = _loss_value(task, loss_fn, x, y, sample_weight)
    perturbations = [e for segs in record.values() for s in segs for e in s.perturbations]
    grads = tape.gradient(loss, perturbations, unconnected_gradients="none")
    weight_grads = tape.gradient(loss, weights)
    del tape
    by_id = {id(e): g for e, g in zip(perturbations, grads)}
    return {"loss": float(loss), "layers": _profiles(record, by_id),
            "weight_norms": layer_norms([v.path for v in weights],
                                        [_sq_norm(g) for g in weight_grads]),
            "_record": record if keep_inputs else None}


def _sq_norm(g: Any) -> float:
    if g is None:
        return 0.0
    values = getattr(g, "values", g)  # IndexedSlices (embeddings): the rows that got gradient
    return float(np.sum(np.square(np.asarray(values, np.float64))))


def layer_norms(paths: Sequence[str], squares: Sequence[float]) -> dict[str, float]:
    """Gradient norm per layer: variables grouped by their owner's path (``encoder/lstm_0``)."""
    total: dict[str, float] = {}
    for path, sq in zip(paths, squares):
        owner = path.rsplit("/", 1)[0] if "/" in path else path
        total[owner] = total.get(owner, 0.0) + float(sq)
    return {k: math.sqrt(v) for k, v in total.items()}


def memory_length(profile: Sequence[float], floor: float = MEMORY_FLOOR,
                  direction: str = "forward") -> dict[str, Any]:
    """How far back the gradient reaches: counting back from the step where ``||dL/dh_t||``
    peaks, the lag at which it first falls below ``floor`` x the peak (``None``: it never does
    within the sequence, so the memory is at least ``reach`` steps). ``decay_per_step`` is the
    geometric mean factor per step over that span. A ``"backward"`` layer's past is the later
    steps: its profile is read in its processing order (``peak_step`` stays on the time axis).
    Meaningful when the loss reads the last step (a last-state read-out); a loss on every step
    (pooling, per-step outputs) adds each step's direct gradient to the profile."""
    g = np.asarray(profile, np.float64)
    if direction == "backward":
        info = memory_length(g[::-1], floor)
        if info["peak_step"] is not None:
            info["peak_step"] = len(g) - 1 - info["peak_step"]
        return info
    if g.size == 0 or not np.isfinite(g).all() or g.max() <= 0:
        return {"peak_step": None, "memory_length": None, "reach": 0, "decay_per_step": None}
    peak = int(g.argmax())
    below = np.flatnonzero(g[:peak + 1][::-1] < floor * g[peak])
    lag = int(below[0]) if below.size else None
    span = lag if lag is not None else peak
    decay = None
    if span and g[peak - span] > 0:
        decay = float((g[peak - span] / g[peak]) ** (1.0 / span))
    return {"peak_step": peak, "memory_length": lag, "reach": peak,
            "decay_per_step": decay, "start_to_peak": float(g[0] / g[peak])}


# -- recurrent matrices and gates ---------------------------------------------------------------
def recurrent_matrices(layer: Any) -> dict[str, np.ndarray]:
    """The recurrent matrix of each gate, ``[units, units]`` (Keras order: LSTM i, f, c, o;
    GRU z, r, h)."""
    kind = cell_kind(layer)
    u = np.asarray(layer.cell.recurrent_kernel, np.float64)
    names = GATES[kind]
    units = u.shape[0]
    if u.shape[1] != units * len(names):
        return {"recurrent": u}
    return {n: u[:, i * units:(i + 1) * units] for i, n in enumerate(names)}


def spectrum(matrix: np.ndarray) -> dict[str, Any]:
    """Spectral radius (largest |eigenvalue|, what repeated multiplication by the matrix grows
    or shrinks like) and singular values (largest first) of a square matrix."""
    m = np.asarray(matrix, np.float64)
    sv = np.linalg.svd(m, compute_uv=False)
    return {"spectral_radius": float(np.abs(np.linalg.eigvals(m)).max()),
            "singular_values": [float(v) for v in sv],
            "max_singular_value": float(sv[0]), "min_singular_value": float(sv[-1])}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def gate_activations(layer: Any, x: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
    """The sigmoid gates of one LSTM/GRU step from its input ``x [B, in]`` and previous output
    ``h [B, units]`` (the cell's own weights and recurrent activation)."""
    cell = layer.cell
    kind = cell_kind(layer)
    units = int(cell.units)
    w = np.asarray(cell.kernel, np.float64)
    u = np.asarray(cell.recurrent_kernel, np.float64)
    bias = np.asarray(cell.bias, np.float64) if getattr(cell, "use_bias", False) else None
    act = getattr(cell, "recurrent_activation", None)
    sig = _sigmoid if getattr(act, "__name__", "sigmoid") == "sigmoid" else (
        lambda z: np.asarray(act(z), np.float64))
    if kind == "lstm":
        z = x @ w + h @ u + (bias if bias is not None else 0.0)
        return {"input": sig(z[:, :units]), "forget": sig(z[:, units:2 * units]),
                "output": sig(z[:, 3 * units:])}
    # GRU: bias [3u] (reset_after=False) or [2, 3u] (input and recurrent biases).
    if bias is None:
        bx, bh = 0.0, 0.0
    elif bias.ndim == 2:
        bx, bh = bias[0], bias[1]
    else:
        bx, bh = bias, 0.0
    zx, zh = x @ w + bx, h @ u + bh
    return {"update": sig(zx[:, :units] + zh[:, :units]),
            "reset": sig(zx[:, units:2 * units] + zh[:, units:2 * units])}


def gate_saturation(layers: Sequence[tuple[str, Any]], record: dict[str, list[_Segment]],
                    threshold: float = SATURATION) -> dict[str, dict[str, dict[str, float]]]:
    """Per LSTM/GRU layer and gate: the fraction of activations below ``threshold``, above
    ``1 - threshold``, and the mean, over the valid steps of the recorded batch."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for path, layer in layers:
        if cell_kind(layer) == "simple":
            continue
        sums: dict[str, list[float]] = {}
        for seg in record.get(path, []):
            idx = seg.steps()
            xs, hs = seg.inputs[idx], seg.states[idx]
            if not xs:
                continue
            valid = _valid_steps(seg, int(xs[0].shape[0]), len(xs))
            if seg.backwards:
                valid = valid[:, ::-1]
            for t, (x, h) in enumerate(zip(xs, hs)):
                rows = valid[:, t]
                if not rows.any():
                    continue
                gates = gate_activations(layer, np.asarray(x, np.float64)[rows],
                                         np.asarray(h, np.float64)[rows])
                for name, a in gates.items():
                    acc = sums.setdefault(name, [0.0, 0.0, 0.0, 0.0])
                    acc[0] += float((a < threshold).sum())
                    acc[1] += float((a > 1 - threshold).sum())
                    acc[2] += float(a.sum())
                    acc[3] += a.size
        if sums:
            out[path] = {n: {"near_0": s[0] / s[3], "near_1": s[1] / s[3],
                             "saturated": (s[0] + s[1]) / s[3], "mean": s[2] / s[3]}
                         for n, s in sums.items()}
    return out
