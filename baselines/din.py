"""DIN: attention pooling of the history against the target (Zhou et al., KDD 2018)."""

from __future__ import annotations

from torch import nn

from dien_core import AttentionUnit, Batch, FeatureEmbedding, Head, ModelConfig, Output, VocabSizes, weighted_sum


class DIN(nn.Module):
    """Args: ``config``, ``vocab``. Takes a ``Batch`` with history ``(B, T)``; returns
    ``Output(logits (B,), aux_loss = 0)``. MLP input ``[u, e_t, s, e_t * s, pooled]``: ``(B, D + 4E)``."""

    def __init__(self, config: ModelConfig, vocab: VocabSizes) -> None:
        super().__init__()
        E = config.behaviour_dim
        self.embedding = FeatureEmbedding(vocab, config.embedding_dim, config.backend)
        self.attention = AttentionUnit(E, config.attention_hidden, config.attention_activation, config.att_normalization)
        self.head = Head(config.embedding_dim + 4 * E, config.mlp_hidden, config.mlp_activation, config.dropout)

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        emb = self.embedding(batch)
        weights = self.attention(emb.target, emb.hist, emb.mask)  # (B, T)
        pooled = weighted_sum(weights, emb.hist)  # (B, E)
        logits = self.head(emb.user, emb.target, emb.hist_sum, emb.target * emb.hist_sum, pooled)
        return Output(logits, logits.new_zeros(()))
