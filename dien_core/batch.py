"""The batch every model takes and the output every model returns (DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class Batch:
    """One mini-batch of samples, right-padded with 0.

    Shapes: ``user, item, cate, lengths, label`` are ``(B,)``; ``hist_item,
    hist_cate, neg_item, neg_cate`` are ``(B, T)``. Ids are int64, ``label`` float32.
    """

    user: torch.Tensor
    item: torch.Tensor
    cate: torch.Tensor
    hist_item: torch.Tensor
    hist_cate: torch.Tensor
    lengths: torch.Tensor
    neg_item: torch.Tensor
    neg_cate: torch.Tensor
    label: torch.Tensor

    @property
    def size(self) -> int:
        return self.user.shape[0]

    @property
    def max_len(self) -> int:
        return self.hist_item.shape[1]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(**{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)})

    def pin_memory(self) -> Batch:
        return Batch(**{f.name: getattr(self, f.name).pin_memory() for f in fields(self)})


@dataclass(frozen=True)
class Output:
    """What a model returns: ``logits (B,)``, a scalar ``aux_loss`` (0 where a model has none) and
    ``alpha``, the weight the model gives ``aux_loss`` in its training objective (``total_loss``;
    DIEN's ``ModelConfig.alpha``, 0 for models without an auxiliary loss)."""

    logits: torch.Tensor
    aux_loss: torch.Tensor
    alpha: float = 0.0


def step_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B, T)`` bool mask of the valid steps for ``lengths (B,)``; no host synchronisation."""
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)
