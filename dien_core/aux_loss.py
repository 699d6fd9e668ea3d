"""DIEN's auxiliary loss (paper Eq. 5-6), in torch ops and as one fused C++ kernel on CPU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import cpp
from .kernels.aux_loss import FusedAuxiliaryLoss
from .kernels.plan import FORMS, activation_missing
from .mlp import MLP


class AuxiliaryLoss(nn.Module):
    """Paper Eq. 5-6: state ``h_t`` should tell the next clicked behaviour from a sampled one.

    A small MLP scores ``[h_t, e_{t+1}]``; binary cross entropy for the clicked
    behaviour (label 1) and the negative (label 0), averaged over the valid
    pairs only (``t + 1 < length``), never over padding; 0 when there is none.
    The first layer's ``h_t`` term is computed once and shared by both items.

    Args: ``hidden_size`` (H), ``behaviour_dim`` (E), ``hidden`` widths, ``implementation`` (the
    plan's choice, ``kernels/plan.py``), ``activation`` of the hidden layers ("relu", the default as in
    ``ModelConfig``; the authors' "sigmoid"; "prelu", "dice"). "torch": ``torch_forward``, the first
    layer split so the state's term is shared by both items; "cpp": the loss and its gradients in one
    pass over row tiles (``FusedAuxiliaryLoss``; float32/float64 CPU tensors, sigmoid or relu; the
    plan does not choose it under autocast); "reference": ``reference_forward``, the literal
    concatenation, the check.
    Takes ``states (B, T, H)``, ``clicked (B, T, E)``, ``negative (B, T, E)``,
    ``mask (B, T)`` bool; returns a scalar.
    """

    def __init__(
        self, hidden_size: int, behaviour_dim: int, hidden: tuple[int, ...], implementation: str = "torch", activation: str = "relu"
    ) -> None:
        super().__init__()
        if implementation not in FORMS["aux_loss"]:
            raise ValueError(f"the auxiliary loss has no {implementation!r} form; allowed: {', '.join(FORMS['aux_loss'])}")
        if implementation == "cpp" and (why := activation_missing("auxiliary loss", activation, bool(hidden))):
            raise ValueError(f"{why}; use 'torch'")
        self.hidden_size, self.implementation, self.activation = hidden_size, implementation, activation
        self.mlp = MLP(hidden_size + behaviour_dim, hidden, activation)

    def forward(self, states: torch.Tensor, clicked: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, H = states.shape
        if self.implementation == "reference":
            return self.reference_forward(states, clicked, negative, mask)
        if self.implementation == "torch":
            return self.torch_forward(states, clicked, negative, mask)
        cpp.planned_kernels(states.device, "auxiliary loss")  # a ValueError for tensors off the CPU
        # Time-major rows (t, b), flattened: the state at t pairs with the behaviour at t + 1, B rows
        # further on. A view, no copy, of inputs that are time-major in memory (the recurrences' and
        # the embedding's outputs are); the gradients come back in the same layout.
        h, pos, neg = (x.transpose(0, 1).reshape(T * B, x.shape[-1]) for x in (states, clicked, negative))
        valid = mask.t()[1:].reshape(-1).to(states.dtype)  # ((T - 1) * B)
        weight = valid / valid.sum().clamp_min(1.0)  # the mean over valid pairs as per-pair weights
        layers = [*self.mlp.linears, self.mlp.out]
        params = [*[lin.weight for lin in layers], *[lin.bias for lin in layers]]
        with_grad = cpp.needs_backward(h, pos, neg, *params)
        return FusedAuxiliaryLoss.apply(with_grad, self.activation == "relu", B, h, pos, neg, weight, *params)

    def torch_forward(self, states: torch.Tensor, clicked: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
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
