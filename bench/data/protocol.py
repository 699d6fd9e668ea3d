"""The paper's sampling protocol: time-ordered behaviours -> (history, clicked target, paired negative).

Users are split into train / validation / test. A training user gives several
targets (the last positions of the sequence, or every position with
``targets_per_user = "all"``), a validation or test user its last behaviour. Each
clicked target is paired with a negative with the same history:

- ``"popularity"`` (the default, as the authors' preparation does): an item drawn by its
  training click count, excluding only the positive. The clicked item is then no more
  popular than its negative on average, so popularity alone does not rank them.
- ``"uniform"``: an item drawn uniformly that the user never clicked. Popular items are
  then usually the positive, and item popularity alone scores a high AUC.

Vocabularies are built on train.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dien_core import VocabSizes

from .dataset import UNKNOWN, Dataset, Split, Vocabulary, contains, sorted_unique


@dataclass(frozen=True)
class Interactions:
    """``M`` behaviours in file order; raw ids (ints or strings), ``time (M,)`` numeric."""

    user: np.ndarray
    item: np.ndarray
    cate: np.ndarray
    time: np.ndarray


@dataclass(frozen=True)
class ProtocolOptions:
    maxlen: int
    targets_per_user: int | str  # a count, or "all": every position with min_history before it
    valid_fraction: float
    test_fraction: float
    seed: int
    min_history: int = 1
    target_negatives: str = "popularity"


def build_dataset(name: str, inter: Interactions, opts: ProtocolOptions) -> Dataset:
    users = sorted_unique(inter.user)
    user_code = np.searchsorted(users, inter.user)
    order = np.lexsort((np.arange(len(user_code)), inter.time, user_code))  # (user, time, file order)
    user_code, items, cates = user_code[order], inter.item[order], inter.cate[order]
    counts = np.bincount(user_code, minlength=len(users))
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])

    # one stream for the split and one per split's negatives, so that a setting of one split
    # (``targets_per_user``) leaves the other splits' rows and negatives as they were
    split_seq, *negative_seqs = np.random.SeedSequence(opts.seed).spawn(4)
    perm = np.random.default_rng(split_seq).permutation(len(users))
    n_test, n_valid = int(round(len(users) * opts.test_fraction)), int(round(len(users) * opts.valid_fraction))
    role = np.zeros(len(users), dtype=np.int8)  # 0 train, 1 valid, 2 test
    role[perm[:n_test]] = 2
    role[perm[n_test : n_test + n_valid]] = 1

    in_train = role[user_code] == 0
    item_vocab, cate_vocab = Vocabulary(items[in_train]), Vocabulary(cates[in_train])
    user_vocab = Vocabulary(np.flatnonzero(role == 0))
    vocab = VocabSizes(users=user_vocab.size, items=item_vocab.size, cates=cate_vocab.size)
    flat_item, flat_cate = item_vocab.index(items), cate_vocab.index(cates)
    item_cate = np.full(vocab.items, UNKNOWN, dtype=np.int64)
    item_cate[flat_item[in_train]] = flat_cate[in_train]
    item_count = np.bincount(flat_item[in_train], minlength=vocab.items)

    clicked = np.sort(user_code * vocab.items + flat_item)  # (user, item) keys, sorted
    splits = []
    for r in (0, 1, 2):
        owners = np.flatnonzero(role == r)
        if r > 0:
            k = 1
        elif opts.targets_per_user == "all":
            k = int(counts[owners].max()) if len(owners) else 1
        else:
            k = int(opts.targets_per_user)
        # positions L-1, L-2, ..., L-k of each user, kept where enough history precedes them
        pos = counts[owners, None] - 1 - np.arange(k)[None, :]
        owner = np.broadcast_to(owners[:, None], pos.shape)
        keep = pos >= opts.min_history
        owner, pos = owner[keep], pos[keep]
        at = offsets[owner] + pos
        rng = np.random.default_rng(negative_seqs[r])
        hist_len = np.minimum(pos, opts.maxlen)
        if opts.target_negatives == "popularity":
            neg = _popular_negatives(flat_item[at], item_count, rng)
        else:
            neg = _negatives(owner, vocab.items, clicked, rng)
        n = len(owner)
        splits.append(
            Split(
                user=np.tile(user_vocab.index(owner), 2),
                item=np.concatenate([flat_item[at], neg]),
                cate=np.concatenate([flat_cate[at], item_cate[neg]]),
                label=np.concatenate([np.ones(n, np.float32), np.zeros(n, np.float32)]),
                hist_start=np.tile(at - hist_len, 2),
                hist_len=np.tile(hist_len, 2),
                group=np.tile(owner, 2),
            )
        )
    return Dataset(name, vocab, flat_item, flat_cate, item_cate, item_count, *splits)


def _negatives(owner: np.ndarray, n_items: int, clicked: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A known item (index >= 2) per row that the row's user never clicked."""
    neg = rng.integers(2, n_items, size=len(owner)) if n_items > 2 else np.full(len(owner), UNKNOWN)
    for _ in range(20):
        hit = contains(clicked, owner * n_items + neg)
        if not hit.any() or n_items <= 2:
            break
        neg[hit] = rng.integers(2, n_items, size=int(hit.sum()))
    return neg


def _popular_negatives(positive: np.ndarray, item_count: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per row a known item (index >= 2) drawn by training click count, other than the row's positive."""
    weights = item_count[2:].astype(np.float64)
    if weights.sum() <= 0 or (weights > 0).sum() < 2:
        weights = np.ones_like(weights)  # no usable counts: uniform over known items
    cdf = np.cumsum(weights) / weights.sum()

    def draw(n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1) + 2

    neg = draw(len(positive))
    for _ in range(100):
        clash = neg == positive
        if not clash.any():
            break
        neg[clash] = draw(int(clash.sum()))
    return neg
