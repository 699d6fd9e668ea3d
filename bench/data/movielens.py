"""MovieLens 100K / 1M from GroupLens files or RecBole atomic files (plain or gzipped).

A behaviour is a rated movie; its category is the movie's first genre.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .protocol import Interactions
from .tables import numeric, open_text, read_table

GROUPLENS_URL = {"100k": "https://grouplens.org/datasets/movielens/100k/", "1m": "https://grouplens.org/datasets/movielens/1m/"}
GENRES_100K = (
    "unknown Action Adventure Animation Children's Comedy Crime Documentary Drama Fantasy "
    "Film-Noir Horror Musical Mystery Romance Sci-Fi Thriller War Western"
).split()


def find_files(data_dir: Path, variant: str) -> tuple[str, Path, Path]:
    """Which format lies in ``data_dir`` (or its ``ml-<variant>/`` subfolder): (format, ratings, items)."""
    if not data_dir.is_dir():
        raise DataError(f"data folder not found; get MovieLens {variant.upper()} from {GROUPLENS_URL[variant]}", data_dir)
    grouplens = ("u.data", "u.item") if variant == "100k" else ("ratings.dat", "movies.dat")
    for folder in (data_dir, data_dir / f"ml-{variant}"):
        if all((folder / name).is_file() for name in grouplens):
            return "grouplens", folder / grouplens[0], folder / grouplens[1]
        for suffix in ("", ".gz"):
            inter, item = folder / f"ml-{variant}.inter{suffix}", folder / f"ml-{variant}.item{suffix}"
            if inter.is_file() and item.is_file():
                return "recbole", inter, item
    raise DataError(
        f"MovieLens {variant.upper()} not found: expected {' and '.join(grouplens)} (GroupLens, from "
        f"{GROUPLENS_URL[variant]}) or ml-{variant}.inter and ml-{variant}.item (RecBole atomic files, optionally .gz)",
        data_dir,
    )


def read_movielens(data_dir: Path, variant: str) -> Interactions:
    fmt, ratings_path, items_path = find_files(data_dir, variant)
    if fmt == "recbole":
        ratings = _recbole(ratings_path, ["user_id", "item_id", "timestamp"])
        items = _recbole(items_path, ["item_id", "genre"])
        first_genre = items["genre"].str.split().str[0]
    elif variant == "100k":
        ratings = read_table(ratings_path, "\t", ["user_id", "item_id", "rating", "timestamp"], header=False)
        columns = ["item_id", "title", "release", "video", "url", *GENRES_100K]
        items = read_table(items_path, "|", columns, header=False, encoding="latin-1", required=["item_id", *GENRES_100K])
        flags = items[GENRES_100K].to_numpy() == "1"
        first_genre = np.where(flags.any(axis=1), np.array(GENRES_100K)[flags.argmax(axis=1)], "unknown")
        items = items.assign(genre=first_genre)
        first_genre = items["genre"]
    else:
        # "::" separated: split on ":" and keep the even columns (titles may hold ":" only in movies.dat)
        ratings = read_table(ratings_path, ":", ["user_id", "_1", "item_id", "_3", "rating", "_5", "timestamp"], header=False)
        items = _movies_dat(items_path)
        first_genre = items["genre"].str.split("|").str[0]
    timestamp = numeric(ratings, "timestamp", ratings_path)
    genre_of = dict(zip(items["item_id"], first_genre))
    item = ratings["item_id"].to_numpy(dtype=str)
    cate = np.array([genre_of.get(i, "unknown") for i in np.unique(item)], dtype=str)
    cate = cate[np.searchsorted(np.unique(item), item)]
    return Interactions(user=ratings["user_id"].to_numpy(dtype=str), item=item, cate=cate, time=timestamp)


def _recbole(path: Path, wanted: list[str]):
    """A RecBole atomic file: tab separated with a ``name:type`` header; keeps the ``wanted`` fields."""
    with open_text(path) as f:
        header_line = f.readline().rstrip("\r\n")
    if not header_line:
        raise DataError("empty file; expected a RecBole header such as 'user_id:token\\titem_id:token'", path)
    names = [h.split(":")[0] for h in header_line.split("\t")]
    aliases = {"genre": ("genre", "class")}
    picked = {}
    for want in wanted:
        options = aliases.get(want, (want,))
        found = [n for n in names if n in options]
        if not found:
            raise DataError(f"header has no field {want!r} (fields: {', '.join(names)})", path, 1)
        picked[want] = found[0]
    frame = read_table(path, "\t", names, header=True)
    return frame.rename(columns={v: k for k, v in picked.items()})[wanted]


def _movies_dat(path: Path):
    rows = []
    with open_text(path, "latin-1") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\r\n").split("::")
            if len(parts) != 3:
                raise DataError(f"expected 3 '::'-separated fields MovieID::Title::Genres, got {len(parts)}", path, lineno)
            rows.append((parts[0], parts[2]))
    if not rows:
        raise DataError("empty file; expected MovieID::Title::Genres lines", path)
    return pd.DataFrame(rows, columns=["item_id", "genre"])
