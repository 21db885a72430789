"""Image captioning's user calls, written once over both backends, and its onnxruntime model.

``caption(images, beam=, sampler=)``, ``encode_features(images)`` and ``evaluate(images,
references)`` run on a ``GraphRunner``: the Keras task's compiled graphs or a bundle's sessions
(``image_encoder.onnx`` once per batch of images, ``decoder_model.onnx`` once per word), through
the encode-once + step engine shared with translation (:mod:`rnnzoo.engines.seq2seq`). Needs
numpy, Pillow and onnxruntime only. TF-free.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rnnzoo.apps.image_captioning.data import ASSET_TOKENIZER, CaptionerPreprocessor, as_images
from rnnzoo.data.captions import decode_image, require_pillow
from rnnzoo.data.tokenizer import BOS, EOS, UNK, WordTokenizer
from rnnzoo.engines.decoding import GraphRunner
from rnnzoo.engines.seq2seq import (
    DecoderStreams,
    check_stream,
    decode,
    decode_stream,
    decoding_options,
    encode_once,
    user_result,
)
from rnnzoo.errors import ConfigError, DataError
from rnnzoo.export.bundle import BundleError, BundleRuntime
from rnnzoo.extras import require_module
from rnnzoo.progress import Progress, model_label, reporting

__all__ = ["RUNTIME_CLASS", "CaptionerRuntime", "score_captions"]


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


class _Captioner(DecoderStreams):
    """``caption``, ``encode_features``, ``evaluate`` and the decoder's stream written once
    over a :class:`GraphRunner` (Keras graphs or a bundle)."""

    preprocessor: CaptionerPreprocessor

    @abc.abstractmethod
    def _runner(self) -> GraphRunner:
        """The graphs to decode with."""

    # -- the decoder's stream (rnnzoo.engines.seq2seq.DecoderStreams) ---------------------------
    @property
    def vocabulary(self) -> list[str]:
        """The caption tokens in output order (``step``'s probabilities are aligned with it)."""
        return list(self.preprocessor.tokenizer.vocab)

    def _vocabulary_size(self) -> int:
        return len(self.preprocessor.tokenizer.vocab)

    def _encode_one(self, source: Any) -> dict[str, np.ndarray]:
        items, single = as_images(source, "source")
        if not single:
            raise DataError("source: expected one image (a path, a Pillow image or pixels "
                            "[H, W, 3])")
        runner = self._runner()
        return encode_once(runner, {"image": self.preprocessor.pixels(items)})

    def _target_ids(self, text: str) -> list[int]:
        index = self.preprocessor.tokenizer.index
        return [index.get(w, 1) for w in self.preprocessor.words(text)]

    def caption(self, images: Any, beam: int | None = None, sampler: str | None = None,
                max_length: int | None = None, batch_size: int = 32,
                return_attention: bool = False, seed: int | None = None,
                allow_unk: bool = False, progress: bool | Progress = False,
                stream: bool = False, **sampler_kwargs: Any) -> Any:
        """Caption images (file paths, Pillow images or pixel arrays); ``beam=k`` uses beam
        search, else ``sampler`` (default greedy). One image in, one string out. Decoding
        never picks ``<unk>`` unless ``allow_unk=True`` (then it is left out of the text):
        every rare training word is ``<unk>``, so the model predicts it often ("a man sitting
        on a <unk>"), and a caption is more useful with the best real word in its place.

        With ``return_attention=True`` returns ``(captions, [attention [words+1, grid] per
        image])`` (None for a model without attention). ``progress=True``: a progress line on
        stderr. ``stream=True`` (one image): an iterator of the caption's text as it is
        decoded (word by word; beam search yields the final caption once) whose pieces join
        to the non-stream result."""
        pre = self.preprocessor
        items, single = as_images(images)
        check_stream("caption", stream, single, return_attention, progress)
        chosen, batch_size, max_length = decoding_options(
            "caption", pre.tokenizer.vocab_size, "the caption vocabulary", "words per caption",
            beam=beam, sampler=sampler, sampler_kwargs=sampler_kwargs, seed=seed,
            batch_size=batch_size, max_length=max_length)
        runner = self._runner()
        bos, eos = pre.tokenizer.index[BOS], pre.tokenizer.index[EOS]
        if not isinstance(allow_unk, bool):
            raise ConfigError(f"allow_unk: expected True or False, found {allow_unk!r}")

        def batches() -> Any:
            for start in range(0, len(items), batch_size):
                pixels = pre.pixels(items[start:start + batch_size])
                yield range(start, start + len(pixels)), encode_once(runner, {"image": pixels})

        banned = [0, bos] + ([] if allow_unk else [pre.tokenizer.index[UNK]])
        if stream:
            pixels = pre.pixels(items)
            return decode_stream("caption", runner, lambda: encode_once(runner, {"image": pixels}),
                                 bos=bos, eos=eos, max_length=(max_length or pre.max_length) + 1,
                                 sampler=chosen, seed=seed, text=pre.decode, banned=banned,
                                 size=len(pre.tokenizer.vocab))
        with reporting(progress, model_label(self, "caption"), len(items), "images") as bar:
            ids, maps = decode("caption", runner, batches(), len(items), bos=bos, eos=eos,
                               max_length=(max_length or pre.max_length) + 1,  # words, </s>
                               sampler=chosen, seed=seed, attention=return_attention,
                               banned=banned, size=len(pre.tokenizer.vocab), progress=bar)
        return user_result([pre.decode(row) for row in ids], maps, single, return_attention)

    def encode_features(self, images: Any, batch_size: int = 32,
                        progress: bool | Progress = False) -> np.ndarray:
        """Pooled encoder features [B, C] (the mean of the grid): what the nearest-neighbour
        baseline compares. ``progress=True``: a progress line on stderr."""
        items, _ = as_images(images)
        runner = self._runner()
        out = []
        with reporting(progress, model_label(self, "encode"), len(items), "images") as bar:
            for start in range(0, len(items), batch_size):
                batch = items[start:start + batch_size]
                grid = runner.run("encoder", {"image": self.preprocessor.pixels(batch)}
                                  )["encoder_outputs"]
                out.append(np.asarray(grid, np.float32).mean(axis=1))
                bar.update(len(batch))
        return np.concatenate(out)

    def evaluate(self, images: Any, references: Sequence[Any], beam: int | None = None,
                 allow_unk: bool = False, progress: bool = False) -> dict:
        """Corpus BLEU-1..4 of the captions of ``images`` against ``references`` (per image a
        caption or a list of captions, all of which count). ``progress=True``: a progress
        line on stderr."""
        items, _ = as_images(images, "evaluate images")
        if isinstance(references, str) or not isinstance(references, Sequence):
            raise DataError("evaluate references: expected one caption or list of captions "
                            "per image")
        if len(items) != len(references):
            raise DataError(f"evaluate: got {len(items)} images but {len(references)} "
                            "references; pass one caption (or list of captions) per image")
        refs = [[self.preprocessor.normalize(r) for r in _references(x, i)]
                for i, x in enumerate(references)]
        label = (f"beam {beam}" if beam else "greedy") + (", <unk> allowed" if allow_unk else "")
        with reporting(progress, f"{model_label(self, 'evaluate')} ({label})", len(items),
                       "images") as bar:
            hyps = self.caption(items, beam=beam, allow_unk=allow_unk, progress=bar)
        return score_captions(hyps, refs, label)


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

        options = dict(options)
        attention = options.pop("attention", False)
        if not isinstance(attention, bool):
            raise ConfigError(f"attention: expected true or false, found {attention!r}")
        require_pillow("captioning")
        images = []
        for i, item in enumerate(instances):
            if isinstance(item, dict) and isinstance(item.get("b64"), str):
                try:
                    raw = base64.b64decode(item["b64"], validate=True)
                except ValueError:
                    raise DataError(f"instances[{i}]: b64 is not base64") from None
                # The size is checked from the header before decoding (max_image_pixels).
                images.append(decode_image(raw, f"instances[{i}]"))
            elif isinstance(item, list):
                images.append(item)  # checked (shape, size, numbers) by preprocess_image
            else:
                raise DataError(f"instances[{i}]: expected {{\"b64\": <base64 image file>}} or "
                                f"a nested list of pixels, found {type(item).__name__}")
        if not attention:
            return [{"caption": c} for c in self.caption(images, **options)]
        captions, maps = self.caption(images, return_attention=True, **options)
        return [{"caption": c, "words": c.split() + [EOS],
                 **({"attention": np.round(np.asarray(m, np.float64), 4).tolist()}
                    if m is not None else {})} for c, m in zip(captions, maps)]


RUNTIME_CLASS = CaptionerRuntime
