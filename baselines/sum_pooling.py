"""Sum pooling: MLP over the user, the target and the masked sum of the history."""

from __future__ import annotations

from torch import nn

from dien_core import Batch, FeatureEmbedding, Head, ModelConfig, Output, VocabSizes


class SumPooling(nn.Module):
    """Args: ``config``, ``vocab``. Takes a ``Batch`` with history ``(B, T)``; returns
    ``Output(logits (B,), aux_loss = 0)``. MLP input ``[u, e_t, s]``: ``(B, D + 2E)``."""

    def __init__(self, config: ModelConfig, vocab: VocabSizes) -> None:
        super().__init__()
        E = config.behaviour_dim
        self.embedding = FeatureEmbedding(vocab, config.embedding_dim, config.backend)
        self.head = Head(config.embedding_dim + 2 * E, config.mlp_hidden, config.mlp_activation, config.dropout)

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        emb = self.embedding(batch)
        logits = self.head(emb.user, emb.target, emb.hist_sum)
        return Output(logits, logits.new_zeros(()))
