"""Wide & Deep (Cheng et al., 2016): a linear model over the sparse ids plus the sum-pooling tower."""

from __future__ import annotations

import torch
from torch import nn

from dien_core import Batch, FeatureEmbedding, Head, ModelConfig, Output, VocabSizes, step_mask
from dien_core.kernels.plan import Plan, model_plan
from dien_core.serving import parts
from dien_core.serving.parts import History


class WideDeep(nn.Module):
    """Args: ``config``, ``vocab``, ``plan`` (``dien_core/kernels/plan.py``; default: ``config.backend``
    for float32 CPU tensors). Takes a ``Batch`` with history ``(B, T)``; returns
    ``Output(logits (B,), aux_loss = 0)``, the sum of the two parts' logits (trained jointly).
    Wide: one learned scalar per id of the user, the target item, the target category, the bag of
    history items and the bag of history categories (separate tables), and per cross-product
    (target category, history category), summed over the valid steps; ids at padded steps read
    as 0, whose weight is 0 and never trained. Deep: MLP over ``[u, e_t, s]``: ``(B, D + 2E)``."""

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
        sizes = {"user": vocab.users, "item": vocab.items, "cate": vocab.cates, "hist_item": vocab.items, "hist_cate": vocab.cates}
        self.wide = nn.ModuleDict({name: nn.Embedding(rows, 1, padding_idx=0) for name, rows in sizes.items()})
        self.wide["cross_cate"] = nn.Embedding(vocab.cates * vocab.cates, 1, padding_idx=0)  # row c_t * C + c_h; padded steps read row 0
        for table in self.wide.values():
            nn.init.zeros_(table.weight)
        self.wide_bias = nn.Parameter(torch.zeros(()))
        self.cates = vocab.cates

    def forward(self, batch: Batch) -> Output:
        B, T = batch.hist_item.shape
        emb = self.embedding(batch)
        keep = step_mask(batch.lengths, T).long()
        hist_item, hist_cate = batch.hist_item * keep, batch.hist_cate * keep  # (B, T), 0 at padded steps
        cross = (batch.cate.unsqueeze(1) * self.cates + hist_cate) * keep
        w = self.wide
        targets = w["user"](batch.user) + w["item"](batch.item) + w["cate"](batch.cate)  # (B, 1)
        bags = w["hist_item"](hist_item) + w["hist_cate"](hist_cate) + w["cross_cate"](cross)  # (B, T, 1)
        wide = self.wide_bias + targets.squeeze(-1) + bags.sum(dim=(1, 2))
        deep = self.head(emb.user, emb.target, emb.hist_sum)
        logits = deep + wide
        return Output(logits, logits.new_zeros(()))

    def encode_history(self, user: torch.Tensor, hist_item: torch.Tensor, hist_cate: torch.Tensor, lengths: torch.Tensor,
                       loops: str = "planned") -> History:  # fmt: skip
        """Serving, once per request (``dien_core.serving``): the lookups, the wide part's user and bag
        terms ``(R,)``, the history's categories for the cross-products. ``user (R,)``, ``hist_item,
        hist_cate (R, T)``, ``lengths (R,)`` -> ``History`` with extras ``wide (R,)``, ``hist_cate (R, T)``
        (zero at padding) and ``keep (R, T)`` (1 at a behaviour, 0 at padding)."""
        R, T = hist_item.shape
        history = parts.embed_history(self.embedding, user, hist_item, hist_cate, lengths, loops)
        keep = history.mask.long()
        w = self.wide
        bags = w["hist_item"](hist_item * keep) + w["hist_cate"](hist_cate * keep)  # (R, T, 1)
        wide = self.wide_bias + w["user"](user).squeeze(-1) + bags.sum(dim=(1, 2))
        return history.with_extra(wide=wide, hist_cate=hist_cate * keep, keep=keep)

    def score_candidates(self, history: History, item: torch.Tensor, cate: torch.Tensor, owner: torch.Tensor,
                         loops: str = "planned") -> torch.Tensor:  # fmt: skip
        """Serving, per candidate: ``item, cate, owner (N,)`` -> logits ``(N,)``: the target's wide terms, its
        cross-products with the history's categories, and the deep tower's head."""
        (N,) = item.shape
        w, keep = self.wide, parts.per_candidate(history.extra["keep"], owner)
        cross = (cate.unsqueeze(1) * self.cates + parts.per_candidate(history.extra["hist_cate"], owner)) * keep  # (N, T)
        targets = (w["item"](item) + w["cate"](cate)).squeeze(-1)
        wide = parts.per_candidate(history.extra["wide"], owner) + targets + w["cross_cate"](cross).sum(dim=(1, 2))
        target = parts.embed_candidates(self.embedding, item, cate, loops)
        deep = parts.split_head(self.head, [(history.user, True), (target, False), (history.hist_sum, True)], owner)
        return deep + wide
