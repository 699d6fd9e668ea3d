"""Data sources, protocol, batches, cache and every bad input."""

import gzip
import shutil

import numpy as np
import pytest
import torch

from bench.data import BatchLoader, DataConfig, DataError, SyntheticConfig, load_dataset
from bench.data.protocol import Interactions, ProtocolOptions, build_dataset
from bench.data.synthetic import generate
from tests.conftest import write_amazon_fixture

SMALL = SyntheticConfig(users=300, items=200, categories=10, min_len=5, max_len=20)


def test_synthetic_is_deterministic_by_seed():
    a, b, c = generate(SMALL), generate(SMALL), generate(SyntheticConfig(**{**SMALL.__dict__, "seed": 1}))
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("user", "item", "cate", "time"))
    assert not np.array_equal(a.item, c.item)
    assert set(np.unique(a.cate)) <= set(range(1, 11)) and a.item.max() <= 200


def test_synthetic_interests_drift_along_transitions():
    """Consecutive categories repeat or follow a few successors far more than chance."""
    inter = generate(SyntheticConfig(users=2000, items=400, categories=20, interests=1, noise=0.0, drift=0.3))
    same_user = inter.user[1:] == inter.user[:-1]
    pairs = set(zip(inter.cate[:-1][same_user], inter.cate[1:][same_user]))
    assert len(pairs) <= 20 * (1 + 3)  # stay, or one of 3 successors


def test_synthetic_bad_knobs():
    with pytest.raises(ValueError, match="min_len"):
        SyntheticConfig(min_len=30, max_len=10)
    with pytest.raises(ValueError, match="drift"):
        SyntheticConfig(drift=1.5)


def test_protocol_splits_by_user_and_cuts_histories():
    inter = generate(SMALL)
    ds = build_dataset("s", inter, ProtocolOptions(maxlen=8, targets_per_user=3, valid_fraction=0.2, test_fraction=0.2, seed=0))
    groups = [set(getattr(ds, s).group.tolist()) for s in ("train", "valid", "test")]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    assert len(groups[1]) == 60 and len(groups[2]) == 60 and len(groups[0]) == 180
    assert len(ds.valid) == 2 * 60 and len(ds.train) == 2 * 3 * 180  # every user has >= 5 behaviours
    for split in (ds.train, ds.valid, ds.test):
        assert split.hist_len.max() <= 8 and split.hist_len.min() >= 1
        pos, neg = split.label == 1, split.label == 0
        assert pos.sum() == neg.sum()
        # the clicked target is the behaviour right after its history
        at = split.hist_start[pos] + split.hist_len[pos]
        assert np.array_equal(ds.flat_item[at], split.item[pos])
    # validation users are unknown to the user vocabulary (split by user)
    assert (ds.valid.user == 1).all()


def test_uniform_negatives_never_clicked_by_user():
    inter = Interactions(
        user=np.repeat(np.arange(40), 6), item=np.tile(np.arange(6), 40) + np.repeat(np.arange(40) % 3, 6),
        cate=np.zeros(240, int), time=np.tile(np.arange(6), 40),
    )  # fmt: skip
    ds = build_dataset("t", inter, ProtocolOptions(5, 2, 0.2, 0.2, 0, target_negatives="uniform"))
    neg = ds.train.label == 0
    for g, item in zip(ds.train.group[neg], ds.train.item[neg]):
        assert item not in ds.flat_item[inter.user[np.lexsort((inter.time, inter.user))] == g]


@pytest.mark.parametrize("bucket", [False, True])
def test_batches_have_design_shapes_and_fresh_negatives(bucket):
    ds = load_dataset(DataConfig(synthetic=SMALL, maxlen=12))
    loader = BatchLoader(ds, ds.train, 64, shuffle=True, seed=3, bucket=bucket)
    first_epoch = list(loader)
    second_epoch = list(loader)
    assert sum(b.size for b in first_epoch) == len(ds.train)
    for batch in first_epoch:
        B, T = batch.hist_item.shape
        assert T == int(batch.lengths.max())  # padded to its own longest row
        for name in ("user", "item", "cate", "lengths"):
            assert getattr(batch, name).shape == (B,) and getattr(batch, name).dtype == torch.int64
        for name in ("hist_item", "hist_cate", "neg_item", "neg_cate"):
            assert getattr(batch, name).shape == (B, T) and getattr(batch, name).dtype == torch.int64
        assert batch.label.dtype == torch.float32 and batch.label.shape == (B,)
        valid = torch.arange(T)[None, :] < batch.lengths[:, None]
        assert ((batch.hist_item > 0) == valid).all()  # lengths match the non-padded prefix
        assert (batch.neg_item[valid] != batch.hist_item[valid]).all()
        assert (batch.neg_item[~valid] == 0).all() and (batch.neg_item[valid] >= 2).all()
        assert (batch.neg_cate[valid] == torch.from_numpy(ds.item_cate)[batch.neg_item[valid]]).all()
    assert not torch.equal(first_epoch[0].neg_item, second_epoch[0].neg_item)
    again = list(BatchLoader(ds, ds.train, 64, shuffle=True, seed=3, bucket=bucket))
    assert torch.equal(again[0].hist_item, first_epoch[0].hist_item)  # same seed, same order


def test_bucketing_cuts_padding():
    ds = load_dataset(DataConfig(synthetic=SyntheticConfig(users=2000, min_len=3, max_len=60), maxlen=60))

    def padding(bucket):
        batches = list(BatchLoader(ds, ds.train, 64, shuffle=True, bucket=bucket))
        return sum(b.hist_item.numel() - int(b.lengths.sum()) for b in batches)

    assert padding(True) < 0.5 * padding(False)


def test_popularity_negatives_favour_popular_items():
    ds = load_dataset(DataConfig(synthetic=SyntheticConfig(users=2000, popularity_skew=1.5)))
    batch = next(iter(BatchLoader(ds, ds.train, 2048, negatives="popularity")))
    drawn = batch.neg_item[batch.neg_item > 0].numpy()
    top = np.argsort(ds.item_count)[-50:]
    assert np.isin(drawn, top).mean() > 3 * 50 / ds.vocab.items


def test_cache_is_used_on_the_second_load(monkeypatch):
    config = DataConfig(synthetic=SMALL)
    first = load_dataset(config)
    import bench.data as data_module

    monkeypatch.setattr(data_module, "_build", lambda *a: pytest.fail("rebuilt although cached"))
    second = load_dataset(config)
    assert np.array_equal(first.train.item, second.train.item) and first.vocab == second.vocab


def test_cache_is_not_used_after_the_building_code_changed(monkeypatch):
    """A cached dataset made by older protocol or generator code is rebuilt, never served."""
    from pathlib import Path

    import bench.data as data_module
    from bench.data import cache

    config = DataConfig(synthetic=SMALL)
    load_dataset(config)
    built = []
    real = data_module._build
    monkeypatch.setattr(data_module, "_build", lambda *a: built.append(1) or real(*a))
    monkeypatch.setattr(cache, "CODE_DIGEST", "code of another commit")
    load_dataset(config)
    assert built == [1]
    # every module of bench/data that is not about batches, files, errors or its command line is part of the key
    here = {p.name for p in Path(cache.__file__).parent.glob("*.py")}
    assert here - set(cache.BUILDERS) == {"cache.py", "cli.py", "errors.py", "fetch.py", "loader.py", "paths.py"}


def test_movielens_1m_counts(movielens_dir):
    from bench.data.movielens import read_movielens

    inter = read_movielens(movielens_dir, "1m")
    assert len(inter.user) == 1_000_209 and len(np.unique(inter.user)) == 6_040


def test_movielens_100k_dataset_and_cache(movielens_dir, monkeypatch, tmp_path):
    import bench.data as data_module
    from bench.data import cache

    config = DataConfig(dataset="movielens-100k", data_dir=str(movielens_dir), maxlen=20)
    ds = load_dataset(config)
    assert 10 < ds.vocab.cates <= 19 + 2  # first genres seen in train, plus padding and unknown
    assert len(ds.valid) == 2 * round(943 * 0.1)
    (cached,) = (tmp_path / "cache").glob("movielens-100k-*.npz")  # the first load wrote one cache file
    written = cached.stat().st_mtime_ns
    read, real_load = [], cache.load
    monkeypatch.setattr(cache, "load", lambda path: read.append(path) or real_load(path))
    monkeypatch.setattr(data_module, "_build", lambda *a: pytest.fail("rebuilt although cached"))
    again = load_dataset(config)  # the second load reads the cache (no timing: the machine is shared)
    assert np.array_equal(again.train.item, ds.train.item)
    assert read == [cached] and cached.stat().st_mtime_ns == written  # that file, read and not written again
    assert list((tmp_path / "cache").iterdir()) == [cached]


def test_grouplens_format_and_stable_time_order(tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    # user 1 rates three movies at the same time: file order decides
    (folder / "u.data").write_text("1\t10\t5\t100\n1\t11\t4\t100\n1\t12\t3\t100\n1\t13\t3\t50\n2\t10\t1\t10\n2\t12\t1\t20\n")
    flags = ["0"] * 19
    genre = lambda k: "|".join("1" if i == k else "0" for i in range(19))  # noqa: E731
    (folder / "u.item").write_text(
        "".join(f"{m}|T{m}|d||u|{genre(m - 9)}\n" for m in (10, 11, 12, 13)) + "14|T|d||u|" + "|".join(flags) + "\n"
    )
    from bench.data.movielens import read_movielens

    inter = read_movielens(folder, "100k")
    ds = build_dataset("ml", inter, ProtocolOptions(10, 3, 0.01, 0.0, 0))
    # items "10".."13" index to 2..5; user 1's same-time ratings keep file order after the earlier "13"
    assert ds.flat_item.tolist() == [5, 2, 3, 4, 2, 4]
    assert inter.cate[inter.item == "10"][0] == "Action"


def test_amazon_files(tmp_path):
    folder = write_amazon_fixture(tmp_path / "amazon")
    ds = load_dataset(DataConfig(dataset="amazon", data_dir=str(folder), maxlen=5, valid_fraction=0.2))
    assert len(ds.test) == 2 * 10 and len(ds.train) + len(ds.valid) == 2 * 30 and len(ds.valid) == 2 * 6
    assert not set(ds.train.group) & set(ds.valid.group)
    assert ds.train.hist_len.max() <= 5
    batch = next(iter(BatchLoader(ds, ds.test, 8)))
    assert batch.hist_item.shape[1] == int(batch.lengths.max())


BAD_AMAZON = {
    "too few fields": ("1\tA1\tI1\tC1\tI2\n", "line 1: expected 6 tab-separated fields"),
    "bad label": ("yes\tA1\tI1\tC1\tI2\tC2\n", "line 1: label must be 0 or 1"),
    "uneven history": ("1\tA1\tI1\tC1\tI2\x02I3\tC2\n", "line 1: hist_items has 2 entries but hist_cats has 1"),
    "empty file": ("", "empty file"),
}


@pytest.mark.parametrize("case", BAD_AMAZON)
def test_bad_amazon_input(tmp_path, case):
    folder = write_amazon_fixture(tmp_path / "amazon")
    content, message = BAD_AMAZON[case]
    good = (folder / "local_train_splitByUser").read_text()
    (folder / "local_train_splitByUser").write_text(good + content if content else "")
    with pytest.raises(DataError, match=message.replace("line 1", "line " + str(good.count("\n") + 1)) if content else message):
        load_dataset(DataConfig(dataset="amazon", data_dir=str(folder)))
    assert not list((tmp_path / "cache").glob("*.tmp"))  # nothing half-written left behind


def _recbole_copy(movielens_dir, tmp_path, lines: str | None = None, truncate: bool = False):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    shutil.copy(movielens_dir / "ml-100k" / "ml-100k.item.gz", folder)
    inter = gzip.decompress((movielens_dir / "ml-100k" / "ml-100k.inter.gz").read_bytes()).decode()
    if lines is not None:
        inter = inter.split("\n", 1)[0] + "\n" + lines
    data = gzip.compress(inter.encode())
    (folder / "ml-100k.inter.gz").write_bytes(data[: len(data) // 2] if truncate else data)
    return folder


@pytest.mark.parametrize(
    "lines, message",
    [
        ("1\t2\t3\t100\n1\t3\t4\n", "line 3: missing field 'timestamp'"),
        ("1\t2\t3\t100\n1\t3\t4\tyesterday\n", "line 3: timestamp must be a number, got 'yesterday'"),
        ("1\t2\t3\t100\n\n\n1\t3\t4\tyesterday\n\n", "line 5: timestamp must be a number, got 'yesterday'"),  # blank lines count
        ("\n1\t2\t3\t100\n\n1\t3\t4\n", "line 5: missing field 'timestamp'"),
        ("", "no data rows"),
    ],
)
def test_bad_movielens_input(movielens_dir, tmp_path, lines, message):
    folder = _recbole_copy(movielens_dir, tmp_path, lines)
    with pytest.raises(DataError, match=message):
        load_dataset(DataConfig(dataset="movielens-100k", data_dir=str(folder)))


def test_truncated_gzip(movielens_dir, tmp_path):
    folder = _recbole_copy(movielens_dir, tmp_path, truncate=True)
    with pytest.raises(DataError, match="ml-100k.inter.gz: truncated or corrupt gzip"):
        load_dataset(DataConfig(dataset="movielens-100k", data_dir=str(folder)))
    assert not list((tmp_path / "cache").glob("*"))


def test_missing_data_says_where_to_get_it(tmp_path):
    with pytest.raises(DataError, match="grouplens.org/datasets/movielens/1m"):
        load_dataset(DataConfig(dataset="movielens-1m", data_dir=str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="ratings.dat and movies.dat"):
        load_dataset(DataConfig(dataset="movielens-1m", data_dir=str(tmp_path / "empty")))
    with pytest.raises(DataError, match="local_test_splitByUser: file not found"):
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / "local_train_splitByUser").write_text("1\tA\tI\tC\tI\tC\n")
        load_dataset(DataConfig(dataset="amazon", data_dir=str(tmp_path / "a")))


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="allowed: synthetic, movielens-100k, movielens-1m, amazon"):
        DataConfig(dataset="criteo")
