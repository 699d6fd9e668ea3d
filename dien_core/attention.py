"""DIN's local activation unit: scores each history step against the target."""

from __future__ import annotations

import torch
from torch import nn

from .mlp import MLP


class AttentionUnit(nn.Module):
    """MLP over ``[q, k, q - k, q * k]`` giving one score per step, then normalised.

    Args: ``dim`` (D) of query and keys, ``hidden`` widths, ``activation``,
    ``normalization`` ("sigmoid": per-step sigmoid in (0, 1); "softmax": over
    the valid steps). Takes ``query (B, D)``, ``keys (B, T, D)``, ``mask (B, T)``
    bool; returns weights ``(B, T)``, zero at padded steps (and all zero for a
    row with no valid step).

    The first Linear layer's product with the concatenation is split (same
    parameters, same result): ``W [q, k, q-k, q*k] = (W_q + W_d) q + (W_k - W_d) k
    + W_p (q * k)``, so the query term is computed once per row, not per step. The MLP runs
    on time-major ``(T, B, .)`` rows (free for time-major keys), so the weights are a ``(B, T)``
    view of a ``(T, B)`` tensor. ``reference_scores`` keeps the literal concatenation as the check.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...], activation: str, normalization: str) -> None:
        super().__init__()
        if normalization not in ("sigmoid", "softmax"):
            raise ValueError(f"unknown att_normalization {normalization!r}; allowed: sigmoid, softmax")
        self.dim, self.normalization = dim, normalization
        self.mlp = MLP(4 * dim, hidden, activation)

    def scores(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Raw MLP outputs ``(B, T)`` before normalisation."""
        B, T, D = keys.shape
        first = self.mlp.first
        w_q, w_k, w_d, w_p = first.weight.split(D, dim=1)  # each (H1, D)
        row = torch.addmm(first.bias, query, (w_q + w_d).t())  # (B, H1)
        # Time-major rows (t, b): a view of keys that are time-major in memory (the embedding's
        # and the recurrences' outputs are), a copy otherwise.
        keys_tm = keys.transpose(0, 1).reshape(T * B, D)
        step = keys_tm @ (w_k - w_d).t()  # (T * B, H1)
        # The second product accumulates into the first (no add pass); in-place products escape autocast,
        # so their operands take the first's dtype, as autocast would give them.
        step.addmm_((keys_tm.view(T, B, D) * query).view(T * B, D).to(step.dtype), w_p.t().to(step.dtype))
        hidden = torch.add(step.view(T, B, row.shape[1]), row)  # (T, B, H1)
        return self.mlp.forward_from_first(hidden, mask.t()).t()

    def reference_scores(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, D = keys.shape
        q = query.unsqueeze(1).expand(B, T, D)
        return self.mlp(torch.cat([q, keys, q - keys, q * keys], dim=-1), mask)

    def normalize(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.normalization == "sigmoid":
            return torch.sigmoid(scores) * mask
        masked = scores.masked_fill(~mask, float("-inf"))
        # A row with no valid step would be all -inf (NaN after softmax): give it zeros.
        masked = torch.where(mask.any(dim=1, keepdim=True), masked, torch.zeros_like(masked))
        return torch.softmax(masked, dim=1) * mask

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, D = keys.shape
        return self.normalize(self.scores(query, keys, mask), mask)


def weighted_sum(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Attention pooling: ``weights (B, T)``, ``values (B, T, E)`` -> ``sum_t weights[:, t] values[:, t]``
    ``(B, E)``. Elementwise, not a batched product: it reads values in the layout they come in
    (time-major from the embedding and the recurrences) where ``bmm`` would copy them per row."""
    B, T, E = values.shape
    return (weights.unsqueeze(-1) * values).sum(dim=1)
