"""The order-only synthetic data (``SyntheticConfig(mode="order")``), and the default mode left as it was."""

import hashlib
import time

import numpy as np
import pytest

from bench.config_io import to_dict
from bench.data.synthetic import SyntheticConfig, generate, order_paths, successor_table

ORDER = SyntheticConfig.order_only(users=3000, items=400, categories=20, successors=2, min_len=20, max_len=40)


def digest(cfg: SyntheticConfig) -> str:
    inter = generate(cfg)
    h = hashlib.sha256()
    for a in (inter.user, inter.item, inter.cate, inter.time):
        a = np.ascontiguousarray(a, dtype=np.int64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def generate_before_order_mode(cfg: SyntheticConfig):
    """``generate`` as it was before the order mode existed (commit 8c7d305), the default mode's reference."""
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
    time_ = np.broadcast_to(np.arange(cfg.max_len)[None, :], keep.shape)[keep]
    return user + 1, item + 1, item // per_cate + 1, time_


# ------------------------------------------------------------------------------ the default mode


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (SyntheticConfig(users=200, seed=3), "f92657eb1149f58875202b63dedc8321b0dfc847b14dbc93eafe61e4ba477578"),
        (
            SyntheticConfig(
                users=150, items=300, categories=12, min_len=5, max_len=20, drift=0.3, interests=3, successors=2, noise=0.2,
                popularity_skew=0.5, seed=7,
            ),
            "e1d8f08129030948692d86af3fab614007d6d0d9fa6d92cb2f1c738ce074a940",
        ),
    ],
)  # fmt: skip
def test_default_mode_output_is_unchanged(cfg, expected):
    """Checksums computed with the generator before the order mode was added."""
    assert digest(cfg) == expected
    inter = generate(cfg)
    for got, want in zip((inter.user, inter.item, inter.cate, inter.time), generate_before_order_mode(cfg)):
        assert np.array_equal(got, want)


def test_default_mode_keeps_config_hashes():
    """``mode`` is stored as None for the default data, and None is left out of the dicts that
    suites, caches and results hash, so existing configurations keep their hashes."""
    assert SyntheticConfig(mode="evolving") == SyntheticConfig()
    assert SyntheticConfig().mode is None and SyntheticConfig().kind == "evolving"
    assert "mode" not in to_dict(SyntheticConfig())
    assert to_dict(SyntheticConfig(mode="order"))["mode"] == "order"


# ------------------------------------------------------------------------------ the order mode


def test_order_bad_config():
    with pytest.raises(ValueError, match="unknown synthetic mode 'orderly'.*evolving, order"):
        SyntheticConfig(mode="orderly")
    with pytest.raises(ValueError, match="interests >= 2"):
        SyntheticConfig(mode="order", interests=1)
    with pytest.raises(ValueError, match="successors \\* interests < categories"):
        SyntheticConfig(mode="order", categories=10, successors=3, interests=4)
    with pytest.raises(ValueError, match="got 5 \\* 2 >= 10"):
        SyntheticConfig(mode="order", categories=10, successors=5, interests=2)
    with pytest.raises(ValueError, match="drift"):
        SyntheticConfig.order_only(drift=2.0)
    SyntheticConfig(mode="evolving", interests=1)  # the default mode keeps its own rules


def test_order_is_deterministic_by_seed():
    a, b = generate(ORDER), generate(ORDER)
    c = generate(SyntheticConfig.order_only(**{**ORDER.__dict__, "seed": 1}))
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("user", "item", "cate", "time"))
    assert not np.array_equal(a.item, c.item)
    assert a.item.min() >= 1 and a.item.max() <= 400 and set(np.unique(a.cate)) == set(range(1, 21))
    assert np.array_equal(a.cate, (a.item - 1) // 20 + 1)


@pytest.mark.parametrize("C, S", [(4, 2), (7, 3), (20, 2), (40, 3), (40, 20), (200, 10)])
def test_successor_table_is_a_latin_rectangle_without_fixed_points(C, S):
    for seed in range(5):
        table = successor_table(C, S, np.random.default_rng(seed))
        assert table.shape == (C, S)
        assert all(np.array_equal(np.sort(table[:, k]), np.arange(C)) for k in range(S))  # every column a permutation
        assert (table != np.arange(C)[:, None]).all()  # no category follows itself
        assert all(len(set(row)) == S for row in table)  # S distinct successors


def category_spread(inter, categories: int) -> float:
    counts = np.bincount(inter.cate, minlength=categories + 1)[1:]
    return float(np.abs(counts / counts.mean() - 1).max())


def item_spread(inter, items: int, categories: int) -> float:
    """Largest relative deviation of an item's count from its category's mean item count."""
    per = items // categories
    counts = np.bincount(inter.item - 1, minlength=per * categories)[: per * categories].reshape(categories, per)
    return float(np.abs(counts / counts.mean(axis=1, keepdims=True) - 1).max())


def test_order_popularity_is_flat():
    """Items uniform within their category, categories equally frequent; the same checks fail on
    the default mode, whose successor table is not doubly stochastic and whose items are skewed."""
    inter = generate(ORDER)  # ~90,000 clicks: ~4,500 per category, ~225 per item
    assert category_spread(inter, 20) < 0.08
    assert item_spread(inter, 400, 20) < 0.35
    evolving = SyntheticConfig(**{**ORDER.__dict__, "mode": None, "popularity_skew": 0.0})
    assert category_spread(generate(evolving), 20) > 0.15
    assert item_spread(generate(SyntheticConfig(**{**ORDER.__dict__, "mode": None, "popularity_skew": 1.0})), 400, 20) > 1.0


def latest_states(paths, categories_per_item: int):
    """Per user and step, the category of each thread's latest (not random) click before that step (-1: none yet)."""
    U, T = paths.items.shape
    cate = paths.items // categories_per_item
    interests = int(paths.thread.max()) + 1
    latest = np.full((U, T, interests), -1)
    state = np.full((U, interests), -1)
    rows = np.arange(U)
    for t in range(T):
        latest[:, t] = state
        acted = ~paths.noisy[:, t]  # a random click moves no thread
        state[rows[acted], paths.thread[acted, t]] = cate[acted, t]
    return cate, latest


@pytest.mark.parametrize("drift", [1.0, 0.6])
def test_order_click_follows_the_latest_state_of_its_thread(drift):
    cfg = SyntheticConfig.order_only(**{**ORDER.__dict__, "users": 500, "drift": drift, "noise": 0.2})
    paths = order_paths(cfg)
    per = cfg.items // cfg.categories
    cate, latest = latest_states(paths, per)
    rows, steps = np.nonzero(~paths.noisy)
    prev = latest[rows, steps, paths.thread[rows, steps]]
    seen = prev >= 0  # the thread acted before
    c, p = cate[rows, steps][seen], prev[seen]
    follows = (paths.successors[p] == c[:, None]).any(axis=1)
    assert (follows | (c == p)).all()
    if drift == 1.0:
        assert follows.all()  # every step moves
    else:
        assert 0.3 < (c == p).mean() < 0.5  # stays ~ 1 - drift
    # the protocol's target (each user's last click) is a successor of / equal to some thread's latest state
    last = paths.lengths - 1
    target, before = cate[np.arange(cfg.users), last], latest[np.arange(cfg.users), last]
    plausible = (paths.successors[before.clip(0)] == target[:, None, None]).any(axis=2) | (before == target[:, None])
    clean = ~paths.noisy[np.arange(cfg.users), last] & (before >= 0).all(axis=1)
    assert plausible[clean].any(axis=1).all()
    # generate() is order_paths() cut to the lengths
    inter = generate(cfg)
    keep = np.arange(cfg.max_len)[None, :] < paths.lengths[:, None]
    assert np.array_equal(inter.item, paths.items[keep] + 1)


def test_order_only_order_carries_the_signal():
    """With the true successor table: an order-free score (how many history clicks the target's
    category can follow) stays low, the same score weighted by recency goes high."""
    cfg = SyntheticConfig.order_only(users=3000)
    paths = order_paths(cfg)
    per = cfg.items // cfg.categories
    cate = paths.items // per
    U = cfg.users
    last = paths.lengths - 1
    pos = cate[np.arange(U), last]
    neg = np.random.default_rng(0).integers(0, cfg.categories, size=U)  # flat popularity: a uniform negative
    hist_mask = np.arange(cfg.max_len)[None, :] < last[:, None]
    age = (last[:, None] - 1 - np.arange(cfg.max_len)[None, :]).clip(0)

    def scores(target, weight):
        leads = (paths.successors[cate] == target[:, None, None]).any(axis=2) & hist_mask  # (U, T)
        return (leads * weight).sum(axis=1)

    def auc(weight):
        s = np.r_[scores(pos, weight), scores(neg, weight)] + np.random.default_rng(1).random(2 * U) * 1e-6
        y = np.r_[np.ones(U), np.zeros(U)]
        ranks = s.argsort().argsort() + 1
        return (ranks[y == 1].sum() - U * (U + 1) / 2) / (U * U)

    present = (cate == neg[:, None]) & hist_mask
    assert 0.4 < np.r_[present.any(axis=1)].mean() / np.r_[((cate == pos[:, None]) & hist_mask).any(axis=1)].mean() < 1.1
    assert auc(1.0) < 0.7  # order-free
    assert auc(0.6**age) > 0.85  # recency


def test_order_is_fast():
    cfg = SyntheticConfig.order_only(users=10_000)
    generate(SyntheticConfig.order_only(users=10))  # warm-up
    start = time.perf_counter()
    inter = generate(cfg)
    assert time.perf_counter() - start < 2.0
    assert len(inter.item) >= 10_000 * 30
