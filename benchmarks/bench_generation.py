"""Decoding speed of a translator at equal threads: Keras (compiled step) vs the ONNX runtime.

    python benchmarks/bench_generation.py [--threads 1,2] [--run RUN_DIR] [--sentences 100]

The shipped ``translator_gru_attention.spa_eng`` preset by default (``--run`` for another run or
preset directory), exported to fp32 and int8 bundles in a temporary directory. It decodes the
same sentences (the first N of the grouped test split of
``../shared/data/translation_spa_eng/spa.txt``) with greedy and beam-5 search through every
engine, which share the samplers of ``rnnzoo.engines`` (finished rows leave the batch, beam
search scores only each beam's best 2 x width tokens), and prints tokens/s and the ratio to Keras.
Then batch-1 decoding (sentence by sentence, the encoder included; engines take turns in rounds)
and the latency of one decoder step at batch 1, 5 (a beam) and 100.

For each thread count N a fresh process is pinned to N cores (``os.sched_setaffinity``) and both
engines get N threads: TensorFlow through ``tf.config.threading`` (intra- and inter-op N),
onnxruntime through ``intra_op_threads``. With N > 1 the runtime rows are the
``intra_op_threads="auto"`` policy (batch 1 on one thread, batches of 8 rows or more on N) and N
threads with the decoder's threads spinning between steps (``graph_options``), which suits a
decoding loop on cores the app owns. One run: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESET = "translator_gru_attention.spa_eng"
KERAS = "Keras (tf.function step)"


def _engine(runner):
    """(encode, step) over one GraphRunner: Keras graphs and bundles share the engine."""
    from rnnzoo.apps.translation.inference import encode_sources
    from rnnzoo.engines.decoding import graph_step

    return (lambda tokens: encode_sources(runner, tokens)), graph_step(runner, "decoder")


def _decode(engine, pre, sources, sampler_kwargs, max_length):
    """Tokens generated, seconds and the token lists, for one batch of all sentences."""
    import numpy as np

    from rnnzoo.data.batching import pad_rows
    from rnnzoo.engines.decoding import generate

    encode, step = engine
    t = time.perf_counter()
    tokens = pad_rows([pre.encode_source(s) for s in sources])
    bos = pre.target.index["<s>"]
    eos = pre.target.index["</s>"]
    out = generate(step, np.full(len(sources), bos, np.int32), encode(tokens),
                   max_length=max_length, end_token=eos, **sampler_kwargs)
    seconds = time.perf_counter() - t
    return int(out.lengths.sum()), seconds, out.sequences()


def child(args) -> dict:
    threads = args.child
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from rnnzoo.export import runtime, to_onnx

    import rnnzoo
    from rnnzoo.data.batching import pad_rows

    task = rnnzoo.load(args.run) if args.run else rnnzoo.from_preset(PRESET, backend="keras")
    pre = task.preprocessor
    if Path(args.data).exists():
        sources = [s for s, _ in task.load_data(args.data, seed=1234).test[: args.sentences]]
    else:
        sources = ["¿dónde está la estación?"] * args.sentences
    result: dict = {"threads": threads, "batch": [], "batch1": [], "step": []}
    with tempfile.TemporaryDirectory() as work:
        to_onnx(task, Path(work) / "bundle", quantize="int8")
        fp32, int8 = Path(work) / "bundle", Path(work) / "bundle-int8"
        engines = {KERAS: _engine(task.keras_graphs())}
        if threads == 1:
            engines["runtime fp32"] = _engine(runtime.load(fp32, intra_op_threads=1))
            engines["runtime int8"] = _engine(runtime.load(int8, intra_op_threads=1))
        else:
            spin = {"decoder": {"spinning": True}}
            engines['runtime fp32, threads "auto"'] = _engine(
                runtime.load(fp32, intra_op_threads="auto"))
            engines[f"runtime fp32, {threads} threads, decoder spinning"] = _engine(
                runtime.load(fp32, intra_op_threads=threads, graph_options=spin))
            engines[f"runtime int8, {threads} threads, decoder spinning"] = _engine(
                runtime.load(int8, intra_op_threads=threads, graph_options=spin))
        for label, kw in (("greedy", {"sampler": "greedy"}),
                          ("beam 5", {"sampler": "beam", "width": 5})):
            outputs, secs, counts = {}, {name: [] for name in engines}, {}
            for engine in engines.values():
                _decode(engine, pre, sources[:8], kw, 5)  # warm-up (tracing, wide sessions)
            for _ in range(args.repeats):  # engines take turns (see below)
                for name, engine in engines.items():
                    n, sec, toks = _decode(engine, pre, sources, kw, args.max_length)
                    outputs[name], counts[name] = toks, n
                    secs[name].append(sec)
            for name in engines:
                same = sum(a == b for a, b in zip(outputs[KERAS], outputs[name]))
                result["batch"].append([label, name, counts[name], statistics.median(secs[name]),
                                        same, len(outputs[name])])

        few = sources[: args.batch1_sentences]
        for label, kw in (("greedy", {"sampler": "greedy"}),
                          ("beam 5", {"sampler": "beam", "width": 5})):
            # Engines take turns in rounds, so a burst of load on a shared machine falls on all
            # of them; within a round an engine decodes all the sentences in a row, as an app
            # would (turns per sentence would have each evict the other's weights first).
            totals = {name: [0, 0.0] for name in engines}
            for _ in range(args.batch1_rounds):
                for name, engine in engines.items():
                    for sentence in few:
                        n, sec, _ = _decode(engine, pre, [sentence], kw, args.max_length)
                        totals[name][0] += n
                        totals[name][1] += sec
            for name, (n, sec) in totals.items():
                result["batch1"].append([label, name, n, sec])

        for b in (1, 5, 100):
            times = {name: [] for name in engines}
            tok = np.full(b, pre.target.index["<s>"], np.int32)
            src = pad_rows([pre.encode_source(s) for s in (sources * b)[:b]])
            states = {name: encode(src) for name, (encode, _) in engines.items()}
            calls = 100 if b < 100 else 5
            for _ in range(5):  # rounds, engines interleaved (see above)
                for name, (_, step) in engines.items():
                    for _ in range(max(2, calls // 5)):
                        step(tok, states[name])
                    for _ in range(calls):
                        t = time.perf_counter()
                        step(tok, states[name])
                        times[name].append(time.perf_counter() - t)
            for name in engines:
                result["step"].append([b, name, statistics.median(times[name]) * 1e3])
    result["title"] = (f"{task.name} ({'run ' + args.run if args.run else PRESET}), "
                       f"{len(sources)} test sentences, max {args.max_length} tokens")
    return result


def print_tables(res: dict) -> None:
    n = res["threads"]
    print(f"\n### {n} thread{'s' if n > 1 else ''} each: {res['title']}")
    print("\n| decoding, all sentences in one batch | engine | tokens | seconds (median) | "
          "tokens/s | vs Keras | token-identical to Keras |")
    print("|---|---|---|---|---|---|---|")
    base = {}
    for label, name, toks, sec, same, total in res["batch"]:
        base.setdefault(label, toks / sec)
        print(f"| {label} | {name} | {toks} | {sec:.2f} | {toks / sec:.0f} | "
              f"{toks / sec / base[label]:.2f}x | {same}/{total} |")
    print("\n| batch 1 (sentence by sentence) | engine | tokens | seconds | tokens/s | vs Keras |")
    print("|---|---|---|---|---|---|")
    base = {}
    for label, name, toks, sec in res["batch1"]:
        base.setdefault(label, toks / sec)
        print(f"| {label} | {name} | {toks} | {sec:.2f} | {toks / sec:.0f} | "
              f"{toks / sec / base[label]:.2f}x |")
    print("\n| one decoder step | engine | median ms | vs Keras |")
    print("|---|---|---|---|")
    base = {}
    for b, name, ms in res["step"]:
        base.setdefault(b, ms)
        print(f"| batch {b} | {name} | {ms:.3f} | {base[b] / ms:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a trained translator run/preset directory (default: the "
                                      f"shipped {PRESET} preset)")
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/translation_spa_eng"
                                              / "spa.txt"))
    parser.add_argument("--threads", default="1,2", help="thread counts, one process each")
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5,
                        help="decodings of the whole batch per engine (the median is shown)")
    parser.add_argument("--batch1-sentences", type=int, default=20,
                        help="sentences decoded one at a time for the batch-1 table")
    parser.add_argument("--batch1-rounds", type=int, default=3,
                        help="passes over those sentences (engines take turns per pass)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args)))
        return
    cores = len(os.sched_getaffinity(0))
    print(f"# bench_generation: {cores} cores granted; each thread count in its own process "
          "pinned to that many cores; TensorFlow and onnxruntime both get N threads")
    for n in (int(t) for t in args.threads.split(",")):
        if n > cores:
            print(f"\n(skipping {n} threads: only {cores} cores)")
            continue
        cmd = [sys.executable, __file__, "--child", str(n), "--data", args.data,
               "--sentences", str(args.sentences), "--max-length", str(args.max_length),
               "--batch1-sentences", str(args.batch1_sentences),
               "--batch1-rounds", str(args.batch1_rounds),
               "--repeats", str(args.repeats)] + (["--run", args.run]
                                                              if args.run else [])
        out = subprocess.run(cmd, capture_output=True, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if out.returncode or not lines:
            sys.exit(f"{n} threads: the measuring process failed:\n{out.stderr[-3000:]}")
        print_tables(json.loads(lines[-1][len("RESULT "):]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
