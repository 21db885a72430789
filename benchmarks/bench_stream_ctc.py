"""Streaming speech recognition: per-chunk latency (ONNX runtime vs the Keras tf.function step),
real-time factor, and how long after a spoken digit ends it appears in the transcript.

    python benchmarks/bench_stream_ctc.py [--preset ctc_lstm_stream.fsdd | --run RUN_DIR]
        [--data ../shared/data/speech_digits_fsdd] [--chunk-ms 100] [--strings 500]
        [--timed-strings 40] [--json OUT.json]

Everything runs at batch 1 with one thread per engine (TensorFlow intra/inter-op 1, onnxruntime
``intra_op_threads=1``), on the preset's fp32 and int8 bundles and its Keras model. Three parts:

1. **Per chunk.** The first ``--timed-strings`` test strings are streamed chunk by chunk through
   ``model.stream().step(chunk)`` (features, the ``stream`` graph, best-path decoding: what an
   application pays per chunk) by every engine, engines taking turns per string so load on a
   shared machine falls on all of them. Median and 90th percentile per chunk, the real-time
   factor (processing seconds / audio seconds) and the ratio to Keras. Every engine's final
   transcript is checked against ``transcribe`` of the whole string.
2. **Latency of a digit** on the first ``--strings`` test strings (the strings ``rnnzoo
   evaluate --split test`` scores). A string is FSDD recordings joined by silences
   (``StringExample.segments`` gives each recording's first and last sample); a digit *ends* at
   its recording's last sample (FSDD recordings are trimmed to near-minimal silence). It
   *appears* when the streamed transcript first has it: after the chunk whose end sample E
   gives the model the output frame where the best path emits it (output frame j reads input
   frames up to j * stride, and input frame t ends at sample (t + 1) * hop, so E >= (j * stride
   + 1) * hop; a 100 ms stream sees E only at multiples of the chunk). Latency = appearance -
   end, in ms of audio, not counting compute (part 1 adds its per-chunk time). Only strings
   transcribed exactly count (a digit's position is then its index); the model's own delay
   (10 ms chunks) is shown too. Appearance from this formula is checked against real streaming
   on the part-1 strings. The recordings keep some quiet breath after the word, so a second
   definition is reported too: the digit ends where its speech ends, at the end of the last
   10 ms hop of the recording whose RMS is within 30 dB of the recording's loudest hop.
3. The markdown table of both, printed (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRESET = "ctc_lstm_stream.fsdd"
DATA = REPO.parent / "shared" / "data" / "speech_digits_fsdd"
KERAS = "Keras (tf.function step)"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q))


def _models(args: argparse.Namespace) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from rnnzoo.export import runtime

    import rnnzoo
    from rnnzoo.presets import resolve_preset

    if args.run:
        keras_model = rnnzoo.load(args.run)
        folder = Path(args.run)
    else:
        keras_model = rnnzoo.from_preset(args.preset, backend="keras")
        folder = resolve_preset(args.preset)
    models = {"runtime fp32": runtime.load(folder / "onnx" / "fp32", intra_op_threads=1)}
    if (folder / "onnx" / "int8").is_dir():
        models["runtime int8"] = runtime.load(folder / "onnx" / "int8", intra_op_threads=1)
    models[KERAS] = keras_model
    return models


def per_chunk(models: dict, signals: list[np.ndarray], chunk: int, rate: int) -> dict:
    """Seconds per ``step`` call of every engine, their total and the final transcripts."""
    for model in models.values():  # warm-up: tracing, session first runs
        s = model.stream()
        for start in range(0, 4 * chunk, chunk):
            s.step(signals[0][start:start + chunk])
    times = {name: [] for name in models}
    finals = {name: [] for name in models}
    for signal in signals:
        for name, model in models.items():  # engines take turns per string
            s = model.stream()
            text = ""
            for start in range(0, len(signal), chunk):
                piece = signal[start:start + chunk]
                t = time.perf_counter()
                text = s.step(piece)
                times[name].append(time.perf_counter() - t)
            finals[name].append(text)
    audio_s = sum(len(x) for x in signals) / rate
    return {"times": times, "finals": finals, "audio_s": audio_s}


def emission_samples(log_probs: np.ndarray, stride: int, hop: int) -> list[int]:
    """For each label of the best path, the sample count after which a stream has it: the
    output frame j where the path emits it needs input frames up to j * stride."""
    best = log_probs.argmax(axis=-1)
    prev = np.concatenate([[0], best[:-1]])
    frames = [j for j, (c, p) in enumerate(zip(best, prev)) if c != 0 and c != p]
    return [(j * stride + 1) * hop for j in frames]


def appearance(needed: int, chunk: int, length: int) -> int:
    """The end sample of the chunk after which ``needed`` samples have arrived."""
    return min(length, math.ceil(needed / chunk) * chunk)


def speech_end(audio: np.ndarray, start: int, end: int, hop: int, db: float = 30.0) -> int:
    """The end sample of the last ``hop`` of ``audio[start:end]`` whose RMS is within ``db``
    of the loudest hop's: where the word ends inside its recording."""
    n = (end - start) // hop
    if n < 1:
        return end
    rms = np.sqrt(np.mean(audio[start:start + n * hop].reshape(n, hop).astype(np.float64) ** 2,
                          axis=1))
    loud = np.nonzero(rms >= rms.max() * 10 ** (-db / 20))[0]
    return start + (int(loud[-1]) + 1) * hop


def latency(model, examples, chunk: int, rate: int) -> dict:
    """Digit-end -> appearance latencies (ms) at ``chunk`` samples and at 10 ms chunks, from
    the end of each recording and from the end of its speech."""
    p = model.preprocessor.params
    stride = model.frame_stride
    composed = [ex.compose(rate) for ex in examples]
    lps = model.frame_log_probs([audio for audio, _ in composed])
    out = {"recording": ([], []), "speech": ([], [])}
    exact = 0
    for ex, (audio, segments), lp in zip(examples, composed, lps):
        if model.decode(lp) != ex.text:
            continue
        exact += 1
        for needed, (start, end) in zip(emission_samples(lp, stride, p.hop_length), segments):
            ends = {"recording": end, "speech": speech_end(audio, start, end, p.hop_length)}
            for name, (lat, own) in out.items():
                lat.append(1000 * (appearance(needed, chunk, len(audio)) - ends[name]) / rate)
                own.append(1000 * (appearance(needed, p.hop_length, len(audio)) - ends[name])
                           / rate)
    report = {"strings": len(examples), "exact_strings": exact,
              "digits": len(out["recording"][0])}
    for name, (lat, own) in out.items():
        report[name] = {"median_ms": statistics.median(lat), "p90_ms": _pct(lat, 90),
                        "min_ms": min(lat), "max_ms": max(lat),
                        "own_median_ms": statistics.median(own), "own_p90_ms": _pct(own, 90)}
    return report


def check_appearance(model, examples, chunk: int, rate: int) -> int:
    """Strings (exactly transcribed) whose digits appear in a real stream after exactly the
    chunk the formula names; raises if one does not."""
    p = model.preprocessor.params
    checked = 0
    for ex in examples:
        audio = ex.audio(rate)
        lp = model.frame_log_probs(audio)[0]
        if model.decode(lp) != ex.text:
            continue
        want = [appearance(n, chunk, len(audio))
                for n in emission_samples(lp, model.frame_stride, p.hop_length)]
        s, got = model.stream(), []
        for start in range(0, len(audio), chunk):
            text = s.step(audio[start:start + chunk])
            got += [min(start + chunk, len(audio))] * (len(text) - len(got))
        assert got == want, (ex.text, got, want)
        checked += 1
    return checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default=PRESET)
    parser.add_argument("--run", help="a run or preset directory instead of --preset")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--chunk-ms", dest="chunk_ms", type=float, default=100.0)
    parser.add_argument("--strings", type=int, default=500)
    parser.add_argument("--timed-strings", dest="timed_strings", type=int, default=40)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()

    import dataclasses

    from rnnzoo.apps.speech_recognition.data import load_speech

    models = _models(args)
    fp32 = models["runtime fp32"]
    rate = fp32.preprocessor.params.sample_rate
    chunk = int(round(args.chunk_ms * rate / 1000))
    # The model's own test strings (drawn in order from its string_seed: the first N of them)
    d = dataclasses.replace(models[KERAS].config.data, train_strings=1, dev_strings=0,
                            test_strings=args.strings)
    data = load_speech(args.data, d, 0)
    timed = data.test[: args.timed_strings]
    signals = [ex.audio(rate) for ex in timed]
    whole = fp32.transcribe(signals)
    speed = per_chunk(models, signals, chunk, rate)
    for name, finals in speed["finals"].items():
        assert finals == whole, f"{name}: a streamed transcript differs from transcribe()"
    checked = check_appearance(fp32, timed, chunk, rate)
    lat = latency(fp32, data.test, chunk, rate)

    keras_med = statistics.median(speed["times"][KERAS])
    rows = []
    for name, t in speed["times"].items():
        med = statistics.median(t)
        rows.append({"engine": name, "median_ms": 1000 * med, "p90_ms": 1000 * _pct(t, 90),
                     "rtf": sum(t) / speed["audio_s"], "vs_keras": keras_med / med})
    print(f"\nStreaming CTC ({args.run or args.preset}), {args.chunk_ms:g} ms chunks, batch 1, "
          f"1 thread; {len(timed)} test strings ({speed['audio_s']:.1f} s of audio, "
          f"{len(speed['times'][KERAS])} chunks per engine); every engine's streamed "
          "transcripts = transcribe()\n")
    print("| engine | per chunk, median | p90 | real-time factor | speed-up vs Keras |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['median_ms']:.2f} ms | {r['p90_ms']:.2f} ms | "
              f"{r['rtf']:.4f} | {r['vs_keras']:.1f}x |")
    print(f"\nDigit end -> appearance in the streamed transcript (audio time, compute not "
          f"included), {lat['digits']} digits of the {lat['exact_strings']}/{lat['strings']} "
          f"test strings transcribed exactly (formula checked against real streaming on "
          f"{checked} strings):\n")
    print("| digit end | chunks | median | 90th percentile | min | max |")
    print("|---|---|---|---|---|---|")
    for name, label in (("recording", "end of its recording"),
                        ("speech", "end of its speech (-30 dB)")):
        r = lat[name]
        print(f"| {label} | {args.chunk_ms:g} ms | {r['median_ms']:.0f} ms | "
              f"{r['p90_ms']:.0f} ms | {r['min_ms']:.0f} ms | {r['max_ms']:.0f} ms |")
        print(f"| {label} | 10 ms (the model's own delay) | {r['own_median_ms']:.0f} ms | "
              f"{r['own_p90_ms']:.0f} ms | | |")
    if args.json:
        Path(args.json).write_text(json.dumps({"chunk_ms": args.chunk_ms, "engines": rows,
                                               "latency": lat, "checked": checked,
                                               "audio_s": speed["audio_s"]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
