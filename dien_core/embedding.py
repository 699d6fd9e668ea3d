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
        return torch.cat([lookup(self.item, item), lookup(self.cate, cate)], dim=-1)

    def forward(self, batch: Batch, with_negatives: bool = False) -> Embedded:
        B, T = batch.hist_item.shape
        mask = step_mask(batch.lengths, T)
        keep = mask.long()
        # One lookup per table over [target | history | negatives]: a dense embedding
        # backward (zero-fill + scatter of the whole table) is paid once, not per use.
        items = [batch.item.unsqueeze(1), batch.hist_item * keep]
        cates = [batch.cate.unsqueeze(1), batch.hist_cate * keep]
        if with_negatives:
            items.append(batch.neg_item * keep)
            cates.append(batch.neg_cate * keep)
        every = self.behaviour(torch.cat(items, dim=1), torch.cat(cates, dim=1))  # (B, 1 + T or 1 + 2T, 2D)
        # Zero the padded steps: their output and their gradient (row 0 is never trained).
        valid = torch.cat([mask.new_ones(B, 1), *[mask] * (len(items) - 1)], dim=1).unsqueeze(-1)
        every = every * valid
        target, hist = every[:, 0], every[:, 1 : 1 + T]
        return Embedded(
            user=lookup(self.user, batch.user),
            target=target,
            hist=hist,
            neg=every[:, 1 + T :] if with_negatives else None,
            mask=mask,
            hist_sum=hist.sum(dim=1),
        )


def lookup(table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """``table(ids)`` through index_select: its backward (index_add into zeros) is several times
    cheaper on CPU than the embedding backward; callers mask padded steps themselves."""
    return table.weight.index_select(0, ids.reshape(-1)).view(*ids.shape, table.embedding_dim)
