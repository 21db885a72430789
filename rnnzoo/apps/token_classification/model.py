"""The Keras side of token classification (``TASK_CLASS``): preprocessor files, training data
and hooks (dev F1 after every epoch), CRF parameters, export graph and the int8 gate. A family
(``rnnzoo.families.tagger``) adds ``build_model``. TensorFlow and Keras are imported inside
functions only."""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnzoo.apps._classification import compare_on_data, int8_rule
from rnnzoo.apps.token_classification import cli
from rnnzoo.apps.token_classification.data import (
    TaggerPreprocessor,
    TaggingData,
    load_tagging,
    placeholder_tags,
    read_tags,
    tag_names_for,
    tags_json,
)
from rnnzoo.apps.token_classification.inference import _Tagger
from rnnzoo.config import EntryConfig
from rnnzoo.data.batching import pad_rows
from rnnzoo.data.conll import spans
from rnnzoo.data.tokenizer import WordTokenizer
from rnnzoo.errors import ConfigError, DataError, RunDirError
from rnnzoo.export.specs import GraphSpec, InputSpec, random_tokens
from rnnzoo.io import atomic_write_text
from rnnzoo.task import Task


def _random_chars(rng: np.random.Generator, words: np.ndarray, width: int,
                  vocab_size: int) -> np.ndarray:
    """Character ids for a post-padded word batch: each word 1..width characters, post-padded;
    padded words have none."""
    lengths = rng.integers(1, width + 1, size=words.size)
    chars = random_tokens(rng, lengths, width, vocab_size).reshape(*words.shape, width)
    chars[words == 0] = 0
    return chars


class TokenClassificationTask(_Tagger, Task):
    """Keras side of a tagger; a family adds ``build_model`` (inputs ``words`` and ``chars``,
    output ``emissions``; a CRF model has a ``ChainCRF`` layer named ``crf``)."""

    task_type = "token-classification"
    metric_directions = {"loss": "min", "accuracy": "max", "f1": "max",
                         "token_accuracy": "max"}
    head_layers = ("emissions", "crf")
    label_count_key = "num_tags"

    def new_preprocessor(self) -> TaggerPreprocessor:
        d = self.config.data
        n = self.config.model.num_tags
        return TaggerPreprocessor(WordTokenizer(lowercase=d.lowercase),
                                  WordTokenizer(lowercase=False), [str(i) for i in range(n)],
                                  None if d.tag_scheme == "none" else d.tag_scheme,
                                  d.max_word_chars, d.lowercase, d.normalize_digits)

    def save_assets(self, directory: Path) -> None:
        self.preprocessor.words.save(directory / "tokenizer.json")
        self.preprocessor.chars.save(directory / "chars.json")
        atomic_write_text(directory / "tags.json", tags_json(self.preprocessor))

    @classmethod
    def load_preprocessor(cls, config: EntryConfig, directory: Path) -> TaggerPreprocessor:
        hint = "the run or preset is incomplete; train or save it again"
        tags, scheme = read_tags(directory / "tags.json", RunDirError, hint)
        if len(tags) != config.model.num_tags:
            raise RunDirError(f"{directory / 'tags.json'}: {len(tags)} tags, but the config "
                              f"says num_tags={config.model.num_tags}; {hint}")
        d = config.data
        return TaggerPreprocessor(WordTokenizer.load(directory / "tokenizer.json"),
                                  WordTokenizer.load(directory / "chars.json"), tags, scheme,
                                  d.max_word_chars, d.lowercase, d.normalize_digits)

    def dummy_batch(self, batch_size: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
        m = self.config.model
        rng = np.random.default_rng(seed)
        lengths = np.full(batch_size, 9)
        lengths[1 if batch_size > 1 else 0] = 1
        words = random_tokens(rng, lengths, 9, m.vocab_size)
        chars = _random_chars(rng, words, 5, m.char_vocab_size)
        targets = rng.integers(1, m.num_tags + 1, size=words.shape).astype(np.int32)
        targets[words == 0] = 0
        return [words, chars], targets

    # -- training -------------------------------------------------------------------------------
    def load_data(self, path: str | os.PathLike, seed: int) -> TaggingData:
        return load_tagging(path, self.config.data, seed)

    def limit_data(self, data: TaggingData, limit: int, seed: int = 0) -> TaggingData:
        """At most ``limit`` sentences per split, a seeded sample kept in file order."""
        return data.limited(limit, seed)

    def adapt(self, data: TaggingData) -> None:
        """Fit the vocabularies (unless fitted, as when fine-tuning) and set the tags."""
        pre = self.preprocessor
        m = self.config.model
        tokens, tags = data.split("train")
        names = tag_names_for(tags, pre.scheme)
        if len(names) != m.num_tags:
            raise DataError(f"{data.description}: the training tags give {len(names)} classes "
                            f"({', '.join(names[:12])}{' ...' if len(names) > 12 else ''}), "
                            f"but {self.name!r} is configured for num_tags={m.num_tags}; pass "
                            f"--set num_tags={len(names)}")
        if not pre.is_fitted:
            pre.fit(tokens, m.vocab_size, m.char_vocab_size, self.config.data.min_freq)
        pre.tag_names = names

    def _encode_split(self, data: TaggingData, split: str) -> tuple[list, list, list]:
        tokens, tags = data.split(split)
        index = {t: i for i, t in enumerate(self.tag_names)}
        cut = self.config.data.max_length
        y = []
        for i, seq in enumerate(tags):
            missing = [t for t in seq if t not in index]
            if missing:
                raise DataError(f"{data.description}: {split} sentence {i} has tag "
                                f"{missing[0]!r}, which the training split does not have "
                                f"(tags: {', '.join(self.tag_names)})")
            y.append([index[t] + 1 for t in seq[:cut]])
        return [s[:cut] for s in tokens], y, tokens

    def datasets(self, data: TaggingData, batch_size: int, seed: int, bucketing: bool,
                 fixed_length: bool) -> tuple[Any, Any, int]:
        train_tok, train_y, _ = self._encode_split(data, "train")
        dev = None
        self._dev_sentences = None
        if data.num_dev:
            dev_tok, dev_y, _ = self._encode_split(data, "dev")
            dev = self._dataset(dev_tok, dev_y, batch_size, None, bucketing)
            self._dev_sentences = data.split("dev")
        rate = self.config.data.singleton_unk
        singles = None
        if rate > 0:
            pre = self.preprocessor
            counts = Counter(i for s in train_tok for i in pre.word_ids(s))
            singles = np.zeros(pre.words.vocab_size, bool)
            singles[[i for i, c in counts.items() if c == 1 and i > 1]] = True
        train = self._dataset(train_tok, train_y, batch_size, seed, bucketing, (rate, singles),
                              self.config.data.word_dropout)
        return train, dev, -(-len(train_tok) // batch_size)

    def _dataset(self, tokens: list, targets: list, batch_size: int, seed: int | None,
                 bucketing: bool, unk: tuple[float, Any] = (0.0, None),
                 word_dropout: float = 0.0) -> Any:
        """Batches of ``((words, chars), targets)``; with a seed (training), reshuffled every
        epoch with sentences of similar length batched together (a fixed number of batches),
        singleton words replaced by <unk> at rate ``unk[0]`` (``unk[1]``: singleton ids) and
        any word at rate ``word_dropout`` (its characters are kept)."""
        import tensorflow as tf

        pre = self.preprocessor
        state = {"epoch": 0}

        def batches() -> Any:
            n = len(tokens)
            if seed is None:
                order = np.arange(n)
            else:
                rng = np.random.default_rng([seed, state["epoch"]])
                state["epoch"] += 1
                order = rng.permutation(n)
                if bucketing:  # sort chunks of 50 batches by length, then shuffle batches
                    pool = 50 * batch_size
                    order = np.concatenate([
                        sorted(order[i: i + pool], key=lambda k: len(tokens[k]))
                        for i in range(0, n, pool)]).astype(np.int64)
            groups = [order[i: i + batch_size] for i in range(0, n, batch_size)]
            if seed is not None:
                rng.shuffle(groups)
            for idx in groups:
                words, chars = pre.batch([tokens[i] for i in idx])
                if seed is not None and unk[0] > 0:
                    words[unk[1][words] & (rng.random(words.shape) < unk[0])] = 1
                if seed is not None and word_dropout > 0:
                    words[(words > 0) & (rng.random(words.shape) < word_dropout)] = 1
                yield (words, chars), pad_rows([targets[i] for i in idx])

        spec = ((tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None, None],
                                                                      tf.int32)),
                tf.TensorSpec([None, None], tf.int32))
        ds = tf.data.Dataset.from_generator(batches, output_signature=spec)
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-len(tokens) // batch_size)))
        return ds.prefetch(2)

    def loss(self) -> Any:
        from rnnzoo.layers.tagging import CRFLoss, TagCrossEntropy

        crf = self._crf_layer()
        return TagCrossEntropy() if crf is None else CRFLoss(crf)

    def metrics(self) -> list:
        from rnnzoo.layers.tagging import TagAccuracy

        return [TagAccuracy()]

    def fit(self, train: Any, dev: Any, epochs: int, callbacks: list, verbose: Any) -> Any:
        """Keras ``fit``, with the dev split decoded after every epoch: ``val_f1`` (chunk
        tags) and ``val_token_accuracy`` join the logs before checkpoints read them."""
        import keras

        task = self

        class DevScores(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                if logs is None or not task._dev_sentences:
                    return
                report = task.evaluate(*task._dev_sentences)
                logs["val_token_accuracy"] = report["token_accuracy"]
                if "f1" in report:
                    logs["val_f1"] = report["f1"]

        found = list(callbacks)
        if dev is not None:
            # After the weight averaging's swap: the dev scores (and the checkpoints after
            # them) are of the averaged weights, the ones saved.
            at = max((i + 1 for i, c in enumerate(found)
                      if isinstance(c, keras.callbacks.SwapEMAWeights)), default=0)
            found.insert(at, DevScores())
        return self.model.fit(train, validation_data=dev, epochs=epochs, callbacks=found,
                              verbose=verbose, shuffle=False)

    # -- inference ---------------------------------------------------------------------------
    def _crf_layer(self) -> Any:
        names = {layer.name for layer in self.model.layers}
        return self.model.get_layer("crf") if "crf" in names else None

    @property
    def crf_parameters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        crf = self._crf_layer()
        if crf is None:
            return None
        return tuple(np.asarray(w, np.float32) for w in (crf.transitions, crf.start, crf.end))

    def _emissions_of(self, words: np.ndarray, chars: np.ndarray) -> np.ndarray:
        self.require_fitted()
        return self.keras_graphs().run("model", {"words": words, "chars": chars})["emissions"]

    def head_overrides(self, data: TaggingData) -> dict[str, Any]:
        """Other tags than the model's: a fresh output layer (never a silent remap)."""
        names = tag_names_for(data.split("train")[1], self.preprocessor.scheme)
        if names == self.tag_names:
            return {}
        return {"labels": names}

    def head_labels(self) -> list[str]:
        return list(self.tag_names)

    def _preprocessor_for_head(self, config: EntryConfig, labels: list[str] | None,
                               fresh: bool) -> TaggerPreprocessor:
        """The same vocabularies; the given tags, else this model's when the head keeps them,
        else placeholders (``tag_0``, ...; under a chunk scheme ``O`` and ``B-type_0``-style
        tags, so entities decode). Training on data replaces them."""
        pre = self.preprocessor
        n = config.model.num_tags
        if labels is None:
            labels = placeholder_tags(n, pre.scheme) if fresh or n != len(pre.tag_names) \
                else pre.tag_names
        if len(labels) != n:
            raise ConfigError(f"labels: {len(labels)} tags for num_tags={n}")
        if pre.scheme is not None:
            try:
                spans(labels)
            except DataError as exc:
                raise ConfigError(f"labels: {exc} ({pre.scheme} tagger)") from None
        new = copy.copy(pre)
        new.tag_names = list(labels)
        return new

    # -- export ---------------------------------------------------------------------------------
    def _inputs(self) -> list[InputSpec]:
        m = self.config.model
        return [InputSpec("words", "tokens", ("batch", "time"), "int32", m.vocab_size),
                InputSpec("chars", "tokens", ("batch", "time", "chars"), "int32",
                          m.char_vocab_size)]

    def _graph_specs(self) -> list[GraphSpec]:
        return [GraphSpec("model", "model.onnx", self.model, self._inputs(), ["emissions"],
                          sequence_outputs={"emissions": "words"})]

    def _export_preprocessing(self) -> dict:
        m = self.config.model
        crf = self.crf_parameters
        return {"tokenizer": "assets/tokenizer.json", "chars": "assets/chars.json",
                "tags": "assets/tags.json", "padding": "post", "pad_id": 0,
                "vocab_size": m.vocab_size, "char_vocab_size": m.char_vocab_size,
                "max_word_chars": self.config.data.max_word_chars,
                "lowercase": self.config.data.lowercase,
                "normalize_digits": self.config.data.normalize_digits,
                "crf": None if crf is None else {k: v.tolist() for k, v in
                                                 zip(("transitions", "start", "end"), crf)}}

    def _compare_runtimes(self, reference: Any, candidate: Any, eval_data: Any = None) -> dict:
        """How much int8 changes tags: agreement on the example sentences, and the dev
        metrics of both when ``eval_data`` is given."""
        inputs = cli.example_inputs()
        a = [t.tags for t in reference.tag(inputs)]
        b = [t.tags for t in candidate.tag(inputs)]
        same = sum(x == y for sa, sb in zip(a, b) for x, y in zip(sa, sb))
        total = sum(len(s) for s in a)
        out: dict[str, Any] = {"tag_agreement": same / total}
        summary = f"tag agreement {same / total:.1%} on {total} example tokens"
        if eval_data is not None:
            found = compare_on_data(self, reference, candidate, eval_data,
                                    ["f1", "token_accuracy"])
            key, ref, new = found["key"], found["fp32"], found["int8"]
            out.update({"eval_data": found["description"], f"{key}_fp32": ref,
                        f"{key}_int8": new, "metric_difference": new - ref})
            summary += f"; {key} fp32 {ref:.4f} -> int8 {new:.4f}"
        out["summary"] = summary
        return out

    def _int8_rejection(self, comparison: Mapping[str, Any]) -> str | None:
        """int8 ships when it loses at most half a point of entity F1 (token accuracy for
        POS) on the evaluation data; without data, when it changes no example tag."""
        return int8_rule(comparison, "metric_difference",
                         "int8 loses more than 0.5 points of F1 (or token accuracy)",
                         "tag_agreement", 1.0, "int8 changes tags of the example sentences")


TASK_CLASS = TokenClassificationTask
