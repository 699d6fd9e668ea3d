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


def loop_inputs(G: int, T: int, B: int, H: int, seed: int):
    """float64 inputs of the recurrence loops' contract (``fused.PythonLoops``): ``gi, c0, c1, w_hh, b_ih, b_hh``."""
    g = torch.Generator().manual_seed(seed)
    gi = torch.randn(T, B, G * H, generator=g, dtype=torch.float64) * 2
    gi[:, :3] *= 10  # saturated gates in a few rows
    c0 = torch.rand(T, B, 1, generator=g, dtype=torch.float64)
    c0[:, 3] = 0  # a row of length 0
    c0[T // 2 :, 4] = 0  # a row that ends half way
    c1 = -c0 if G == 3 else None
    w_hh = torch.randn(G * H, H, generator=g, dtype=torch.float64) / H**0.5
    b_ih, b_hh = (torch.randn(G * H, generator=g, dtype=torch.float64) * 0.1 for _ in range(2))
    return gi, c0, c1, w_hh, b_ih, b_hh


def assert_loops_match_python(loops, G: int, H: int, device: str = "cpu", T: int = 7, B: int = 37) -> None:
    """``loops`` (float32 on ``device``) against ``PythonLoops`` in float64 on every output of the
    contract (forward with and without saving, backward), on ``loop_inputs``."""
    from dien_core.kernels.fused import PythonLoops

    def on_device(*tensors):
        return [t.float().to(device) if t is not None else None for t in tensors]

    inputs = loop_inputs(G, T, B, H, seed=G + H)
    gi, c0, c1, w_hh, b_ih, b_hh = inputs
    want = PythonLoops.forward_loop(*inputs, True)
    got = loops.forward_loop(*on_device(*inputs), True)
    for name, a, b in zip(("hs", "gates", "n_all", "gh_n"), want, got, strict=True):
        assert a.shape == b.shape and (a - b.double().cpu()).abs().max() < 1e-5, name
    d_hs = torch.randn(T, B, H, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    want_grads = PythonLoops.backward(d_hs, *want[1:], want[0], c0, c1, w_hh)
    got_grads = loops.backward(*on_device(d_hs), *got[1:], got[0], *on_device(c0, c1, w_hh))
    for name, a, b in zip(("dgi", "dgh_n", "dc0", "dc1", "d_b_ih", "d_b_hh"), want_grads, got_grads, strict=True):
        if a is None:
            assert b is None, name
            continue
        assert a.shape == b.shape and (a - b.double().cpu()).abs().max() < 1e-4 * max(1, a.abs().max()), name
    serving = loops.forward_loop(*on_device(*inputs), False)
    assert torch.equal(serving[0], got[0]) and all(t.numel() == 0 for t in serving[1:])
    # stacked requests: R = 3 rows of gi (unsaturated ones), each of the B rows reading its request's (rows)
    rows = torch.randint(0, 3, (B,), generator=torch.Generator().manual_seed(2))
    stacked = gi[:, 5:8]
    want_rows = PythonLoops.forward_loop(stacked.index_select(1, rows), c0, c1, w_hh, b_ih, b_hh, False)[0]  # float64
    gi_d, c0_d, c1_d, w_d, bi_d, bh_d = on_device(stacked, c0, c1, w_hh, b_ih, b_hh)
    got_rows = loops.forward_loop(gi_d, c0_d, c1_d, w_d, bi_d, bh_d, False, rows.to(device))[0]
    assert got_rows.shape == (T, B, H) and (got_rows.double().cpu() - want_rows).abs().max() < 1e-5
    gathered = loops.forward_loop(gi_d.index_select(1, rows.to(device)), c0_d, c1_d, w_d, bi_d, bh_d, False)[0]
    assert torch.equal(got_rows, gathered)  # in place or gathered: the same arithmetic
