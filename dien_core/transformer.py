"""Transformer encoder for behaviour sequences (BST, Chen et al. 2019): masked self-attention, post-norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TransformerLayer(nn.Module):
    """One encoder layer: multi-head self-attention, then a feed-forward block, each with a
    residual connection, dropout and LayerNorm after it (post-norm, as in BST and Vaswani et al.).

    Args: ``dim`` (E, the token width), ``heads`` (must divide E: each head reads ``E / heads``
    columns), ``ff_hidden`` (the feed-forward width), ``dropout`` (on the attention weights and
    on both blocks' outputs, in training only). Takes ``x (B, L, E)`` and ``mask (B, L)`` bool
    (True: a real token); returns ``(B, L, E)``. A masked token gets zero attention weight as a
    key, so no output depends on what it holds; its own output row is computed but meaningless.
    Every row needs at least one real token. The attention is
    ``torch.nn.functional.scaled_dot_product_attention`` with a boolean ``attn_mask``, so torch
    takes a fused kernel where it has one for the device and dtype.
    """

    def __init__(self, dim: int, heads: int, ff_hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim <= 0 or heads <= 0 or ff_hidden <= 0:
            raise ValueError(f"dim, heads and ff_hidden must be positive, got {dim}, {heads}, {ff_hidden}")
        if dim % heads:
            raise ValueError(f"heads={heads} must divide the token width {dim} (each head reads dim / heads columns)")
        self.dim, self.heads, self.dropout = dim, heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_attention = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_hidden), nn.LeakyReLU(), nn.Linear(ff_hidden, dim))
        self.norm_ff = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention over the real tokens: ``(B, L, E)``, ``(B, L)`` -> ``(B, L, E)``."""
        B, L, E = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, E // self.heads).permute(2, 0, 3, 1, 4)  # each (B, h, L, E / h)
        keys = mask.view(B, 1, 1, L)  # broadcast over heads and queries
        p = self.dropout if self.training else 0.0
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=keys, dropout_p=p)  # (B, h, L, E / h)
        return self.out(heads.transpose(1, 2).reshape(B, L, E))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, E = x.shape
        x = self.norm_attention(x + self.drop(self.attention(x, mask)))
        return self.norm_ff(x + self.drop(self.ff(x)))

    def forward_from_qkv(self, x: torch.Tensor, qkv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``forward`` with ``qkv = self.qkv(x)`` ``(B, L, 3E)`` made by the caller (serving makes the
        history's rows once per request); ``x (B, L, E)``, ``mask (B, L)`` -> ``(B, L, E)``."""
        B, L, E = x.shape
        q, k, v = qkv.reshape(B, L, 3, self.heads, E // self.heads).permute(2, 0, 3, 1, 4)  # each (B, h, L, E / h)
        p = self.dropout if self.training else 0.0
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.view(B, 1, 1, L), dropout_p=p)  # (B, h, L, E / h)
        x = self.norm_attention(x + self.drop(self.out(heads.transpose(1, 2).reshape(B, L, E))))
        return self.norm_ff(x + self.drop(self.ff(x)))


class TransformerEncoder(nn.Module):
    """Learned position embeddings added to the tokens, then ``layers`` ``TransformerLayer`` s.

    Args: ``dim`` (E), ``heads``, ``layers``, ``max_position`` (positions run 0..max_position),
    ``dropout``; the feed-forward width is ``4 E``. Takes ``tokens (B, L, E)``, ``positions (B, L)``
    int64 in 0..max_position and ``mask (B, L)`` bool; returns ``(B, L, E)``. Positions are the
    caller's: BST numbers tokens by their distance from the target, so padding cannot shift them.
    """

    def __init__(self, dim: int, heads: int, layers: int, max_position: int, dropout: float = 0.0) -> None:
        super().__init__()
        if layers <= 0 or max_position < 0:
            raise ValueError(f"layers must be positive and max_position >= 0, got {layers}, {max_position}")
        self.max_position = max_position
        self.position = nn.Embedding(max_position + 1, dim)
        nn.init.normal_(self.position.weight, std=0.05)
        self.layers = nn.ModuleList(TransformerLayer(dim, heads, 4 * dim, dropout) for _ in range(layers))

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, E = tokens.shape
        x = tokens + self.position(positions)
        for layer in self.layers:
            x = layer(x, mask)
        return x


def distance_positions(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """Positions of ``[target; history]`` tokens by distance from the target: ``(B, 1 + T)`` int64,
    0 for the target, then ``lengths .. 1`` (the latest behaviour is 1), 0 at padded steps. They
    depend on the lengths only, so padding a batch further shifts nothing. ``lengths (B,)``."""
    steps = torch.arange(T + 1, device=lengths.device)
    return torch.where(steps == 0, 0, (lengths.unsqueeze(1) + 1 - steps).clamp_min(0))
