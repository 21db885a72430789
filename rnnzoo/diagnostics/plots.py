"""The plots of the gradient diagnostics: the temporal profile, the recurrent matrices' singular
values, gate saturation (``diagnose``), gradient norms over training (the callback). Written
atomically as PNG files; matplotlib is imported only when a plot is drawn."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.io import atomic_write_text, ensure_directory, save_figure


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
        saturation = report["saturation_threshold"]
        labels, low, high = [], [], []
        for path, gates in report["gates"].items():
            for g, v in gates.items():
                labels.append(f"{path.rsplit('/', 1)[-1]}\n{g}")
                low.append(v["near_0"])
                high.append(v["near_1"])
        fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(labels)), 3.8))
        pos = np.arange(len(labels))
        ax.bar(pos, low, label=f"near 0 (<{saturation:g})")
        ax.bar(pos, high, bottom=low, label=f"near 1 (>{1 - saturation:g})")
        ax.set_xticks(pos, labels, fontsize=7, rotation=30, ha="right")
        ax.set_ylabel("fraction of activations")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        ax.set_title(f"{report['entry']}: gate saturation")
        fig.tight_layout()
        save_figure(fig, out / "gates.png", dpi=90)


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
