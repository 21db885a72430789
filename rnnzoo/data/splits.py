"""The train/dev/test container protocol that every task's loaded data shares.

``train()`` reads ``num_train``/``num_dev`` for its progress line, and ``evaluate --split`` calls
``split(name)``; a task's data class (a dataclass with ``train``, ``dev`` and ``test`` fields)
inherits them from here instead of writing the same three members again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

from rnnzoo.errors import ConfigError

T = TypeVar("T")


class Splits:
    """``num_train``, ``num_dev`` and ``split(name)`` over ``train``/``dev``/``test`` attributes;
    ``"all"`` is the three concatenated (lists, strings, ...). ``kind`` names the data in the
    error for an unknown split."""

    kind: ClassVar[str] = "this data"
    train: Any
    dev: Any
    test: Any

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def num_dev(self) -> int:
        return len(self.dev)

    def split(self, name: str) -> Any:
        splits = {"train": self.train, "dev": self.dev, "test": self.test}
        if name == "all":
            return self.train + self.dev + self.test
        if name not in splits:
            raise ConfigError(f"split {name!r}: {self.kind} has the splits "
                              f"{', '.join([*splits, 'all'])}")
        return splits[name]


class HeldOutFractions:
    """``check()`` of a ``DataConfig`` dataclass whose layouts without a standard split hold
    out ``dev_fraction`` and ``test_fraction`` of the data: something must be left to train on.
    A mixin (no fields of its own), so each config keeps its own defaults and comments."""

    dev_fraction: float
    test_fraction: float

    def check(self) -> list[str]:
        """Cross-field rule: something is left to train on."""
        if self.dev_fraction + self.test_fraction >= 1:
            return [f"test_fraction: dev_fraction + test_fraction must be < 1 (the rest is the "
                    f"training split), found {self.dev_fraction:g} + {self.test_fraction:g}"]
        return []

    def hold_out(self, items: Sequence[T], seed: int) -> tuple[list[T], list[T], list[T]]:
        """``(train, dev, test)``: seeded random ``test_fraction`` and ``dev_fraction`` of
        ``items`` (none held out of two or fewer), each part in the items' own order, so a file
        read twice splits the same way and its parts read like the file."""
        n = len(items)
        order = np.random.default_rng(seed).permutation(n)
        n_test = int(round(n * self.test_fraction)) if n > 2 else 0
        n_dev = int(round(n * self.dev_fraction)) if n > 2 else 0
        parts = order[:n_test], order[n_test:n_test + n_dev], order[n_test + n_dev:]
        test, dev, train = ([items[i] for i in sorted(idx)] for idx in parts)
        return train, dev, test
