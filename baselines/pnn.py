"""IPNN (Qu et al., ICDM 2016): pairwise inner products of the field embeddings, then the MLP."""

from __future__ import annotations

import torch
from torch import nn

from dien_core import Batch, FeatureEmbedding, Head, InnerProduct, ModelConfig, Output, VocabSizes
from dien_core.kernels.plan import Plan, model_plan
from dien_core.serving import parts
from dien_core.serving.parts import History


class PNN(nn.Module):
    """Args: ``config``, ``vocab``, ``plan`` (``dien_core/kernels/plan.py``; default: ``config.backend``
    for float32 CPU tensors). Takes a ``Batch`` with history ``(B, T)``; returns
    ``Output(logits (B,), aux_loss = 0)``. Five fields of width D: the user, the target's item
    and category (``e_t`` split in two), and the history's mean item and mean category (the
    masked mean of ``(B, T, 2D)``, split in two; the mean keeps the products on one scale whatever
    the length). MLP input ``[fields, their 10 inner products]``: ``(B, 5D + 10)``."""

    @staticmethod
    def pieces(config: ModelConfig) -> tuple[str, ...]:
        """The plan's pieces this model uses."""
        return ("embedding",)

    def __init__(self, config: ModelConfig, vocab: VocabSizes, plan: Plan | None = None) -> None:
        super().__init__()
        self.plan = plan = model_plan(config, self.pieces(config), plan)
        D = config.embedding_dim
        self.embedding = FeatureEmbedding(vocab, D, plan["embedding"])
        self.product = InnerProduct(5)
        self.head = Head(5 * D + self.product.pairs, config.mlp_hidden, config.mlp_activation, config.dropout)

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        emb = self.embedding(batch)
        hist_mean = emb.hist_sum / batch.lengths.clamp_min(1).unsqueeze(1).to(emb.hist_sum.dtype)  # (B, 2D)
        fields = torch.stack([emb.user, *emb.target.chunk(2, dim=1), *hist_mean.chunk(2, dim=1)], dim=1)  # (B, 5, D)
        logits = self.head(fields.reshape(B, -1), self.product(fields))
        return Output(logits, logits.new_zeros(()))

    def encode_history(self, user: torch.Tensor, hist_item: torch.Tensor, hist_cate: torch.Tensor, lengths: torch.Tensor,
                       loops: str = "planned") -> History:  # fmt: skip
        """Serving, once per request (``dien_core.serving``): the lookups and the history's mean
        ``(R, 2D)``. ``user (R,)``, ``hist_item, hist_cate (R, T)``, ``lengths (R,)`` -> ``History``."""
        R, T = hist_item.shape
        history = parts.embed_history(self.embedding, user, hist_item, hist_cate, lengths, loops)
        return history.with_extra(hist_mean=history.hist_sum / lengths.clamp_min(1).unsqueeze(1).to(history.hist_sum.dtype))

    def score_candidates(self, history: History, item: torch.Tensor, cate: torch.Tensor, owner: torch.Tensor,
                         loops: str = "planned") -> torch.Tensor:  # fmt: skip
        """Serving, per candidate: ``item, cate, owner (N,)`` -> logits ``(N,)``: the products with the
        target's fields and the head (the user's and the history's share of its first layer per request)."""
        (N,) = item.shape
        target = parts.embed_candidates(self.embedding, item, cate, loops)
        user, hist_mean = parts.per_candidate(history.user, owner), parts.per_candidate(history.extra["hist_mean"], owner)
        fields = torch.stack([user, *target.chunk(2, dim=1), *hist_mean.chunk(2, dim=1)], dim=1)  # (N, 5, D)
        features = [(history.user, True), (target, False), (history.extra["hist_mean"], True), (self.product(fields), False)]
        return parts.split_head(self.head, features, owner)
