"""Gradient diagnostics through time, for any zoo model: see vanishing and exploding gradients.

Two entry points, both generic over families (they find the recurrent layers of any Keras model,
nested in stacks, ``Bidirectional`` wrappers or decoders):

* during training (``diagnose_every: N`` in the recipe, ``rnnzoo train --diagnose``): every N
  optimizer steps, the global gradient norm and the norm per layer of the step's gradients,
  how often global-norm clipping fired and by how much, and the temporal profile on a fixed
  probe batch; written to ``RUN/diagnostics.json`` and plotted to ``RUN/diagnostics.png``.
* after training (``rnnzoo diagnose``, :func:`diagnose`): the temporal profile, gate saturation
  (LSTM/GRU), the spectral radius and singular values of every recurrent matrix, and the
  effective memory length; plain data, plus PNG plots and a text summary.

The temporal profile is ``||dL/dh_t||`` for every step t of every recurrent layer: the *total*
derivative of the loss with respect to the hidden state, through all later steps. It is measured
exactly by adding a zero perturbation ``e_t`` to the state each step produces (the cell's
``call`` is wrapped for the duration of one eager forward pass) and taking ``dL/de_t`` with a
gradient tape; the model's weights and outputs are untouched. For a linear RNN
``h_t = W h_{t-1} + U x_t`` with the loss on ``h_T`` this is ``(W^T)^(T-t) dL/dh_T``.

Nothing here imports TensorFlow at module level.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.errors import ConfigError, DataError
from rnnzoo.io import atomic_write_text, ensure_directory, read_json, save_figure

DIAGNOSTICS_FILE = "diagnostics.json"
DIAGNOSTICS_PLOT = "diagnostics.png"
MEMORY_FLOOR = 1e-3  # effective memory: the lag where the profile falls below this x its peak
SATURATION = 0.05  # a gate value below 0.05 or above 0.95 counts as saturated
GATES = {"lstm": ("input", "forget", "cell", "output"), "gru": ("update", "reset", "candidate"),
         "simple": ("recurrent",)}


def _log(msg: str) -> None:
    print(f"rnnzoo: {msg}", flush=True)


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


# -- the report ---------------------------------------------------------------------------------
def diagnose(model: Any, data: str | os.PathLike, *, split: str = "dev", probe_size: int = 32,
             out: str | os.PathLike | None = None, seed: int | None = None) -> dict[str, Any]:
    """Gradient-through-time diagnostics of a trained model (a task, e.g.
    ``rnnzoo.from_preset(name, backend="keras")``, or a run/preset directory for
    ``rnnzoo.load``) on the first ``probe_size`` examples of ``split``.

    Returns plain data: per recurrent layer the temporal profile ``||dL/dh_t||``, the effective
    memory length, the spectrum of each recurrent matrix and, for LSTM/GRU, gate saturation;
    the gradient norm per layer; ``summary`` (text). With ``out``, also writes
    ``report.json``, ``profile.png``, ``spectrum.png`` and (LSTM/GRU) ``gates.png`` there."""
    from rnnzoo.registry import load
    from rnnzoo.task import Task

    task = model if isinstance(model, Task) else load(model)
    task.require_fitted()
    if not isinstance(probe_size, int) or isinstance(probe_size, bool) or probe_size < 1:
        raise ConfigError(f"probe_size: expected an integer >= 1, found {probe_size!r}")
    seed = task.config.training.seed if seed is None else seed
    dataset = task.load_data(data, seed=seed)
    x, y, w = probe_batch(task, dataset, probe_size, seed, split)
    layers = recurrent_layers(task.model)
    if not layers:
        raise ConfigError(f"{task.name}: the model has no recurrent layer to diagnose")
    measured = temporal_profile(task, x, y, w, keep_inputs=True)
    record = measured.pop("_record")
    kinds = {path: cell_kind(layer) for path, layer in layers}
    report_layers = {}
    for key, prof in measured["layers"].items():
        path = key.split("#")[0]
        layer = dict(layers)[path]
        report_layers[key] = {
            "cell": kinds[path], "units": int(layer.cell.units), **prof,
            **memory_length(prof["profile"], direction=prof["direction"]),
            "matrices": {n: spectrum(m) for n, m in recurrent_matrices(layer).items()}}
    report = {
        "entry": task.name, "family": task.config.family, "data": dataset.description,
        "split": split if split == "train" or dataset.num_dev else "train",
        "probe_examples": int(np.asarray(y).shape[0]), "loss": measured["loss"],
        "memory_floor": MEMORY_FLOOR, "saturation_threshold": SATURATION,
        "layers": report_layers, "gates": gate_saturation(layers, record),
        "gradient_norm_per_layer": measured["weight_norms"],
    }
    report["summary"] = summarize(report)
    if out is not None:
        write_report(report, Path(out))
    return report


def summarize(report: dict) -> str:
    """A few lines: per layer the memory length, decay and spectral radius, gate saturation."""
    lines = [f"{report['entry']} on {report['data']} ({report['probe_examples']} {report['split']} "
             f"examples, loss {report['loss']:.4g})"]
    for path, info in report["layers"].items():
        prof = np.asarray(info["profile"])
        mem = info["memory_length"]
        reach = (f"memory length {mem} steps (||dL/dh_t|| < {report['memory_floor']:g} x peak)"
                 if mem is not None else
                 f"gradient never falls below {report['memory_floor']:g} x peak over the "
                 f"{info['reach']} steps before it (memory >= {info['reach']})")
        decay = info.get("decay_per_step")
        radius = max(m["spectral_radius"] for m in info["matrices"].values())
        lines.append(f"  {path} ({info['cell']}, {info['units']} units): {reach}; "
                     f"||dL/dh|| first/peak {info.get('start_to_peak', 0.0):.2e}"
                     + (f", x{decay:.3f} per step" if decay is not None else "")
                     + f"; spectral radius {radius:.3f} (largest over gates); "
                     f"peak at step {info['peak_step']} of {len(prof)}")
    for path, gates in report["gates"].items():
        text = ", ".join(f"{g} {v['saturated']:.0%} (mean {v['mean']:.2f})"
                         for g, v in gates.items())
        lines.append(f"  {path} gates saturated (<{report['saturation_threshold']:g} or "
                     f">{1 - report['saturation_threshold']:g}): {text}")
    return "\n".join(lines)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_profiles(profiles: dict[str, Sequence[float]], path: Path, title: str) -> Path:
    """||dL/dh_t|| against t on a log scale, one line per label."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, prof in profiles.items():
        g = np.asarray(prof, np.float64)
        ax.semilogy(np.arange(len(g)), np.where(g > 0, g, np.nan), label=label)
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dL/dh_t||")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def write_report(report: dict, out: Path) -> None:
    """``report.json`` and the plots of :func:`diagnose` into ``out``."""
    ensure_directory(out)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    plot_profiles({k: v["profile"] for k, v in report["layers"].items()},
                  out / "profile.png", f"{report['entry']}: gradient through time")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for path, info in report["layers"].items():
        for gate, m in info["matrices"].items():
            ax.semilogy(m["singular_values"],
                        label=f"{path} {gate} (rho {m['spectral_radius']:.2f})")
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    ax.set_title(f"{report['entry']}: recurrent matrices")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    save_figure(fig, out / "spectrum.png", dpi=90)
    if report["gates"]:
        labels, low, high = [], [], []
        for path, gates in report["gates"].items():
            for g, v in gates.items():
                labels.append(f"{path.rsplit('/', 1)[-1]}\n{g}")
                low.append(v["near_0"])
                high.append(v["near_1"])
        fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(labels)), 3.8))
        pos = np.arange(len(labels))
        ax.bar(pos, low, label=f"near 0 (<{SATURATION:g})")
        ax.bar(pos, high, bottom=low, label=f"near 1 (>{1 - SATURATION:g})")
        ax.set_xticks(pos, labels, fontsize=7, rotation=30, ha="right")
        ax.set_ylabel("fraction of activations")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        ax.set_title(f"{report['entry']}: gate saturation")
        fig.tight_layout()
        save_figure(fig, out / "gates.png", dpi=90)


# -- during training ----------------------------------------------------------------------------
def training_callback(task: Any, dataset: Any, run_dir: Path, every: int, clipnorm: float,
                      seed: int, strategy: Any = None, probe_size: int = 32) -> Any:
    """The Keras callback behind ``diagnose_every``; None (with a note) under a distribution
    strategy, where the probe would run on one replica's copy only."""
    if strategy is not None:
        _log("diagnostics are single-process: off under a tf.distribute strategy")
        return None
    import keras
    import tensorflow as tf

    x, y, w = probe_batch(task, dataset, probe_size, seed)
    path = run_dir / DIAGNOSTICS_FILE

    class Diagnostics(keras.callbacks.Callback):
        """Counts in TensorFlow variables on every step (inside the compiled train step, by
        wrapping the optimizer's clipping), reads and resets them every ``every`` steps."""

        def on_train_begin(self, logs: dict | None = None) -> None:
            opt = self.model.optimizer
            opt = getattr(opt, "inner_optimizer", opt)
            self.names = [v.path for v in self.model.trainable_variables]
            n = max(1, len(self.names))
            self.stats = {k: tf.Variable(0.0, trainable=False, dtype=tf.float32)
                          for k in ("steps", "clipped", "norm_sum", "norm_max", "scale_sum")}
            self.last_sq = tf.Variable(tf.zeros([n]), trainable=False)
            stats, last_sq, original = self.stats, self.last_sq, opt._clip_gradients

            def clip(grads: list) -> list:
                squares = [tf.zeros([]) if g is None else tf.reduce_sum(tf.square(
                    tf.cast(getattr(g, "values", g), tf.float32))) for g in grads]
                norm = tf.sqrt(tf.add_n(squares)) if squares else tf.zeros([])
                fired = tf.cast(norm > clipnorm, tf.float32) if clipnorm else tf.zeros([])
                scale = tf.minimum(1.0, clipnorm / tf.maximum(norm, 1e-12)) if clipnorm \
                    else tf.ones([])
                stats["steps"].assign_add(1.0)
                stats["clipped"].assign_add(fired)
                stats["norm_sum"].assign_add(norm)
                stats["norm_max"].assign(tf.maximum(stats["norm_max"], norm))
                stats["scale_sum"].assign_add(scale)
                if len(squares) == len(self.names):
                    last_sq.assign(tf.stack(squares))
                return original(grads)

            opt.__dict__["_clip_gradients"] = clip
            self._opt = opt
            # A resumed run continues its step count from the epochs already done (whether or
            # not the backup restored the optimizer's own counter).
            epochs_done = int(getattr(self.model, "_initial_epoch", 0) or 0)
            done = epochs_done * int((self.params or {}).get("steps") or 0)
            self.base = max(0, done - int(opt.iterations.numpy()))
            self.records = self._previous()
            if not self.records:
                self._probe()

        def _previous(self) -> list:
            """Records of an interrupted run up to the step it resumes from."""
            if not path.is_file():
                return []
            try:
                old = read_json(path, DataError, "")
                step = self._step()
                return [r for r in old.get("records", []) if r.get("step", 1e18) <= step]
            except (DataError, AttributeError, TypeError, ValueError):
                return []

        def _step(self) -> int:
            return self.base + int(self._opt.iterations.numpy())

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if self._step() % every == 0:
                self._probe()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self._write(plot=True)

        def on_train_end(self, logs: dict | None = None) -> None:
            self._opt.__dict__.pop("_clip_gradients", None)
            self._write(plot=True)

        def _probe(self) -> None:
            s = {k: float(v.numpy()) for k, v in self.stats.items()}
            for v in self.stats.values():
                v.assign(0.0)
            measured = temporal_profile(task, x, y, w)
            steps = max(s["steps"], 1.0)
            record = {
                "step": self._step(),
                "window_steps": int(s["steps"]),
                "grad_norm_mean": s["norm_sum"] / steps if s["steps"] else None,
                "grad_norm_max": s["norm_max"] if s["steps"] else None,
                "clip_fraction": s["clipped"] / steps if s["steps"] else None,
                "clip_scale_mean": s["scale_sum"] / steps if s["steps"] else None,
                "layer_grad_norms": (layer_norms(self.names, self.last_sq.numpy().tolist())
                                     if s["steps"] else {}),
                "probe_loss": measured["loss"],
                "profiles": {k: v["profile"] for k, v in measured["layers"].items()},
            }
            self.records.append(record)
            self._write(plot=False)

        def _write(self, plot: bool) -> None:
            content = {"entry": task.name, "every": every, "clipnorm": clipnorm,
                       "probe_examples": int(np.asarray(y).shape[0]),
                       "records": self.records}
            atomic_write_text(path, json.dumps(content) + "\n")
            if plot and self.records:
                plot_training(content, run_dir / DIAGNOSTICS_PLOT)

    return Diagnostics()


def plot_training(content: dict, path: Path) -> Path:
    """Gradient norms and clipping over training, and the temporal profile of the first
    recurrent layer on a log scale, one line per probe."""
    plt = _plt()
    records = content["records"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    trained = [r for r in records if r.get("window_steps")]
    steps = [r["step"] for r in trained]
    ax = axes[0]
    if trained:
        ax.semilogy(steps, [r["grad_norm_mean"] for r in trained], "o-", label="global (mean)")
        ax.semilogy(steps, [r["grad_norm_max"] for r in trained], "--", label="global (max)")
        for layer in trained[-1]["layer_grad_norms"]:
            ax.semilogy(steps, [max(r["layer_grad_norms"].get(layer, 0.0), 1e-12)
                                for r in trained], lw=0.8, label=layer)
    if content.get("clipnorm"):
        ax.axhline(content["clipnorm"], color="k", lw=0.8, ls=":", label="clipnorm")
    ax.set_xlabel("step")
    ax.set_title("gradient norm before clipping")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    ax.grid(alpha=0.3, which="both")
    ax = axes[1]
    if trained:
        ax.plot(steps, [r["clip_fraction"] for r in trained], "o-", label="steps clipped")
        ax.plot(steps, [r["clip_scale_mean"] for r in trained], "s-",
                label="mean scale applied")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_title("global-norm clipping")
    if trained:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[2]
    first = next((k for r in records for k in r["profiles"]), None)
    cmap = plt.get_cmap("viridis")
    with_profile = [r for r in records if first in r["profiles"]]
    for i, r in enumerate(with_profile):
        g = np.asarray(r["profiles"][first], np.float64)
        ax.semilogy(np.arange(len(g)), np.where(g > 0, g, np.nan), lw=1,
                    color=cmap(i / max(1, len(with_profile) - 1)), label=f"step {r['step']}")
    ax.set_xlabel("time step t")
    ax.set_title(f"||dL/dh_t|| ({first})")
    ax.grid(alpha=0.3, which="both")
    if len(with_profile) <= 12:
        ax.legend(fontsize=6)
    elif with_profile:  # many probes: a colour scale of the training step instead
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        norm = Normalize(with_profile[0]["step"], with_profile[-1]["step"])
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="training step")
    fig.suptitle(f"{content['entry']}: gradient diagnostics (probe of "
                 f"{content['probe_examples']} examples every {content['every']} steps)")
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
