"""Image captioning on Keras: the task type's class (``TASK_CLASS``), its tf.data pipeline
(images stored once, one example per caption, random flips) and the image encoder and one-step
decoder graphs it exports. The token loss, metric and Keras graph runner are the attention
decoders' shared ``AttentionDecoderTask``; ``caption`` and ``evaluate`` come from
:mod:`rnnzoo.apps.image_captioning.inference`. TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import abc
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps._attention_decoder import AttentionDecoderTask
from rnnzoo.apps.image_captioning.data import (
    ASSET_SETTINGS,
    ASSET_TOKENIZER,
    CaptionData,
    CaptionerPreprocessor,
    DataConfig,
    caption_arrays,
    read_caption_data,
)
from rnnzoo.apps.image_captioning.inference import _Captioner
from rnnzoo.config import EntryConfig
from rnnzoo.data.captions import CaptionedImage
from rnnzoo.data.tokenizer import WordTokenizer
from rnnzoo.engines.seq2seq import compare_greedy, greedy_int8_rejection
from rnnzoo.errors import RunDirError
from rnnzoo.export.bundle import DECODER_FILE
from rnnzoo.export.specs import GraphSpec, InputSpec
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task

__all__ = ["IMAGE_ENCODER_FILE", "TASK_CLASS", "DataConfig", "ImageCaptioningTask"]

IMAGE_ENCODER_FILE = "image_encoder.onnx"


class ImageCaptioningTask(AttentionDecoderTask, _Captioner, Task):
    """Keras side of a captioner; a family adds ``build_model``, ``encoder_graph`` and
    ``decoder_graph``. Model inputs are ``(target_in [B, T], image [B, S, S, 3])``."""

    task_type = "image-captioning"
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
        return read_caption_data(path, self.config.data, seed, self.config.model.image_size)

    def adapt(self, data: CaptionData) -> None:
        pre = self.preprocessor
        if not pre.tokenizer.is_fitted:
            texts = (pre.normalize(c) for x in data.train for c in x.captions)
            pre.tokenizer.fit(texts, max_size=self.config.model.vocab_size,
                              min_freq=self.config.data.min_count)

    def _dataset(self, items: Sequence[CaptionedImage], batch_size: int, seed: int,
                 train: bool) -> tuple[Any, int]:
        import tensorflow as tf

        pixels, captions, owner = caption_arrays(self.preprocessor, items,
                                                 self.config.data.max_length)
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

    # -- export -----------------------------------------------------------------------------------
    def _graph_specs(self) -> list[GraphSpec]:
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

    def _export_preprocessing(self) -> dict:
        m = self.config.model
        return {"tokenizer": f"assets/{ASSET_TOKENIZER}", "image_size": m.image_size,
                "image": "RGB (alpha composited on white), Pillow bilinear resize to "
                         "image_size x image_size, float32 pixels 0..255, NHWC",
                "max_length": self.config.data.max_length, "vocab_size": m.vocab_size}

    def _stream_manifest(self) -> dict:
        """Facts for ``bundle.json``'s ``stream`` (rnnzoo.export.streamspec) that a caller
        outside rnnzoo needs to decode a caption: the start and end tokens, which logits are
        words (the graph is sized by ``vocab_size``, a cap) and the ids ``caption`` never
        chooses (``<pad>``, ``<s>`` and, by default, ``<unk>``)."""
        from rnnzoo.data.tokenizer import BOS, EOS, UNK
        from rnnzoo.export.streamspec import token_decoder_facts

        tokenizer = self.preprocessor.tokenizer
        bos = tokenizer.index[BOS]
        return {"decoder": token_decoder_facts(
            words=tokenizer.vocab, vocabulary=f"assets/{ASSET_TOKENIZER}", start=bos,
            end=tokenizer.index[EOS], max_steps=self.preprocessor.max_length + 1,
            never=[0, bos, tokenizer.index[UNK]], context="the image encoder")}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        from rnnzoo.apps.image_captioning.cli import example_inputs

        images = example_inputs()
        if eval_data is not None:
            data = self.load_data(eval_data, self.config.training.seed)
            images = [x.pixels for x in (data.test or data.dev or data.train)[:100]]
        return compare_greedy(reference, candidate, "caption", images, "captions", "images")

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when at least 90% of its greedy captions equal fp32's."""
        return greedy_int8_rejection(comparison, "captions")


TASK_CLASS = ImageCaptioningTask
