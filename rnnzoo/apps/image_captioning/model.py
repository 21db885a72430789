"""Task type ``image-captioning``: an image -> a sentence, encode the image once, step per word.

User call (Keras and runtime alike): ``caption(images, beam=, sampler=)``; CLI verb
``rnnzoo caption NAME photo.jpg [--beam 3] [--attention-plot out.png]``. Two graphs, as in the
translator, driven by the same decoding engine (``rnnzoo.generation.graph_step``):

* ``encoder`` (``image_encoder.onnx``): ``image`` [B, S, S, 3] float pixels in 0..255 ->
  ``encoder_outputs`` [B, N, C] (the feature grid), optionally ``encoder_keys`` [B, N, K]
  (attention keys, projected once per image) and the decoder's initial states;
* ``decoder`` (``decoder_model.onnx``): ``token``, states, grid tensors -> ``logits``,
  ``new_<state>`` and, with attention, ``attention`` [B, N] over the grid cells.

Images are read and resized by one function (``rnnzoo.data.captions.preprocess_image``, Pillow +
numpy) in training, Keras inference and the runtime; the model scales pixels to [-1, 1] itself.
Evaluation reports corpus BLEU-1..4 (sacrebleu) against every reference of each image, next to
two baselines on the same split: the most frequent training caption, and the caption of the
training image nearest in the model's pooled encoder features. A family implements
``build_model``, ``encoder_graph()`` and ``decoder_graph()``.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.config import EntryConfig, rule
from rnnzoo.data.captions import (
    CaptionData,
    CaptionedImage,
    load_pixels,
    preprocess_image,
    read_captions,
    require_pillow,
    warn_skipped,
)
from rnnzoo.data.tokenizer import BOS, EOS, UNK, WordTokenizer
from rnnzoo.errors import ConfigError, DataError, RnnzooError, RunDirError
from rnnzoo.export.bundle import DECODER_FILE, BundleError, BundleRuntime, check_count
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.extras import require_module
from rnnzoo.generation import GraphRunner, generate, graph_step
from rnnzoo.io import atomic_write_text, save_figure
from rnnzoo.task import Task
from rnnzoo.tasks.translation import (
    add_beam_score_argument,
    add_decoding_arguments,
    choose_sampler,
    decoding_kwargs,
)

IMAGE_ENCODER_FILE = "image_encoder.onnx"
ASSET_TOKENIZER = "tokenizer.json"
ASSET_SETTINGS = "captioner.json"


@dataclasses.dataclass
class DataConfig:
    lowercase: bool = True
    # Words per caption: longer training captions are cut (references are never cut).
    max_length: int = rule(20, min=1)
    # Words seen fewer times in the training captions become <unk> (small vocabulary, small
    # preset; a rare word cannot be learnt from a handful of images anyway).
    min_count: int = rule(5, min=1)
    # Without split lists (Flickr_8k.*Images.txt, COCO train/val files) images are split by a
    # seeded shuffle.
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    test_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)
    # Random horizontal flips of training images (captions rarely say left/right).
    augment_flip: bool = True
    # Unreadable or missing images: skipped with a warning naming them, or an error.
    strict_images: bool = False


_PUNCT = set(".,;:!?\"'`()[]{}-")


class CaptionerPreprocessor:
    """Caption tokenizer (``<s>``/``</s>``, punctuation dropped) and the image size."""

    def __init__(self, tokenizer: WordTokenizer, image_size: int, max_length: int):
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.max_length = max_length

    @property
    def is_fitted(self) -> bool:
        return self.tokenizer.is_fitted

    def words(self, text: str) -> list[str]:
        """The caption's words as the model sees and BLEU scores them: lower-cased tokens
        without punctuation."""
        return [w for w in self.tokenizer.split(text) if not all(c in _PUNCT for c in w)]

    def normalize(self, text: str) -> str:
        return " ".join(self.words(text))

    def encode_caption(self, text: str) -> list[int]:
        index = self.tokenizer.index
        ids = [index.get(w, 1) for w in self.words(text)][: self.max_length]
        return [index[BOS], *ids, index[EOS]]

    def decode(self, ids: Sequence[int]) -> str:
        """Words up to ``</s>`` (decoding never picks ``<unk>``; were one given, it is left
        out)."""
        vocab, eos = self.tokenizer.vocab, self.tokenizer.index[EOS]
        special = {0, 1, self.tokenizer.index[BOS]}
        out = []
        for i in ids:
            i = int(i)
            if i == eos or i == 0:
                break
            if i not in special and 0 <= i < len(vocab):
                out.append(vocab[i])
        return " ".join(out)

    def pixels(self, images: Any) -> np.ndarray:
        """float32 [B, S, S, 3] pixels (0..255) of a list of images (paths, Pillow images,
        arrays)."""
        return np.stack([preprocess_image(x, self.image_size) for x in images]).astype(
            np.float32)


def as_images(images: Any, where: str = "caption") -> tuple[list, bool]:
    """``(list of images, single)``: one path / Pillow image / [H, W(, C)] array, or a list of
    them (a [B, H, W, C] array is a batch)."""
    if isinstance(images, (str, os.PathLike)):
        return [images], True
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return list(images), False
        return [images], True
    if type(images).__module__.startswith("PIL."):
        return [images], True
    if isinstance(images, (list, tuple)):
        if not images:
            raise DataError(f"{where}: empty list of images")
        return list(images), False
    raise DataError(f"{where}: expected an image path, a Pillow image, an array, or a list of "
                    f"them, found {type(images).__name__}")


def encode_images(runner: GraphRunner, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Run the image encoder once per batch: the decoder's initial state and the grid tensors
    it attends to (only what the decoder reads, so beam search tiles nothing else)."""
    wanted = set(runner.input_names("decoder"))
    return {k: v for k, v in runner.run("encoder", {"image": pixels}).items() if k in wanted}


def _without_specials(step: Any, banned: Sequence[int]) -> Any:
    """The decoder step with ``<pad>``, ``<unk>`` and ``<s>`` never chosen: every rare
    training word is ``<unk>``, so the model predicts it often ("a man sitting on a <unk>"),
    and a caption is more useful with the best real word in its place (also for BLEU)."""
    banned = list(banned)

    def wrapped(tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        logits, new = step(tokens, state)
        logits = np.array(logits, dtype=np.float32, copy=True)
        logits[:, banned] = -1e9
        return logits, new

    return wrapped


def _references(refs: Any, i: int) -> list[str]:
    if isinstance(refs, str):
        return [refs]
    if isinstance(refs, (list, tuple)) and refs and all(isinstance(r, str) for r in refs):
        return list(refs)
    raise DataError(f"evaluate references[{i}]: expected a caption string or a non-empty list "
                    f"of caption strings, found {type(refs).__name__}")


def score_captions(hyps: Sequence[str], refs: Sequence[Sequence[str]], label: str) -> dict:
    """Corpus BLEU-1..4 (sacrebleu, cumulative n-gram orders with the brevity penalty) of
    normalised captions against all references of each image."""
    sacrebleu = require_module("sacrebleu", "BLEU (image-captioning evaluate)")
    width = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
    report: dict[str, Any] = {"decoding": label}
    for n in range(1, 5):
        metric = sacrebleu.BLEU(max_ngram_order=n)
        report[f"bleu_{n}"] = round(metric.corpus_score(list(hyps), streams).score, 2)
    report["bleu_signature"] = str(metric.get_signature())
    report["num_examples"] = len(hyps)
    report["references_per_image"] = round(sum(len(r) for r in refs) / len(refs), 2)
    report["examples"] = [{"hyp": h, "refs": list(r[:2])} for h, r in zip(hyps[:5], refs[:5])]
    return report


class _Captioner(abc.ABC):
    """``caption`` and ``evaluate`` written once over a :class:`GraphRunner` (Keras graphs or
    a bundle)."""

    preprocessor: CaptionerPreprocessor

    @abc.abstractmethod
    def _runner(self) -> GraphRunner:
        """The graphs to decode with."""

    def caption(self, images: Any, beam: int | None = None, sampler: str | None = None,
                max_length: int | None = None, batch_size: int = 32,
                return_attention: bool = False, seed: int | None = None,
                allow_unk: bool = False, **sampler_kwargs: Any) -> Any:
        """Caption images (file paths, Pillow images or pixel arrays); ``beam=k`` uses beam
        search, else ``sampler`` (default greedy). One image in, one string out. Decoding
        never picks ``<unk>`` unless ``allow_unk=True`` (then it is left out of the text).

        With ``return_attention=True`` returns ``(captions, [attention [words+1, grid] per
        image])`` (None for a model without attention)."""
        pre = self.preprocessor
        items, single = as_images(images)
        batch_size = check_count("batch_size", batch_size)
        if max_length is not None:
            max_length = check_count("max_length", max_length, "words per caption")
        chosen = choose_sampler("caption", pre.tokenizer.vocab_size, "the caption vocabulary",
                                beam, sampler, sampler_kwargs, seed)
        runner = self._runner()
        max_length = (max_length or pre.max_length) + 1  # the words and </s>
        bos, eos = pre.tokenizer.index[BOS], pre.tokenizer.index[EOS]
        if not isinstance(allow_unk, bool):
            raise ConfigError(f"allow_unk: expected True or False, found {allow_unk!r}")
        banned = [0, bos] + ([] if allow_unk else [pre.tokenizer.index[UNK]])
        step = _without_specials(graph_step(runner, "decoder"), banned)
        results: list[str] = []
        attentions: list[Any] = []
        try:
            for start in range(0, len(items), batch_size):
                pixels = pre.pixels(items[start:start + batch_size])
                state = encode_images(runner, pixels)
                record = ("attention",) if return_attention and "encoder_keys" in state else ()
                out = generate(step, np.full(len(pixels), bos, np.int32), state,
                               max_length=max_length, end_token=eos, sampler=chosen,
                               seed=seed, record=record)
                for row in range(len(pixels)):
                    n = int(out.lengths[row])
                    results.append(pre.decode(out.tokens[row, :n]))
                    attentions.append(out.recorded["attention"][row, :n] if record else None)
        except ValueError as exc:  # the decoding engine's own checks
            if isinstance(exc, RnnzooError):
                raise
            raise DataError(f"caption: {exc}") from None
        if return_attention:
            return (results[0], attentions[0]) if single else (results, attentions)
        return results[0] if single else results

    def encode_features(self, images: Any, batch_size: int = 32) -> np.ndarray:
        """Pooled encoder features [B, C] (the mean of the grid): what the nearest-neighbour
        baseline compares."""
        items, _ = as_images(images)
        runner = self._runner()
        out = []
        for start in range(0, len(items), batch_size):
            grid = runner.run("encoder", {"image": self.preprocessor.pixels(
                items[start:start + batch_size])})["encoder_outputs"]
            out.append(np.asarray(grid, np.float32).mean(axis=1))
        return np.concatenate(out)

    def evaluate(self, images: Any, references: Sequence[Any], beam: int | None = None,
                 allow_unk: bool = False) -> dict:
        """Corpus BLEU-1..4 of the captions of ``images`` against ``references`` (per image a
        caption or a list of captions, all of which count)."""
        items, _ = as_images(images, "evaluate images")
        if isinstance(references, str) or not isinstance(references, Sequence):
            raise DataError("evaluate references: expected one caption or list of captions "
                            "per image")
        if len(items) != len(references):
            raise DataError(f"evaluate: got {len(items)} images but {len(references)} "
                            "references; pass one caption (or list of captions) per image")
        refs = [[self.preprocessor.normalize(r) for r in _references(x, i)]
                for i, x in enumerate(references)]
        hyps = self.caption(items, beam=beam, allow_unk=allow_unk)
        label = (f"beam {beam}" if beam else "greedy") + (", <unk> allowed" if allow_unk else "")
        return score_captions(hyps, refs, label)


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


def baselines(task: _Captioner, train: Sequence[CaptionedImage],
              items: Sequence[CaptionedImage]) -> list[dict]:
    """BLEU of the two baselines on ``items``: the most frequent (normalised) training caption
    for every image, and nearest-neighbour retrieval (cosine similarity of pooled encoder
    features) returning the consensus caption of the nearest training image."""
    pre = task.preprocessor
    refs = [[pre.normalize(c) for c in x.captions] for x in items]
    counts = Counter(pre.normalize(c) for x in train for c in x.captions)
    # Ties: the caption seen first in the training file.
    first = {}
    for x in train:
        for c in x.captions:
            first.setdefault(pre.normalize(c), len(first))
    frequent = max(counts, key=lambda c: (counts[c], -first[c]))
    out = [score_captions([frequent] * len(items), refs, "baseline most frequent caption")]
    out[0]["caption"] = frequent
    out[0]["caption_count"] = counts[frequent]
    feats_train = task.encode_features([x.pixels for x in train])
    feats = task.encode_features([x.pixels for x in items])
    a = feats_train / np.maximum(np.linalg.norm(feats_train, axis=1, keepdims=True), 1e-9)
    b = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-9)
    nearest = np.argmax(b @ a.T, axis=1)
    hyps = [_consensus(pre, train[int(j)].captions) for j in nearest]
    out.append(score_captions(hyps, refs, "baseline nearest neighbour"))
    return out


class ImageCaptioningTask(_Captioner, Task):
    """Keras side of a captioner; a family adds ``build_model``, ``encoder_graph`` and
    ``decoder_graph``. Model inputs are ``(target_in [B, T], image [B, S, S, 3])``."""

    task_type = "image-captioning"
    verb = "caption"
    metric_directions = {"loss": "min", "token_accuracy": "max", "bleu_4": "max",
                         "bleu_1": "max"}

    @abc.abstractmethod
    def encoder_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model: image -> outputs, output names)``: ``encoder_outputs``, optionally
        ``encoder_keys``, then the decoder's state names."""

    @abc.abstractmethod
    def decoder_graph(self) -> tuple[Any, list[str]]:
        """``(Keras model, output names)`` of one decoding step: inputs ``token``, the states
        and (with attention) ``encoder_outputs``, ``encoder_keys``; outputs ``logits``,
        ``new_<state>`` and optionally ``attention``."""

    def new_preprocessor(self) -> CaptionerPreprocessor:
        d = self.config.data
        return CaptionerPreprocessor(WordTokenizer(lowercase=d.lowercase, special_bos_eos=True),
                                     self.config.model.image_size, d.max_length)

    def save_assets(self, directory: Path) -> None:
        self.preprocessor.tokenizer.save(directory / ASSET_TOKENIZER)
        atomic_write_text(directory / ASSET_SETTINGS, json.dumps(
            {"image_size": self.preprocessor.image_size,
             "max_length": self.preprocessor.max_length}))

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> CaptionerPreprocessor:
        if not (directory / ASSET_TOKENIZER).is_file():
            raise RunDirError(f"missing {directory / ASSET_TOKENIZER}")
        return CaptionerPreprocessor(WordTokenizer.load(directory / ASSET_TOKENIZER),
                                     config.model.image_size, config.data.max_length)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[list, np.ndarray]:
        from rnnzoo.export.specs import token_batches

        m = self.config.model
        tgt = token_batches(m.vocab_size, ((batch_size, 6),), seed=seed)[0]
        rng = np.random.default_rng(seed)
        images = rng.uniform(0, 255, (batch_size, m.image_size, m.image_size, 3)).astype(
            np.float32)
        out = np.zeros_like(tgt)
        out[:, :-1] = tgt[:, 1:]
        return [tgt, images], out

    # -- data and training ------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> CaptionData:
        d = self.config.data
        splits, description = read_captions(path, seed, d.dev_fraction, d.test_fraction)
        size = self.config.model.image_size
        kept, skipped = {}, []
        for name, items in splits.items():
            kept[name], lost = load_pixels(items, size, strict=d.strict_images)
            skipped += lost
        warn_skipped(skipped, str(path))
        if not kept["train"]:
            raise DataError(f"{path}: no readable training image with captions")
        return CaptionData(kept["train"], kept["dev"], kept["test"],
                           f"{description}, images {size}x{size}", skipped)

    def adapt(self, data: CaptionData) -> None:
        pre = self.preprocessor
        if not pre.tokenizer.is_fitted:
            texts = (pre.normalize(c) for x in data.train for c in x.captions)
            pre.tokenizer.fit(texts, max_size=self.config.model.vocab_size,
                              min_freq=self.config.data.min_count)

    def _examples(self, items: Sequence[CaptionedImage]) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
        """(pixels [N, S, S, 3] uint8, caption ids [M, L+2] post-padded, image index [M])."""
        pre = self.preprocessor
        width = self.config.data.max_length + 2
        rows, owner = [], []
        for i, item in enumerate(items):
            for c in item.captions:
                ids = pre.encode_caption(c)
                rows.append(ids + [0] * (width - len(ids)))
                owner.append(i)
        pixels = np.stack([x.pixels for x in items])
        return pixels, np.asarray(rows, np.int32), np.asarray(owner, np.int32)

    def _dataset(self, items: Sequence[CaptionedImage], batch_size: int, seed: int,
                 train: bool) -> tuple[Any, int]:
        import tensorflow as tf

        pixels, captions, owner = self._examples(items)
        flip = train and self.config.data.augment_flip
        images = tf.constant(pixels)
        ds = tf.data.Dataset.from_tensor_slices((captions, owner))
        if train:
            ds = ds.shuffle(len(captions), seed=seed, reshuffle_each_iteration=True)

        def example(caption: Any, index: Any) -> Any:
            image = tf.cast(tf.gather(images, index), tf.float32)
            if flip:
                image = tf.image.random_flip_left_right(image)
            return (caption[:-1], image), caption[1:]

        steps = math.ceil(len(captions) / batch_size)
        ds = ds.map(example, num_parallel_calls=2).batch(batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(steps))
        return ds.prefetch(2), steps

    def datasets(self, data: CaptionData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        train, steps = self._dataset(data.train, batch_size, seed, train=True)
        dev = self._dataset(data.dev, batch_size, seed, train=False)[0] if data.dev else None
        return train, dev, steps

    def loss(self) -> Any:
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)

    def metrics(self) -> list:
        from rnnzoo.layers import MaskedAccuracy

        return [MaskedAccuracy(name="token_accuracy")]

    # -- inference and evaluation ---------------------------------------------------------------
    def _runner(self) -> GraphRunner:
        self.require_fitted()
        return self.keras_graphs()

    def evaluate_data(self, data: CaptionData, split: str = "dev", beam: int | None = None,
                      limit: int | None = None, **options: Any) -> dict:
        items = data.split(split)[:limit]
        if not items:
            raise DataError(f"{data.description}: the {split} split has no images")
        report = self.evaluate([x.pixels for x in items], [x.captions for x in items],
                               beam=beam)
        report.update(split=split, data=data.description)
        return report

    def evaluate_reports(self, data: CaptionData, split: str,
                         options: Mapping[str, Any]) -> list[dict]:
        """Greedy and beam search, then the two baselines, on the same split."""
        limit = options.get("limit")
        reports = [self.evaluate_data(data, split, limit=limit),
                   self.evaluate_data(data, split, beam=options.get("beam") or 3, limit=limit)]
        items = data.split(split)[:limit]
        if options.get("baselines", True) and items and data.train:
            for report in baselines(self, data.train, items):
                report.update(split=split, data=data.description)
                reports.append(report)
        return reports

    def format_report(self, report: dict) -> str:
        lines = [f"{report['decoding']}: BLEU-1 {report['bleu_1']:.2f}  BLEU-2 "
                 f"{report['bleu_2']:.2f}  BLEU-3 {report['bleu_3']:.2f}  BLEU-4 "
                 f"{report['bleu_4']:.2f}  (n={report['num_examples']} images, "
                 f"{report['references_per_image']:g} refs each, sacrebleu)"]
        for ex in report.get("examples", [])[:2]:
            lines.append(f"  hyp: {ex['hyp']}\n  ref: {ex['refs'][0]}")
        return "\n".join(lines)

    # -- export -----------------------------------------------------------------------------------
    def graph_specs(self) -> list[GraphSpec]:
        m = self.config.model
        enc, enc_outputs = self.encoder_graph()
        dec, dec_outputs = self.decoder_graph()
        image = InputSpec("image", "images", ("batch", m.image_size, m.image_size, 3))
        sizes = ({"batch": 1}, {"batch": 3})
        step_inputs = []
        for tensor in dec.inputs:
            shape = ("batch", *tensor.shape[1:])
            if tensor.name == "token":
                step_inputs.append(InputSpec("token", "tokens", ("batch",), "int32",
                                             m.vocab_size))
            else:
                step_inputs.append(InputSpec(tensor.name, "state" if len(shape) == 2
                                             else "features", shape))
        return [
            GraphSpec("encoder", IMAGE_ENCODER_FILE, enc, [image], enc_outputs,
                      expect_recurrent=False, sizes=sizes, tolerance=1e-3),
            GraphSpec("decoder", DECODER_FILE, dec, step_inputs, dec_outputs, sizes=sizes),
        ]

    def export_preprocessing(self) -> dict:
        m = self.config.model
        return {"tokenizer": f"assets/{ASSET_TOKENIZER}", "image_size": m.image_size,
                "image": "RGB (alpha composited on white), Pillow bilinear resize to "
                         "image_size x image_size, float32 pixels 0..255, NHWC",
                "max_length": self.config.data.max_length, "vocab_size": m.vocab_size}

    def compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        images = self.example_inputs()
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            images = [x.pixels for x in (data.test or data.dev or data.train)[:100]]
        a, b = reference.caption(images), candidate.caption(images)
        same = sum(x == y for x, y in zip(a, b)) / len(images)
        return {"images": len(images), "identical_greedy_captions": same,
                "summary": f"{same:.1%} identical greedy captions on {len(images)} images"}

    def int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when at least 90% of its greedy captions equal fp32's."""
        if comparison.get("identical_greedy_captions", 0.0) < 0.9:
            return "fewer than 90% of int8 greedy captions equal fp32's"
        return None

    @classmethod
    def example_inputs(cls) -> list:
        """Three small synthetic pictures as nested lists (plain data, any image size: they
        are resized like every input)."""
        out = []
        for k in range(3):
            y, x = np.mgrid[0:12, 0:16]
            img = np.stack([(x * 16 + 40 * k) % 256, (y * 20) % 256,
                            ((x + y) * 8 + 90 * k) % 256], axis=-1)
            out.append(img.astype(int).tolist())
        return out

    @classmethod
    def example_outputs(cls, model: Any, inputs: list) -> Any:
        return {"greedy": model.caption(inputs, max_length=6),
                "beam": model.caption(inputs, beam=2, max_length=6)}

    # -- command line ---------------------------------------------------------------------------
    @classmethod
    def add_verb_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_decoding_arguments(parser, "IMAGE", "image files (JPEG, PNG, ...)",
                               "save each word's attention over the first image")

    @classmethod
    def add_evaluate_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_beam_score_argument(parser)

    @classmethod
    def run_verb(cls, model: Any, args: argparse.Namespace) -> int:
        images = list(args.texts)
        if not images:
            raise ConfigError("nothing to caption: pass image files, e.g. photo.jpg")
        want_attention = args.attention_plot is not None
        out = model.caption(images, return_attention=want_attention, **decoding_kwargs(args))
        captions, attentions = out if want_attention else (out, None)
        for path, text in zip(images, captions):
            print(text if len(images) == 1 else f"{path}\t{text}")
        if want_attention:
            if attentions[0] is None:
                raise ConfigError("this captioner has no attention to plot (use a "
                                  "captioner with attention, e.g. captioner_lstm_attention)")
            plot_attention(model.preprocessor, images[0], captions[0], attentions[0],
                           args.attention_plot)
            print(f"attention over the first image: {args.attention_plot}", file=sys.stderr)
        return 0


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


class CaptionerRuntime(_Captioner, BundleRuntime):
    """``caption(image_paths, beam=3)`` for a captioner bundle with onnxruntime, numpy and
    Pillow only: ``image_encoder.onnx`` once per batch of images, ``decoder_model.onnx`` once
    per generated word, driven by the same samplers and engine as the Keras model."""

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        tokenizer = WordTokenizer.load(self.asset(ASSET_TOKENIZER))
        if BOS not in tokenizer.index or EOS not in tokenizer.index or UNK not in tokenizer.index:
            raise BundleError(f"{self.path}: assets/{ASSET_TOKENIZER} has no {BOS}/{EOS} "
                              "tokens, so it cannot decode; re-export the bundle")
        self.preprocessor = CaptionerPreprocessor(tokenizer, self.setting("image_size"),
                                                  self.setting("max_length"))

    def _runner(self) -> GraphRunner:
        return self

    # -- rnnzoo serve (rnnzoo.serving) ----------------------------------------------------------
    def serve_predict(self, instances: list, options: Mapping[str, Any]) -> list:
        """One ``{"caption"}`` per image given as base64 (``{"b64": ...}``) or as a nested
        list of pixels [H, W, 3]; ``"attention": true`` adds the attention [word, grid cell]
        and the words. Other options go to ``caption`` (``beam``, ``sampler``, ...). File
        paths are refused (a server must not read its own files for a client)."""
        import base64
        import io

        options = dict(options)
        attention = options.pop("attention", False)
        if not isinstance(attention, bool):
            raise ConfigError(f"attention: expected true or false, found {attention!r}")
        Image = require_pillow("captioning")
        images = []
        for i, item in enumerate(instances):
            if isinstance(item, dict) and isinstance(item.get("b64"), str):
                try:
                    raw = base64.b64decode(item["b64"], validate=True)
                    with Image.open(io.BytesIO(raw)) as opened:
                        opened.load()
                        images.append(opened.copy())
                except (ValueError, OSError, SyntaxError) as exc:
                    raise DataError(f"instances[{i}]: cannot decode the image ({exc})") from None
            elif isinstance(item, list):
                images.append(np.asarray(item))
            else:
                raise DataError(f"instances[{i}]: expected {{\"b64\": <base64 image file>}} or "
                                f"a nested list of pixels, found {type(item).__name__}")
        if not attention:
            return [{"caption": c} for c in self.caption(images, **options)]
        captions, maps = self.caption(images, return_attention=True, **options)
        return [{"caption": c, "words": c.split() + [EOS],
                 **({"attention": np.round(np.asarray(m, np.float64), 4).tolist()}
                    if m is not None else {})} for c, m in zip(captions, maps)]


TASK_CLASS = ImageCaptioningTask
RUNTIME_CLASS = CaptionerRuntime
