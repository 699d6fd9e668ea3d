"""The shared MLP head: turns the concatenated features into one logit per row."""

from __future__ import annotations

import torch
from torch import nn

from .mlp import MLP


class Head(nn.Module):
    """MLP over the concatenation of ``parts``, each ``(B, D_i)``; returns logits ``(B,)``.

    Args: ``in_features`` (sum of D_i), ``hidden`` widths, ``activation``, ``dropout``.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], activation: str, dropout: float) -> None:
        super().__init__()
        self.mlp = MLP(in_features, hidden, activation, dropout)

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat(parts, dim=-1))
