"""``--dataset`` and ``--data-dir`` on a suite, the same for ``bench run`` and ``bench tune``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .data import FILE_DATASETS, DataError
from .suite import SuiteConfig


def apply_data_overrides(suite: SuiteConfig, dataset: str | None, data_dir: str | None) -> SuiteConfig:
    """``dataset`` replaces the suite's data by that one source: the suite's own source of that
    dataset if it has one (keeping its settings), else its first source's settings for it.
    ``data_dir`` then goes to the one source that reads files; with several it is ambiguous,
    with none it has nothing to apply to: both are errors that say what to add."""
    data = suite.data
    folder = None
    if data_dir:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise DataError("data folder not found", folder)
    if dataset:
        own = [d for d in data if d.dataset == dataset]
        base = own[0] if own else data[0]
        source = {"dataset": dataset} if not own else {}
        if folder is not None:
            source["data_dir"] = str(folder)
        data = (replace(base, **source) if source else base,)
    elif folder is not None:
        readers = [i for i, d in enumerate(data) if d.dataset in FILE_DATASETS]
        if not readers:
            names = ", ".join(d.dataset for d in data)
            raise ValueError(
                f"--data-dir {data_dir}: suite {suite.name!r} reads no files (its data: {names}); "
                f"add --dataset ({', '.join(FILE_DATASETS)}) to say which data lies there"
            )
        if len(readers) > 1:
            names = ", ".join(data[i].dataset for i in readers)
            raise ValueError(
                f"--data-dir {data_dir}: suite {suite.name!r} reads files for {names}; add --dataset to say which one lies there"
            )
        data = tuple(replace(d, data_dir=str(folder)) if i == readers[0] else d for i, d in enumerate(data))
    return replace(suite, data=data)
