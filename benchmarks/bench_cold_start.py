"""Cold start: the wall time from a fresh process to the first result, through the preset's ONNX
bundle (onnxruntime, no TensorFlow import) and through Keras.

    python benchmarks/bench_cold_start.py                       # sentiment_bilstm.sst2, predict
    python benchmarks/bench_cold_start.py --preset translator_gru_attention.spa_eng \\
        --verb translate --text "¿Dónde está la estación?"

Each measurement is a new Python process (nothing cached in memory; the OS file cache is warm
after the first round, as for a user running the command twice). Rounds alternate the paths so
that load from other jobs on a shared machine hits both alike; the table gives the median and the
best of the rounds. Measured:

* the CLI: ``rnnzoo VERB PRESET TEXT`` (default backend: the bundle) and the same with
  ``--backend keras``; both must print the same result and nothing on stderr (quiet default);
* Python: ``import rnnzoo`` plus ``rnnzoo.from_preset(PRESET, backend=...)`` plus the first
  call (``predict``/``translate``/...), timed inside the process from before ``import rnnzoo``.

Targets (issue #20): the runtime CLI path under 1 s on this machine, and at least 5x faster than
the Keras path, in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PY_SNIPPET = """
import time
t0 = time.perf_counter()
import rnnzoo
m = rnnzoo.from_preset({preset!r}, backend={backend!r})
out = getattr(m, {verb!r})([{text!r}])
t1 = time.perf_counter()
import json, sys
print(json.dumps({{"seconds": t1 - t0, "tensorflow_imported": "tensorflow" in sys.modules}}))
"""


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "rnnzoo"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rnnzoo.cli"]


def time_cli(args: list[str]) -> tuple[float, str, str]:
    start = time.perf_counter()
    proc = subprocess.run(_cli() + args, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"rnnzoo {' '.join(args)} failed ({proc.returncode}): "
                         f"{proc.stderr.strip()[-500:]}")
    return wall, proc.stdout.strip(), proc.stderr.strip()


def time_python(preset: str, backend: str, verb: str, text: str) -> tuple[float, float, bool]:
    code = PY_SNIPPET.format(preset=preset, backend=backend, verb=verb, text=text)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"python ({backend}) failed: {proc.stderr.strip()[-500:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall, info["seconds"], info["tensorflow_imported"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sentiment_bilstm.sst2")
    parser.add_argument("--verb", default="predict")
    parser.add_argument("--text", default="a gorgeous, witty, seductive movie.")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the CLI's own quiet default applies

    cli = {"onnx": [], "keras": []}
    py = {"onnx": [], "keras": []}
    outputs = {"onnx": set(), "keras": set()}
    stderr = {"onnx": set(), "keras": set()}
    tf_loaded = {"onnx": set(), "keras": set()}
    base = [args.verb, args.preset, args.text]
    time_cli(base)  # warm the OS file cache once (not counted)
    for _ in range(args.rounds):
        for backend, extra in (("onnx", []), ("keras", ["--backend", "keras"])):
            wall, out, err = time_cli(base + extra)
            cli[backend].append(wall)
            outputs[backend].add(out)
            stderr[backend].add(err)
            _, inside, tf = time_python(args.preset, backend, args.verb, args.text)
            py[backend].append(inside)
            tf_loaded[backend].add(tf)

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.3f} s (best {min(values):.3f})"

    ratio_cli = statistics.median(cli["keras"]) / statistics.median(cli["onnx"])
    ratio_py = statistics.median(py["keras"]) / statistics.median(py["onnx"])
    print(f"cold start, {args.preset} ({args.verb}), {args.rounds} rounds, median (best)")
    print()
    print("| path | ONNX runtime (no TensorFlow) | Keras | Keras / runtime |")
    print("|---|---|---|---|")
    print(f"| `rnnzoo {args.verb} {args.preset} \"...\"` (wall, new process) | "
          f"{cell(cli['onnx'])} | {cell(cli['keras'])} | {ratio_cli:.1f}x |")
    print(f"| `import rnnzoo` + `from_preset` + first `{args.verb}` (in process) | "
          f"{cell(py['onnx'])} | {cell(py['keras'])} | {ratio_py:.1f}x |")
    print()
    same = outputs["onnx"] == outputs["keras"] and len(outputs["onnx"]) == 1
    print(f"same CLI output from both paths: {same} ({next(iter(outputs['onnx']))!r})")
    print(f"stderr empty (quiet by default): runtime {stderr['onnx'] == {''}}, "
          f"keras {stderr['keras'] == {''}}")
    print(f"TensorFlow imported on the runtime path: {tf_loaded['onnx'] != {False}}")
    fast = statistics.median(cli["onnx"]) < 1.0
    print(f"targets: runtime CLI < 1 s: {'met' if fast else 'MISSED'}; >= 5x faster than "
          f"Keras: {'met' if ratio_cli >= 5 else 'MISSED'} ({ratio_cli:.1f}x)")
    return 0 if same and fast and ratio_cli >= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
