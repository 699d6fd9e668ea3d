"""Data sources (synthetic, MovieLens, Amazon) turned into indexed, cached datasets and batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config_io import to_dict
from . import cache
from .amazon import TEST as AMAZON_TEST
from .amazon import TRAIN as AMAZON_TRAIN
from .amazon import read_amazon
from .dataset import Dataset, Split
from .errors import DataError
from .loader import NEGATIVE_SAMPLING, BatchLoader, NegativeSampler
from .movielens import find_files, read_movielens
from .protocol import ProtocolOptions, build_dataset
from .synthetic import SyntheticConfig, generate

DATASETS = ("synthetic", "movielens-100k", "movielens-1m", "amazon")


@dataclass(frozen=True)
class DataConfig:
    """Which data, and how samples are cut from it (see README, "Data")."""

    dataset: str = "synthetic"
    data_dir: str | None = None
    maxlen: int = 50
    targets_per_user: int = 5
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    negative_sampling: str = "uniform"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; allowed: {', '.join(DATASETS)}")
        if self.maxlen <= 0 or self.targets_per_user <= 0:
            raise ValueError(f"maxlen and targets_per_user must be positive, got {self.maxlen}, {self.targets_per_user}")
        if not (0 < self.valid_fraction < 1 and 0 <= self.test_fraction < 1 and self.valid_fraction + self.test_fraction < 1):
            raise ValueError("valid_fraction and test_fraction must be in (0, 1) and leave users for training")
        if self.negative_sampling not in NEGATIVE_SAMPLING:
            raise ValueError(f"unknown negative_sampling {self.negative_sampling!r}; allowed: {', '.join(NEGATIVE_SAMPLING)}")
        if self.dataset == "amazon" and not self.data_dir:
            raise ValueError("dataset 'amazon' needs data_dir (--data-dir) with local_train_splitByUser and local_test_splitByUser")


def default_data_dir(dataset: str) -> Path:
    return Path("data") / dataset


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
    options = to_dict(config)
    options.pop("data_dir", None)
    path = cache.cache_dir() / f"{config.dataset}-{cache.cache_key(config.dataset, files, options)}.npz"
    if use_cache and (hit := cache.load(path)) is not None:
        return hit
    dataset = _build(config, files)
    if use_cache:
        cache.save(dataset, path)
    return dataset


def _build(config: DataConfig, files: list[Path]) -> Dataset:
    opts = ProtocolOptions(config.maxlen, config.targets_per_user, config.valid_fraction, config.test_fraction, config.split_seed)
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
