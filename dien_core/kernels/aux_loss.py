"""The auxiliary loss's C++ kernel as an autograd Function (``csrc/aux_loss_cpu.cpp``)."""

from __future__ import annotations

import torch

from . import cpp


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
