"""Interest extractor (GRU + auxiliary loss) and interest evolution (attention-driven GRU)."""

from __future__ import annotations

import torch
from torch import nn

from .attention import AttentionUnit, weighted_sum
from .aux_loss import AuxiliaryLoss
from .recurrent import make_layer


class InterestExtractor(nn.Module):
    """GRU over the behaviour sequence, with the auxiliary loss when negatives are given.

    Args: ``behaviour_dim`` (E = H), ``aux_hidden`` widths or None, ``gru`` and ``aux`` (the plan's
    implementations of the GRU and of the auxiliary loss), ``aux_activation`` (of the auxiliary MLP's hidden layers).
    Takes ``hist (B, T, E)``, ``lengths (B,)``, ``mask (B, T)``, ``neg (B, T, E)`` or None;
    returns ``states (B, T, H)`` and a scalar ``aux_loss`` (0 without negatives).
    """

    def __init__(
        self, behaviour_dim: int, aux_hidden: tuple[int, ...] | None, gru: str = "torch", aux: str = "torch", aux_activation: str = "relu"
    ) -> None:
        super().__init__()
        self.gru = make_layer("GRU", behaviour_dim, behaviour_dim, implementation=gru)
        self.aux = None
        if aux_hidden is not None:
            self.aux = AuxiliaryLoss(behaviour_dim, behaviour_dim, aux_hidden, aux, aux_activation)

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
    ``convention`` for AUGRU, ``implementation`` (the plan's, for ``gru_type``). Takes ``target (B, H)``,
    ``states (B, T, H)``, ``lengths (B,)``, ``mask (B, T)``; returns ``(B, H)``.
    """

    def __init__(
        self, gru_type: str, hidden_size: int, attention: AttentionUnit, convention: str = "paper", implementation: str = "torch"
    ) -> None:
        super().__init__()
        self.gru_type = gru_type
        self.attention = attention
        self.gru = make_layer(gru_type, hidden_size, hidden_size, convention, implementation)

    def forward(self, target: torch.Tensor, states: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, H = states.shape
        if self.gru_type == "GRU":
            evolved, _ = self.gru(states, None, lengths)
            weights = self.attention(target, evolved, mask)  # (B, T)
            return weighted_sum(weights, evolved)
        weights = self.attention(target, states, mask)
        _, last = self.gru(states, weights, lengths)
        return last
