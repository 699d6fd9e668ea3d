"""Data sources (synthetic, MovieLens, Amazon) turned into indexed, cached datasets and batches."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import cache
from .amazon import TEST as AMAZON_TEST
from .amazon import TRAIN as AMAZON_TRAIN
from .amazon import read_amazon
from .dataset import UNKNOWN, Dataset, Split
from .errors import DataError
from .loader import NEGATIVE_SAMPLING, BatchLoader, NegativeSampler
from .movielens import find_files, read_movielens
from .paths import default_data_dir
from .protocol import ProtocolOptions, build_dataset
from .synthetic import SyntheticConfig, generate

DATASETS = ("synthetic", "movielens-100k", "movielens-1m", "amazon")
FILE_DATASETS = ("movielens-100k", "movielens-1m", "amazon")  # the ones read from a data folder
TARGET_NEGATIVES = ("popularity", "uniform")
USER_FEATURES = ("off", "dropout", "id")


@dataclass(frozen=True)
class DataConfig:
    """Which data, and how samples are cut from it (see README, "Data")."""

    dataset: str = "synthetic"
    data_dir: str | None = None
    maxlen: int = 50
    targets_per_user: int | str = 5  # targets per training user (its last positions), or "all"
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    vary_with_seed: bool = True  # each run seed draws its own split (split_seed + seed) and synthetic data
    negative_sampling: str = "uniform"  # the auxiliary loss's negatives, per history step
    target_negatives: str = "popularity"  # the target's paired negative: by click count, or uniform
    user_feature: str = "off"  # off: one shared, trained user vector; dropout: ids, unknown with p; id
    user_dropout: float = 0.1  # with user_feature = "dropout": share of training rows read as unknown
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; allowed: {', '.join(DATASETS)}")
        if self.targets_per_user != "all" and (not isinstance(self.targets_per_user, int) or self.targets_per_user <= 0):
            raise ValueError(f"targets_per_user must be a positive count or \"all\", got {self.targets_per_user!r}")
        if self.maxlen <= 0:
            raise ValueError(f"maxlen must be positive, got {self.maxlen}")
        if self.target_negatives not in TARGET_NEGATIVES:
            raise ValueError(f"unknown target_negatives {self.target_negatives!r}; allowed: {', '.join(TARGET_NEGATIVES)}")
        if self.user_feature not in USER_FEATURES:
            raise ValueError(f"unknown user_feature {self.user_feature!r}; allowed: {', '.join(USER_FEATURES)}")
        if not 0 < self.user_dropout < 1:
            raise ValueError(f"user_dropout must be in (0, 1), got {self.user_dropout}")
        if not (0 < self.valid_fraction < 1 and 0 <= self.test_fraction < 1 and self.valid_fraction + self.test_fraction < 1):
            raise ValueError("valid_fraction and test_fraction must be in (0, 1) and leave users for training")
        if self.negative_sampling not in NEGATIVE_SAMPLING:
            raise ValueError(f"unknown negative_sampling {self.negative_sampling!r}; allowed: {', '.join(NEGATIVE_SAMPLING)}")

    def for_seed(self, seed: int) -> DataConfig:
        """The data of one run seed: with ``vary_with_seed``, its own split and synthetic data."""
        if not self.vary_with_seed:
            return self
        synthetic = replace(self.synthetic, seed=self.synthetic.seed + seed)
        return replace(self, split_seed=self.split_seed + seed, synthetic=synthetic, vary_with_seed=False)


def source_files(config: DataConfig) -> list[Path]:
    """The input files a dataset is built from (for the cache key); raises DataError when missing."""
    data_dir = Path(config.data_dir) if config.data_dir else default_data_dir(config.dataset)
    if config.dataset.startswith("movielens-"):
        _, ratings, items = find_files(data_dir, config.dataset.removeprefix("movielens-"))
        return [ratings, items]
    if config.dataset == "amazon":
        files = [data_dir / AMAZON_TRAIN, data_dir / AMAZON_TEST]
        for f in files:
            if not f.is_file():
                raise DataError(f"file not found; the amazon dataset needs {AMAZON_TRAIN} and {AMAZON_TEST}", f)
        return files + [f for f in [data_dir / "item-info"] if f.is_file()]
    return []


def load_dataset(config: DataConfig, use_cache: bool = True) -> Dataset:
    """Build (or read from the cache) the indexed dataset that ``config`` describes."""
    files = source_files(config)
    options = dataclasses.asdict(config)  # the cache key's: the data package reads no harness module
    options.pop("data_dir", None)
    for name in ("user_feature", "user_dropout", "negative_sampling"):  # applied when batches are made
        options.pop(name, None)
    path = cache.cache_dir() / f"{config.dataset}-{cache.cache_key(config.dataset, files, options)}.npz"
    if use_cache and (hit := cache.load(path)) is not None:
        return _user_feature(hit, config)
    dataset = _build(config, files)
    if use_cache:
        cache.save(dataset, path)
    return _user_feature(dataset, config)


def _user_feature(dataset: Dataset, config: DataConfig) -> Dataset:
    """With ``user_feature = "off"`` every row reads the unknown user: one shared vector that training
    reaches. Validation and test users are never training users (splits are by user), so an id could
    only point them at the unknown row, which with ``"id"`` no training row ever reads."""
    if config.user_feature != "off":
        return dataset
    splits = {name: getattr(dataset, name) for name in ("train", "valid", "test")}
    return replace(dataset, **{name: replace(s, user=np.full_like(s.user, UNKNOWN)) for name, s in splits.items()})


def _build(config: DataConfig, files: list[Path]) -> Dataset:
    opts = ProtocolOptions(
        config.maxlen, config.targets_per_user, config.valid_fraction, config.test_fraction, config.split_seed,
        target_negatives=config.target_negatives,
    )  # fmt: skip
    if config.dataset == "synthetic":
        return build_dataset("synthetic", generate(config.synthetic), opts)
    if config.dataset == "amazon":
        return read_amazon(files[0].parent, config.maxlen, config.valid_fraction, config.split_seed)
    variant = config.dataset.removeprefix("movielens-")
    return build_dataset(config.dataset, read_movielens(files[0].parent, variant), opts)


__all__ = [
    "DATASETS", "BatchLoader", "DataConfig", "DataError", "Dataset", "NegativeSampler", "Split", "SyntheticConfig",
    "load_dataset",
]  # fmt: skip
