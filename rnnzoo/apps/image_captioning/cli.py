"""``rnnzoo caption`` and image captioning's evaluation reports (greedy, beam search and two
baselines, BLEU-1..4), on the Keras task and the onnxruntime model alike. The verb, its options
and the reports' decoding come from the adapter shared with translation (``DecodingVerb``).
TF-free."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps.image_captioning.data import CaptionData, CaptionerPreprocessor
from rnnzoo.apps.image_captioning.inference import score_captions
from rnnzoo.data.captions import CaptionedImage, preprocess_image, require_pillow
from rnnzoo.engines.seq2seq import DecodingVerb
from rnnzoo.errors import DataError
from rnnzoo.extras import require_module
from rnnzoo.io import save_figure

VERB = "caption"
#: The metric a preset of this application is known by (greedy BLEU-4 over every reference).
HEADLINE = ("bleu_4_greedy", "max")
#: What a preset of this application is for (its model card's "Intended use").
INTENDED_USE = ("Describing photographs in one short English sentence, in the style of its "
                "training captions; a teaching-scale captioner, not a product.")
#: What holds for every preset of this application (the model card's "Limitations").
LIMITATIONS = (
    "Images are resized to the model's input size; small details are lost.",
    "The caption vocabulary is fixed at training: objects it never saw are named with the "
    "nearest words it knows, or not at all.",
    "Captions can describe things that are not in the image, and reflect the biases of the "
    "training captions.",
)
#: int8 ships when at least 90% of its greedy captions equal fp32's (engines.seq2seq); on the
#: headline that has held to well under this many BLEU points (the preset harness checks it).
INT8_TOLERANCE = {"absolute": 1.0}


def evaluate_reports(model: Any, data: CaptionData, split: str,
                     options: Mapping[str, Any]) -> list[dict]:
    """Greedy and beam search (``--beam``, default 3) through the model's ``evaluate``, then
    the two baselines, on the same images. ``beam`` 0 (the end of training): greedy only."""
    items = data.split(split)[: options.get("limit")]
    if not items:
        raise DataError(f"{data.description}: the {split} split has no images")
    images, references = [x.pixels for x in items], [x.captions for x in items]
    reports = _ADAPTER.reports(
        lambda beam, progress: model.evaluate(images, references, beam=beam, progress=progress),
        split, data.description, options)
    if options.get("beam") != 0 and options.get("baselines", True) and data.train:
        for report in baselines(model, data.train, items, options.get("progress", False)):
            report.update(split=split, data=data.description)
            reports.append(report)
    return reports


def format_report(report: dict) -> str:
    lines = [f"{report['decoding']}: BLEU-1 {report['bleu_1']:.2f}  BLEU-2 "
             f"{report['bleu_2']:.2f}  BLEU-3 {report['bleu_3']:.2f}  BLEU-4 "
             f"{report['bleu_4']:.2f}  (n={report['num_examples']} images, "
             f"{report['references_per_image']:g} refs each, sacrebleu)"]
    for ex in report.get("examples", [])[:2]:
        lines.append(f"  hyp: {ex['hyp']}\n  ref: {ex['refs'][0]}")
    return "\n".join(lines)


def example_inputs() -> list:
    """Three small synthetic pictures as nested lists (plain data, any image size: they are
    resized like every input)."""
    out = []
    for k in range(3):
        y, x = np.mgrid[0:12, 0:16]
        img = np.stack([(x * 16 + 40 * k) % 256, (y * 20) % 256,
                        ((x + y) * 8 + 90 * k) % 256], axis=-1)
        out.append(img.astype(int).tolist())
    return out


def _consensus(pre: CaptionerPreprocessor, captions: Sequence[str]) -> str:
    """The caption of an image that shares most unigrams and bigrams with its other captions
    (the retrieval baseline returns it, a stronger choice than the first one)."""
    grams = []
    for c in captions:
        w = pre.words(c)
        grams.append(Counter(w) + Counter(zip(w, w[1:])))
    best, best_score = 0, -1.0
    for i, g in enumerate(grams):
        score = sum(sum((g & h).values()) / max(1, sum(g.values()))
                    for j, h in enumerate(grams) if j != i)
        if score > best_score:
            best, best_score = i, score
    return pre.normalize(captions[best])


def baselines(model: Any, train: Sequence[CaptionedImage],
              items: Sequence[CaptionedImage], progress: bool = False) -> list[dict]:
    """BLEU of the two baselines on ``items``: the most frequent (normalised) training caption
    for every image, and nearest-neighbour retrieval (cosine similarity of the model's pooled
    encoder features, ``encode_features``; ``progress``: a line while encoding) returning the
    consensus caption of the nearest training image."""
    pre = model.preprocessor
    refs = [[pre.normalize(c) for c in x.captions] for x in items]
    counts = Counter(pre.normalize(c) for x in train for c in x.captions)
    # Ties: the caption seen first in the training file.
    first: dict[str, int] = {}
    for x in train:
        for c in x.captions:
            first.setdefault(pre.normalize(c), len(first))
    frequent = max(counts, key=lambda c: (counts[c], -first[c]))
    out = [score_captions([frequent] * len(items), refs, "baseline most frequent caption")]
    out[0]["caption"] = frequent
    out[0]["caption_count"] = counts[frequent]
    feats_train = model.encode_features([x.pixels for x in train], progress=progress)
    feats = model.encode_features([x.pixels for x in items], progress=progress)
    a = feats_train / np.maximum(np.linalg.norm(feats_train, axis=1, keepdims=True), 1e-9)
    b = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-9)
    nearest = np.argmax(b @ a.T, axis=1)
    hyps = [_consensus(pre, train[int(j)].captions) for j in nearest]
    out.append(score_captions(hyps, refs, "baseline nearest neighbour"))
    return out


def plot_attention(pre: CaptionerPreprocessor, image: Any, caption: str, weights: np.ndarray,
                   path: str | Path) -> Path:
    """One panel per generated word (and ``</s>``): the image with that step's attention over
    the feature grid overlaid, written atomically."""
    matplotlib = require_module("matplotlib", "--attention-plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Image = require_pillow("--attention-plot")
    pixels = preprocess_image(image, pre.image_size)
    words = caption.split() + ["</s>"]
    weights = np.asarray(weights)[: len(words)]
    side = int(round(math.sqrt(weights.shape[1])))
    cols = min(5, len(weights))
    rows = math.ceil(len(weights) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (word, w) in enumerate(zip(words, weights)):
        grid = w.reshape(side, -1) / max(float(w.max()), 1e-9)
        heat = Image.fromarray(np.uint8(grid * 255), "L").resize(
            (pre.image_size, pre.image_size), Image.BILINEAR)
        ax = axes.flat[i]
        ax.imshow(pixels)
        ax.imshow(np.asarray(heat), cmap="jet", alpha=0.45, vmin=0, vmax=255)
        ax.set_title(word, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


_ADAPTER = DecodingVerb(
    VERB, "IMAGE", "image files (JPEG, PNG, ...)",
    "save each word's attention over the first image",
    nothing="nothing to caption: pass image files, e.g. photo.jpg",
    no_attention="this captioner has no attention to plot (use a captioner with attention, "
                 "e.g. captioner_lstm_attention)",
    plot=plot_attention, plotted="attention over the first image", default_beam=3)
add_verb_arguments = _ADAPTER.add_verb_arguments
run_verb = _ADAPTER.run_verb
add_evaluate_arguments = _ADAPTER.add_evaluate_arguments
example_outputs = _ADAPTER.example_outputs
