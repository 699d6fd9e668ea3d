"""GRU + attention, the DIEN paper's "Two layer GRU Attention" baseline (see docs/design.md)."""

from __future__ import annotations

import torch
from torch import nn

from dien_core import AttentionUnit, Batch, FeatureEmbedding, Head, ModelConfig, Output, VocabSizes, weighted_sum
from dien_core.kernels.plan import Plan, model_plan
from dien_core.recurrent import make_layer
from dien_core.serving import parts
from dien_core.serving.parts import History


class GRUAttention(nn.Module):
    """Args: ``config``, ``vocab``, ``plan`` (``dien_core/kernels/plan.py``; default: ``config.backend``
    for float32 CPU tensors). Takes a ``Batch`` with history ``(B, T)``; returns
    ``Output(logits (B,), aux_loss = 0)``. A GRU over the behaviours gives ``states (B, T, E)`` and
    the last state ``h (B, E)``; DIN's attention of the target over the states pools them. MLP input
    ``[u, e_t, s, e_t * s, pooled, h]`` (DIN's and DIEN's base features, then the sequence's): ``(B, D + 5E)``."""

    @staticmethod
    def pieces(config: ModelConfig) -> tuple[str, ...]:
        """The plan's pieces this model uses."""
        return ("embedding", "GRU", "serving_attention")

    def __init__(self, config: ModelConfig, vocab: VocabSizes, plan: Plan | None = None) -> None:
        super().__init__()
        self.plan = plan = model_plan(config, self.pieces(config), plan)
        E = config.behaviour_dim
        self.embedding = FeatureEmbedding(vocab, config.embedding_dim, plan["embedding"])
        self.gru = make_layer("GRU", E, E, implementation=plan["GRU"])
        self.attention = AttentionUnit(E, config.attention_hidden, config.attention_activation, config.att_normalization)
        self.head = Head(config.embedding_dim + 5 * E, config.mlp_hidden, config.mlp_activation, config.dropout)

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        emb = self.embedding(batch)
        states, last = self.gru(emb.hist, None, batch.lengths)  # (B, T, E), (B, E)
        pooled = weighted_sum(self.attention(emb.target, states, emb.mask), states)  # (B, E)
        logits = self.head(emb.user, emb.target, emb.hist_sum, emb.target * emb.hist_sum, pooled, last)
        return Output(logits, logits.new_zeros(()))

    def encode_history(self, user: torch.Tensor, hist_item: torch.Tensor, hist_cate: torch.Tensor, lengths: torch.Tensor,
                       loops: str = "planned") -> History:  # fmt: skip
        """Serving, once per request (``dien_core.serving``): the lookups, the GRU's states and last state
        (no candidate in them) and the attention's key half over the states. ``user (R,)``,
        ``hist_item, hist_cate (R, T)``, ``lengths (R,)`` -> ``History`` with extras ``states (R, T, E)``,
        ``last (R, E)`` and ``key_part (R, T, H1)``."""
        R, T = hist_item.shape
        history = parts.embed_history(self.embedding, user, hist_item, hist_cate, lengths, loops)
        states, last = parts.history_recurrence(self.gru, history.hist, lengths, history.mask, loops)
        return history.with_extra(states=states, last=last, key_part=parts.attention_keys(self.attention, states))

    def score_candidates(self, history: History, item: torch.Tensor, cate: torch.Tensor, owner: torch.Tensor,
                         loops: str = "planned") -> torch.Tensor:  # fmt: skip
        """Serving, per candidate: ``item, cate, owner (N,)`` -> logits ``(N,)``: attention over the states,
        pooling, the head."""
        (N,) = item.shape
        states = history.extra["states"]
        target = parts.embed_candidates(self.embedding, item, cate, loops)
        weights = parts.candidate_attention(self.attention, states, history.extra["key_part"], target, owner, history.mask,
                                           parts.attention_implementation(self.plan, loops))
        pooled = parts.pool(weights, states, owner)
        s = history.hist_sum
        features = [(history.user, True), (target, False), (s, True), (target * parts.per_candidate(s, owner), False), (pooled, False),
                    (history.extra["last"], True)]  # fmt: skip
        return parts.split_head(self.head, features, owner)
