"""What each cell can remember: the adding problem and copy memory (Bai et al. 2018 setups).

    python benchmarks/bench_memory.py --problem adding --T 200 --train 20000 --epochs 15 \
        --runs /work/runs/memory [--cells rnn lstm gru] [--diagnose 250] [--figure FIG.png]

For each cell, trains ``memory_<cell>`` with ``rnnzoo train`` (gradient diagnostics on: the run
directory gets ``diagnostics.json``/``.png``), skipping a run that already finished (an
unfinished one resumes), then measures the dev split and the final temporal gradient profile
with ``rnnzoo.diagnose``. Prints the exact commands, a markdown table (dev metric beside the
memoryless baseline and, at Bai et al.'s lengths, the published numbers) and writes one figure:
the three cells' ``||dL/dh_t||`` at the end of training on a log scale, and the share of steps
whose gradient was clipped over training.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

CELLS = {"rnn": "memory_rnn", "lstm": "memory_lstm", "gru": "memory_gru"}


def _command(args: argparse.Namespace, cell: str, run: Path) -> list[str]:
    data = f"{args.problem}:T={args.T},train={args.train},dev={args.dev},seed=0"
    cmd = [str(Path(sys.executable).parent / "rnnzoo"), "train", CELLS[cell], "--data", data,
           "--out", str(run), "--epochs", str(args.epochs), "--diagnose", str(args.diagnose)]
    if args.problem != "adding":
        cmd += ["--set", f"problem={args.problem}"]
    for item in args.set or []:
        cmd += ["--set", item]
    return cmd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problem", choices=["adding", "copy"], default="adding")
    parser.add_argument("--T", type=int, default=200)
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--dev", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--diagnose", type=int, default=250)
    parser.add_argument("--cells", nargs="+", choices=sorted(CELLS), default=["rnn", "lstm", "gru"])
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="a config override for every cell, e.g. chrono_init=200")
    parser.add_argument("--suffix", default="", help="appended to the run names (_chrono)")
    parser.add_argument("--runs", default="runs/memory", help="parent of the run directories")
    parser.add_argument("--figure", help="PNG of the three profiles (default RUNS/NAME.png)")
    args = parser.parse_args()

    tag = f"{args.problem}_T{args.T}{args.suffix}"
    runs = Path(args.runs)
    rows, profiles, clipping = [], {}, {}
    for cell in args.cells:
        run = runs / f"{tag}_{cell}"
        cmd = _command(args, cell, run)
        print("$", shlex.join(cmd), flush=True)
        if not (run / "checksums.json").is_file() or (run / "backup").exists():
            t0 = time.time()
            proc = subprocess.run(cmd)
            if proc.returncode:
                print(f"{cell}: training failed (exit {proc.returncode})", file=sys.stderr)
                return proc.returncode
            print(f"{cell}: {time.time() - t0:.0f}s", flush=True)
        import rnnzoo
        from rnnzoo.diagnostics import diagnose

        log = json.loads((run / "train.log.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        report = diagnose(run, cmd[cmd.index("--data") + 1], probe_size=64,
                          out=run / "diagnose")
        layer = next(iter(report["layers"].values()))
        profiles[cell] = layer["profile"]
        records = json.loads((run / "diagnostics.json").read_text())["records"]
        trained = [r for r in records if r.get("window_steps")]
        clipping[cell] = ([r["step"] for r in trained], [r["clip_fraction"] for r in trained])
        fired = sum(r["clip_fraction"] * r["window_steps"] for r in trained)
        total = sum(r["window_steps"] for r in trained)
        rows.append({
            "cell": cell, "steps": log["steps_per_epoch"] * len(
                json.loads((run / "history.json").read_text()).get("epoch", [])),
            "seconds": log["fit_seconds"], "metrics": metrics,
            "memory": layer["memory_length"], "reach": layer["reach"],
            "clipped": fired / total if total else 0.0,
            "published": metrics.get("published", {})})
        del rnnzoo
    print()
    name = "dev MSE" if args.problem == "adding" else "dev loss / digits recalled"
    print(f"| cell | {args.problem} T | steps (batch 64) | train s | {name} | memoryless "
          "baseline | memory length (steps) | steps clipped |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["metrics"]
        score = (f"{m['mse']:.4g}" if args.problem == "adding"
                 else f"{m['loss']:.4g} / {m['recall_accuracy']:.1%}")
        memory = str(r["memory"]) if r["memory"] is not None else f">= {r['reach']}"
        if args.problem == "copy":  # a loss on every step: each step has its direct gradient
            memory = "n/a"
        print(f"| {r['cell']} | {args.T} | {r['steps']} | {r['seconds']:.0f} | {score} | "
              f"{m['baseline']:.4g} | {memory} | {r['clipped']:.0%} |")
    if rows and rows[0]["published"]:
        print("published:", rows[0]["published"])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from rnnzoo.io import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for cell, prof in profiles.items():
        g = np.asarray(prof, np.float64)
        axes[0].semilogy(np.where(g > 0, g, np.nan), label=cell)
    axes[0].set_xlabel("time step t")
    axes[0].set_ylabel("||dL/dh_t||")
    axes[0].set_title(f"{args.problem} T={args.T}: gradient through time after training")
    for cell, (steps, frac) in clipping.items():
        axes[1].plot(steps, frac, "o-", ms=3, label=cell)
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel(f"share of steps clipped (window of {args.diagnose})")
    axes[1].set_title("global-norm clipping (clipnorm 1.0)")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    figure = Path(args.figure) if args.figure else runs / f"{tag}.png"
    save_figure(fig, figure, dpi=90)
    print(f"figure -> {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
