"""What a profile cell times: random batches of a given shape, and one forward or training step."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace

import torch

from dien_core import Batch, ModelConfig, VocabSizes, total_loss

from ..models import PAPER_SHAPES, REALISTIC_VOCAB, build_model, config_for
from ..train import make_adam


def random_batch(batch: int, seq_len: int, lengths: str, vocab: VocabSizes, device: torch.device, seed: int = 0) -> Batch:
    """``lengths="full"``: every row at ``seq_len``; ``"mixed"``: uniform in 1..seq_len."""
    g = torch.Generator().manual_seed(seed)
    if lengths == "full":
        lens = torch.full((batch,), seq_len)
    else:
        lens = torch.randint(1, seq_len + 1, (batch,), generator=g)
    mask = torch.arange(seq_len)[None, :] < lens[:, None]

    def ids(high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(2, high, shape, generator=g)

    hist_item = ids(vocab.items, (batch, seq_len)) * mask
    neg_item = ids(vocab.items, (batch, seq_len))
    neg_item = torch.where(neg_item == hist_item, (neg_item - 1) % (vocab.items - 2) + 2, neg_item) * mask  # never the clicked one
    out = Batch(
        user=ids(vocab.users, (batch,)), item=ids(vocab.items, (batch,)), cate=ids(vocab.cates, (batch,)),
        hist_item=hist_item, hist_cate=ids(vocab.cates, (batch, seq_len)) * mask, lengths=lens,
        neg_item=neg_item, neg_cate=ids(vocab.cates, (batch, seq_len)) * mask,
        label=torch.randint(0, 2, (batch,), generator=g).float(),
    )  # fmt: skip
    return out.to(device)


def autocast(device: torch.device, dtype: torch.dtype):
    return torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()


def make_step(
    name: str, mode: str, batch: Batch, device: torch.device, dtype: torch.dtype, base: ModelConfig = PAPER_SHAPES,
    backend: str | None = None,
) -> Callable[[], None]:  # fmt: skip
    """A closure running one forward (eval, no grad) or one training step (forward, loss, backward, Adam);
    ``dtype`` bfloat16 runs it under autocast. ``backend`` replaces ``base.backend`` (``"torch"``: what
    the FLOP counter sees)."""
    torch.manual_seed(0)
    config = config_for(name, base if backend is None else replace(base, backend=backend))
    model = build_model(name, config, REALISTIC_VOCAB, device, autocast=dtype != torch.float32)
    if mode == "forward":
        model.eval()

        def forward() -> None:
            with torch.inference_mode(), autocast(device, dtype):
                model(batch)

        return forward
    model.train()
    optimizer = make_adam(model, lr=1e-3)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            output = model(batch)
            loss = total_loss(output, batch.label)
        loss.backward()
        optimizer.step()

    return train_step
