"""Built-in data: users whose interests evolve along a category-transition structure.

Each user follows ``interests`` parallel threads. A thread sits in a category;
at each step one thread acts: with probability ``drift`` it first moves to a
successor of its category (each category has a few likely successors, fixed
per seed), then the user clicks an item of the thread's category (popular items
more often). With probability ``noise`` the click is instead a random item.

So the next click is best predicted from the *latest* state of the thread that
matches the target: order and recency matter, the target decides which part of
the history is relevant, and categories that never appeared yet become likely
through the transition structure. Sum pooling sees none of this, DIN sees which
categories are present, DIEN can follow where they are going.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .protocol import Interactions


@dataclass(frozen=True)
class SyntheticConfig:
    seed: int = 0
    users: int = 10_000
    items: int = 2_000
    categories: int = 40
    min_len: int = 10
    max_len: int = 50
    drift: float = 0.5
    interests: int = 2
    successors: int = 3
    noise: float = 0.1
    popularity_skew: float = 1.0

    def __post_init__(self) -> None:
        if self.users < 3 or self.categories < 2 or self.items < self.categories:
            raise ValueError("synthetic data needs users >= 3, categories >= 2 and items >= categories")
        if not 2 <= self.min_len <= self.max_len:
            raise ValueError(f"synthetic lengths need 2 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        for name in ("drift", "noise"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"synthetic {name} must be in [0, 1], got {getattr(self, name)}")
        if self.interests < 1 or not 1 <= self.successors < self.categories:
            raise ValueError("synthetic data needs interests >= 1 and 1 <= successors < categories")


def generate(cfg: SyntheticConfig) -> Interactions:
    """All users at once, one vectorised step per time position."""
    rng = np.random.default_rng(cfg.seed)
    U, C = cfg.users, cfg.categories
    per_cate = cfg.items // C
    successors = np.stack([rng.choice(np.delete(np.arange(C), c), cfg.successors, replace=False) for c in range(C)])
    rank_weight = 1.0 / np.arange(1, per_cate + 1) ** cfg.popularity_skew
    rank_cdf = np.cumsum(rank_weight) / rank_weight.sum()

    lengths = rng.integers(cfg.min_len, cfg.max_len + 1, size=U)
    state = rng.integers(0, C, size=(U, cfg.interests))
    rows = np.arange(U)
    items = np.empty((U, cfg.max_len), dtype=np.int64)
    for t in range(cfg.max_len):
        thread = rng.integers(0, cfg.interests, size=U)
        move = rng.random(U) < cfg.drift
        nxt = successors[state[rows, thread], rng.integers(0, cfg.successors, size=U)]
        state[rows, thread] = np.where(move, nxt, state[rows, thread])
        cate = state[rows, thread]
        rank = np.minimum(np.searchsorted(rank_cdf, rng.random(U)), per_cate - 1)
        item = cate * per_cate + rank
        noisy = rng.random(U) < cfg.noise
        items[:, t] = np.where(noisy, rng.integers(0, per_cate * C, size=U), item)
    keep = np.arange(cfg.max_len)[None, :] < lengths[:, None]
    user = np.broadcast_to(rows[:, None], keep.shape)[keep]
    item = items[keep]
    time = np.broadcast_to(np.arange(cfg.max_len)[None, :], keep.shape)[keep]
    return Interactions(user=user + 1, item=item + 1, cate=item // per_cate + 1, time=time)
