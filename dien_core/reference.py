"""Reference recurrences: DESIGN.md's equations written out literally, one step at a time.

Slow and plain on purpose; the fused path is checked against this.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .batch import step_mask


def reference_recurrence(
    kind: str,
    x: torch.Tensor,
    att: torch.Tensor | None,
    lengths: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    convention: str = "paper",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (B, T, I)``, ``att (B, T)``, ``lengths (B,)`` -> ``out (B, T, H)``, ``last (B, H)``."""
    B, T, _ = x.shape
    w_ih, w_hh, b_ih, b_hh = weights
    H = w_hh.shape[1]
    mask = step_mask(lengths, T)
    h = x.new_zeros(B, H)
    outs = []
    for t in range(T):
        x_t = x[:, t]
        a_t = att[:, t : t + 1] if att is not None else None
        if kind == "AIGRU":
            x_t = a_t * x_t
        gi, gh = F.linear(x_t, w_ih, b_ih), F.linear(h, w_hh, b_hh)
        if kind == "AGRU":
            i_r, i_n = gi.chunk(2, dim=1)
            h_r, h_n = gh.chunk(2, dim=1)
            r = torch.sigmoid(i_r + h_r)
            n = torch.tanh(i_n + r * h_n)
            h_new = (1 - a_t) * h + a_t * n
        else:
            i_r, i_z, i_n = gi.chunk(3, dim=1)
            h_r, h_z, h_n = gh.chunk(3, dim=1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            if kind in ("GRU", "AIGRU"):
                h_new = z * h + (1 - z) * n
            elif convention == "paper":
                u = a_t * (1 - z)
                h_new = (1 - u) * h + u * n
            else:
                z_prime = (1 - a_t) * z
                h_new = z_prime * h + (1 - z_prime) * n
        valid = mask[:, t : t + 1]
        h = torch.where(valid, h_new, h)
        outs.append(h * valid)
    out = torch.stack(outs, dim=1) if outs else x.new_zeros(B, 0, H)
    return out, h
