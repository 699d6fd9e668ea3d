"""Recurrent layers with torch.nn.GRU's parameter layout and DESIGN.md's call contract."""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import cpp
from ..batch import step_mask
from ..config import BACKENDS
from .fused import PythonLoops, fused_recurrence, native_gru
from .reference import reference_recurrence
from .triton_loops import TritonLoops, use_triton


class _Recurrent(nn.Module):
    """Parameters and dispatch shared by the four layers (no behaviour of its own).

    Args: ``input_size`` (I), ``hidden_size`` (H), ``backend``: "reference" is the
    literal per-step loop; "fused" runs GRU and AIGRU through torch's own GRU kernel
    (cuDNN on CUDA) and AGRU / AUGRU through ``FusedRecurrence`` with its Python loops;
    "cpp" runs all four through ``FusedRecurrence`` with its C++ loops (CPU tensors only);
    "triton" with its Triton kernels (float32 CUDA tensors, H <= 64; on CPU under
    TRITON_INTERPRET=1). "auto" is "cpp" on CPU where the C++ loops build (for a plain GRU
    too: faster than torch's CPU kernel at batch 128-512, even at 1024); on CUDA, "triton" for
    AGRU and AUGRU where triton imports and it fits (GRU and AIGRU keep cuDNN); else "fused".
    Call: ``out, last = layer(x (B, T, I), att (B, T), lengths (B,))`` with
    ``out (B, T, H)`` zero at padded steps and ``last (B, H)`` the state at step
    ``lengths - 1`` (zero where ``lengths == 0``).
    """

    kind = ""
    gates = 3
    uses_attention = True

    def __init__(self, input_size: int, hidden_size: int, backend: str = "auto") -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size}, {hidden_size}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
        self.input_size, self.hidden_size, self.backend = input_size, hidden_size, backend
        G, H = self.gates, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(G * H, H))
        self.bias_ih = nn.Parameter(torch.empty(G * H))
        self.bias_hh = nn.Parameter(torch.empty(G * H))
        self.reset_parameters()

    convention = "paper"

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, backend={self.backend!r}"

    def forward(self, x: torch.Tensor, att: torch.Tensor | None, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, I = x.shape
        if self.uses_attention and att is None:
            raise ValueError(f"{type(self).__name__} needs attention scores att (B, T)")
        att = att if self.uses_attention else None
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if self.backend == "reference":
            return reference_recurrence(self.kind, x, att, lengths, weights, self.convention)
        mask = step_mask(lengths, T)
        if cpp.use_kernels(self.backend, x.device):
            return fused_recurrence(self.kind, x, att, mask, weights, self.convention, cpp.kernels())
        native = self.kind in ("GRU", "AIGRU") and self.backend != "triton"  # cuDNN beats our loops there
        if not native and use_triton(self.backend, x.device, self.weight_hh.dtype, self.hidden_size):
            return fused_recurrence(self.kind, x, att, mask, weights, self.convention, TritonLoops)
        if native:  # a plain GRU (on a * x for AIGRU): torch's own kernel
            return native_gru(x * att.unsqueeze(-1) if att is not None else x, mask, lengths, weights)
        return fused_recurrence(self.kind, x, att, mask, weights, self.convention, PythonLoops)


class GRU(_Recurrent):
    """Plain GRU (exactly torch.nn.GRU's equations); ``att`` is ignored. See ``_Recurrent`` for shapes."""

    kind = "GRU"
    uses_attention = False


class AIGRU(_Recurrent):
    """GRU on the attention-scaled input ``a_t * x_t``. See ``_Recurrent`` for shapes."""

    kind = "AIGRU"


class AGRU(_Recurrent):
    """Attention replaces the update gate: ``h_t = (1 - a_t) h_{t-1} + a_t n_t`` (paper Eq. 11).
    Gate blocks (r, n), G = 2. See ``_Recurrent`` for shapes."""

    kind = "AGRU"
    gates = 2


class AUGRU(_Recurrent):
    """Attention scales the update gate (paper Eq. 12-13), or, with
    ``convention="original"``, the authors' TensorFlow form ``z' = (1 - a) z``.
    See ``_Recurrent`` for shapes."""

    kind = "AUGRU"

    def __init__(self, input_size: int, hidden_size: int, convention: str = "paper", backend: str = "auto") -> None:
        if convention not in ("paper", "original"):
            raise ValueError(f"unknown AUGRU convention {convention!r}; allowed: paper, original")
        super().__init__(input_size, hidden_size, backend)
        self.convention = convention

    def extra_repr(self) -> str:
        return super().extra_repr() + f", convention={self.convention!r}"


LAYERS: dict[str, type[_Recurrent]] = {"GRU": GRU, "AIGRU": AIGRU, "AGRU": AGRU, "AUGRU": AUGRU}


def make_layer(gru_type: str, input_size: int, hidden_size: int, convention: str = "paper", backend: str = "auto") -> _Recurrent:
    """Build a layer by its name in ``LAYERS``."""
    if gru_type not in LAYERS:
        raise ValueError(f"unknown gru_type {gru_type!r}; allowed: {', '.join(LAYERS)}")
    if gru_type == "AUGRU":
        return AUGRU(input_size, hidden_size, convention, backend)
    return LAYERS[gru_type](input_size, hidden_size, backend)
