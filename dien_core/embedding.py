"""Embedding tables for user, item and category (index 0 = padding)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import cpp
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
    """``table(ids)`` as a row gather (``RowLookup``): its backward is a dense table gradient
    made by the C++ kernel on CPU, else ``index_add`` into zeros (both several times cheaper on
    CPU than the embedding backward); callers mask padded steps themselves."""
    return RowLookup.apply(table.weight, ids.reshape(-1)).view(*ids.shape, table.embedding_dim)


class RowLookup(torch.autograd.Function):
    """``weight (V, D)``, ``ids (M)`` int64 -> ``weight[ids] (M, D)``; the gradient of ``weight`` is dense
    ``(V, D)`` (as ``nn.Embedding``'s, so optimisers see the same thing)."""

    @staticmethod
    def forward(ctx, weight, ids):
        ctx.save_for_backward(ids)
        ctx.rows = weight.shape[0]
        return weight.index_select(0, ids)

    @staticmethod
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        kernels = cpp.kernels() if grad.device.type == "cpu" else None
        if kernels is not None:
            return kernels.embedding_backward(ids, grad, ctx.rows), None
        return grad.new_zeros(ctx.rows, grad.shape[1]).index_add_(0, ids, grad), None
