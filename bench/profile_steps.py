"""What a profile cell times: random batches of a given shape, and one forward or training step."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch

from dien_core import Batch, ModelConfig, VocabSizes, total_loss

from .models import build_model, config_for
from .train import make_adam

# Amazon Electronics as in the DIEN paper: 192,403 users, 63,001 goods, 801 categories (+ padding, unknown).
REALISTIC_VOCAB = VocabSizes(users=192_405, items=63_003, cates=803)
# The authors' shapes: embedding 18 per feature, attention 80-40, MLP 200-80, auxiliary MLP 100-50.
PAPER_SHAPES = ModelConfig(embedding_dim=18, attention_hidden=(80, 40), aux_hidden=(100, 50), mlp_hidden=(200, 80))


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
    name: str, mode: str, batch: Batch, device: torch.device, dtype: torch.dtype, base: ModelConfig = PAPER_SHAPES
) -> Callable[[], None]:
    """A closure running one forward (eval, no grad) or one training step (forward, loss, backward, Adam)."""
    torch.manual_seed(0)
    config = config_for(name, base)
    model = build_model(name, config, REALISTIC_VOCAB).to(device)
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
            loss = total_loss(output, batch.label, config.alpha)
        loss.backward()
        optimizer.step()

    return train_step
