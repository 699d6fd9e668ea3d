"""What a ranking request is: one user, one history, K candidate items; and several of them stacked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from ..batch import Batch


def check_ids(*ids: torch.Tensor) -> None:
    """A ValueError unless every id tensor is int64 (the lookups' contract, on every plan)."""
    wrong = sorted({str(i.dtype) for i in ids if i.dtype != torch.int64})
    if wrong:
        raise ValueError(f"ids must be int64, got {', '.join(wrong)}: convert them with .long()")


@dataclass(frozen=True)
class Request:
    """One ranking request: ``user ()``, ``hist_item, hist_cate (T,)`` oldest first (right-padded
    with 0 past ``length``), ``length ()`` valid steps in 0..T, ``item, cate (K,)`` the candidates.
    Ids are int64. ``Request.of`` builds one from plain sequences."""

    user: torch.Tensor
    hist_item: torch.Tensor
    hist_cate: torch.Tensor
    length: torch.Tensor
    item: torch.Tensor
    cate: torch.Tensor

    def __post_init__(self) -> None:
        if self.user.dim() != 0 or self.length.dim() != 0:
            raise ValueError(f"a request's user and length are scalars, got shapes {tuple(self.user.shape)}, {tuple(self.length.shape)}")
        if self.hist_item.dim() != 1 or self.hist_item.shape != self.hist_cate.shape:
            raise ValueError(
                f"hist_item and hist_cate must be (T,) of one length, got {tuple(self.hist_item.shape)}, {tuple(self.hist_cate.shape)}"
            )
        if self.item.dim() != 1 or self.item.shape != self.cate.shape or self.item.shape[0] < 1:
            raise ValueError(f"item and cate must be (K,) with K >= 1 candidates, got {tuple(self.item.shape)}, {tuple(self.cate.shape)}")
        check_ids(self.user, self.hist_item, self.hist_cate, self.item, self.cate)

    @classmethod
    def of(cls, user: int, hist_item: Sequence[int], hist_cate: Sequence[int], item: Sequence[int], cate: Sequence[int],
           device: torch.device | str = "cpu") -> Request:  # fmt: skip
        """A request with an unpadded history (``length = len(hist_item)``)."""

        def ids(values) -> torch.Tensor:
            return torch.as_tensor(values, dtype=torch.int64, device=device).reshape(-1)

        return cls(ids(user).reshape(()), ids(hist_item), ids(hist_cate), torch.tensor(len(hist_item), device=device), ids(item), ids(cate))

    @property
    def candidates(self) -> int:
        return self.item.shape[0]

    @property
    def seq_len(self) -> int:
        return self.hist_item.shape[0]

    def to(self, device: torch.device | str) -> Request:
        return Request(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def to_batch(self) -> Batch:
        """The K rows a training model scores: ``Batch`` with B = K, the user and history repeated
        (expanded views, no copies), no negatives, labels 0."""
        K, T = self.candidates, self.seq_len
        hist = self.hist_item.expand(K, T)
        zeros = torch.zeros_like(hist)
        return Batch(
            user=self.user.expand(K), item=self.item, cate=self.cate, hist_item=hist, hist_cate=self.hist_cate.expand(K, T),
            lengths=self.length.expand(K), neg_item=zeros, neg_cate=zeros, label=torch.zeros(K, device=self.item.device),
        )  # fmt: skip


@dataclass(frozen=True)
class Requests:
    """R requests stacked, what the serving entry point takes: ``user (R,)``, ``hist_item,
    hist_cate (R, T)`` right-padded, ``lengths (R,)``; their candidates one after another,
    ``item, cate (N,)`` with ``owner (N,)`` the index of each candidate's request (sorted), and
    ``counts`` the candidates per request (host ints, to split the logits)."""

    user: torch.Tensor
    hist_item: torch.Tensor
    hist_cate: torch.Tensor
    lengths: torch.Tensor
    item: torch.Tensor
    cate: torch.Tensor
    owner: torch.Tensor
    counts: tuple[int, ...]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The serving model's inputs in order: user, hist_item, hist_cate, lengths, item, cate, owner."""
        return self.user, self.hist_item, self.hist_cate, self.lengths, self.item, self.cate, self.owner

    def to_batch(self) -> Batch:
        """The N candidates' rows for a training model: ``Batch`` with B = N, each row its request's
        user and history, no negatives, labels 0."""
        hist_item = self.hist_item.index_select(0, self.owner)
        zeros = torch.zeros_like(hist_item)
        return Batch(
            user=self.user.index_select(0, self.owner), item=self.item, cate=self.cate, hist_item=hist_item,
            hist_cate=self.hist_cate.index_select(0, self.owner), lengths=self.lengths.index_select(0, self.owner), neg_item=zeros,
            neg_cate=zeros, label=torch.zeros(self.item.shape[0], device=self.item.device),
        )  # fmt: skip

    def split(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """``logits (N,)`` -> one ``(K_r,)`` per request, in order."""
        return list(logits.split(list(self.counts)))


def stack(requests: Sequence[Request]) -> Requests:
    """Stack requests (histories padded to the longest one with 0) into one ``Requests``."""
    if not requests:
        raise ValueError("stack() needs at least one request")
    device = requests[0].item.device
    if len(requests) == 1:  # views, no padding: the single-request path pays for no stacking
        r = requests[0]
        owner = torch.zeros(r.candidates, dtype=torch.int64, device=device)
        return Requests(r.user.reshape(1), r.hist_item.reshape(1, -1), r.hist_cate.reshape(1, -1), r.length.reshape(1), r.item, r.cate,
                        owner, (r.candidates,))  # fmt: skip
    T = max(r.seq_len for r in requests)

    def padded(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, T - x.shape[0]))

    counts = tuple(r.candidates for r in requests)
    owner = torch.repeat_interleave(torch.arange(len(requests), device=device), torch.tensor(counts, device=device))
    return Requests(
        user=torch.stack([r.user for r in requests]),
        hist_item=torch.stack([padded(r.hist_item) for r in requests]),
        hist_cate=torch.stack([padded(r.hist_cate) for r in requests]),
        lengths=torch.stack([r.length for r in requests]),
        item=torch.cat([r.item for r in requests]),
        cate=torch.cat([r.cate for r in requests]),
        owner=owner,
        counts=counts,
    )
