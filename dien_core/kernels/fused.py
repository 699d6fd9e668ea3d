"""Fused recurrence: input projections hoisted out of the loop and a hand-written backward.

Every variant is one update ``h_t = h_{t-1} + u_t * (n_t - h_{t-1})`` whose
coefficient is affine in the update gate: ``u_t = c0_t + c1_t * z_t`` with
``c0, c1`` per row and step (the padding mask folded in, so ``u_t = 0`` keeps
the state at padded steps):

| variant | c0 | c1 |
|---|---|---|
| GRU, AIGRU | m | -m |
| AGRU (no z) | m a | - |
| AUGRU paper | m a | -m a |
| AUGRU original | m | m (a - 1) |

The loop keeps one small matrix product per step forward and backward; the
weight gradients are one product per gate block over all steps. The forward loop and
the backward come in three forms with one contract: ``PythonLoops`` (readable), the
C++ module of ``kernels/cpp.py`` (CPU: per step one product and one fused pass
over the rows; the backward's per-step factors made inside its loop) and
``triton_loops.TritonLoops`` (CUDA: the whole sequence in one kernel). Gradients reach
``att`` and the mask through ``c0, c1``, which are ordinary autograd tensors.
"""

from __future__ import annotations

import torch

from . import cpp


class FusedRecurrence(torch.autograd.Function):
    """``gi (T, B, G*H)`` (the input projection, its bias not added), ``c0 (T, B, 1)``,
    ``c1 (T, B, 1) or None``, ``w_hh (G*H, H)``, ``b_ih (G*H)``, ``b_hh (G*H)``, the ``loops``
    form, ``save`` (False: no backward will run, so the loop keeps nothing for it) -> states
    ``hs (T, B, H)`` (time-major; ``hs[t]`` after step t).

    Backward: ``loops.backward`` returns the gradients of the pre-activations ``dgi`` and of
    ``c0, c1``, the n block of ``W_hh h + b_hh``'s (``dgh_n``; its r and z blocks are ``dgi``'s)
    and both biases'; its sequential loop carries ``dh`` alone: ``dgh_t = dh_t * K_t`` (K stacks
    the gate derivatives) and ``dh_{t-1} = dh_t * (1 - u_t) + dgh_t @ W_hh``. The hidden
    weights' gradient is one product per block over all steps.
    """

    @staticmethod
    def forward(ctx, gi, c0, c1, w_hh, b_ih, b_hh, loops, save):
        hs, gates, n_all, gh_n = loops.forward_loop(gi, c0, c1, w_hh, b_ih, b_hh, save)
        ctx.save_for_backward(gates, n_all, gh_n, hs, c0, c1, w_hh)
        ctx.loops = loops
        return hs

    @staticmethod
    def backward(ctx, d_hs):
        gates, n_all, gh_n, hs, c0, c1, w_hh = ctx.saved_tensors
        T, B, H = hs.shape
        split = w_hh.shape[0] - H
        dgi, dgh_n, dc0, dc1, d_b_ih, d_b_hh = ctx.loops.backward(d_hs, gates, n_all, gh_n, hs, c0, c1, w_hh)
        # sum_t dgh_t^T h_{t-1}; h_{-1} = 0 drops step 0. dgh's r and z blocks are dgi's.
        h_prev = hs[:-1].reshape((T - 1) * B, H)
        d_w_hh = torch.cat([dgi[1:, :, :split].reshape((T - 1) * B, split).t() @ h_prev, dgh_n[1:].reshape((T - 1) * B, H).t() @ h_prev])
        return dgi, dc0, dc1, d_w_hh, d_b_ih, d_b_hh, None, None


class PythonLoops:
    """``FusedRecurrence``'s forward loop and backward in torch ops: the readable form.
    ``csrc/recurrence_cpu.cpp`` (see ``cpp.py``) computes the same in C++,
    each step's elementwise work in one pass, the backward's per-step factors inside its loop."""

    @staticmethod
    def forward_loop(gi, c0, c1, w_hh, b_ih, b_hh, save=True, rows=None):
        """``gi (T, B, G*H)`` (without ``b_ih``), ``c0, c1 (T, B, 1)`` -> ``hs (T, B, H)``,
        ``gates (T, B, (G-1)*H)`` (sigmoid r, z), ``n_all (T, B, H)``, ``gh_n (T, B, H)`` (the n
        block of ``W_hh h + b_hh``, needed for ``dr``). ``save=False`` (no backward to come): the
        last three are empty. With ``rows (B,)`` int64, ``gi`` is ``(T, R, G*H)`` and row b reads
        ``gi[:, rows[b]]`` (the serving path's stacked requests; the C++ loop reads them in place)."""
        if rows is not None:
            gi = gi.index_select(1, rows)
        gi = gi + b_ih
        T, B, GH = gi.shape
        H = w_hh.shape[1]
        split = GH - H
        w_t = w_hh.t()
        hs = gi.new_empty(T, B, H)
        gates = gi.new_empty(T, B, split)
        n_all = gi.new_empty(T, B, H)
        gh_n = gi.new_empty(T, B, H)
        h = gi.new_zeros(B, H)
        for t in range(T):
            gh = torch.addmm(b_hh, h, w_t)
            gh_n[t] = gh[:, split:]
            gate = torch.sigmoid(torch.add(gi[t, :, :split], gh[:, :split], out=gates[t]), out=gates[t])
            n = torch.tanh(torch.addcmul(gi[t, :, split:], gate[:, :H], gh[:, split:], out=n_all[t]), out=n_all[t])
            u = torch.addcmul(c0[t], c1[t], gate[:, H:]) if c1 is not None else c0[t]
            h = torch.addcmul(h, u, n - h, out=hs[t])
        if not save:
            return hs, gi.new_empty(0), gi.new_empty(0), gi.new_empty(0)
        return hs, gates, n_all, gh_n

    @staticmethod
    def backward(d_hs, gates, n_all, gh_n, hs, c0, c1, w_hh):
        """Saved forward tensors and ``d_hs (T, B, H)`` -> ``dgi (T, B, G*H)``, ``dgh_n (T, B, H)``,
        ``dc0, dc1 (T, B, 1)``, ``d_b_ih, d_b_hh (G*H)``.

        Every factor that does not depend on the incoming gradient is computed for all
        steps at once; the loop is left with ``dh``."""
        has_z = c1 is not None
        T, B, H = hs.shape
        G = 3 if has_z else 2
        split = (G - 1) * H
        h_prev = torch.cat([hs.new_zeros(1, B, H), hs[:-1]], dim=0)
        r = gates[..., :H]
        z = gates[..., H:] if has_z else None
        u = torch.addcmul(c0, c1, z) if has_z else c0.expand(T, B, H)
        jump = n_all - h_prev  # dh/du
        a = u * (1 - n_all * n_all)  # dh/d(pre-activation of n)
        # K[t]: d(W_hh h + b_hh)[t] per unit of dh[t], blocks (r, z, n)
        K = hs.new_empty(T, B, G, H)
        torch.mul(a * gh_n, r * (1 - r), out=K[:, :, 0])
        if has_z:
            torch.mul(jump * c1, z * (1 - z), out=K[:, :, 1])
        torch.mul(a, r, out=K[:, :, G - 1])
        keep = 1 - u
        dgh = d_hs.new_empty(T, B, G * H)
        dh_all = d_hs.new_empty(T, B, H)
        dh = d_hs.new_zeros(B, H)
        for t in range(T - 1, -1, -1):
            dh = torch.add(dh, d_hs[t], out=dh_all[t])
            torch.mul(dh.unsqueeze(1), K[t], out=dgh[t].view(B, G, H))
            dh = torch.addmm(dh * keep[t], dgh[t], w_hh)
        du = dh_all * jump
        dc0 = du.sum(dim=-1, keepdim=True)
        dc1 = (du * z).sum(dim=-1, keepdim=True) if has_z else None
        dgi = torch.cat([dgh[..., :split], dh_all * a], dim=-1)
        return dgi, dgh[..., split:], dc0, dc1, dgi.sum(dim=(0, 1)), dgh.sum(dim=(0, 1))


def fused_recurrence(
    kind: str,
    x: torch.Tensor,
    att: torch.Tensor | None,
    mask: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    convention: str = "paper",
    loops=PythonLoops,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (B, T, I)``, ``att (B, T)``, ``mask (B, T)`` bool -> ``out (B, T, H)``, ``last (B, H)``.

    ``loops``: ``PythonLoops``, the compiled module from ``cpp.kernels()`` (CPU only) or
    ``triton_loops.TritonLoops`` (CUDA)."""
    B, T, _ = x.shape
    w_ih, w_hh, b_ih, b_hh = weights
    H = w_hh.shape[1]
    if T == 0:
        return x.new_zeros(B, 0, H), x.new_zeros(B, H)
    m = mask.t().unsqueeze(-1).to(x.dtype)  # (T, B, 1)
    a = att.t().unsqueeze(-1) if att is not None else None  # (T, B, 1)
    if kind == "AIGRU":
        x = x * att.unsqueeze(-1)
    # One product for every step's input projection; time-major for cheap per-step slices. The
    # loops add b_ih (and sum its gradient) as they pass over the rows anyway.
    gi = torch.nn.functional.linear(x.transpose(0, 1), w_ih).contiguous()  # (T, B, G*H)
    if kind in ("GRU", "AIGRU"):
        c0, c1 = m, -m
    elif kind == "AGRU":
        c0, c1 = m * a, None
    elif convention == "paper":
        c0 = m * a
        c1 = -c0
    else:
        c0, c1 = m, m * (a - 1)
    # Under autocast the input projection above ran in the low-precision dtype; the loop runs
    # in the weights' dtype (its products are small, its state accumulates) with autocast off.
    dtype = w_hh.dtype
    with torch.autocast(x.device.type, enabled=False):
        inputs = (gi.to(dtype), c0.to(dtype), c1.to(dtype) if c1 is not None else None, w_hh, b_ih, b_hh)
        hs = FusedRecurrence.apply(*inputs, loops, cpp.needs_backward(*inputs))
    return (hs * m).transpose(0, 1), hs[-1]


def native_gru(
    x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, weights: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain GRU through torch's own kernel (MKL on CPU, cuDNN on CUDA), no packing.

    Right padding means every state before a row's length is exact; later ones are
    masked out of ``out``, and ``last`` is gathered at ``lengths - 1`` on the device.
    """
    B, T, _ = x.shape
    H = weights[1].shape[1]
    if T == 0:
        return x.new_zeros(B, 0, H), x.new_zeros(B, H)
    out, _ = torch.gru(x, x.new_zeros(1, B, H), list(weights), True, 1, 0.0, torch.is_grad_enabled(), False, True)
    out = out * mask.unsqueeze(-1).to(out.dtype)  # (B, T, H), zero at padded steps
    index = (lengths - 1).clamp_min(0).view(B, 1, 1).expand(B, 1, H)
    last = out.gather(1, index).squeeze(1)  # zero where lengths == 0: step 0 is masked there
    return out, last
