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
weight gradients are one product over all steps. Gradients reach ``att`` and
the mask through ``c0, c1``, which are ordinary autograd tensors.
"""

from __future__ import annotations

import torch


class FusedRecurrence(torch.autograd.Function):
    """``gi (T, B, G*H)``, ``c0 (T, B, 1)``, ``c1 (T, B, 1) or None``, ``w_hh (G*H, H)``,
    ``b_hh (G*H)`` -> states ``hs (T, B, H)`` (time-major; ``hs[t]`` after step t)."""

    @staticmethod
    def forward(ctx, gi, c0, c1, w_hh, b_hh):  # noqa: D401 - autograd signature
        T, B, GH = gi.shape
        H = w_hh.shape[1]
        has_z = c1 is not None
        w_t = w_hh.t()
        hs = gi.new_empty(T, B, H)
        gates = gi.new_empty(T, B, 2 * H if has_z else H)  # sigmoid gates r (and z)
        n_all = gi.new_empty(T, B, H)
        ghn_all = gi.new_empty(T, B, H)  # W_hn h + b_hn, needed for dr
        h = gi.new_zeros(B, H)
        split = GH - H
        for t in range(T):
            gh = torch.addmm(b_hh, h, w_t)
            gate = torch.sigmoid(gi[t, :, :split] + gh[:, :split], out=gates[t])
            ghn_all[t] = gh[:, split:]
            n = torch.tanh(torch.addcmul(gi[t, :, split:], gate[:, :H], ghn_all[t]), out=n_all[t])
            u = torch.addcmul(c0[t], c1[t], gate[:, H:]) if has_z else c0[t]
            h = torch.addcmul(h, u, n - h, out=hs[t])
        ctx.save_for_backward(gates, n_all, ghn_all, hs, c0, c1 if has_z else None, w_hh)
        ctx.has_z = has_z
        return hs

    @staticmethod
    def backward(ctx, d_hs):
        gates, n_all, ghn_all, hs, c0, c1, w_hh = ctx.saved_tensors
        has_z = ctx.has_z
        T, B, H = hs.shape
        G = 3 if has_z else 2
        split = (G - 1) * H
        dgh = hs.new_empty(T, B, G * H)  # gradient of W_hh h + b_hh
        dpre_n = hs.new_empty(T, B, H)  # gradient of the input projection's n block
        dc0 = hs.new_empty(T, B, 1)
        dc1 = hs.new_empty(T, B, 1) if has_z else None
        dh = hs.new_zeros(B, H)
        zeros = hs.new_zeros(B, H)
        for t in range(T - 1, -1, -1):
            dh = dh + d_hs[t]
            h_prev = hs[t - 1] if t > 0 else zeros
            n, gate = n_all[t], gates[t]
            r = gate[:, :H]
            if has_z:
                z = gate[:, H:]
                u = torch.addcmul(c0[t], c1[t], z)
            else:
                u = c0[t]
            du = dh * (n - h_prev)
            dpre = torch.mul(dh * u, 1 - n * n, out=dpre_n[t])
            torch.mul(dpre, r, out=dgh[t, :, split:])
            torch.mul(dpre * ghn_all[t], r * (1 - r), out=dgh[t, :, :H])
            torch.sum(du, dim=1, keepdim=True, out=dc0[t])
            if has_z:
                torch.mul(du * c1[t], z * (1 - z), out=dgh[t, :, H:split])
                torch.sum(du * z, dim=1, keepdim=True, out=dc1[t])
            dh = torch.addmm(dh * (1 - u), dgh[t], w_hh)
        h_prev_all = torch.cat([hs.new_zeros(1, B, H), hs[:-1]], dim=0)
        d_w_hh = dgh.reshape(T * B, G * H).t() @ h_prev_all.reshape(T * B, H)
        d_b_hh = dgh.sum(dim=(0, 1))
        dgi = torch.cat([dgh[..., :split], dpre_n], dim=-1)
        return dgi, dc0, dc1, d_w_hh, d_b_hh


def fused_recurrence(
    kind: str,
    x: torch.Tensor,
    att: torch.Tensor | None,
    mask: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    convention: str = "paper",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (B, T, I)``, ``att (B, T)``, ``mask (B, T)`` bool -> ``out (B, T, H)``, ``last (B, H)``."""
    B, T, _ = x.shape
    w_ih, w_hh, b_ih, b_hh = weights
    H = w_hh.shape[1]
    if T == 0:
        return x.new_zeros(B, 0, H), x.new_zeros(B, H)
    m = mask.t().unsqueeze(-1).to(x.dtype)  # (T, B, 1)
    a = att.t().unsqueeze(-1) if att is not None else None  # (T, B, 1)
    if kind == "AIGRU":
        x = x * att.unsqueeze(-1)
    # One product for every step's input projection; time-major for cheap per-step slices.
    gi = torch.nn.functional.linear(x.transpose(0, 1), w_ih, b_ih).contiguous()  # (T, B, G*H)
    if kind in ("GRU", "AIGRU"):
        c0, c1 = m, -m
    elif kind == "AGRU":
        c0, c1 = m * a, None
    elif convention == "paper":
        c0 = m * a
        c1 = -c0
    else:
        c0, c1 = m, m * (a - 1)
    hs = FusedRecurrence.apply(gi, c0, c1, w_hh, b_hh)
    return (hs * m).transpose(0, 1), hs[-1]
