"""Batches from a Split: padded to the batch's own longest row, fresh negatives every time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from dien_core import Batch

from .dataset import UNKNOWN, Dataset, Split

NEGATIVE_SAMPLING = ("uniform", "popularity")


class NegativeSampler:
    """For every history step an item (index >= 2) that differs from the clicked one there,
    drawn uniformly or by train popularity."""

    def __init__(self, dataset: Dataset, mode: str) -> None:
        if mode not in NEGATIVE_SAMPLING:
            raise ValueError(f"unknown negative sampling {mode!r}; allowed: {', '.join(NEGATIVE_SAMPLING)}")
        self.n_items, self.mode = dataset.vocab.items, mode
        if self.n_items < 4:
            raise ValueError("negative sampling needs at least two known items")
        weights = dataset.item_count[2:].astype(np.float64) + 1.0  # smoothed so every item can be drawn
        self.cdf = np.cumsum(weights) / weights.sum()

    def draw(self, size: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        if self.mode == "uniform":
            return rng.integers(2, self.n_items, size=size)
        return np.minimum(np.searchsorted(self.cdf, rng.random(size)), len(self.cdf) - 1) + 2

    def __call__(self, clicked: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        neg = self.draw(clicked.shape, rng)
        clash = neg == clicked
        while clash.any():
            neg[clash] = self.draw((int(clash.sum()),), rng)
            clash = neg == clicked
        return neg


class BatchLoader:
    """Iterates ``Batch``es over ``split``.

    Shuffled by ``seed`` and epoch when ``shuffle``; with ``bucket`` rows of
    similar history length are batched together (less padding), the batch order
    still shuffled. Negatives for the auxiliary loss are drawn per batch, so each
    epoch sees new ones. With ``user_dropout`` each row reads the unknown user (index 1)
    with that probability, so the row that held-out users read is trained. On CUDA the
    tensors are pinned and copied non-blocking.
    """

    def __init__(
        self, dataset: Dataset, split: Split, batch_size: int, *, shuffle: bool = False, seed: int = 0,
        bucket: bool = False, negatives: str | None = "uniform", device: str | torch.device = "cpu", user_dropout: float = 0.0,
    ) -> None:  # fmt: skip
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= user_dropout < 1:
            raise ValueError(f"user_dropout must be in [0, 1), got {user_dropout}")
        self.user_dropout = user_dropout
        self.dataset, self.split, self.batch_size = dataset, split, batch_size
        self.shuffle, self.seed, self.bucket = shuffle, seed, bucket
        self.sampler = NegativeSampler(dataset, negatives) if negatives else None
        self.device = torch.device(device)
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.split) + self.batch_size - 1) // self.batch_size

    def batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        n = len(self.split)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.bucket:
            window = self.batch_size * 50  # sort by length within windows, keep randomness across them
            chunks = [c[np.argsort(self.split.hist_len[c], kind="stable")] for c in np.array_split(order, max(1, n // window))]
            order = np.concatenate(chunks)
        rows = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.bucket and self.shuffle:
            rows = [rows[i] for i in rng.permutation(len(rows))]
        return rows

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        for rows in self.batches(rng):
            yield self.make_batch(rows, rng)

    def make_batch(self, rows: np.ndarray, rng: np.random.Generator) -> Batch:
        s, d = self.split, self.dataset
        lengths = s.hist_len[rows]
        T = int(lengths.max()) if len(rows) else 0
        mask = np.arange(T)[None, :] < lengths[:, None]
        idx = np.where(mask, s.hist_start[rows, None] + np.arange(T)[None, :], 0)
        hist_item = d.flat_item[idx] * mask
        hist_cate = d.flat_cate[idx] * mask
        if self.sampler is not None:
            neg_item = self.sampler(hist_item, rng) * mask
            neg_cate = d.item_cate[neg_item] * mask
        else:
            neg_item = neg_cate = np.zeros_like(hist_item)
        user = s.user[rows]
        if self.user_dropout:
            user = np.where(rng.random(len(rows)) < self.user_dropout, UNKNOWN, user)
        arrays = {
            "user": user, "item": s.item[rows], "cate": s.cate[rows], "hist_item": hist_item, "hist_cate": hist_cate,
            "lengths": lengths, "neg_item": neg_item, "neg_cate": neg_cate,
        }  # fmt: skip
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in arrays.items()}
        batch = Batch(**tensors, label=torch.from_numpy(np.ascontiguousarray(s.label[rows], dtype=np.float32)))
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch
