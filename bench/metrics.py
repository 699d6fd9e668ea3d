"""AUC, GAUC, logloss (sklearn) and RelaImpr."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Per-user AUC weighted by the user's impressions (DIN paper); users with one class are skipped."""
    frame = pd.DataFrame({"label": labels, "score": scores, "group": groups})
    total, weight = 0.0, 0
    for _, g in frame.groupby("group", sort=False):
        if g["label"].nunique() == 2:
            total += roc_auc_score(g["label"], g["score"]) * len(g)
            weight += len(g)
    return total / weight if weight else float("nan")


def logloss(labels: np.ndarray, logits: np.ndarray) -> float:
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return float(log_loss(labels, probs, labels=[0, 1]))


def rela_impr(model_auc: float, base_auc: float) -> float:
    """RelaImpr (DIN paper), in percent: ((AUC(model) - 0.5) / (AUC(base) - 0.5) - 1) * 100; NaN when the
    base is at or below chance (the ratio then says nothing)."""
    if not base_auc > 0.5:
        return float("nan")  # a baseline at or below chance has no improvement to be relative to
    return ((model_auc - 0.5) / (base_auc - 0.5) - 1.0) * 100.0
