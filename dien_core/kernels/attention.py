"""The serving path's attention scores in one C++ call (``csrc/attention_cpu.cpp``), forward only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from . import cpp
from .plan import activation_missing

if TYPE_CHECKING:
    from ..attention import AttentionUnit


def serving_scores(attention: AttentionUnit, keys: torch.Tensor, key_part: torch.Tensor, query: torch.Tensor,
                   owner: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Raw scores ``(N, T)`` (before normalisation) of each candidate ``query (N, D)`` over its request's
    ``keys (R, T, D)``, with ``key_part (R, T, H1)`` the requests' ``(W_k - W_d) k`` and ``owner (N,)``
    each candidate's request: ``AttentionUnit.scores``'s values in eval mode (no dropout), for units with
    sigmoid or ReLU hidden layers. No gradient flows through it. A ValueError for tensors off the CPU,
    other dtypes or other activations (a model planned for something else)."""
    N, D = query.shape
    mlp = attention.mlp
    built = cpp.planned_kernels(query.device, "serving attention")  # the C++ side checks the other tensors too
    if query.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"the C++ serving attention takes float32 or float64, not {query.dtype}; build the model for this dtype")
    names = {act.name for act in mlp.activations}
    if why := next(filter(None, (activation_missing("serving attention", name) for name in sorted(names))), ""):
        raise ValueError(why)
    first = mlp.first
    w_q, _, w_d, w_p = first.weight.split(D, dim=1)
    after = [*list(mlp.linears)[1:], mlp.out] if len(mlp.linears) else []  # the Linear layers after the first
    relu = names == {"relu"}
    return built.attention_scores(
        query, keys, key_part, owner, w_q + w_d, first.bias, w_p, [m.weight for m in after], [m.bias for m in after], relu
    )
