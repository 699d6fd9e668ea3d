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

``mode = "order"`` keeps the process but takes away every signal except order and
recency (see ``SyntheticConfig``): popularity is flat, and every category is as
frequent as any other, so which items and categories a history holds says little
about the next click; only where each thread went *last* does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .protocol import Interactions

MODES = ("evolving", "order")


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the built-in data (README, "Data").

    ``mode``: None (or "evolving", which is stored as None so that existing configurations
    keep their hashes) is the default interest-evolution data; "order" is order-only data:

    - items are uniform within their category (``popularity_skew`` does not apply), and the
      successor table is ``successors`` permutations of the categories with no fixed point
      and no repeat per row (a Latin rectangle), so the transition matrix is doubly
      stochastic: started uniform, every category stays equally frequent at every step;
    - it needs ``interests >= 2`` interleaved threads and ``successors * interests <
      categories`` (else every category follows some thread and nothing is predictable);
    - the next click's category is the latest state of one thread (with probability
      ``1 - drift``) or one of that state's successors (``drift``). ``drift = 1`` (every
      step moves) removes the "this category is already in the history" cue as well;
    - histories that are long against ``categories / successors`` make nearly every
      category a successor of something in the history, so a uniform negative is as
      plausible as the clicked target to a model that ignores order.

    ``order_only(**overrides)`` gives the recommended order-only settings.
    """

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
    mode: str | None = None

    def __post_init__(self) -> None:
        if self.mode == "evolving":
            object.__setattr__(self, "mode", None)
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"unknown synthetic mode {self.mode!r}; allowed: {', '.join(MODES)}")
        if self.users < 3 or self.categories < 2 or self.items < self.categories:
            raise ValueError("synthetic data needs users >= 3, categories >= 2 and items >= categories")
        if not 2 <= self.min_len <= self.max_len:
            raise ValueError(f"synthetic lengths need 2 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        for name in ("drift", "noise"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"synthetic {name} must be in [0, 1], got {getattr(self, name)}")
        if self.interests < 1 or not 1 <= self.successors < self.categories:
            raise ValueError("synthetic data needs interests >= 1 and 1 <= successors < categories")
        if self.mode == "order":
            if self.interests < 2:
                raise ValueError(f"synthetic mode 'order' interleaves interests: it needs interests >= 2, got {self.interests}")
            if self.successors * self.interests >= self.categories:
                raise ValueError(
                    f"synthetic mode 'order' needs successors * interests < categories (else every category follows "
                    f"some thread), got {self.successors} * {self.interests} >= {self.categories}"
                )

    @property
    def kind(self) -> str:
        """The mode by name: "evolving" or "order"."""
        return self.mode or "evolving"

    @classmethod
    def order_only(cls, **overrides) -> SyntheticConfig:
        """Order-only data at the settings scripts/aux_study.py measured: every step moves
        (drift 1), no noise, 40 categories with 3 successors, histories of 30-50 clicks."""
        values = {"mode": "order", "drift": 1.0, "noise": 0.0, "min_len": 30, "max_len": 50, "popularity_skew": 0.0}
        return cls(**{**values, **overrides})


def generate(cfg: SyntheticConfig) -> Interactions:
    """All users at once, one vectorised step per time position."""
    if cfg.mode == "order":
        return _generate_order(cfg)
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
    return _flatten(items, lengths, per_cate)


def successor_table(categories: int, successors: int, rng: np.random.Generator) -> np.ndarray:
    """``(C, S)``: column k is a permutation of the categories, no row holds its own category or
    a repeat (a Latin rectangle without fixed points), so every category is the successor of
    exactly S categories and a uniform start stays uniform under the transitions."""
    C = categories
    table = np.empty((C, successors), dtype=np.int64)
    own = np.arange(C)
    for k in range(successors):
        perm = rng.permutation(C)
        for _ in range(100 * C):  # repair conflicts by swaps that leave both positions valid
            bad = (perm == own) | (table[:, :k] == perm[:, None]).any(axis=1)
            if not bad.any():
                break
            i = int(rng.choice(np.flatnonzero(bad)))
            js = rng.permutation(C)
            ok_i = (perm[js] != i) & ~(table[i, :k][None, :] == perm[js][:, None]).any(axis=1)
            ok_j = (perm[i] != js) & ~(table[js, :k] == perm[i]).any(axis=1)
            good = js[ok_i & ok_j & (js != i)]
            if len(good):
                j = good[0]
                perm[i], perm[j] = perm[j], perm[i]
            else:  # no valid swap partner: start this column again
                perm = rng.permutation(C)
        else:
            raise RuntimeError(f"no successor table found for {C} categories and {successors} successors")
        table[:, k] = perm
    return table


def _generate_order(cfg: SyntheticConfig) -> Interactions:
    """Order-only data (``mode = "order"``): flat popularity, doubly stochastic transitions."""
    paths = order_paths(cfg)
    return _flatten(paths.items, paths.lengths, cfg.items // cfg.categories)


@dataclass(frozen=True)
class OrderPaths:
    """What ``mode = "order"`` draws, before the rows are cut to their lengths (0-based ids):
    ``items (U, max_len)``, ``thread (U, max_len)`` (which interest acted at each step),
    ``noisy (U, max_len)`` (the click is a random item), ``lengths (U,)``, ``successors (C, S)``."""

    items: np.ndarray
    thread: np.ndarray
    noisy: np.ndarray
    lengths: np.ndarray
    successors: np.ndarray


def order_paths(cfg: SyntheticConfig) -> OrderPaths:
    """All users at once (``mode = "order"``), one vectorised step per time position."""
    rng = np.random.default_rng(cfg.seed)
    U, C, S, T = cfg.users, cfg.categories, cfg.successors, cfg.max_len
    per_cate = cfg.items // C
    successors = successor_table(C, S, rng)
    lengths = rng.integers(cfg.min_len, cfg.max_len + 1, size=U)
    state = rng.integers(0, C, size=(U, cfg.interests))
    thread = rng.integers(0, cfg.interests, size=(T, U))
    move = rng.random((T, U)) < cfg.drift
    pick = rng.integers(0, S, size=(T, U))
    rank = rng.integers(0, per_cate, size=(T, U))  # flat popularity: uniform within the category
    noisy = rng.random((T, U)) < cfg.noise
    random_item = rng.integers(0, per_cate * C, size=(T, U))
    rows = np.arange(U)
    items = np.empty((T, U), dtype=np.int64)
    for t in range(T):
        current = state[rows, thread[t]]
        cate = np.where(move[t], successors[current, pick[t]], current)
        state[rows, thread[t]] = np.where(noisy[t], current, cate)  # a random click moves no thread
        items[t] = np.where(noisy[t], random_item[t], cate * per_cate + rank[t])
    return OrderPaths(items.T.copy(), thread.T.copy(), noisy.T.copy(), lengths, successors)


def _flatten(items: np.ndarray, lengths: np.ndarray, per_cate: int) -> Interactions:
    """``(U, max_len)`` 0-based items, each row cut at its length -> 1-based ``Interactions``."""
    U, max_len = items.shape
    keep = np.arange(max_len)[None, :] < lengths[:, None]
    user = np.broadcast_to(np.arange(U)[:, None], keep.shape)[keep]
    item = items[keep]
    time = np.broadcast_to(np.arange(max_len)[None, :], keep.shape)[keep]
    return Interactions(user=user + 1, item=item + 1, cate=item // per_cate + 1, time=time)
