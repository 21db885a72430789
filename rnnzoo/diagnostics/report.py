"""``diagnose``: the gradient-through-time report of a trained model, and its text summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.diagnostics.measure import (
    MEMORY_FLOOR,
    SATURATION,
    cell_kind,
    gate_saturation,
    memory_length,
    probe_batch,
    recurrent_layers,
    recurrent_matrices,
    spectrum,
    temporal_profile,
)
from rnnzoo.diagnostics.plots import write_report
from rnnzoo.errors import ConfigError


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
