"""DIEN's auxiliary loss (paper Eq. 5-6), in torch ops and as one fused C++ kernel on CPU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import cpp
from .config import BACKENDS
from .layers import MLP

KERNEL_ACTIVATIONS = ("sigmoid", "relu")  # the hidden activations the C++ kernel implements


class AuxiliaryLoss(nn.Module):
    """Paper Eq. 5-6: state ``h_t`` should tell the next clicked behaviour from a sampled one.

    A small MLP scores ``[h_t, e_{t+1}]``; binary cross entropy for the clicked
    behaviour (label 1) and the negative (label 0), averaged over the valid
    pairs only (``t + 1 < length``), never over padding; 0 when there is none.
    The first layer's ``h_t`` term is computed once and shared by both items.

    Args: ``hidden_size`` (H), ``behaviour_dim`` (E), ``hidden`` widths, ``backend``,
    ``activation`` of the hidden layers ("relu", the default as in ``ModelConfig``; the authors' "sigmoid"; "prelu", "dice"):
    "cpp" computes the loss and its gradients in one pass over row tiles
    (``FusedAuxiliaryLoss``; float32/float64 CPU tensors, autocast off, sigmoid or relu); "auto" does so
    where it can, else runs the torch ops (``torch_forward``), as "reference", "fused"
    and "triton" (whose kernels are the recurrence's) always do. ``reference_forward`` is
    the literal concatenation, the check.
    Takes ``states (B, T, H)``, ``clicked (B, T, E)``, ``negative (B, T, E)``,
    ``mask (B, T)`` bool; returns a scalar.
    """

    def __init__(
        self, hidden_size: int, behaviour_dim: int, hidden: tuple[int, ...], backend: str = "auto", activation: str = "relu"
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
        self.hidden_size, self.backend, self.activation = hidden_size, backend, activation
        self.mlp = MLP(hidden_size + behaviour_dim, hidden, activation)

    def uses_kernel(self, states: torch.Tensor) -> bool:
        plain = states.dtype in (torch.float32, torch.float64) and not torch.is_autocast_enabled(states.device.type)
        supported = self.activation in KERNEL_ACTIVATIONS and len(self.mlp.linears) > 0
        return cpp.use_kernels(self.backend, states.device) and plain and supported

    def forward(self, states: torch.Tensor, clicked: torch.Tensor, negative: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, H = states.shape
        if not self.uses_kernel(states):
            return self.torch_forward(states, clicked, negative, mask)
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


class FusedAuxiliaryLoss(torch.autograd.Function):
    """The auxiliary loss over flat pairs, with its gradients made in the same pass (C++, CPU).

    ``with_grad`` (a backward will run: ``cpp.needs_backward``), ``relu`` (ReLU hidden layers, else
    sigmoid), ``shift``, ``h (M, H)``,
    ``pos (M, E)``, ``neg (M, E)``: the pairs are h's row i with the behaviours' row i + shift,
    for i < N = M - shift; ``weight (N)`` (valid / count), then the weights of each layer
    ``(H_{l+1}, H_l)`` (the first over ``[h, behaviour]``, the last the output unit ``(1, H_L)``),
    then their biases -> the scalar loss. A loss's backward only scales its gradients, so they
    are computed (when ``with_grad``) in ``forward`` while each tile's activations are in cache;
    ``backward`` multiplies them by the incoming gradient.
    """

    @staticmethod
    def forward(ctx, with_grad, relu, shift, h, pos, neg, weight, *params):
        n = len(params) // 2
        loss, *grads = cpp.kernels().aux_loss(h, pos, neg, weight, list(params[:n]), list(params[n:]), relu, shift, with_grad)
        if with_grad:
            ctx.save_for_backward(*grads)
        return loss

    @staticmethod
    def backward(ctx, d_loss):
        dh, dpos, dneg, *d_params = (g * d_loss for g in ctx.saved_tensors)
        return None, None, None, dh, dpos, dneg, None, *d_params
