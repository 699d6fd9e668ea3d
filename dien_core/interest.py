"""Interest extractor (GRU + auxiliary loss) and interest evolution (attention-driven GRU)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import AttentionUnit
from .layers import MLP
from .recurrent import make_layer


class AuxiliaryLoss(nn.Module):
    """Paper Eq. 5-6: state ``h_t`` should tell the next clicked behaviour from a sampled one.

    A small MLP scores ``[h_t, e_{t+1}]``; binary cross entropy for the clicked
    behaviour (label 1) and the negative (label 0), averaged over the valid
    pairs only (``t + 1 < length``), never over padding; 0 when there is none.
    The first layer's ``h_t`` term is computed once and shared by both items.

    Args: ``hidden_size`` (H), ``behaviour_dim`` (E), ``hidden`` widths.
    Takes ``states (B, T, H)``, ``clicked (B, T, E)``, ``negative (B, T, E)``,
    ``mask (B, T)`` bool; returns a scalar.
    """

    def __init__(self, hidden_size: int, behaviour_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.mlp = MLP(hidden_size + behaviour_dim, hidden, "sigmoid")

    def forward(self, states: torch.Tensor, clicked: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, H = states.shape
        # Pair the state at t with the behaviour at t + 1: T - 1 pairs per row.
        h, pos, neg = states[:, :-1], clicked[:, 1:], negative[:, 1:]
        valid = mask[:, 1:]
        first = self.mlp.first
        w_h, w_e = first.weight.split([H, first.weight.shape[1] - H], dim=1)
        shared = F.linear(h, w_h, first.bias)  # (B, T-1, H1), one term for both items
        pos_logit = self.mlp.forward_from_first(shared + F.linear(pos, w_e), valid)
        neg_logit = self.mlp.forward_from_first(shared + F.linear(neg, w_e), valid)
        loss = F.binary_cross_entropy_with_logits(
            pos_logit, torch.ones_like(pos_logit), reduction="none"
        ) + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit), reduction="none")
        weight = valid.to(loss.dtype)
        return (loss * weight).sum() / weight.sum().clamp_min(1.0)

    def reference_forward(self, states: torch.Tensor, clicked: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The literal concatenation, kept to check ``forward``."""
        B, T, H = states.shape
        valid = mask[:, 1:]
        pos_logit = self.mlp(torch.cat([states[:, :-1], clicked[:, 1:]], dim=-1), valid)
        neg_logit = self.mlp(torch.cat([states[:, :-1], negative[:, 1:]], dim=-1), valid)
        loss = -F.logsigmoid(pos_logit) - F.logsigmoid(-neg_logit)
        weight = valid.to(loss.dtype)
        return (loss * weight).sum() / weight.sum().clamp_min(1.0)


class InterestExtractor(nn.Module):
    """GRU over the behaviour sequence, with the auxiliary loss when negatives are given.

    Args: ``behaviour_dim`` (E = H), ``aux_hidden`` widths or None, ``backend``.
    Takes ``hist (B, T, E)``, ``lengths (B,)``, ``mask (B, T)``, ``neg (B, T, E)`` or None;
    returns ``states (B, T, H)`` and a scalar ``aux_loss`` (0 without negatives).
    """

    def __init__(self, behaviour_dim: int, aux_hidden: tuple[int, ...] | None, backend: str = "auto") -> None:
        super().__init__()
        self.gru = make_layer("GRU", behaviour_dim, behaviour_dim, backend=backend)
        self.aux = AuxiliaryLoss(behaviour_dim, behaviour_dim, aux_hidden) if aux_hidden is not None else None

    def forward(
        self, hist: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor, neg: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, E = hist.shape
        states, _ = self.gru(hist, None, lengths)
        if self.aux is None or neg is None:
            return states, hist.new_zeros(())
        return states, self.aux(states, hist, neg, mask)


class InterestEvolution(nn.Module):
    """Evolves the extracted interests towards the target.

    ``GRU``: a plain GRU over the states, then attention pooling of its outputs.
    ``AIGRU``/``AGRU``/``AUGRU``: attention of the target on the extracted states
    drives the recurrence; the final state is the result.

    Args: ``gru_type``, ``hidden_size`` (H), ``attention`` unit (target vs states),
    ``convention`` for AUGRU, ``backend``. Takes ``target (B, H)``,
    ``states (B, T, H)``, ``lengths (B,)``, ``mask (B, T)``; returns ``(B, H)``.
    """

    def __init__(self, gru_type: str, hidden_size: int, attention: AttentionUnit, convention: str = "paper", backend: str = "auto") -> None:
        super().__init__()
        self.gru_type = gru_type
        self.attention = attention
        self.gru = make_layer(gru_type, hidden_size, hidden_size, convention, backend)

    def forward(self, target: torch.Tensor, states: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, H = states.shape
        if self.gru_type == "GRU":
            evolved, _ = self.gru(states, None, lengths)
            weights = self.attention(target, evolved, mask)  # (B, T)
            return torch.bmm(weights.unsqueeze(1), evolved).squeeze(1)
        weights = self.attention(target, states, mask)
        _, last = self.gru(states, weights, lengths)
        return last
