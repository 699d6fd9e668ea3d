"""BST, Behavior Sequence Transformer (Chen et al., 2019): self-attention over the history and the target."""

from __future__ import annotations

import torch
from torch import nn

from dien_core import Batch, FeatureEmbedding, Head, ModelConfig, Output, TransformerEncoder, VocabSizes, distance_positions
from dien_core.kernels.plan import Plan, model_plan
from dien_core.serving import parts
from dien_core.serving.parts import History


class BST(nn.Module):
    """Args: ``config`` (``transformer_heads``, ``transformer_layers``, ``max_seq_len``), ``vocab``, ``plan`` (as DIN's).
    Takes a ``Batch`` with history ``(B, T)``, T <= ``max_seq_len``; returns ``Output(logits (B,),
    aux_loss = 0)``. Tokens ``[e_t; hist]`` ``(B, 1 + T, E)`` through the encoder, positioned by
    distance from the target (target 0, the latest behaviour 1, ...: padding shifts nothing), padded
    steps masked as keys. MLP input ``[u, e_t, s, e_t * s, target's output, masked mean of the
    history's outputs]`` (DIN's and DIEN's base features, then the encoder's): ``(B, D + 5E)``."""

    @staticmethod
    def pieces(config: ModelConfig) -> tuple[str, ...]:
        """The plan's pieces this model uses."""
        return ("embedding",)

    def __init__(self, config: ModelConfig, vocab: VocabSizes, plan: Plan | None = None) -> None:
        super().__init__()
        self.plan = plan = model_plan(config, self.pieces(config), plan)
        E = config.behaviour_dim
        self.max_seq_len = config.max_seq_len
        self.embedding = FeatureEmbedding(vocab, config.embedding_dim, plan["embedding"])
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

    def encode_history(self, user: torch.Tensor, hist_item: torch.Tensor, hist_cate: torch.Tensor, lengths: torch.Tensor,
                       loops: str = "planned") -> History:  # fmt: skip
        """Serving, once per request (``dien_core.serving``): the lookups, the history's positioned tokens
        ``(R, T, E)`` and their first-layer projection to queries, keys and values ``(R, T, 3E)``. Every
        history token attends to the target, so from there on all of it is the candidate's.
        ``user (R,)``, ``hist_item, hist_cate (R, T)``, ``lengths (R,)`` -> ``History``."""
        R, T = hist_item.shape
        if T > self.max_seq_len:
            raise ValueError(f"BST got histories of {T} steps, over max_seq_len={self.max_seq_len}: raise it or truncate (data maxlen)")
        history = parts.embed_history(self.embedding, user, hist_item, hist_cate, lengths, loops)
        positions = self.encoder.position(distance_positions(lengths, T))  # (R, 1 + T, E)
        tokens = history.hist + positions[:, 1:]
        return history.with_extra(tokens=tokens, qkv=self.encoder.layers[0].qkv(tokens), target_position=positions[:, 0])

    def score_candidates(self, history: History, item: torch.Tensor, cate: torch.Tensor, owner: torch.Tensor,
                         loops: str = "planned") -> torch.Tensor:  # fmt: skip
        """Serving, per candidate: ``item, cate, owner (N,)`` -> logits ``(N,)``: the target token, the
        encoder over ``[target; history]`` from the first layer's attention on, pooling and the head."""
        (N,) = item.shape
        extra, first = history.extra, self.encoder.layers[0]
        target = parts.embed_candidates(self.embedding, item, cate, loops)
        token = target + parts.per_candidate(extra["target_position"], owner)  # (N, E)
        x = torch.cat([token.unsqueeze(1), parts.per_candidate(extra["tokens"], owner)], dim=1)  # (N, 1 + T, E)
        qkv = torch.cat([first.qkv(token).unsqueeze(1), parts.per_candidate(extra["qkv"], owner)], dim=1)
        hist_mask = parts.per_candidate(history.mask, owner)
        mask = torch.cat([hist_mask.new_ones(N, 1), hist_mask], dim=1)
        out = first.forward_from_qkv(x, qkv, mask)
        for layer in self.encoder.layers[1:]:
            out = layer(out, mask)
        valid = hist_mask.unsqueeze(-1).to(out.dtype)
        pooled = (out[:, 1:] * valid).sum(dim=1) / valid.sum(dim=1).clamp_min(1)  # (N, E)
        s = history.hist_sum
        features = [(history.user, True), (target, False), (s, True), (target * parts.per_candidate(s, owner), False), (out[:, 0], False),
                    (pooled, False)]  # fmt: skip
        return parts.split_head(self.head, features, owner)
