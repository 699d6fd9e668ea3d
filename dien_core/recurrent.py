"""Recurrent layers with torch.nn.GRU's parameter layout and DESIGN.md's call contract."""

from __future__ import annotations

import math

import torch
from torch import nn

from .batch import step_mask
from .kernels import cpp
from .kernels.fused import PythonLoops, fused_recurrence, native_gru
from .kernels.plan import FORMS
from .kernels.triton_loops import TritonLoops, check_device
from .reference import reference_recurrence


class _Recurrent(nn.Module):
    """Parameters and the call shared by the four layers (no behaviour of its own).

    Args: ``input_size`` (I), ``hidden_size`` (H), ``implementation``: the plan's choice for this
    kind (``kernels/plan.py``): "reference", the literal per-step loop; "torch", ``FusedRecurrence``
    with its Python loops; "native" (GRU and AIGRU), torch's own GRU kernel; "cpp", ``FusedRecurrence``
    with its C++ loops (CPU tensors); "triton", with its Triton kernels (CUDA float32).
    Call: ``out, last = layer(x (B, T, I), att (B, T), lengths (B,))`` with
    ``out (B, T, H)`` zero at padded steps and ``last (B, H)`` the state at step
    ``lengths - 1`` (zero where ``lengths == 0``).
    """

    kind = ""
    gates = 3
    uses_attention = True

    def __init__(self, input_size: int, hidden_size: int, implementation: str = "torch") -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size}, {hidden_size}")
        if implementation not in FORMS[self.kind]:
            raise ValueError(f"{self.kind} has no {implementation!r} form; allowed: {', '.join(FORMS[self.kind])}")
        self.input_size, self.hidden_size, self.implementation = input_size, hidden_size, implementation
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
        return f"{self.input_size}, {self.hidden_size}, implementation={self.implementation!r}"

    def loops(self, device: torch.device):
        """The forward loop and backward ``FusedRecurrence`` runs for tensors on ``device``: the
        plan's "cpp", "triton" or (for "torch") the Python loops; "native" and "reference" have no
        loop of their own for prepared inputs (the serving path's), so they get the Python loops too.
        A ValueError where the plan's choice cannot take tensors on ``device`` (a model planned for
        another device)."""
        if self.implementation == "cpp":
            return cpp.planned_kernels(device, self.kind)
        if self.implementation == "triton":
            check_device(device, self.kind)
            return TritonLoops
        return PythonLoops

    def forward(self, x: torch.Tensor, att: torch.Tensor | None, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, I = x.shape
        if self.uses_attention and att is None:
            raise ValueError(f"{type(self).__name__} needs attention scores att (B, T)")
        att = att if self.uses_attention else None
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if self.implementation == "reference":
            return reference_recurrence(self.kind, x, att, lengths, weights, self.convention)
        mask = step_mask(lengths, T)
        if self.implementation == "native":  # a plain GRU (on a * x for AIGRU): torch's own kernel
            return native_gru(x * att.unsqueeze(-1) if att is not None else x, mask, lengths, weights)
        return fused_recurrence(self.kind, x, att, mask, weights, self.convention, self.loops(x.device))


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

    def __init__(self, input_size: int, hidden_size: int, convention: str = "paper", implementation: str = "torch") -> None:
        if convention not in ("paper", "original"):
            raise ValueError(f"unknown AUGRU convention {convention!r}; allowed: paper, original")
        super().__init__(input_size, hidden_size, implementation)
        self.convention = convention

    def extra_repr(self) -> str:
        return super().extra_repr() + f", convention={self.convention!r}"


LAYERS: dict[str, type[_Recurrent]] = {"GRU": GRU, "AIGRU": AIGRU, "AGRU": AGRU, "AUGRU": AUGRU}


def make_layer(gru_type: str, input_size: int, hidden_size: int, convention: str = "paper", implementation: str = "torch") -> _Recurrent:
    """Build a layer by its name in ``LAYERS``, running ``implementation`` (the plan's choice for ``gru_type``)."""
    if gru_type not in LAYERS:
        raise ValueError(f"unknown gru_type {gru_type!r}; allowed: {', '.join(LAYERS)}")
    if gru_type == "AUGRU":
        return AUGRU(input_size, hidden_size, convention, implementation)
    return LAYERS[gru_type](input_size, hidden_size, implementation)
