"""Embedding tables for user, item and category (index 0 = padding)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .batch import Batch, step_mask
from .config import VocabSizes


@dataclass(frozen=True)
class Embedded:
    """Embedded view of a batch: ``user (B, D)``, ``target (B, 2D)``, ``hist (B, T, 2D)``,
    ``neg (B, T, 2D)`` (None unless asked for), ``mask (B, T)`` bool, ``hist_sum (B, 2D)``."""

    user: torch.Tensor
    target: torch.Tensor
    hist: torch.Tensor
    neg: torch.Tensor | None
    mask: torch.Tensor
    hist_sum: torch.Tensor


class FeatureEmbedding(nn.Module):
    """User, item and category tables; a behaviour is ``[item emb; cate emb]``.

    Args: ``vocab`` sizes, ``dim`` (D) per feature. Takes a ``Batch`` with
    ``hist_item (B, T)``; returns ``Embedded``. Ids at padded steps are replaced
    by 0 before lookup, so whatever a loader leaves there cannot leak in.
    """

    def __init__(self, vocab: VocabSizes, dim: int) -> None:
        super().__init__()
        self.user = nn.Embedding(vocab.users, dim, padding_idx=0)
        self.item = nn.Embedding(vocab.items, dim, padding_idx=0)
        self.cate = nn.Embedding(vocab.cates, dim, padding_idx=0)
        for table in (self.user, self.item, self.cate):
            nn.init.normal_(table.weight, std=0.05)
            with torch.no_grad():
                table.weight[0].zero_()

    def behaviour(self, item: torch.Tensor, cate: torch.Tensor) -> torch.Tensor:
        """``item, cate (...)`` -> ``(..., 2D)``."""
        return torch.cat([self.item(item), self.cate(cate)], dim=-1)

    def forward(self, batch: Batch, with_negatives: bool = False) -> Embedded:
        B, T = batch.hist_item.shape
        mask = step_mask(batch.lengths, T)
        keep = mask.long()
        hist = self.behaviour(batch.hist_item * keep, batch.hist_cate * keep)
        neg = self.behaviour(batch.neg_item * keep, batch.neg_cate * keep) if with_negatives else None
        return Embedded(
            user=self.user(batch.user),
            target=self.behaviour(batch.item, batch.cate),
            hist=hist,
            neg=neg,
            mask=mask,
            hist_sum=hist.sum(dim=1),  # padded rows embed index 0, which is all zeros
        )
