"""Embedding tables for user, item and category (index 0 = padding)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import cpp
from .batch import Batch, step_mask
from .config import BACKENDS, VocabSizes


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

    Args: ``vocab`` sizes, ``dim`` (D) per feature, ``backend`` (``TableLookup``'s: "cpp" or
    "auto" on CPU run the C++ kernels, the others the torch ops). Takes a ``Batch`` with
    ``hist_item (B, T)``; returns ``Embedded``. Id 0 is padding: it embeds as zeros and its
    row is never trained; ids at padded steps are replaced by 0 before lookup, so whatever a
    loader leaves there cannot leak in. ``hist`` and ``neg`` are time-major in memory
    (``(B, T, 2D)`` views of ``(T, B, 2D)`` tensors), the layout the recurrences, the
    attention and the auxiliary loss read without copying.
    """

    def __init__(self, vocab: VocabSizes, dim: int, backend: str = "auto") -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
        self.backend = backend
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

        def steps(ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (T, B), 0 at padded steps
            return (ids * keep).t().contiguous()

        # Groups of ids, each (S0, S1), looked up in one call: each table's dense gradient is made
        # once from every group. Tables: 0 item, 1 cate, 2 user.
        groups = [((0, 1), (batch.item.reshape(1, B), batch.cate.reshape(1, B))), ((2,), (batch.user.reshape(1, B),))]
        groups.append(((0, 1), (steps(batch.hist_item), steps(batch.hist_cate))))
        if with_negatives:
            groups.append(((0, 1), (steps(batch.neg_item), steps(batch.neg_cate))))
        plan = tuple(tables for tables, _ in groups)
        ids = [i for _, group_ids in groups for i in group_ids]
        tables = (self.item.weight, self.cate.weight, self.user.weight)
        target, user, hist, *neg = TableLookup.apply(plan, cpp.use_kernels(self.backend, tables[0].device), *tables, *ids)
        hist = hist.transpose(0, 1)  # (B, T, 2D)
        return Embedded(
            user=user[0],
            target=target[0],
            hist=hist,
            neg=neg[0].transpose(0, 1) if with_negatives else None,
            mask=mask,
            hist_sum=hist.sum(dim=1),
        )


class TableLookup(torch.autograd.Function):
    """Rows of several tables side by side, for several groups of ids, in one call.

    ``plan``: per group, the indices of the tables it reads; ``with_kernels`` (the C++ gather and
    scatter, CPU); the ``tables`` (each ``(V_k, D)``); then per group one id tensor ``(S0, S1)``
    per table it reads -> per group ``(S0, S1, D * tables read)``. Id 0 reads zeros. Each
    table's gradient is dense ``(V_k, D)`` (as ``nn.Embedding``'s, so optimisers see the same
    thing), summed over every group that reads it, zero in row 0 (padding).
    """

    @staticmethod
    def forward(ctx, plan, with_kernels, *tensors):
        n_tables = len(tensors) - sum(len(group) for group in plan)
        tables, ids = tensors[:n_tables], iter(tensors[n_tables:])
        group_ids = [[next(ids) for _ in group] for group in plan]
        ctx.plan, ctx.with_kernels, ctx.shapes = plan, with_kernels, [t.shape for t in tables]
        ctx.save_for_backward(*[i for group in group_ids for i in group])
        kernels = cpp.kernels() if with_kernels else None
        if kernels is not None:
            return tuple(kernels.gather_rows([tables[k] for k in group], i) for group, i in zip(plan, group_ids))
        return tuple(gather_torch([tables[k] for k in group], i) for group, i in zip(plan, group_ids))

    @staticmethod
    def backward(ctx, *grads):
        ids = iter(ctx.saved_tensors)
        # per table: (ids, gradient columns) of every group that reads it
        uses: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in ctx.shapes]
        for group, grad in zip(ctx.plan, grads):
            group_ids = [next(ids) for _ in group]
            if grad is None:
                continue
            for j, (k, i) in enumerate(zip(group, group_ids)):
                D = ctx.shapes[k][1]
                uses[k].append((i, grad[..., j * D : (j + 1) * D]))
        kernels = cpp.kernels() if ctx.with_kernels else None
        d_tables = []
        for k, (rows, D) in enumerate(ctx.shapes):
            if not uses[k] or not ctx.needs_input_grad[2 + k]:
                d_tables.append(None)
            elif kernels is not None:
                d_tables.append(kernels.scatter_rows([i for i, _ in uses[k]], [g for _, g in uses[k]], rows))
            else:
                d_tables.append(scatter_torch(uses[k], rows, D))
        return None, None, *d_tables, *[None] * len(ctx.saved_tensors)


def gather_torch(tables: list[torch.Tensor], ids: list[torch.Tensor]) -> torch.Tensor:
    """``TableLookup``'s gather in torch ops: ``(S0, S1)`` ids per table -> ``(S0, S1, sum D)``."""
    rows = [table.index_select(0, i.reshape(-1)) * (i.reshape(-1, 1) != 0) for table, i in zip(tables, ids)]
    return torch.cat(rows, dim=-1).view(*ids[0].shape, sum(t.shape[1] for t in tables))  # explicit width: T may be 0


def scatter_torch(uses: list[tuple[torch.Tensor, torch.Tensor]], rows: int, D: int) -> torch.Tensor:
    """``TableLookup``'s gradient of one table in torch ops, from ``(ids, grad)`` pairs."""
    out = uses[0][1].new_zeros(rows, D)
    for ids, grad in uses:
        out.index_add_(0, ids.reshape(-1), grad.reshape(-1, D))
    out[0] = 0  # padding is never trained
    return out
