"""What DDP all-reduces per step: the embedding tables' dense gradients against the rest of the model's.

``python -m bench.distributed.grad_cost --model dien-augru+aux --world 2`` spawns ``--world`` gloo processes on
this machine. Each builds the model at the paper's shapes with Amazon Electronics vocabularies (as ``bench
profile`` does), runs one training step on its own random batch, and then times, over ``--repeats``:

- ``all_reduce`` of the embedding tables' gradients, flattened (what DDP sends for them: every row, touched or not);
- ``all_reduce`` of every other gradient, flattened;
- ``all_gather`` of only the embedding rows the batch touched, with their row ids (what sparse gradients would send);
- the training step itself (forward, loss, backward), for scale.

Rank 0 prints a table and, with ``--out``, writes it as JSON. DDP itself reduces in ~25 MB buckets, overlapped
with the backward; one flat tensor per group is that traffic without the overlap. docs/distributed.md reads it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dien_core import VocabSizes, total_loss

from ..models import PAPER_SHAPES, REALISTIC_VOCAB, build_model, check_model_name
from ..profile.steps import random_batch


def split_gradients(model: nn.Module) -> tuple[list[tuple[str, torch.Tensor]], list[torch.Tensor]]:
    """``(name, grad)`` of each embedding table, and the other parameters' gradients."""
    tables = {id(m.weight): name for name, m in model.named_modules() if isinstance(m, nn.Embedding)}
    embedding, other = [], []
    for p in model.parameters():
        if p.grad is None:
            continue
        if id(p) in tables:
            embedding.append((tables[id(p)], p.grad))
        else:
            other.append(p.grad)
    return embedding, other


def touched_rows(grad: torch.Tensor) -> torch.Tensor:
    return grad.abs().sum(dim=1).nonzero().flatten()


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` (after one warm-up), every rank starting together."""
    fn()
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(rank: int, world: int, args: argparse.Namespace, store: str) -> None:
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    vocab = VocabSizes(*args.vocab)
    torch.manual_seed(0)
    model = build_model(args.model, PAPER_SHAPES, vocab, torch.device("cpu"))
    batch = random_batch(args.batch_size, args.seq_len, "mixed", vocab, torch.device("cpu"), seed=rank)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        total_loss(model(batch), batch.label).backward()

    step_seconds = timed(step, args.repeats)
    embedding, other = split_gradients(model)
    flat_embedding = torch.cat([g.flatten() for _, g in embedding])
    flat_other = torch.cat([g.flatten() for g in other])
    rows = [(name, g, touched_rows(g)) for name, g in embedding]
    # the touched rows and their ids (as one float column: the same traffic, give or take 4 bytes a row)
    sparse = torch.cat([torch.cat([g[r], r.unsqueeze(1).to(g.dtype)], dim=1).flatten() for _, g, r in rows])
    length = torch.tensor([sparse.numel()])
    dist.all_reduce(length, op=dist.ReduceOp.MAX)
    padded = torch.zeros(int(length)).index_copy_(0, torch.arange(sparse.numel()), sparse)
    gathered = [torch.empty_like(padded) for _ in range(world)]
    result = {
        "model": args.model, "world": world, "backend": "gloo", "batch_size": args.batch_size, "seq_len": args.seq_len,
        "vocab": list(args.vocab), "threads": args.threads, "repeats": args.repeats,
        "embedding_bytes": flat_embedding.numel() * flat_embedding.element_size(),
        "other_bytes": flat_other.numel() * flat_other.element_size(),
        "tables": {name: {"rows": g.shape[0], "dim": g.shape[1], "touched_rows": int(r.numel())} for name, g, r in rows},
        "sparse_bytes": sum(int(r.numel()) * (g.shape[1] * 4 + 8) for _, g, r in rows),  # float32 rows, int64 ids
        "step_seconds": step_seconds,
        "embedding_allreduce_seconds": timed(lambda: dist.all_reduce(flat_embedding.clone()), args.repeats),
        "other_allreduce_seconds": timed(lambda: dist.all_reduce(flat_other.clone()), args.repeats),
        "sparse_allgather_seconds": timed(lambda: dist.all_gather(gathered, padded), args.repeats),
    }  # fmt: skip
    if rank == 0:
        print(table(result))
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    dist.destroy_process_group()


def table(r: dict) -> str:
    mb = 1e6
    lines = [
        f"{r['model']}, batch {r['batch_size']} x {r['seq_len']}, vocab {r['vocab']}, {r['world']} gloo ranks: one step "
        f"(forward + backward) {r['step_seconds'] * 1e3:.1f} ms",
        "| gradients | MB per step | all-reduce / all-gather ms |",
        "|---|---|---|",
        f"| embedding tables, dense (what DDP sends) | {r['embedding_bytes'] / mb:.2f} | {r['embedding_allreduce_seconds'] * 1e3:.2f} |",
        f"| the rest of the model | {r['other_bytes'] / mb:.2f} | {r['other_allreduce_seconds'] * 1e3:.2f} |",
        f"| embedding rows touched, with ids (sparse) | {r['sparse_bytes'] / mb:.2f} | {r['sparse_allgather_seconds'] * 1e3:.2f} |",
        "touched rows: " + ", ".join(f"{n} {t['touched_rows']:,}/{t['rows']:,}" for n, t in r["tables"].items()),
    ]
    return "\n".join(lines)


def vocab_sizes(text: str) -> tuple[int, int, int]:
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) != 3 or min(sizes) < 4:
        raise argparse.ArgumentTypeError(f"--vocab takes USERS,ITEMS,CATEGORIES, each >= 4, got {text!r}")
    return sizes  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.distributed.grad_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="dien-augru+aux", help="model name (default dien-augru+aux)")
    p.add_argument("--world", type=int, default=2, help="gloo processes on this machine (default 2)")
    p.add_argument("--batch-size", type=int, default=1024, help="rows per rank (default 1024)")
    p.add_argument("--seq-len", type=int, default=100, help="history length, mixed lengths up to it (default 100)")
    default_vocab = f"{REALISTIC_VOCAB.users},{REALISTIC_VOCAB.items},{REALISTIC_VOCAB.cates}"
    p.add_argument("--vocab", type=vocab_sizes, default=vocab_sizes(default_vocab), help=f"USERS,ITEMS,CATEGORIES ({default_vocab})")
    p.add_argument("--repeats", type=int, default=20, help="timed repeats of each operation (default 20)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--out", help="write the measurements here as JSON")
    args = p.parse_args(argv)
    try:
        check_model_name(args.model)
        if min(args.world, args.batch_size, args.seq_len, args.repeats, args.threads) < 1:
            raise ValueError("--world, --batch-size, --seq-len, --repeats and --threads must be at least 1")
    except ValueError as err:
        p.error(str(err))
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(measure, args=(args.world, args, str(Path(tmp) / "store")), nprocs=args.world, join=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
