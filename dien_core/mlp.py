"""Small building blocks: activations (Dice among them) and the MLP."""

from __future__ import annotations

import torch
from torch import nn


class Dice(nn.Module):
    """Data-adaptive activation of DIN (Zhou et al., 2018).

    ``p(x) = sigmoid((x - mean) / sqrt(var + eps))``; ``Dice(x) = p x + (1 - p) alpha x``.
    Statistics are per feature over the valid rows only (``mask``), so padding
    never shifts them; running averages serve at evaluation.

    Args: ``features`` (H). Takes ``x (..., H)`` and optional ``mask (...)``; returns ``(..., H)``.
    """

    def __init__(self, features: int, eps: float = 1e-8, momentum: float = 0.1) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(features))
        self.eps, self.momentum = eps, momentum
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        *_, H = x.shape
        if self.training:
            flat = x.reshape(-1, H)
            weight = torch.ones(flat.shape[0], 1, dtype=x.dtype, device=x.device) if mask is None else mask.reshape(-1, 1).to(x.dtype)
            count = weight.sum().clamp_min(1.0)
            mean = (flat * weight).sum(0) / count
            var = (((flat - mean) ** 2) * weight).sum(0) / count
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(var.detach().to(self.running_var.dtype), self.momentum)
        else:
            mean, var = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        p = torch.sigmoid((x - mean) * torch.rsqrt(var + self.eps))
        return x * (p + (1 - p) * self.alpha)


class MaskedActivation(nn.Module):
    """Wraps an activation so every one takes ``(x, mask)``; only Dice reads the mask.

    Args: ``name`` in sigmoid, relu, prelu, dice; ``features`` (H). ``(..., H) -> (..., H)``.
    """

    def __init__(self, name: str, features: int) -> None:
        super().__init__()
        if name == "dice":
            self.act: nn.Module = Dice(features)
        elif name == "prelu":
            self.act = nn.PReLU(features)
        elif name == "relu":
            self.act = nn.ReLU()
        elif name == "sigmoid":
            self.act = nn.Sigmoid()
        else:
            raise ValueError(f"unknown activation {name!r}; allowed: sigmoid, relu, prelu, dice")
        self.name, self.uses_mask = name, name == "dice"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        *_, H = x.shape
        if self.uses_mask:
            return self.act(x, mask)
        if isinstance(self.act, nn.PReLU) and x.dim() != 2:  # PReLU's per-channel weight wants channels at dim 1
            return self.act(x.reshape(-1, H)).reshape(x.shape)
        return self.act(x)


class MLP(nn.Module):
    """Fully connected stack ending in one output unit (a logit or a score).

    Args: ``in_features`` (D), ``hidden`` widths, ``activation`` name, ``dropout``.
    Takes ``x (..., D)`` and optional ``mask (...)``; returns ``(...)``.
    ``first`` exposes the first Linear for callers that split it algebraically.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], activation: str, dropout: float = 0.0) -> None:
        super().__init__()
        widths = (in_features, *hidden)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.activations = nn.ModuleList(MaskedActivation(activation, b) for b in hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(widths[-1], 1)

    @property
    def first(self) -> nn.Linear:
        return self.linears[0] if len(self.linears) else self.out

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_from_first(self.first(x), mask)

    def forward_from_first(self, first_out: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Continue after the first Linear's output ``(..., H1)`` was computed elsewhere."""
        if not len(self.linears):
            return first_out.squeeze(-1)
        x = first_out
        for i, act in enumerate(self.activations):
            if i > 0:
                x = self.linears[i](x)
            x = self.dropout(act(x, mask))
        return self.out(x).squeeze(-1)
