"""DIEN: interest extractor + interest evolution + MLP head (Zhou et al., AAAI 2019)."""

from __future__ import annotations

from torch import nn

from .attention import AttentionUnit
from .batch import Batch, Output
from .config import ModelConfig, VocabSizes
from .embedding import FeatureEmbedding
from .head import Head
from .interest import InterestEvolution, InterestExtractor


class DIEN(nn.Module):
    """Deep Interest Evolution Network.

    Args: ``config`` (ModelConfig; ``gru_type``, ``augru_convention``,
    ``use_aux_loss`` ...), ``vocab`` sizes. Takes a ``Batch`` (history ``(B, T)``);
    returns ``Output(logits (B,), aux_loss ())``; ``aux_loss`` is 0 in eval mode. MLP input
    ``[u, e_t, s, e_t * s, final interest]`` with D = embedding_dim, E = 2D:
    ``(B, D + 4E)``.
    """

    def __init__(self, config: ModelConfig, vocab: VocabSizes) -> None:
        super().__init__()
        self.config = config
        E = config.behaviour_dim
        self.embedding = FeatureEmbedding(vocab, config.embedding_dim, config.backend)
        self.extractor = InterestExtractor(E, config.aux_hidden if config.use_aux_loss else None, config.backend, config.aux_activation)
        attention = AttentionUnit(E, config.attention_hidden, config.attention_activation, config.att_normalization)
        self.evolution = InterestEvolution(config.gru_type, E, attention, config.augru_convention, config.backend)
        self.head = Head(config.embedding_dim + 4 * E, config.mlp_hidden, config.mlp_activation, config.dropout)

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        # The auxiliary loss only trains the extractor: serving (eval) skips it and its negatives.
        emb = self.embedding(batch, with_negatives=self.config.use_aux_loss and self.training)
        states, aux_loss = self.extractor(emb.hist, batch.lengths, emb.mask, emb.neg)
        interest = self.evolution(emb.target, states, batch.lengths, emb.mask)
        logits = self.head(emb.user, emb.target, emb.hist_sum, emb.target * emb.hist_sum, interest)
        return Output(logits, aux_loss)
