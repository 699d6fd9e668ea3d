"""Recurrent layers GRU, AIGRU, AGRU, AUGRU (DESIGN.md's equations and call contract)."""

from . import triton_loops
from .layers import AGRU, AIGRU, AUGRU, GRU, LAYERS, make_layer

__all__ = ["GRU", "AIGRU", "AGRU", "AUGRU", "LAYERS", "make_layer", "triton_loops"]
