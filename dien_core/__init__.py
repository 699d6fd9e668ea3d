"""dien_core: the one DIEN core, top to bottom: embeddings (``embedding.py``), attention (``attention.py``),
recurrences (``recurrent.py``, with the literal per-step ``reference.py``), interest layers (``interest.py``,
``aux_loss.py``), head (``head.py``, ``mlp.py``), DIEN (``dien.py``); the baselines' parts (``product.py``,
``transformer.py``); the serving path (``serving/``). The fast implementations and the plan that
chooses them per device live in ``kernels/``."""

from .attention import AttentionUnit, weighted_sum
from .aux_loss import AuxiliaryLoss
from .batch import Batch, Output, step_mask
from .config import ModelConfig, VocabSizes
from .dien import DIEN
from .embedding import FeatureEmbedding
from .head import Head
from .interest import InterestEvolution, InterestExtractor
from .kernels.plan import Plan, plan_for
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
    "Plan",
    "TransformerEncoder",
    "TransformerLayer",
    "VocabSizes",
    "distance_positions",
    "plan_for",
    "step_mask",
    "total_loss",
    "weighted_sum",
]
