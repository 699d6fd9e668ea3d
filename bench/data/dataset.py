"""Indexed samples: histories as segments of one flat behaviour array, shared between samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dien_core import VocabSizes

PAD, UNKNOWN = 0, 1  # reserved indices in every vocabulary; known ids start at 2


@dataclass(frozen=True)
class Split:
    """``N`` samples. ``hist_start, hist_len (N,)`` index ``Dataset.flat_item/flat_cate``;
    ``group (N,)`` is the real user (for GAUC), whatever index ``user`` maps to."""

    user: np.ndarray
    item: np.ndarray
    cate: np.ndarray
    label: np.ndarray
    hist_start: np.ndarray
    hist_len: np.ndarray
    group: np.ndarray

    def __len__(self) -> int:
        return int(self.user.shape[0])


@dataclass(frozen=True)
class Dataset:
    """Everything a run needs: vocabularies (built on train), the flat behaviour
    arrays, the per-item category table (for negatives) and three splits."""

    name: str
    vocab: VocabSizes
    flat_item: np.ndarray
    flat_cate: np.ndarray
    item_cate: np.ndarray  # (vocab.items,) category index of each item index
    item_count: np.ndarray  # (vocab.items,) clicks in train, for popularity sampling
    train: Split
    valid: Split
    test: Split

    def describe(self) -> str:
        sizes = ", ".join(f"{n} {len(getattr(self, n)):,}" for n in ("train", "valid", "test"))
        v = self.vocab
        return f"{self.name}: {sizes} samples; {v.users:,} users, {v.items:,} items, {v.cates:,} categories (with padding and unknown)"


class Vocabulary:
    """Raw ids -> indices 2.. in order of first appearance; unseen ids map to UNKNOWN."""

    def __init__(self, raw: np.ndarray) -> None:
        self.keys = sorted_unique(raw)
        self.size = len(self.keys) + 2

    def index(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw)
        if len(self.keys) == 0:
            return np.full(raw.shape, UNKNOWN, dtype=np.int64)
        pos = np.searchsorted(self.keys, raw).clip(0, len(self.keys) - 1)
        return np.where(self.keys[pos] == raw, pos + 2, UNKNOWN).astype(np.int64)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based: numpy's hash-based unique is far slower on millions of rows)."""
    s = np.sort(np.asarray(values), kind="stable")
    if len(s) == 0:
        return s
    return s[np.concatenate([[True], s[1:] != s[:-1]])]


def contains(sorted_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Membership of ``values`` in ``sorted_keys`` (bool, same shape as values)."""
    if len(sorted_keys) == 0:
        return np.zeros(np.shape(values), dtype=bool)
    pos = np.searchsorted(sorted_keys, values).clip(0, len(sorted_keys) - 1)
    return sorted_keys[pos] == values
