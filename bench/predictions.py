"""Each cell's test predictions, kept compactly beside ``runs.csv`` for the user-level bootstrap.

``predictions/<dataset>/<model>/seed-<k>.npz`` (``/`` in a row name becomes ``~``) holds
``label`` (int8), ``score`` (float32) and ``group`` (int32 user codes of that cell's split).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from . import results_io
from .data import Split
from .stats import Predictions

FOLDER = "predictions"


def path_of(out: Path, dataset: str, model: str, seed: int) -> Path:
    return out / FOLDER / dataset / model.replace("/", "~") / f"seed-{seed}.npz"


def save(out: Path, key: dict, split: Split, scores: np.ndarray) -> None:
    _, group = np.unique(split.group, return_inverse=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, label=split.label.astype(np.int8), score=np.asarray(scores, np.float32), group=group.astype(np.int32))
    path = path_of(out, key["dataset"], key["model"], int(key["seed"]))
    results_io.atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def load(out: Path, dataset: str, model: str, seed: int) -> Predictions | None:
    path = path_of(out, dataset, model, seed)
    if not path.is_file():
        return None
    with np.load(path) as z:
        return Predictions(label=z["label"].astype(np.float64), score=z["score"].astype(np.float64), group=z["group"])
