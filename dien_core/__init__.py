"""dien_core: the one DIEN core (embeddings, attention, recurrent layers, interest layers, head) and the
baselines' parts (inner-product layer, transformer encoder)."""

from .attention import AttentionUnit, weighted_sum
from .aux_loss import AuxiliaryLoss
from .batch import Batch, Output, step_mask
from .config import ModelConfig, VocabSizes
from .dien import DIEN
from .embedding import FeatureEmbedding
from .head import Head
from .interest import InterestEvolution, InterestExtractor
from .loss import total_loss
from .product import InnerProduct
from .transformer import TransformerEncoder, TransformerLayer, distance_positions

__all__ = [
    "AttentionUnit",
    "AuxiliaryLoss",
    "Batch",
    "DIEN",
    "FeatureEmbedding",
    "Head",
    "InnerProduct",
    "InterestEvolution",
    "InterestExtractor",
    "ModelConfig",
    "Output",
    "TransformerEncoder",
    "TransformerLayer",
    "VocabSizes",
    "distance_positions",
    "step_mask",
    "total_loss",
    "weighted_sum",
]
