"""Sum pooling: MLP over the user, the target and the masked sum of the history."""

from __future__ import annotations

import torch
from torch import nn

from dien_core import Batch, FeatureEmbedding, Head, ModelConfig, Output, VocabSizes
from dien_core.kernels.plan import Plan, model_plan
from dien_core.serving import parts
from dien_core.serving.parts import History


class SumPooling(nn.Module):
    """Args: ``config``, ``vocab``, ``plan`` (``dien_core/kernels/plan.py``; default: ``config.backend``
    for float32 CPU tensors). Takes a ``Batch`` with history ``(B, T)``; returns
    ``Output(logits (B,), aux_loss = 0)``. MLP input ``[u, e_t, s]``: ``(B, D + 2E)``."""

    @staticmethod
    def pieces(config: ModelConfig) -> tuple[str, ...]:
        """The plan's pieces this model uses."""
        return ("embedding",)

    def __init__(self, config: ModelConfig, vocab: VocabSizes, plan: Plan | None = None) -> None:
        super().__init__()
        self.plan = plan = model_plan(config, self.pieces(config), plan)
        E = config.behaviour_dim
        self.embedding = FeatureEmbedding(vocab, config.embedding_dim, plan["embedding"])
        self.head = Head(config.embedding_dim + 2 * E, config.mlp_hidden, config.mlp_activation, config.dropout)

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        emb = self.embedding(batch)
        logits = self.head(emb.user, emb.target, emb.hist_sum)
        return Output(logits, logits.new_zeros(()))

    def encode_history(self, user: torch.Tensor, hist_item: torch.Tensor, hist_cate: torch.Tensor, lengths: torch.Tensor,
                       loops: str = "planned") -> History:  # fmt: skip
        """Serving, once per request (``dien_core.serving``): the lookups and the history's sum.
        ``user (R,)``, ``hist_item, hist_cate (R, T)``, ``lengths (R,)`` -> ``History``."""
        R, T = hist_item.shape
        return parts.embed_history(self.embedding, user, hist_item, hist_cate, lengths, loops)

    def score_candidates(self, history: History, item: torch.Tensor, cate: torch.Tensor, owner: torch.Tensor,
                         loops: str = "planned") -> torch.Tensor:  # fmt: skip
        """Serving, per candidate: ``item, cate, owner (N,)`` -> logits ``(N,)``; the user's and the history's
        share of the head's first layer is the request's."""
        (N,) = item.shape
        target = parts.embed_candidates(self.embedding, item, cate, loops)
        return parts.split_head(self.head, [(history.user, True), (target, False), (history.hist_sum, True)], owner)
