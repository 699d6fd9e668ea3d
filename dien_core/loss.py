"""The training objective of DESIGN.md: mean BCE on logits plus alpha times the auxiliary loss.

alpha belongs to the model (``ModelConfig.alpha``, handed out in ``Output.alpha``), not to the training
config: it is part of what a model row is (swept and tuned as the model's settings, in each cell's
config hash), and only the model that computes an auxiliary loss knows what weighs it. So no caller
carries it from the config to the loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .batch import Output


def total_loss(output: Output, label: torch.Tensor, bce_weight: float | torch.Tensor = 1.0,
               aux_weight: float | torch.Tensor = 1.0) -> torch.Tensor:  # fmt: skip
    """``BCEWithLogits(logits, label)`` (mean over the batch) ``+ output.alpha * aux_loss``. The weights
    scale the two terms: a data-parallel rank's shares of the global batch's rows and of its
    auxiliary pairs (``bench/distributed/ddp.py``); 1 and 1 otherwise."""
    bce = F.binary_cross_entropy_with_logits(output.logits, label)
    return bce_weight * bce + output.alpha * (aux_weight * output.aux_loss)
