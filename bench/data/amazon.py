"""The original DIEN repository's prepared Amazon files.

``local_train_splitByUser`` and ``local_test_splitByUser``: one sample a line,
six tab-separated fields ``label, user, item, category, hist_items, hist_cats``,
the two history lists joined by the byte ``\\x02``. Optional ``item-info``
(``item \\t category``) gives categories to items never seen in a history, for
negative sampling. ``reviews-info`` is not needed: the files already hold the
paired negatives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dien_core import VocabSizes

from .dataset import UNKNOWN, Dataset, Split, Vocabulary
from .errors import DataError
from .tables import open_text, read_table

TRAIN, TEST = "local_train_splitByUser", "local_test_splitByUser"
FIELDS = "label, user, item, category, hist_items, hist_cats"


def read_samples(path: Path, maxlen: int) -> dict[str, np.ndarray]:
    """Parse one file; histories keep their most recent ``maxlen`` steps."""
    labels, users, items, cates, hist_items, hist_cates, lengths = [], [], [], [], [], [], []
    with open_text(path) as f:
        try:
            for lineno, line in enumerate(f, 1):
                parts = line.rstrip("\r\n").split("\t")
                if len(parts) != 6:
                    raise DataError(f"expected 6 tab-separated fields ({FIELDS}), got {len(parts)}", path, lineno)
                label, user, item, cate, h_items, h_cates = parts
                if label not in ("0", "1", "0.0", "1.0"):
                    raise DataError(f"label must be 0 or 1, got {label!r}", path, lineno)
                h_items = h_items.split("\x02") if h_items else []
                h_cates = h_cates.split("\x02") if h_cates else []
                if len(h_items) != len(h_cates):
                    raise DataError(f"hist_items has {len(h_items)} entries but hist_cats has {len(h_cates)}", path, lineno)
                h_items, h_cates = h_items[-maxlen:], h_cates[-maxlen:]
                labels.append(float(label))
                users.append(user)
                items.append(item)
                cates.append(cate)
                hist_items.extend(h_items)
                hist_cates.extend(h_cates)
                lengths.append(len(h_items))
        except (EOFError, OSError) as err:
            raise DataError(f"truncated or corrupt file ({err})", path) from err
    if not labels:
        raise DataError(f"empty file; expected lines of {FIELDS}", path)
    return {
        "label": np.array(labels, np.float32), "user": np.array(users), "item": np.array(items), "cate": np.array(cates),
        "hist_item": np.array(hist_items), "hist_cate": np.array(hist_cates), "hist_len": np.array(lengths, np.int64),
    }  # fmt: skip


def read_amazon(data_dir: Path, maxlen: int, valid_fraction: float, seed: int) -> Dataset:
    if not data_dir.is_dir():
        raise DataError(f"data folder not found; expected the DIEN repository's prepared files {TRAIN} and {TEST}", data_dir)
    train_raw, test_raw = read_samples(data_dir / TRAIN, maxlen), read_samples(data_dir / TEST, maxlen)
    rng = np.random.default_rng(seed)
    train_users = np.unique(train_raw["user"])
    held = rng.permutation(len(train_users))[: int(round(len(train_users) * valid_fraction))]
    is_valid = np.isin(train_raw["user"], train_users[held])

    fit = {k: v[~is_valid] for k, v in train_raw.items() if k not in ("hist_item", "hist_cate", "hist_len")}
    starts = np.concatenate([[0], np.cumsum(train_raw["hist_len"])[:-1]])
    fit_steps = np.repeat(~is_valid, train_raw["hist_len"])
    item_vocab = Vocabulary(np.concatenate([fit["item"], train_raw["hist_item"][fit_steps]]))
    cate_vocab = Vocabulary(np.concatenate([fit["cate"], train_raw["hist_cate"][fit_steps]]))
    user_vocab = Vocabulary(fit["user"])
    vocab = VocabSizes(users=user_vocab.size, items=item_vocab.size, cates=cate_vocab.size)

    item_cate = np.full(vocab.items, UNKNOWN, dtype=np.int64)
    item_cate[item_vocab.index(train_raw["hist_item"])] = cate_vocab.index(train_raw["hist_cate"])
    item_cate[item_vocab.index(train_raw["item"])] = cate_vocab.index(train_raw["cate"])
    info = data_dir / "item-info"
    if info.is_file():
        table = read_table(info, "\t", ["item", "category"], header=False)
        item_cate[item_vocab.index(table["item"].to_numpy(str))] = cate_vocab.index(table["category"].to_numpy(str))
    item_cate[:2] = [0, UNKNOWN]

    test_starts = np.concatenate([[0], np.cumsum(test_raw["hist_len"])[:-1]]) + len(train_raw["hist_item"])
    flat_item = item_vocab.index(np.concatenate([train_raw["hist_item"], test_raw["hist_item"]]))
    flat_cate = cate_vocab.index(np.concatenate([train_raw["hist_cate"], test_raw["hist_cate"]]))
    item_count = np.bincount(flat_item[: len(train_raw["hist_item"])][fit_steps], minlength=vocab.items)

    def split(raw: dict[str, np.ndarray], start: np.ndarray, rows: np.ndarray) -> Split:
        return Split(
            user=user_vocab.index(raw["user"][rows]), item=item_vocab.index(raw["item"][rows]), cate=cate_vocab.index(raw["cate"][rows]),
            label=raw["label"][rows], hist_start=start[rows], hist_len=raw["hist_len"][rows], group=raw["user"][rows],
        )  # fmt: skip

    every_test = np.arange(len(test_raw["label"]))
    return Dataset(
        "amazon", vocab, flat_item, flat_cate, item_cate, item_count,
        split(train_raw, starts, np.flatnonzero(~is_valid)), split(train_raw, starts, np.flatnonzero(is_valid)),
        split(test_raw, test_starts, every_test),
    )  # fmt: skip
