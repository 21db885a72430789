"""Multi-worker training overhead: 1 process vs MultiWorkerMirroredStrategy workers on loopback.

    python benchmarks/bench_distributed.py [--data ../shared/data/sentiment/MR] [--epochs 3]
                                           [--entry sentiment_gru] [--batch-size 64]

Same model, data and global batch in every row; each row is a fresh set of processes (started by
``rnnzoo.launch`` with their TF_CONFIG, as ``rnnzoo launch`` does). Throughput is measured on the
epochs after the first (which includes tracing). On one machine the workers share its cores, so
two workers show the cost of the collective machinery, not a speed-up: the speed-up needs
workers on separate machines (or accelerators). One run, ratios only: these machines are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name: (description, rnnzoo.train strategy, number of worker processes)
CONFIGS = {
    "single": ("1 process, no strategy (bucketed batches)", None, 1),
    "single_fixed": ("1 process, no strategy, no bucketing", None, 1),
    "mw1": ("1 worker, MultiWorkerMirroredStrategy", "multiworker", 1),
    "mw2": ("2 workers, MultiWorkerMirroredStrategy (loopback)", "multiworker", 2),
}


def worker(args: argparse.Namespace) -> None:
    """One training process (a worker of the launched job); the chief writes the result."""
    import keras

    import rnnzoo

    epoch_times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            epoch_times.append(time.perf_counter() - self.t)

    _, strategy, _ = CONFIGS[args.worker]
    overrides = {"units": 64, "embedding_dim": 64, "vocab_size": 10000, "max_length": 40,
                 "batch_size": args.batch_size, "epochs": args.epochs,
                 "early_stopping_patience": 0, "warmup_steps": 0}
    if args.worker == "single_fixed":
        overrides["bucketing"] = False
    result = rnnzoo.train(args.entry, args.data, out=Path(args.out) / "run", strategy=strategy,
                          verbose=0, callbacks=[Timer()], **overrides)
    log = json.loads((result.run_dir / "train.log.json").read_text()) if (
        result.run_dir / "train.log.json").is_file() else None
    if log is None:  # a non-chief worker: the chief reports
        return
    timed = epoch_times[1:] or epoch_times
    seconds = sum(timed) / len(timed)
    steps = log["steps_per_epoch"]
    (Path(args.out) / "result.json").write_text(json.dumps({
        "steps": steps, "epoch_s": seconds, "first_epoch_s": epoch_times[0],
        "steps_per_s": steps / seconds, "samples_per_s": steps * args.batch_size / seconds,
        "replicas": log["replicas"], "dev_accuracy": result.metrics.get("accuracy"),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/sentiment/MR"))
    parser.add_argument("--entry", default="sentiment_gru")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from rnnzoo.launch import launch

    if not Path(args.data).exists():
        sys.exit(f"data not found: {args.data} (pass --data; see README)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# bench_distributed: {args.entry} (embedding 64, GRU 64, vocab 10000, max_length 40)"
          f" on {args.data}, global batch {args.batch_size}, {args.epochs} epochs; "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at start")
    results = {}
    for name in args.configs.split(","):
        description, _, n = CONFIGS[name]
        out = Path(tempfile.mkdtemp(prefix=f"bench_distributed_{name}_"))
        cmd = [sys.executable, __file__, "--worker", name, "--out", str(out), "--data",
               args.data, "--entry", args.entry, "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        t = time.time()
        # A TF_CONFIG cluster even for the single-process rows: the launcher is the same.
        run = launch(cmd, workers=n, log_dir=out / "logs", timeout=args.timeout, env=env,
                     echo=False)
        if run.returncode or not (out / "result.json").is_file():
            print(f"{name}: FAILED (exit {run.returncode}); logs in {run.log_dir}")
            continue
        results[name] = json.loads((out / "result.json").read_text())
        print(f"  ran {name} in {time.time() - t:.0f}s (including start-up)", file=sys.stderr,
              flush=True)

    base = results.get("single_fixed") or results.get("single")
    print()
    print("| config | replicas | steps/epoch | epoch s | steps/s | samples/s | vs 1 process, "
          "no bucketing | dev acc |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = f"{r['samples_per_s'] / base['samples_per_s']:.2f}x" if base else "n/a"
        acc = f"{r['dev_accuracy']:.4f}" if r["dev_accuracy"] is not None else "n/a"
        print(f"| {CONFIGS[name][0]} | {r['replicas']} | {r['steps']} | {r['epoch_s']:.1f} | "
              f"{r['steps_per_s']:.1f} | {r['samples_per_s']:.0f} | {ratio} | {acc} |")
    print(f"\nsamples/s = steps/s x global batch. All workers run on this one machine and "
          f"share its {os.cpu_count()} cores: the 2-worker row shows the overhead of "
          "MultiWorkerMirroredStrategy (gradient all-reduce over loopback gRPC), not a "
          "speed-up. Under a strategy every batch is padded to max_length; the bucketed row "
          "is the loop's default without one.")


if __name__ == "__main__":
    main()
