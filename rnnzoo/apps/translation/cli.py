"""``rnnzoo translate`` and translation's evaluation reports (greedy and beam search, BLEU and
chrF), on the Keras task and the onnxruntime model alike. The verb, its options and the reports'
decoding come from the adapter shared with image captioning (``DecodingVerb``). TF-free."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.translation.data import ParallelData, TranslatorPreprocessor, split_pairs
from rnnzoo.data.parallel import normalize
from rnnzoo.engines.seq2seq import DecodingVerb
from rnnzoo.extras import require_module
from rnnzoo.io import save_figure

VERB = "translate"
#: The metric a preset of this application is known by (greedy BLEU, sacrebleu).
HEADLINE = ("bleu_greedy", "max")
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Translating short sentences in the language pair and register of its "
                "training pairs; greedy or beam-search decoding.")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Word vocabularies fixed at training (inputs normalised as in training): unseen words "
    "become <unk>; the server refuses inputs longer than the model reads unless asked to "
    "truncate.",
    "Trained on short sentence pairs: quality drops on long, technical or informal text.",
    "Like every translation model, it can produce fluent text that is wrong; do not rely on "
    "it unchecked.",
)
#: int8 ships when at least 90% of its greedy translations equal fp32's (engines.seq2seq); on
#: the headline that has held to well under this many BLEU points (the preset harness checks it).
INT8_TOLERANCE = {"absolute": 1.0}


def evaluate_reports(model: Any, data: ParallelData, split: str,
                     options: Mapping[str, Any]) -> list[dict]:
    """Greedy and beam-search (``--beam``, default 5) scores on the same split, through the
    model's ``evaluate``."""
    pairs = split_pairs(data, split)[: options.get("limit")]
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    return _ADAPTER.reports(
        lambda beam, progress: model.evaluate(sources, references, beam=beam, progress=progress),
        split, data.description, options)


def format_report(report: dict) -> str:
    lines = [f"{report['decoding']}: BLEU {report['bleu']:.2f}  chrF {report['chrf']:.2f}  "
             f"(n={report['num_examples']}, sacrebleu, lower-cased refs)"]
    for ex in report.get("examples", [])[:3]:
        lines.append(f"  hyp: {ex['hyp']}\n  ref: {ex['ref']}")
    return "\n".join(lines)


def example_inputs() -> list:
    return ["the movie was good", "bad plot", "a"]


def plot_attention(pre: TranslatorPreprocessor, source: str, translation: str,
                   weights: np.ndarray, path: str | Path) -> Path:
    """Heatmap of attention weights [output tokens, source tokens], written atomically."""
    matplotlib = require_module("matplotlib", "--attention-plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src_tokens = pre.source.split(normalize(source, pre.lowercase))[: weights.shape[1]]
    out_tokens = pre.target.split(normalize(translation, pre.lowercase)) + ["</s>"]
    weights = weights[: len(out_tokens), : len(src_tokens)]
    fig, ax = plt.subplots(figsize=(1 + 0.5 * len(src_tokens), 1 + 0.4 * len(out_tokens)))
    ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=60, ha="right")
    ax.set_yticks(range(weights.shape[0]), out_tokens[: weights.shape[0]])
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


_ADAPTER = DecodingVerb(
    VERB, "TEXT", "sentences to translate", "save the attention heatmap of the first sentence",
    nothing='nothing to translate: pass sentences, e.g. "¿Dónde está la estación?"',
    no_attention="this translator has no attention to plot (attention: none)",
    plot=plot_attention, plotted="attention heatmap for the first sentence", default_beam=5)
add_verb_arguments = _ADAPTER.add_verb_arguments
run_verb = _ADAPTER.run_verb
add_evaluate_arguments = _ADAPTER.add_evaluate_arguments
example_outputs = _ADAPTER.example_outputs
