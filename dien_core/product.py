"""PNN's inner-product layer (Qu et al., ICDM 2016): every pair of field embeddings, one number each."""

from __future__ import annotations

import torch
from torch import nn


class InnerProduct(nn.Module):
    """Pairwise inner products of ``F`` field embeddings of one width ``K``.

    Args: ``fields`` (F, at least 2). Takes ``fields (B, F, K)``; returns ``(B, F (F - 1) / 2)``:
    ``<f_i, f_j>`` for every ``i < j``, in row-major order of the upper triangle
    ((0, 1), (0, 2), ..., (1, 2), ...). No parameters: IPNN's product-layer weights act on this
    output, which the MLP's first Linear does when it reads ``[fields, products]``.
    """

    def __init__(self, fields: int) -> None:
        super().__init__()
        if fields < 2:
            raise ValueError(f"an inner-product layer needs at least 2 fields to pair, got {fields}")
        self.fields = fields
        rows, cols = torch.triu_indices(fields, fields, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    @property
    def pairs(self) -> int:
        return self.fields * (self.fields - 1) // 2

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        B, F, K = fields.shape
        if F != self.fields:
            raise ValueError(f"InnerProduct was built for {self.fields} fields, got {F}")
        # (B, P, K) elementwise products of the pairs, summed over K: no (B, F, F) Gram matrix
        return (fields[:, self.rows] * fields[:, self.cols]).sum(dim=-1)

    def extra_repr(self) -> str:
        return f"fields={self.fields}, pairs={self.pairs}"
