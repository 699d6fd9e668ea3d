"""The embedding lookup as one autograd Function over several tables and groups of ids: the C++
gather and scatter (``csrc/embedding_cpu.cpp``) or the same in torch ops."""

from __future__ import annotations

import torch

from . import cpp


class TableLookup(torch.autograd.Function):
    """Rows of several tables side by side, for several groups of ids, in one call.

    ``reads``: per group, the indices of the tables it reads; ``with_kernels`` (the C++ gather and
    scatter, CPU); the ``tables`` (each ``(V_k, D)``); then per group one id tensor ``(S0, S1)``
    per table it reads -> per group ``(S0, S1, D * tables read)``. Id 0 reads zeros. Each
    table's gradient is dense ``(V_k, D)`` (as ``nn.Embedding``'s, so optimisers see the same
    thing), summed over every group that reads it, zero in row 0 (padding).
    """

    @staticmethod
    def forward(ctx, reads, with_kernels, *tensors):
        n_tables = len(tensors) - sum(len(group) for group in reads)
        tables, ids = tensors[:n_tables], iter(tensors[n_tables:])
        group_ids = [[next(ids) for _ in group] for group in reads]
        ctx.reads, ctx.with_kernels, ctx.shapes = reads, with_kernels, [t.shape for t in tables]
        ctx.save_for_backward(*[i for group in group_ids for i in group])
        kernels = cpp.kernels() if with_kernels else None
        assert kernels is not None or not with_kernels, "the plan chose the C++ kernels only where they built"
        if kernels is not None:
            return tuple(kernels.gather_rows([tables[k] for k in group], i) for group, i in zip(reads, group_ids))
        return tuple(gather_torch([tables[k] for k in group], i) for group, i in zip(reads, group_ids))

    @staticmethod
    def backward(ctx, *grads):
        ids = iter(ctx.saved_tensors)
        # per table: (ids, gradient columns) of every group that reads it
        uses: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in ctx.shapes]
        for group, grad in zip(ctx.reads, grads):
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
