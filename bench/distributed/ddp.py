"""One cell's training data-parallel under torchrun: ``DistributedDataParallel``, gloo on CPU, nccl on GPU.

``torchrun --nproc-per-node N -m bench run ...`` starts N copies of ``bench run``; each is one rank.

- **Batches.** Every rank iterates the same global batches (the loader's seed, order and negatives are
  the single process's) and trains on its contiguous shard of each: rows ``[B r / N, B (r + 1) / N)``.
- **Gradients.** Each rank's loss is weighted by its share of the batch's rows (the BCE term) and of its
  valid auxiliary pairs (the auxiliary term), times N, so DDP's all-reduce mean is the gradient of the whole
  batch's mean loss: the single-process gradient, up to float summation order.
- **Evaluation.** Validation and test rows are split across ranks and the logits gathered, so every rank
  scores all rows; rank 0's validation AUC is broadcast, and early stopping is decided the same everywhere.
- **Writing.** Only rank 0 writes (``TorchrunCells.writes``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dien_core import Batch, Output, total_loss

from ..data import BatchLoader, Dataset, Split, load_dataset
from ..train import Local, predict


def bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous share of ``n`` rows (sizes differ by at most one)."""
    return n * rank // world, n * (rank + 1) // world


def slice_split(split: Split, lo: int, hi: int) -> Split:
    return replace(split, **{f.name: getattr(split, f.name)[lo:hi] for f in fields(split)})


def slice_batch(batch: Batch, lo: int, hi: int) -> Batch:
    return Batch(**{f.name: getattr(batch, f.name)[lo:hi] for f in fields(batch)})


def aux_pairs(lengths: torch.Tensor) -> torch.Tensor:
    """The auxiliary loss's valid pairs (``t + 1 < length``) in a batch, as ``dien_core.AuxiliaryLoss`` counts them."""
    return (lengths - 1).clamp_min(0).sum()


class DataParallel(Local):
    """``bench.train.train`` on one rank of a process group (see the module's docstring)."""

    def __init__(self, rank: int, world: int, device: torch.device) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        self.rank, self.world, self.device = rank, world, device
        self._weights: tuple[float, torch.Tensor] = (1.0, torch.ones(()))
        self._rows = 0

    def wrap(self, model: nn.Module) -> nn.Module:
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # Buffers (Dice's running statistics) are synchronised from rank 0 at the start and before every evaluation.
        return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)

    def batches(self, loader: BatchLoader) -> Iterator[Batch]:
        for batch in loader:
            yield self.shard(batch)

    def shard(self, batch: Batch) -> Batch:
        """This rank's rows of a global batch; it remembers their weights in the batch's mean loss."""
        size = batch.size
        lo, hi = bounds(size, self.rank, self.world)
        pairs = aux_pairs(batch.lengths)
        if hi > lo:
            part = slice_batch(batch, lo, hi)
            self._weights = ((hi - lo) / size, aux_pairs(part.lengths) / pairs.clamp_min(1))
        else:  # fewer rows than ranks: a stand-in row whose loss weighs 0, so every rank still joins the all-reduce
            part = slice_batch(batch, 0, 1)
            self._weights = (0.0, torch.zeros((), device=batch.lengths.device))
        self._rows = size
        return part

    def loss(self, output: Output, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, int]:
        row_weight, pair_weight = self._weights
        pair_weight = pair_weight.to(output.aux_loss.dtype)
        # DDP divides the summed gradients by the world size: times it here, the mean over ranks is the sum.
        loss = self.world * total_loss(output, batch.label, row_weight, pair_weight)
        return loss, (output.aux_loss * pair_weight).detach(), self._rows

    def epoch_sums(self, loss_sum: torch.Tensor, aux_sum: torch.Tensor) -> tuple[float, float]:
        sums = torch.stack([loss_sum / self.world, aux_sum])
        dist.all_reduce(sums)
        return float(sums[0]), float(sums[1])

    def predict(self, model: nn.Module, dataset: Dataset, split: Split, batch_size: int, device: torch.device) -> np.ndarray:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
        lo, hi = bounds(len(split), self.rank, self.world)
        parts: list[np.ndarray | None] = [None] * self.world
        dist.all_gather_object(parts, predict(model, dataset, slice_split(split, lo, hi), batch_size, device))
        return np.concatenate(parts)

    def agree(self, value: float) -> float:
        return self.broadcast(value)

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def load(self, config) -> Dataset:
        """Rank 0 builds (and caches) the data set first; the others then read the cache."""
        if self.rank == 0:
            dataset = load_dataset(config)
            dist.barrier()
            return dataset
        dist.barrier()
        return load_dataset(config)


class TorchrunCells:
    """``bench.run.runner.run_suite``'s ``execute`` on a torchrun rank: rank 0's cells, each trained data-parallel."""

    def __init__(self, parallel: DataParallel, backend: str) -> None:
        self.parallel = parallel
        self.writes = parallel.rank == 0
        self.metadata = {"execution": {"engine": "torchrun", "world_size": parallel.world, "backend": backend}}

    def __call__(self, suite, todo: list, device: torch.device, log):
        from ..run.runner import run_in_process

        todo = self.parallel.broadcast(todo)  # before rank 0 writes a row: every rank runs rank 0's list
        return run_in_process(suite, todo, device, log, parallel=self.parallel, load=self.parallel.load)


def torchrun_world() -> tuple[int, int, int] | None:
    """``(rank, world size, local rank)`` under torchrun with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def rank_device(text: str, local_rank: int) -> torch.device:
    """The device of one rank: ``cuda:LOCAL_RANK`` for ``cuda`` (or ``auto`` with GPUs), else the CPU."""
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if text not in ("auto", "cuda"):
        raise ValueError(f"under torchrun, --device takes auto, cpu or cuda (each rank uses cuda:LOCAL_RANK), got {text!r}")
    if not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU here")
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; lower --nproc-per-node")
    return torch.device("cuda", local_rank)


@contextmanager
def torchrun_group(device_text: str) -> Iterator[tuple[torch.device, TorchrunCells]]:
    """The process group of this torchrun job (gloo on CPU, nccl on GPU), destroyed on exit."""
    rank, world, local_rank = torchrun_world() or (0, 1, 0)
    device = rank_device(device_text, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    try:
        yield device, TorchrunCells(DataParallel(rank, world, device), backend)
    finally:
        dist.destroy_process_group()
