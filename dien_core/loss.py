"""The training objective of DESIGN.md: mean BCE on logits plus alpha times the auxiliary loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .batch import Output


def total_loss(output: Output, label: torch.Tensor, alpha: float) -> torch.Tensor:
    """``BCEWithLogits(logits, label)`` (mean over the batch) ``+ alpha * aux_loss``."""
    return F.binary_cross_entropy_with_logits(output.logits, label) + alpha * output.aux_loss
