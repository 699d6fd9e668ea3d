"""Training and evaluation of one model: Adam, optional decay, early stopping on validation AUC."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from dien_core import Batch, Output, total_loss

from . import metrics
from .data import BatchLoader, DataConfig, Dataset, Split


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 256
    eval_batch_size: int = 2048
    lr: float = 1e-3
    lr_decay: float = 1.0  # multiplied into the learning rate after every epoch
    weight_decay: float = 0.0  # L2, through Adam
    patience: int = 2  # epochs without a better validation AUC before stopping
    min_delta: float = 0.0  # a validation AUC must beat the best by more than this to count as better
    bucket: bool = True  # batch rows of similar history length together
    grad_clip: float = 0.0  # 0: off

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size <= 0 or self.eval_batch_size <= 0 or self.patience <= 0:
            raise ValueError("epochs, batch_size, eval_batch_size and patience must be positive")
        if self.lr <= 0 or not 0 < self.lr_decay <= 1 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("lr must be > 0, lr_decay in (0, 1], weight_decay and grad_clip >= 0")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")


@dataclass(frozen=True)
class RunSpec:
    """One training run: ``train`` (how), ``seed`` (batch order and initialisation's caller), ``device``, the
    data's ``negatives`` (sampling of the auxiliary loss's negatives) and ``user_dropout``, and ``desc``
    (the progress bar's label)."""

    train: TrainConfig
    seed: int
    device: torch.device
    negatives: str = "uniform"
    user_dropout: float = 0.0
    desc: str = ""

    @classmethod
    def for_data(cls, train: TrainConfig, data: DataConfig, seed: int, device: torch.device, desc: str = "") -> RunSpec:
        """The run that ``data`` asks for: its negative sampling, its user dropout where the user feature is dropped out."""
        user_dropout = data.user_dropout if data.user_feature == "dropout" else 0.0
        return cls(train, seed, device, data.negative_sampling, user_dropout, desc)


@dataclass
class TrainResult:
    best_epoch: int
    epochs_run: int
    val_auc: float
    train_seconds: float
    samples_per_second: float
    curve: list[dict] = field(default_factory=list)  # one row per epoch: epoch, train_loss, aux_loss, val_auc
    stop_reason: str = "cap"  # "patience": early stopping fired; "cap": the epoch limit ended training


class Local:
    """How ``train`` runs in one process. ``bench/distributed/ddp.py``'s ``DataParallel`` runs the same
    loop on each rank of a torchrun job: its shard of every batch, gradients averaged over the ranks."""

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def batches(self, loader: BatchLoader):
        return loader

    def loss(self, output: Output, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The loss to backpropagate, the auxiliary loss for the curve, and the rows it covers."""
        return total_loss(output, batch.label), output.aux_loss.detach(), batch.size

    def epoch_sums(self, loss_sum: torch.Tensor, aux_sum: torch.Tensor) -> tuple[float, float]:
        return float(loss_sum), float(aux_sum)

    def predict(self, model: nn.Module, dataset: Dataset, split: Split, batch_size: int, device: torch.device) -> np.ndarray:
        return predict(model, dataset, split, batch_size, device)

    def agree(self, value: float) -> float:
        """One value for every process (a decision such as early stopping reads it)."""
        return value


LOCAL = Local()


def make_adam(model: nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for the device (the dense embedding
    tables make the optimizer step a large share of a CTR model's training step)."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, split: Split, batch_size: int, device: torch.device) -> np.ndarray:
    """Logits for every row of ``split``, in order."""
    model.eval()
    loader = BatchLoader(dataset, split, batch_size, negatives=None, device=device)
    return np.concatenate([model(b).logits.float().cpu().numpy() for b in loader]) if len(split) else np.zeros(0)


def evaluate(
    model: nn.Module, dataset: Dataset, split: Split, batch_size: int, device: torch.device, logits: np.ndarray | None = None
) -> dict[str, float]:
    """AUC, GAUC and logloss on ``split`` (from ``logits`` when they were already predicted)."""
    if logits is None:
        logits = predict(model, dataset, split, batch_size, device)
    return {
        "auc": metrics.auc(split.label, logits),
        "gauc": metrics.gauc(split.label, logits, split.group),
        "logloss": metrics.logloss(split.label, logits),
    }


def train(model: nn.Module, dataset: Dataset, spec: RunSpec, on_epoch=None, parallel: Local = LOCAL) -> TrainResult:
    """Train ``model`` in place as ``spec`` says; on return it holds the weights of its best validation epoch.

    ``on_epoch(epoch, val_auc)`` is called after each epoch (tuning reports and prunes there).
    ``parallel``: one process (``LOCAL``) or a rank of a data-parallel job (``bench.distributed.ddp``).
    """
    config, device, desc = spec.train, spec.device, spec.desc
    model.to(device)
    net = parallel.wrap(model)
    optimizer = make_adam(model, config.lr, config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    loader = BatchLoader(
        dataset,
        dataset.train,
        config.batch_size,
        shuffle=True,
        seed=spec.seed,
        bucket=config.bucket,
        negatives=spec.negatives,
        device=device,
        user_dropout=spec.user_dropout,
    )
    best_auc, best_epoch, best_state, stale, stop_reason = -1.0, 0, None, 0, "cap"
    curve, seconds, seen = [], 0.0, 0
    for epoch in range(1, config.epochs + 1):
        net.train()
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        aux_sum = torch.zeros((), device=device)
        batches = parallel.batches(loader)
        bar = tqdm(batches, total=len(loader), desc=f"{desc} epoch {epoch}/{config.epochs}", leave=False, disable=None, unit="batch")
        for batch in bar:
            optimizer.zero_grad(set_to_none=True)
            output = net(batch)
            loss, aux, rows = parallel.loss(output, batch)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            loss_sum += loss.detach()
            aux_sum += aux
            seen += rows
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        scheduler.step()
        valid_logits = parallel.predict(model, dataset, dataset.valid, config.eval_batch_size, device)
        val_auc = parallel.agree(metrics.auc(dataset.valid.label, valid_logits))
        loss_total, aux_total = parallel.epoch_sums(loss_sum, aux_sum)
        curve.append({"epoch": epoch, "train_loss": loss_total / len(loader), "aux_loss": aux_total / len(loader), "val_auc": val_auc})
        if on_epoch is not None:
            on_epoch(epoch, val_auc)
        if val_auc > best_auc + (config.min_delta if best_state is not None else 0.0):
            best_auc, best_epoch, stale = val_auc, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                stop_reason = "patience"
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(best_epoch, len(curve), best_auc, seconds, seen / seconds if seconds else 0.0, curve, stop_reason)
