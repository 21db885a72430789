"""Character generation speed at batch 1: Keras (compiled step) vs the ONNX runtime bundle.

    python benchmarks/bench_charlm.py [--run RUN_OR_PRESET_DIR | --entry charlm_lstm] [--steps 500]

Generates ``--steps`` characters after a prompt, one text at a time (batch 1, what
``rnnzoo generate`` does), with the same seed through both engines, which share one sampling
loop (``rnnzoo.engines.primed.sample_primed`` over ``graph_step``), and prints characters/s,
the ratio to Keras and whether the text is identical. Rows: Keras (the decoder step as a
traced-once ``tf.function``), the fp32 bundle and the int8 bundle (dynamic quantization) on 1
onnxruntime thread (``primed_speed.py``, shared with ``bench_music.py``). Without ``--run`` it
uses a randomly initialised entry at full size with a 65-character vocabulary: speed does not
depend on the weights. One run on a shared machine: read the ratios.
"""

from __future__ import annotations

import string

from primed_speed import compare_engines, parse_args, random_weights

PROMPT = "ROMEO:"


def _task(run: str | None, entry: str):
    import rnnzoo
    from rnnzoo.apps.text_generation.data import CharVocab

    if run:
        return rnnzoo.load(run)
    task = rnnzoo.create_model(entry)
    alphabet = (string.ascii_letters + string.digits + " \n.,;:!?'-")[:65]
    task.preprocessor = CharVocab.fit(alphabet + PROMPT, task.config.model.vocab_size)
    return random_weights(task)


def main() -> None:
    args = parse_args(__doc__, "charlm", "charlm_lstm", 500, "characters per text")
    compare_engines(_task(args.run, args.entry), args,
                    lambda model, steps: model.generate(PROMPT, steps, temperature=0.8, seed=0),
                    lambda a, b: a == b, "character", "text")


if __name__ == "__main__":
    main()
