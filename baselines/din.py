"""DIN: attention pooling of the history against the target (Zhou et al., KDD 2018)."""

from __future__ import annotations

import torch
from torch import nn

from dien_core import AttentionUnit, Batch, FeatureEmbedding, Head, ModelConfig, Output, VocabSizes, weighted_sum
from dien_core.kernels.plan import Plan, model_plan
from dien_core.serving import parts
from dien_core.serving.parts import History


class DIN(nn.Module):
    """Args: ``config``, ``vocab``, ``plan`` (``dien_core/kernels/plan.py``; default: ``config.backend``
    for float32 CPU tensors). Takes a ``Batch`` with history ``(B, T)``; returns
    ``Output(logits (B,), aux_loss = 0)``. MLP input ``[u, e_t, s, e_t * s, pooled]``: ``(B, D + 4E)``."""

    @staticmethod
    def pieces(config: ModelConfig) -> tuple[str, ...]:
        """The plan's pieces this model uses."""
        return ("embedding", "serving_attention")

    def __init__(self, config: ModelConfig, vocab: VocabSizes, plan: Plan | None = None) -> None:
        super().__init__()
        self.plan = plan = model_plan(config, self.pieces(config), plan)
        E = config.behaviour_dim
        self.embedding = FeatureEmbedding(vocab, config.embedding_dim, plan["embedding"])
        self.attention = AttentionUnit(E, config.attention_hidden, config.attention_activation, config.att_normalization)
        self.head = Head(config.embedding_dim + 4 * E, config.mlp_hidden, config.mlp_activation, config.dropout)

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        emb = self.embedding(batch)
        weights = self.attention(emb.target, emb.hist, emb.mask)  # (B, T)
        pooled = weighted_sum(weights, emb.hist)  # (B, E)
        logits = self.head(emb.user, emb.target, emb.hist_sum, emb.target * emb.hist_sum, pooled)
        return Output(logits, logits.new_zeros(()))

    def encode_history(self, user: torch.Tensor, hist_item: torch.Tensor, hist_cate: torch.Tensor, lengths: torch.Tensor,
                       loops: str = "planned") -> History:  # fmt: skip
        """Serving, once per request (``dien_core.serving``): the lookups and the attention's key half
        ``(R, T, H1)``. ``user (R,)``, ``hist_item, hist_cate (R, T)``, ``lengths (R,)`` -> ``History``."""
        R, T = hist_item.shape
        history = parts.embed_history(self.embedding, user, hist_item, hist_cate, lengths, loops)
        return history.with_extra(key_part=parts.attention_keys(self.attention, history.hist))

    def score_candidates(self, history: History, item: torch.Tensor, cate: torch.Tensor, owner: torch.Tensor,
                         loops: str = "planned") -> torch.Tensor:  # fmt: skip
        """Serving, per candidate: ``item, cate, owner (N,)`` -> logits ``(N,)``: attention, pooling, the head."""
        (N,) = item.shape
        target = parts.embed_candidates(self.embedding, item, cate, loops)
        weights = parts.candidate_attention(self.attention, history.hist, history.extra["key_part"], target, owner, history.mask,
                                           parts.attention_implementation(self.plan, loops))
        pooled = parts.pool(weights, history.hist, owner)
        s = history.hist_sum
        features = [(history.user, True), (target, False), (s, True), (target * parts.per_candidate(s, owner), False), (pooled, False)]
        return parts.split_head(self.head, features, owner)
