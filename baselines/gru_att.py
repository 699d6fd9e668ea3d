"""GRU + attention, the DIEN paper's "Two layer GRU Attention" baseline (see docs/design.md)."""

from __future__ import annotations

from torch import nn

from dien_core import AttentionUnit, Batch, FeatureEmbedding, Head, ModelConfig, Output, VocabSizes, weighted_sum
from dien_core.recurrent import make_layer


class GRUAttention(nn.Module):
    """Args: ``config``, ``vocab``. Takes a ``Batch`` with history ``(B, T)``; returns
    ``Output(logits (B,), aux_loss = 0)``. A GRU over the behaviours gives ``states (B, T, E)`` and
    the last state ``h (B, E)``; DIN's attention of the target over the states pools them. MLP input
    ``[u, e_t, s, e_t * s, pooled, h]`` (DIN's and DIEN's base features, then the sequence's): ``(B, D + 5E)``."""

    def __init__(self, config: ModelConfig, vocab: VocabSizes) -> None:
        super().__init__()
        E = config.behaviour_dim
        self.embedding = FeatureEmbedding(vocab, config.embedding_dim, config.backend)
        self.gru = make_layer("GRU", E, E, backend=config.backend)
        self.attention = AttentionUnit(E, config.attention_hidden, config.attention_activation, config.att_normalization)
        self.head = Head(config.embedding_dim + 5 * E, config.mlp_hidden, config.mlp_activation, config.dropout)

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        emb = self.embedding(batch)
        states, last = self.gru(emb.hist, None, batch.lengths)  # (B, T, E), (B, E)
        pooled = weighted_sum(self.attention(emb.target, states, emb.mask), states)  # (B, E)
        logits = self.head(emb.user, emb.target, emb.hist_sum, emb.target * emb.hist_sum, pooled, last)
        return Output(logits, logits.new_zeros(()))
