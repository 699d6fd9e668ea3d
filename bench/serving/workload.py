"""The requests a latency cell scores: each its own user, history and candidates, drawn with a seed."""

from __future__ import annotations

import torch

from dien_core import VocabSizes
from dien_core.serving import Request

from ..models import REALISTIC_VOCAB


def random_requests(count: int, candidates: int, seq_len: int, seed: int = 0, vocab: VocabSizes = REALISTIC_VOCAB,
                    device: torch.device | str = "cpu", lengths: str = "full") -> list[Request]:  # fmt: skip
    """``count`` requests, ids uniform over each vocabulary (past padding and the unknown id).
    ``lengths="full"``: every history has ``seq_len`` steps; ``"mixed"``: uniform in 0..seq_len,
    right-padded to ``seq_len`` (one graph of the exported form serves all of them)."""
    if count < 1 or candidates < 1 or seq_len < 0:
        raise ValueError(f"requests need count >= 1, candidates >= 1 and seq_len >= 0, got {count}, {candidates}, {seq_len}")
    if lengths not in ("full", "mixed"):
        raise ValueError(f"unknown lengths {lengths!r}; allowed: full, mixed")
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        length = seq_len if lengths == "full" else int(torch.randint(0, seq_len + 1, (), generator=g))
        valid = torch.arange(seq_len) < length
        out.append(
            Request(
                user=torch.randint(2, vocab.users, (), generator=g),
                hist_item=torch.randint(2, vocab.items, (seq_len,), generator=g) * valid,
                hist_cate=torch.randint(2, vocab.cates, (seq_len,), generator=g) * valid,
                length=torch.tensor(length),
                item=torch.randint(2, vocab.items, (candidates,), generator=g),
                cate=torch.randint(2, vocab.cates, (candidates,), generator=g),
            ).to(device)
        )
    return out
