"""Random batches and tiny learnable problems for the tests."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from dien_core import Batch, VocabSizes

VOCAB = VocabSizes(users=20, items=60, cates=8)

# The C++ kernels need a compiler; where there is one, they must build (a failed build fails the build test).
CPP_OFF = os.environ.get("DIEN_CORE_CPP") == "0"
HAS_COMPILER = shutil.which("c++") is not None
needs_cpp = pytest.mark.skipif(
    CPP_OFF or not HAS_COMPILER,
    reason="DIEN_CORE_CPP=0" if CPP_OFF else "no C++ compiler on PATH: the C++ kernels cannot be built here",
)


def random_batch(B: int = 6, T: int = 7, lengths: list[int] | None = None, seed: int = 0, vocab: VocabSizes = VOCAB) -> Batch:
    """Right-padded batch with zeros after each row's length; ``lengths`` defaults to random 0..T."""
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths) if lengths is not None else torch.randint(0, T + 1, (B,), generator=g)
    B = lens.shape[0]
    mask = torch.arange(T).unsqueeze(0) < lens.unsqueeze(1)

    def ids(high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(1, high, shape, generator=g)

    return Batch(
        user=ids(vocab.users, (B,)),
        item=ids(vocab.items, (B,)),
        cate=ids(vocab.cates, (B,)),
        hist_item=ids(vocab.items, (B, T)) * mask,
        hist_cate=ids(vocab.cates, (B, T)) * mask,
        lengths=lens,
        neg_item=ids(vocab.items, (B, T)) * mask,
        neg_cate=ids(vocab.cates, (B, T)) * mask,
        label=torch.randint(0, 2, (B,), generator=g).float(),
    )


def repad(batch: Batch, T: int, fill: int = 0, seed: int = 1) -> Batch:
    """The same rows padded to ``T`` steps; ``fill=-1`` puts random garbage ids in the padding."""
    g = torch.Generator().manual_seed(seed)
    B, T0 = batch.hist_item.shape
    mask = torch.arange(T).unsqueeze(0) < batch.lengths.unsqueeze(1)

    def pad(x: torch.Tensor, high: int) -> torch.Tensor:
        out = torch.zeros(B, T, dtype=x.dtype)
        out[:, : min(T, T0)] = x[:, :T]
        if fill < 0:
            out = torch.where(mask, out, torch.randint(1, high, (B, T), generator=g))
        return out

    return Batch(
        user=batch.user,
        item=batch.item,
        cate=batch.cate,
        hist_item=pad(batch.hist_item, VOCAB.items),
        hist_cate=pad(batch.hist_cate, VOCAB.cates),
        lengths=batch.lengths,
        neg_item=pad(batch.neg_item, VOCAB.items),
        neg_cate=pad(batch.neg_cate, VOCAB.cates),
        label=batch.label,
    )


def recency_problem(n: int, T: int, seed: int, vocab: VocabSizes = VOCAB) -> Batch:
    """Label 1 when the target's category is among the last 3 behaviours: needs order and the target."""
    batch = random_batch(
        n, T, lengths=torch.randint(3, T + 1, (n,), generator=torch.Generator().manual_seed(seed)).tolist(), seed=seed, vocab=vocab
    )
    idx = (batch.lengths.unsqueeze(1) - torch.arange(1, 4)).clamp_min(0)
    recent = batch.hist_cate.gather(1, idx)
    g = torch.Generator().manual_seed(seed + 7)
    # Half the targets are drawn from the recent categories so both labels are common.
    pick = recent[torch.arange(n), torch.randint(0, 3, (n,), generator=g)]
    cate = torch.where(torch.rand(n, generator=g) < 0.5, pick, batch.cate)
    label = (recent == cate.unsqueeze(1)).any(dim=1).float()
    return Batch(**{**batch.__dict__, "cate": cate, "label": label})
