"""DIEN: interest extractor + interest evolution + MLP head (Zhou et al., AAAI 2019)."""

from __future__ import annotations

import torch
from torch import nn

from .attention import AttentionUnit
from .batch import Batch, Output
from .config import ModelConfig, VocabSizes
from .embedding import FeatureEmbedding
from .head import Head
from .interest import InterestEvolution, InterestExtractor
from .kernels.plan import Plan, model_plan
from .serving import parts
from .serving.parts import History


class DIEN(nn.Module):
    """Deep Interest Evolution Network.

    Args: ``config`` (ModelConfig; ``gru_type``, ``augru_convention``,
    ``use_aux_loss`` ...), ``vocab`` sizes, ``plan`` (``kernels/plan.py``; default: ``config.backend``
    resolved for float32 CPU tensors). Takes a ``Batch`` (history ``(B, T)``);
    returns ``Output(logits (B,), aux_loss (), alpha)``; ``aux_loss`` is 0 in eval mode. MLP input
    ``[u, e_t, s, e_t * s, final interest]`` with D = embedding_dim, E = 2D:
    ``(B, D + 4E)``.
    """

    @staticmethod
    def pieces(config: ModelConfig) -> tuple[str, ...]:
        """The plan's pieces this model uses."""
        return ("embedding", "GRU", config.gru_type, *(("aux_loss",) if config.use_aux_loss else ()), "serving_attention")

    def __init__(self, config: ModelConfig, vocab: VocabSizes, plan: Plan | None = None) -> None:
        super().__init__()
        self.config = config
        self.plan = plan = model_plan(config, self.pieces(config), plan)
        E = config.behaviour_dim
        self.embedding = FeatureEmbedding(vocab, config.embedding_dim, plan["embedding"])
        aux = plan["aux_loss"] if config.use_aux_loss else "torch"
        self.extractor = InterestExtractor(E, config.aux_hidden if config.use_aux_loss else None, plan["GRU"], aux, config.aux_activation)
        attention = AttentionUnit(E, config.attention_hidden, config.attention_activation, config.att_normalization)
        self.evolution = InterestEvolution(config.gru_type, E, attention, config.augru_convention, plan[config.gru_type])
        self.head = Head(config.embedding_dim + 4 * E, config.mlp_hidden, config.mlp_activation, config.dropout)

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        # The auxiliary loss only trains the extractor: serving (eval) skips it and its negatives.
        emb = self.embedding(batch, with_negatives=self.config.use_aux_loss and self.training)
        states, aux_loss = self.extractor(emb.hist, batch.lengths, emb.mask, emb.neg)
        interest = self.evolution(emb.target, states, batch.lengths, emb.mask)
        logits = self.head(emb.user, emb.target, emb.hist_sum, emb.target * emb.hist_sum, interest)
        return Output(logits, aux_loss, self.config.alpha)

    def encode_history(self, user: torch.Tensor, hist_item: torch.Tensor, hist_cate: torch.Tensor, lengths: torch.Tensor,
                       loops: str = "planned") -> History:  # fmt: skip
        """Serving, once per request (``dien_core.serving``): ``user (R,)``, ``hist_item, hist_cate (R, T)``,
        ``lengths (R,)`` -> ``History``: the lookups, the extractor's states (no candidate in them), the
        attention's key half over them and the evolution's input projection ``W_ih h_t``: extras
        ``keys (R, T, H)``, ``key_part (R, T, H1)`` and ``inputs (T, R, G*H)``, time-major as the
        recurrence loops read them. With ``gru_type="GRU"`` the evolution reads no attention, so its
        states are the history's too (``keys`` are then the evolution's states, and no ``inputs``)."""
        R, T = hist_item.shape
        history = parts.embed_history(self.embedding, user, hist_item, hist_cate, lengths, loops)
        states, _ = parts.history_recurrence(self.extractor.gru, history.hist, lengths, history.mask, loops)
        evolution = self.evolution
        if evolution.gru_type == "GRU":
            states, _ = parts.history_recurrence(evolution.gru, states, lengths, history.mask, loops)
            return history.with_extra(keys=states, key_part=parts.attention_keys(evolution.attention, states))
        key_part = parts.attention_keys(evolution.attention, states)
        return history.with_extra(keys=states, key_part=key_part, inputs=parts.input_projection(evolution.gru, states))

    def score_candidates(self, history: History, item: torch.Tensor, cate: torch.Tensor, owner: torch.Tensor,
                         loops: str = "planned") -> torch.Tensor:  # fmt: skip
        """Serving, per candidate: ``item, cate, owner (N,)`` (``owner``: the candidate's request in
        ``history``) -> logits ``(N,)``: attention scores, the attention-driven recurrence, the head."""
        (N,) = item.shape
        evolution, keys = self.evolution, history.extra["keys"]
        target = parts.embed_candidates(self.embedding, item, cate, loops)
        weights = parts.candidate_attention(evolution.attention, keys, history.extra["key_part"], target, owner, history.mask,
                                           parts.attention_implementation(self.plan, loops))
        if evolution.gru_type == "GRU":
            interest = parts.pool(weights, keys, owner)
        else:
            interest = parts.candidate_recurrence(evolution.gru, history.extra["inputs"], weights, history.mask, owner, loops)
        s = history.hist_sum
        features = [(history.user, True), (target, False), (s, True), (target * parts.per_candidate(s, owner), False), (interest, False)]
        return parts.split_head(self.head, features, owner)
