"""Decoding speed of a translator: Keras (compiled, cached step) vs the ONNX runtime bundle.

    python benchmarks/bench_generation.py [--run RUN_DIR] [--sentences 100]

Decodes the same sentences (the first N of the grouped test split of
``../shared/data/translation_spa_eng/spa.txt``) with greedy and beam-5 search through both
engines, which share the samplers of ``rnnzoo.generation``, and prints tokens/s and the ratio.
Also batch-1 decoding (sentence by sentence) and the latency of one decoder step at batch 1.
Without ``--run`` it uses a randomly initialised ``translator_gru_attention`` (full size): speed
does not depend on the weights, and every sentence then decodes to ``--max-length`` tokens.

ORT uses 1 intra-op thread, plus one row whose decoder session has 2 spinning threads
(TensorFlow's default here is one thread per core, 2). The int8 bundle (dynamic quantization:
int8 matrix multiplies, the GRU stays fp32) reads 4x less weight memory per step, which is what
bounds batch-1 decoding. The batch-1 and per-step timings let the engines take turns in rounds.
One run on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _task(run: str | None):
    import numpy as np

    import rnnzoo

    if run:
        return rnnzoo.load(run)
    task = rnnzoo.create_model("translator_gru_attention")
    m = task.config.model
    task.preprocessor.source.fit([" ".join(f"s{i}" for i in range(m.src_vocab_size))],
                                 max_size=m.src_vocab_size)
    task.preprocessor.target.fit([" ".join(f"t{i}" for i in range(m.tgt_vocab_size))],
                                 max_size=m.tgt_vocab_size)
    rng = np.random.default_rng(0)
    task.model.set_weights([rng.normal(0, 0.05, w.shape).astype("float32")
                            for w in task.model.get_weights()])
    return task


def _engine(runner):
    """(encode, step) over one GraphRunner: Keras graphs and bundles share the engine."""
    from rnnzoo.generation import graph_step
    from rnnzoo.tasks.translation import encode_sources

    return (lambda tokens: encode_sources(runner, tokens)), graph_step(runner, "decoder")


def _decode(engine, pre, sources, sampler_kwargs, max_length):
    """Tokens generated and seconds, one batch of all sentences."""
    import numpy as np

    from rnnzoo.data.batching import pad_rows
    from rnnzoo.generation import generate

    encode, step = engine
    tokens = pad_rows([pre.encode_source(s) for s in sources])
    bos = pre.target.index["<s>"]
    eos = pre.target.index["</s>"]
    t = time.perf_counter()
    out = generate(step, np.full(len(sources), bos, np.int32), encode(tokens),
                   max_length=max_length, end_token=eos, **sampler_kwargs)
    seconds = time.perf_counter() - t
    return int(out.lengths.sum()), seconds, out.sequences()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a trained translator run/preset directory")
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/translation_spa_eng"
                                              / "spa.txt"))
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=40)
    parser.add_argument("--batch1-sentences", type=int, default=20,
                        help="sentences decoded one at a time for the batch-1 table")
    parser.add_argument("--batch1-rounds", type=int, default=3,
                        help="passes over those sentences (engines take turns per pass)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    from rnnzoo.export import runtime, to_onnx

    from rnnzoo.data.batching import pad_rows

    task = _task(args.run)
    if Path(args.data).exists():
        sources = [s for s, _ in task.load_data(args.data, seed=1234).test[: args.sentences]]
    else:
        sources = ["¿dónde está la estación?"] * args.sentences
    with tempfile.TemporaryDirectory() as work:
        to_onnx(task, Path(work) / "bundle", quantize="int8")
        rt = runtime.load(Path(work) / "bundle", intra_op_threads=1)
        rt2 = runtime.load(Path(work) / "bundle", graph_options={
            "decoder": {"intra_op_threads": 2, "spinning": True}})
        rt8 = runtime.load(Path(work) / "bundle-int8", intra_op_threads=1)
        engines = {"Keras (tf.function step)": _engine(task.keras_graphs()),
                   "rnnzoo runtime fp32 (ORT)": _engine(rt),
                   "rnnzoo runtime fp32 (ORT, decoder on 2 spinning threads)": _engine(rt2),
                   "rnnzoo runtime int8 (ORT)": _engine(rt8)}
        print(f"# bench_generation: {task.name} ({'trained: ' + args.run if args.run else 'random'}"
              f" weights), {len(sources)} sentences in one batch, max {args.max_length} tokens")
        print("\n| decoding | engine | tokens | seconds | tokens/s | runtime vs Keras |")
        print("|---|---|---|---|---|---|")
        for label, kw in (("greedy", {"sampler": "greedy"}),
                          ("beam 5", {"sampler": "beam", "width": 5})):
            rates, outputs = {}, {}
            for name, engine in engines.items():
                _decode(engine, task.preprocessor, sources[:4], kw, 5)  # warm-up (tracing)
                n, sec, toks = _decode(engine, task.preprocessor, sources, kw, args.max_length)
                rates[name] = n / sec
                outputs[name] = toks
                ratio = f"{rates[name] / rates['Keras (tf.function step)']:.1f}x"
                print(f"| {label} | {name} | {n} | {sec:.2f} | {n / sec:.0f} | {ratio} |")
            keras_out = outputs["Keras (tf.function step)"]
            for name, toks in outputs.items():
                if name.startswith("rnnzoo"):
                    same = sum(a == b for a, b in zip(keras_out, toks))
                    print(f"| {label} | {name}: sentences token-identical to Keras | "
                          f"{same}/{len(toks)} | | | |")

        print("\n| batch 1 (sentence by sentence) | engine | tokens | seconds | tokens/s | "
              "runtime vs Keras |")
        print("|---|---|---|---|---|---|")
        few = sources[: args.batch1_sentences]
        for label, kw in (("greedy", {"sampler": "greedy"}),
                          ("beam 5", {"sampler": "beam", "width": 5})):
            # Engines take turns in rounds, so a burst of load on this shared machine falls on
            # all of them rather than on whichever ran at that moment. Within a round an engine
            # decodes all the sentences in a row, as an app would: turns per sentence would
            # have each engine evict the other's weights from the cache first.
            totals = {name: [0, 0.0] for name in engines}
            for _ in range(args.batch1_rounds):
                for name, engine in engines.items():
                    for sentence in few:
                        n, sec, _ = _decode(engine, task.preprocessor, [sentence], kw,
                                            args.max_length)
                        totals[name][0] += n
                        totals[name][1] += sec
            rates = {}
            for name in engines:
                total_n, total_s = totals[name]
                rates[name] = total_n / total_s
                ratio = rates[name] / rates["Keras (tf.function step)"]
                print(f"| {label} | {name} | {total_n} | {total_s:.2f} | {rates[name]:.0f} | "
                      f"{ratio:.1f}x |")

        print("\n| one decoder step, batch 1 | median ms | runtime vs Keras |")
        print("|---|---|---|")
        times = {name: [] for name in engines}
        tok = np.array([task.preprocessor.target.index["<s>"]], np.int32)
        states = {name: encode(pad_rows([task.preprocessor.encode_source(sources[0])]))
                  for name, (encode, _) in engines.items()}
        for _ in range(5):  # rounds, engines interleaved (see above)
            for name, (_, step) in engines.items():
                for _ in range(20):
                    step(tok, states[name])
                for _ in range(100):
                    t = time.perf_counter()
                    step(tok, states[name])
                    times[name].append(time.perf_counter() - t)
        base = None
        for name in engines:
            ms = statistics.median(times[name]) * 1e3
            base = base or ms
            print(f"| {name} | {ms:.3f} | {base / ms:.1f}x |")


if __name__ == "__main__":
    main()
