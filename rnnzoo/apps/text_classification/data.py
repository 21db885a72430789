"""Text classification data: the config section, the readers (``rnnzoo.data.readers``) and the
preprocessor that turns raw strings into post-padded token ids. TF-free."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from rnnzoo.config import rule
from rnnzoo.data.readers import TextClassificationData, load_text_classification
from rnnzoo.data.tokenizer import WordTokenizer

__all__ = ["DataConfig", "TextClassificationData", "TextClassifierPreprocessor",
           "load_text_classification"]


@dataclasses.dataclass
class DataConfig:
    max_length: int = rule(100, min=1)  # tokens; longer texts are truncated at the end
    lowercase: bool = True
    min_freq: int = rule(1, min=1)
    # Held out when a dataset has no dev split (MR, a CSV file); 0 trains on everything.
    dev_fraction: float = rule(0.1, min=0.0, max=1.0, max_exclusive=True)


class TextClassifierPreprocessor:
    """Raw strings -> post-padded int32 token ids; knows the class names."""

    def __init__(self, tokenizer: WordTokenizer, label_names: Sequence[str], max_length: int):
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.max_length = max_length

    @property
    def is_fitted(self) -> bool:
        return self.tokenizer.is_fitted

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.tokenizer.encode_batch(list(texts), max_length=self.max_length)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated; an empty text becomes one ``<unk>``."""
        return [self.tokenizer.encode(t)[: self.max_length] or [1] for t in texts]
