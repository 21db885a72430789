"""Which onnxruntime session options pay off for rnnzoo bundles, measured rather than assumed.

    python benchmarks/bench_session_options.py [--rounds 5]

For the shipped presets' fp32 bundles (``sentiment_bilstm.sst2`` classifier at B1 T50, B8 T50
and B32 T200; the ``translator_gru_attention.spa_eng`` decoder step at batch 1, 5 and 100 with
12 source tokens), at 1 and 2 intra-op threads, each option changed alone from rnnzoo's
default (``export.bundle.session_options``: spinning off, memory arena on, every graph
optimisation, sequential execution):

* ``spinning``: worker threads spin between calls instead of sleeping
* ``no arena``: ``enable_cpu_mem_arena = False``
* ``opt extended`` / ``opt basic``: a lower ``graph_optimization_level``
* ``parallel``: ``ExecutionMode.ORT_PARALLEL`` with 2 inter-op threads (independent nodes,
  e.g. the two directions of a BiLSTM layer, run at once)
* ``iobinding`` (decoder only): the per-sentence inputs (encoder outputs, keys, mask) bound
  once as OrtValues and the outputs bound to onnxruntime memory, instead of ``session.run``
  converting numpy arrays at every step

Sessions take turns in rounds, so a burst of load on a shared machine falls on all of them.
Median ms per call; the ratio is the default's time over the option's (> 1: the option is
faster).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
def _preset(name: str) -> Path:
    """The installed preset's directory (core package or its rnnzoo-presets-* distribution)."""
    from rnnzoo.presets import resolve_preset

    return resolve_preset(name)


def options(threads: int, spinning: bool = False, arena: bool = True,
            level: str = "all", parallel: bool = False) -> ort.SessionOptions:
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 2 if parallel else 1
    spin = "1" if spinning else "0"
    o.add_session_config_entry("session.intra_op.allow_spinning", spin)
    o.add_session_config_entry("session.inter_op.allow_spinning", spin)
    o.enable_cpu_mem_arena = arena
    o.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}[level]
    if parallel:
        o.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    return o


VARIANTS = {"default": {}, "spinning": {"spinning": True}, "no arena": {"arena": False},
            "opt extended": {"level": "extended"}, "opt basic": {"level": "basic"},
            "parallel": {"parallel": True}}


def rounds(calls: dict, n_rounds: int, per_round: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in calls}
    for fn in calls.values():
        fn()
    for _ in range(n_rounds):
        for name, fn in calls.items():
            fn()
            for _ in range(per_round):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def classifier(threads: int, n_rounds: int) -> list[tuple[str, dict]]:
    path = str(_preset("sentiment_bilstm.sst2") / "onnx" / "fp32" / "model.onnx")
    sessions = {k: ort.InferenceSession(path, options(threads, **v),
                                        providers=["CPUExecutionProvider"])
                for k, v in VARIANTS.items()}
    rng = np.random.default_rng(0)
    out = []
    for b, t, per in ((1, 50, 20), (8, 50, 10), (32, 200, 3)):
        x = rng.integers(2, 20000, size=(b, t)).astype(np.int32)
        calls = {k: (lambda s=s, x=x: s.run(None, {"tokens": x})) for k, s in sessions.items()}
        out.append((f"classifier B{b} T{t}", rounds(calls, n_rounds, per)))
    return out


def decoder(threads: int, n_rounds: int) -> list[tuple[str, dict]]:
    base = _preset("translator_gru_attention.spa_eng") / "onnx" / "fp32"
    enc = ort.InferenceSession(str(base / "encoder_model.onnx"), options(1),
                               providers=["CPUExecutionProvider"])
    path = str(base / "decoder_model.onnx")
    sessions = {k: ort.InferenceSession(path, options(threads, **v),
                                        providers=["CPUExecutionProvider"])
                for k, v in VARIANTS.items()}
    rng = np.random.default_rng(0)
    out = []
    for b, per in ((1, 50), (5, 30), (100, 3)):
        src = rng.integers(3, 16000, size=(b, 12)).astype(np.int32)
        encoded = dict(zip([o.name for o in enc.get_outputs()], enc.run(None, {"source": src})))
        encoded["source_mask"] = (src != 0).astype(np.float32)
        dec = sessions["default"]
        feeds = {i.name: encoded[i.name] for i in dec.get_inputs()[1:]}
        feeds[dec.get_inputs()[0].name] = np.ones(b, np.int32)
        calls = {k: (lambda s=s, f=feeds: s.run(None, f)) for k, s in sessions.items()}
        binding = dec.io_binding()
        token_name = dec.get_inputs()[0].name
        for name, value in feeds.items():
            if name != token_name:
                binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value))
        for o in dec.get_outputs():
            binding.bind_output(o.name, "cpu")

        def bound(binding=binding, b=b, dec=dec, token_name=token_name):
            binding.bind_cpu_input(token_name, np.ones(b, np.int32))
            dec.run_with_iobinding(binding)
            return binding.get_outputs()[0].numpy()

        calls["iobinding"] = bound
        out.append((f"decoder step B{b}", rounds(calls, n_rounds, per)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    names = [*VARIANTS, "iobinding"]
    print(f"# bench_session_options: onnxruntime {ort.__version__}, median ms per call "
          "(ratio: default / option)\n")
    print("| threads | call | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 2) + "|")
    for threads in (int(t) for t in args.threads.split(",")):
        for label, res in classifier(threads, args.rounds) + decoder(threads, args.rounds):
            cells = []
            for n in names:
                if n not in res:
                    cells.append("")
                elif n == "default":
                    cells.append(f"{res[n]:.3f}")
                else:
                    cells.append(f"{res[n]:.3f} ({res['default'] / res[n]:.2f}x)")
            print(f"| {threads} | {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
