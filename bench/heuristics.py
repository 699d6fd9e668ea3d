"""Non-learned rows of every AUC table: what a score without training reaches on the same rows.

- ``popularity``: the target item's training click count (as log(1 + count)).
- ``recent-category``: a recency-weighted match of the target's category in the history
  (each step weighs ``RECENCY_DECAY ** age``, age 0 for the latest behaviour), plus 1 when the
  item itself is in the history.

A learned model that does not beat them has learned nothing the data's surface does not give.
"""

from __future__ import annotations

import numpy as np

from .data import Dataset, Split

HEURISTICS: tuple[str, ...] = ("popularity", "recent-category")
RECENCY_DECAY = 0.8


def is_heuristic(name: str) -> bool:
    return name in HEURISTICS


def scores(name: str, dataset: Dataset, split: Split) -> np.ndarray:
    """One score per row of ``split`` (higher: more likely clicked)."""
    if name == "popularity":
        return np.log1p(dataset.item_count[split.item].astype(np.float64))
    if name == "recent-category":
        return recent_category(dataset, split)
    raise ValueError(f"unknown non-learned score {name!r}; known: {', '.join(HEURISTICS)}")


def recent_category(dataset: Dataset, split: Split, chunk: int = 65536) -> np.ndarray:
    out = np.empty(len(split), dtype=np.float64)
    for lo in range(0, len(split), chunk):
        rows = np.arange(lo, min(lo + chunk, len(split)))
        lengths = split.hist_len[rows]
        T = int(lengths.max()) if len(rows) else 0
        steps = np.arange(T)[None, :]
        valid = steps < lengths[:, None]
        idx = np.where(valid, split.hist_start[rows, None] + steps, 0)
        age = lengths[:, None] - 1 - steps  # 0 at the latest behaviour
        weight = np.where(valid, RECENCY_DECAY ** np.maximum(age, 0), 0.0)
        same_cate = dataset.flat_cate[idx] == split.cate[rows, None]
        known = split.item[rows, None] > 1  # an unknown target matches nothing
        seen_item = ((dataset.flat_item[idx] == split.item[rows, None]) & valid & known).any(axis=1)
        out[rows] = (weight * same_cate).sum(axis=1) + seen_item
    return out
