"""Where data files live when no ``--data-dir`` is given: one folder per source under a data root.

The root is ``$DIEN_BENCH_DATA`` if set, else ``~/.cache/dien-bench/data``. ``python -m bench data fetch``
unpacks MovieLens into ``<root>/movielens/ml-1m/`` (or ``ml-100k/``), which is where the loaders look by default.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "DIEN_BENCH_DATA"


def data_root() -> Path:
    """``$DIEN_BENCH_DATA`` if set (``~`` expanded), else ``~/.cache/dien-bench/data``."""
    value = os.environ.get(ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "dien-bench" / "data"


def default_data_dir(dataset: str) -> Path:
    """The folder a dataset is read from without ``--data-dir``.

    ``movielens-100k`` and ``movielens-1m`` share ``<root>/movielens``: the MovieLens reader looks there
    and in its ``ml-100k/`` and ``ml-1m/`` subfolders. ``amazon`` is ``<root>/amazon``; any other name
    (``synthetic`` reads no files) is ``<root>/<name>``.
    """
    if dataset.startswith("movielens-"):
        return data_root() / "movielens"
    return data_root() / dataset
