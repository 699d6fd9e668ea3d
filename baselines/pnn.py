"""IPNN (Qu et al., ICDM 2016): pairwise inner products of the field embeddings, then the MLP."""

from __future__ import annotations

import torch
from torch import nn

from dien_core import Batch, FeatureEmbedding, Head, InnerProduct, ModelConfig, Output, VocabSizes


class PNN(nn.Module):
    """Args: ``config``, ``vocab``. Takes a ``Batch`` with history ``(B, T)``; returns
    ``Output(logits (B,), aux_loss = 0)``. Five fields of width D: the user, the target's item
    and category (``e_t`` split in two), and the history's mean item and mean category (the
    masked mean of ``(B, T, 2D)``, split in two; the mean keeps the products on one scale whatever
    the length). MLP input ``[fields, their 10 inner products]``: ``(B, 5D + 10)``."""

    def __init__(self, config: ModelConfig, vocab: VocabSizes) -> None:
        super().__init__()
        D = config.embedding_dim
        self.embedding = FeatureEmbedding(vocab, D, config.backend)
        self.product = InnerProduct(5)
        self.head = Head(5 * D + self.product.pairs, config.mlp_hidden, config.mlp_activation, config.dropout)

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        emb = self.embedding(batch)
        hist_mean = emb.hist_sum / batch.lengths.clamp_min(1).unsqueeze(1).to(emb.hist_sum.dtype)  # (B, 2D)
        fields = torch.stack([emb.user, *emb.target.chunk(2, dim=1), *hist_mean.chunk(2, dim=1)], dim=1)  # (B, 5, D)
        logits = self.head(fields.reshape(B, -1), self.product(fields))
        return Output(logits, logits.new_zeros(()))
