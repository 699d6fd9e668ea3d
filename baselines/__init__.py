"""Baselines composed from dien_core parts: sum pooling and DIN."""

from .din import DIN
from .sum_pooling import SumPooling

__all__ = ["DIN", "SumPooling"]
