"""BST, Behavior Sequence Transformer (Chen et al., 2019): self-attention over the history and the target."""

from __future__ import annotations

import torch
from torch import nn

from dien_core import Batch, FeatureEmbedding, Head, ModelConfig, Output, TransformerEncoder, VocabSizes, distance_positions


class BST(nn.Module):
    """Args: ``config`` (``transformer_heads``, ``transformer_layers``, ``max_seq_len``), ``vocab``.
    Takes a ``Batch`` with history ``(B, T)``, T <= ``max_seq_len``; returns ``Output(logits (B,),
    aux_loss = 0)``. Tokens ``[e_t; hist]`` ``(B, 1 + T, E)`` through the encoder, positioned by
    distance from the target (target 0, the latest behaviour 1, ...: padding shifts nothing), padded
    steps masked as keys. MLP input ``[u, e_t, s, e_t * s, target's output, masked mean of the
    history's outputs]`` (DIN's and DIEN's base features, then the encoder's): ``(B, D + 5E)``."""

    def __init__(self, config: ModelConfig, vocab: VocabSizes) -> None:
        super().__init__()
        E = config.behaviour_dim
        self.max_seq_len = config.max_seq_len
        self.embedding = FeatureEmbedding(vocab, config.embedding_dim, config.backend)
        self.encoder = TransformerEncoder(E, config.transformer_heads, config.transformer_layers, config.max_seq_len, config.dropout)
        self.head = Head(config.embedding_dim + 5 * E, config.mlp_hidden, config.mlp_activation, config.dropout)

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        if T > self.max_seq_len:
            raise ValueError(f"BST got histories of {T} steps, over max_seq_len={self.max_seq_len}: raise it or truncate (data maxlen)")
        emb = self.embedding(batch)
        tokens = torch.cat([emb.target.unsqueeze(1), emb.hist], dim=1)  # (B, 1 + T, E)
        mask = torch.cat([emb.mask.new_ones(B, 1), emb.mask], dim=1)
        out = self.encoder(tokens, distance_positions(batch.lengths, T), mask)  # (B, 1 + T, E)
        valid = emb.mask.unsqueeze(-1).to(out.dtype)
        pooled = (out[:, 1:] * valid).sum(dim=1) / valid.sum(dim=1).clamp_min(1)  # (B, E)
        logits = self.head(emb.user, emb.target, emb.hist_sum, emb.target * emb.hist_sum, out[:, 0], pooled)
        return Output(logits, logits.new_zeros(()))
