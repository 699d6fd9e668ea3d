"""Baselines composed from dien_core parts: sum pooling, DIN, and the DIEN paper's Table 2 models plus BST."""

from .bst import BST
from .din import DIN
from .gru_att import GRUAttention
from .pnn import PNN
from .sum_pooling import SumPooling
from .wide_deep import WideDeep

__all__ = ["BST", "DIN", "GRUAttention", "PNN", "SumPooling", "WideDeep"]
