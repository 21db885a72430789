"""Music generation speed at batch 1: Keras (compiled step) vs the ONNX runtime bundle.

    python benchmarks/bench_music.py [--run RUN_DIR | --entry music_lstm] [--steps 256]

Generates ``--steps`` frames from the start frame, one piece at a time (batch 1, what
``rnnzoo generate`` does), with the same seed through both engines, which share one sampling loop
(``rnnzoo.engines.primed.sample_primed`` over ``graph_step``), and prints frames/s, the ratio to
Keras and whether the sampled frames are identical. Rows: Keras (the decoder step as a
traced-once ``tf.function``), the fp32 bundle on 1 onnxruntime thread, and the int8 bundle
(dynamic quantization; LSTMs become ``DynamicQuantizeLSTM``, GRU and SimpleRNN stay fp32), from
``primed_speed.py`` (shared with ``bench_charlm.py``). Without ``--run`` it uses a randomly
initialised entry at full size: speed does not depend on the weights. One run on a shared
machine: read the ratios. An RNN-NADE (``--entry music_lstm_nade`` or its preset) also samples
each frame key by key in numpy (``rnnzoo.apps.music_generation.nade``), the same code after
either engine's step, so its ratios are smaller.
"""

from __future__ import annotations

from primed_speed import compare_engines, parse_args, random_weights


def _task(run: str | None, entry: str):
    import rnnzoo

    if run:
        return rnnzoo.load(run)
    return random_weights(rnnzoo.create_model(entry))


def main() -> None:
    import numpy as np

    args = parse_args(__doc__, "music", "music_lstm", 256, "frames per piece")
    compare_engines(_task(args.run, args.entry), args,
                    lambda model, steps: model.generate(steps, seed=0), np.array_equal,
                    "frame", "frames")


if __name__ == "__main__":
    main()
