"""Embedding tables for user, item and category (index 0 = padding)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .batch import Batch, step_mask
from .config import VocabSizes
from .kernels import cpp
from .kernels.lookup import TableLookup
from .kernels.plan import FORMS


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

    Args: ``vocab`` sizes, ``dim`` (D) per feature, ``implementation`` (the plan's choice,
    ``kernels/plan.py``): "torch" and "cpp" look every group of ids up in one ``TableLookup`` (its
    torch ops or its C++ gather and scatter, CPU); "reference" calls each ``nn.Embedding`` and
    concatenates, the check (``hist`` and ``neg`` then batch-major). Takes a ``Batch`` with
    ``hist_item (B, T)``; returns ``Embedded``. Id 0 is padding: it embeds as zeros and its
    row is never trained; ids at padded steps are replaced by 0 before lookup, so whatever a
    loader leaves there cannot leak in. ``hist`` and ``neg`` are time-major in memory
    (``(B, T, 2D)`` views of ``(T, B, 2D)`` tensors), the layout the recurrences, the
    attention and the auxiliary loss read without copying.
    """

    def __init__(self, vocab: VocabSizes, dim: int, implementation: str = "torch") -> None:
        super().__init__()
        if implementation not in FORMS["embedding"]:
            raise ValueError(f"the embedding has no {implementation!r} form; allowed: {', '.join(FORMS['embedding'])}")
        self.implementation = implementation
        self.user = nn.Embedding(vocab.users, dim, padding_idx=0)
        self.item = nn.Embedding(vocab.items, dim, padding_idx=0)
        self.cate = nn.Embedding(vocab.cates, dim, padding_idx=0)
        for table in (self.user, self.item, self.cate):
            nn.init.normal_(table.weight, std=0.05)
            with torch.no_grad():
                table.weight[0].zero_()

    def forward(self, batch: Batch, with_negatives: bool = False) -> Embedded:
        B, T = batch.hist_item.shape
        mask = step_mask(batch.lengths, T)
        keep = mask.long()
        if self.implementation == "reference":
            return self.reference_forward(batch, mask, with_negatives)
        if self.implementation == "cpp":
            cpp.planned_kernels(self.item.weight.device, "embedding")  # a ValueError for tables off the CPU

        def steps(ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (T, B), 0 at padded steps
            return (ids * keep).t().contiguous()

        # Groups of ids, each (S0, S1), looked up in one call: each table's dense gradient is made
        # once from every group. Tables: 0 item, 1 cate, 2 user.
        groups = [((0, 1), (batch.item.reshape(1, B), batch.cate.reshape(1, B))), ((2,), (batch.user.reshape(1, B),))]
        groups.append(((0, 1), (steps(batch.hist_item), steps(batch.hist_cate))))
        if with_negatives:
            groups.append(((0, 1), (steps(batch.neg_item), steps(batch.neg_cate))))
        reads = tuple(tables for tables, _ in groups)
        ids = [i for _, group_ids in groups for i in group_ids]
        tables = (self.item.weight, self.cate.weight, self.user.weight)
        target, user, hist, *neg = TableLookup.apply(reads, self.implementation == "cpp", *tables, *ids)
        hist = hist.transpose(0, 1)  # (B, T, 2D)
        return Embedded(
            user=user[0],
            target=target[0],
            hist=hist,
            neg=neg[0].transpose(0, 1) if with_negatives else None,
            mask=mask,
            hist_sum=hist.sum(dim=1),
        )

    def reference_forward(self, batch: Batch, mask: torch.Tensor, with_negatives: bool) -> Embedded:
        """Each table's own ``nn.Embedding`` lookup, concatenated: what ``TableLookup`` must equal."""
        keep = mask.long()

        def behaviour(item: torch.Tensor, cate: torch.Tensor) -> torch.Tensor:  # ids (...) -> (..., 2D)
            return torch.cat([self.item(item), self.cate(cate)], dim=-1)

        hist = behaviour(batch.hist_item * keep, batch.hist_cate * keep)  # (B, T, 2D)
        neg = behaviour(batch.neg_item * keep, batch.neg_cate * keep) if with_negatives else None
        target = behaviour(batch.item, batch.cate)
        return Embedded(user=self.user(batch.user), target=target, hist=hist, neg=neg, mask=mask, hist_sum=hist.sum(dim=1))
