"""Each cell's test predictions, kept compactly beside ``runs.csv`` for the user-level bootstrap.

``predictions/<dataset>/<model>/seed-<k>.npz`` (``/`` in a row name becomes ``~``) holds
``label`` (int8), ``score`` (float32) and ``group`` (int32 user codes of that cell's split).
Each ``<model>`` folder has a ``metadata.json`` (``describe``): per seed, the commit, device,
threads and config hash of the cell that wrote it, as its row in ``runs.csv`` says.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from .. import results_io
from ..data import Split
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


def describe(out: Path, runs: pd.DataFrame) -> None:
    """Write each predictions folder's ``metadata.json`` from the folder's ``runs`` (all of ``runs.csv``):
    which cell (commit, device, threads, config hash) wrote each seed's file; the run's own
    ``metadata.json`` two folders up holds the versions and the full config."""
    if runs.empty:
        return
    for (dataset, model), rows in runs.groupby(["dataset", "model"], sort=True):
        folder = path_of(out, dataset, model, 0).parent
        if not folder.is_dir():
            continue
        cells = [{"seed": int(r.seed), "commit": r.commit, "device": r.device, "threads": int(r.threads), "config_hash": r.config_hash}
                 for r in rows.sort_values("seed").itertuples() if path_of(out, dataset, model, int(r.seed)).is_file()]  # fmt: skip
        results_io.write_json(folder / "metadata.json", {
            "dataset": dataset, "model": model, "files": "seed-<k>.npz: label, score, group of that seed's test rows",
            "run_metadata": "../../../metadata.json", "cells": cells,
        })  # fmt: skip
