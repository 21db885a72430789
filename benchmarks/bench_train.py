"""Training speed of the shared loop vs a plain Keras ``model.fit``, same model and data.

    python benchmarks/bench_train.py [--data ../shared/data/sentiment/SST-2] [--train-size 20000]
                                     [--epochs 2] [--entry sentiment_bilstm]

Every configuration runs in a fresh subprocess (TensorFlow thread pools and Keras dtype policies
are process-wide). The baseline is what a Keras user writes: token ids post-padded to the longest
row, ``model.compile("adam", ...)``, ``model.fit(x, y, batch_size=64)`` with TensorFlow's default
threads, float32. Throughput is measured on the last epoch (after tracing); accuracy is the SST-2
dev accuracy after the same number of epochs. One run, ratios only: these machines are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFIGS = {
    # name: (description, overrides for rnnzoo.train or None for the plain-fit baseline)
    "plain_fit": ("plain model.fit, Keras defaults", None),
    "loop_default": ("rnnzoo loop, defaults", {}),
    "loop_no_bucketing": ("loop, bucketing off", {"bucketing": False}),
    "loop_tf_threads": ("loop, TF default threads", {"intra_op_threads": 0,
                                                     "inter_op_threads": 0}),
    "loop_jit": ("loop + jit_compile", {"jit_compile": True}),
    "loop_bf16": ("loop + mixed_bfloat16", {"precision": "mixed_bfloat16"}),
}


def _subset(data, n: int, seed: int):
    import random

    idx = list(range(len(data.train_texts)))
    random.Random(seed).shuffle(idx)
    idx = idx[:n]
    data.train_texts = [data.train_texts[i] for i in idx]
    data.train_labels = [data.train_labels[i] for i in idx]
    return data


def run_one(name: str, args: argparse.Namespace) -> dict:
    """Runs inside the subprocess."""
    overrides = CONFIGS[name][1]
    import numpy as np

    import rnnzoo
    from rnnzoo.data.readers import load_text_classification

    data = _subset(load_text_classification(args.data), args.train_size, seed=0)
    epoch_times: list[float] = []

    if overrides is None:
        import keras

        task = rnnzoo.create_model(args.entry)
        task.adapt(data)
        pre = task.preprocessor
        x = pre(data.train_texts)
        y = np.asarray(data.train_labels)
        xd = pre(data.dev_texts)
        yd = np.asarray(data.dev_labels)

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                epoch_times.append(time.perf_counter() - self.t)

        model = task.model
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(x, y, batch_size=64, epochs=args.epochs, verbose=0, callbacks=[Timer()])
        steps = -(-len(x) // 64)
        acc = float((model.predict(xd, verbose=0).argmax(1) == yd).mean())
        width = x.shape[1]
    else:
        import tempfile

        import keras

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                epoch_times.append(time.perf_counter() - self.t)

        # Write the subset as a CSV so the loop reads it the way a user's data would be read.
        import csv

        tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
        path = tmp / "train.tsv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            w.writerow(["sentence", "label"])
            w.writerows(zip(data.train_texts, data.train_labels))
        with open(tmp / "dev.tsv", "w", newline="") as f:
            w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            w.writerow(["sentence", "label"])
            w.writerows(zip(data.dev_texts, data.dev_labels))
        result = rnnzoo.train(args.entry, tmp, out=tmp / "run", epochs=args.epochs,
                              early_stopping_patience=0, verbose=0, callbacks=[Timer()],
                              **overrides)
        log = json.loads((result.run_dir / "train.log.json").read_text())
        steps = log["steps_per_epoch"]
        # accuracy of the final weights (not the best checkpoint), like the baseline
        result.task.model.load_weights(result.run_dir / "checkpoints" / "last.weights.h5")
        acc = result.task.evaluate(data.dev_texts, data.dev_labels)["accuracy"]
        width = None
    last = epoch_times[-1]
    return {"name": name, "steps": steps, "samples": len(data.train_texts),
            "last_epoch_s": last, "first_epoch_s": epoch_times[0], "dev_accuracy": acc,
            "steps_per_s": steps / last, "samples_per_s": len(data.train_texts) / last,
            "padded_width": width}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/sentiment/SST-2"))
    parser.add_argument("--entry", default="sentiment_bilstm")
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print("RESULT " + json.dumps(run_one(args.worker, args)), flush=True)
        return

    import platform

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    print(f"# bench_train: {args.entry} on {args.train_size} SST-2 train sentences, "
          f"{args.epochs} epochs, batch 64; {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), AVX512_BF16: "
          f"{'avx512_bf16' in flags}")
    results = {}
    for name in args.configs.split(","):
        t = time.time()
        cmd = [sys.executable, __file__, "--worker", name, "--data", args.data, "--entry",
               args.entry, "--train-size", str(args.train_size), "--epochs", str(args.epochs)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            print(f"{name}: FAILED\n{proc.stderr[-3000:]}")
            continue
        results[name] = json.loads(line[-1][7:])
        print(f"  ran {name} in {time.time() - t:.0f}s", file=sys.stderr, flush=True)

    base = results.get("plain_fit")
    print()
    print("| config | steps/epoch | last epoch s | steps/s | samples/s | vs plain fit "
          "(samples/s) | dev acc |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = f"{r['samples_per_s'] / base['samples_per_s']:.2f}x" if base else "n/a"
        print(f"| {CONFIGS[name][0]} | {r['steps']} | {r['last_epoch_s']:.1f} | "
              f"{r['steps_per_s']:.1f} | {r['samples_per_s']:.0f} | {ratio} | "
              f"{r['dev_accuracy']:.4f} |")
    if base:
        print(f"\nplain fit pads every batch to the longest row ({base['padded_width']} tokens); "
              "the loop buckets by length.")


if __name__ == "__main__":
    main()
