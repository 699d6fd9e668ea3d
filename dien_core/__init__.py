"""dien_core: the one DIEN core (embeddings, attention, recurrent layers, interest layers, head)."""

from .attention import AttentionUnit, weighted_sum
from .aux_loss import AuxiliaryLoss
from .batch import Batch, Output, step_mask
from .config import ModelConfig, VocabSizes
from .dien import DIEN
from .embedding import FeatureEmbedding
from .head import Head
from .interest import InterestEvolution, InterestExtractor
from .loss import total_loss

__all__ = [
    "AttentionUnit",
    "AuxiliaryLoss",
    "Batch",
    "DIEN",
    "FeatureEmbedding",
    "Head",
    "InterestEvolution",
    "InterestExtractor",
    "ModelConfig",
    "Output",
    "VocabSizes",
    "step_mask",
    "total_loss",
    "weighted_sum",
]
