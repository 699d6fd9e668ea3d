"""MovieLens 100K / 1M from GroupLens files or RecBole atomic files (plain or gzipped).

A behaviour is a rated movie; its category is the movie's first genre.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .paths import default_data_dir
from .protocol import Interactions
from .tables import numeric, open_text, read_table

GROUPLENS_URL = {"100k": "https://grouplens.org/datasets/movielens/100k/", "1m": "https://grouplens.org/datasets/movielens/1m/"}
GENRES_100K = (
    "unknown Action Adventure Animation Children's Comedy Crime Documentary Drama Fantasy "
    "Film-Noir Horror Musical Mystery Romance Sci-Fi Thriller War Western"
).split()


def find_files(data_dir: Path, variant: str) -> tuple[str, Path, Path]:
    """Which format lies in ``data_dir``, its ``ml-<variant>/`` or its ``movielens/ml-<variant>/`` subfolder:
    (format, ratings, items). The last one is where ``python -m bench data fetch movielens-<variant> --dest DIR``
    unpacks, so ``--data-dir`` may name the same DIR."""
    grouplens = ("u.data", "u.item") if variant == "100k" else ("ratings.dat", "movies.dat")
    if not data_dir.is_dir():
        raise DataError(f"data folder not found; {_how_to_get(data_dir, variant, grouplens)}", data_dir)
    for folder in (data_dir, data_dir / f"ml-{variant}", data_dir / "movielens" / f"ml-{variant}"):
        if all((folder / name).is_file() for name in grouplens):
            return "grouplens", folder / grouplens[0], folder / grouplens[1]
        for suffix in ("", ".gz"):
            inter, item = folder / f"ml-{variant}.inter{suffix}", folder / f"ml-{variant}.item{suffix}"
            if inter.is_file() and item.is_file():
                return "recbole", inter, item
    raise DataError(
        f"MovieLens {variant.upper()} not found here (nor in ml-{variant}/ or movielens/ml-{variant}/): expected {' and '.join(grouplens)} "
        f"(GroupLens) or ml-{variant}.inter and ml-{variant}.item (RecBole atomic files, optionally .gz); "
        + _how_to_get(data_dir, variant, grouplens),
        data_dir,
    )


def _how_to_get(data_dir: Path, variant: str, grouplens: tuple[str, ...]) -> str:
    """The one-line advice: the fetch command that fills ``data_dir``, or where to put the files by hand."""
    command = f"python -m bench data fetch movielens-{variant}"
    try:
        is_default = data_dir.expanduser().resolve() == default_data_dir(f"movielens-{variant}").resolve()
    except OSError:
        is_default = False
    if not is_default:
        command += f" --dest {data_dir}"  # it unpacks into DIR/movielens/ml-<variant>/, where this reader looks too
    return (
        f"run `{command}` to download it, or get ml-{variant}.zip from {GROUPLENS_URL[variant]} and put "
        f"{' and '.join(grouplens)} in {data_dir / f'ml-{variant}'} by hand"
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
        ratings = _ratings_dat(ratings_path)
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


RATINGS_DAT = "expected 4 '::'-separated fields UserID::MovieID::Rating::Timestamp"


def _read_text(path: Path, encoding: str) -> str:
    """The whole (plain or gzipped) file as text; a broken gzip stream is a DataError."""
    try:
        with open_text(path, encoding) as f:
            return f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"truncated or corrupt gzip file ({err})", path) from err


def _ratings_dat(path: Path) -> pd.DataFrame:
    """GroupLens's 1M ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp`` lines (blank lines are skipped).

    Parsed fast by pandas with ``:`` as the separator, so that the even columns hold the fields and the odd
    ones must be empty; anything else is found again line by line for an error that names the line."""
    text = _read_text(path, "latin-1")
    if not text.strip():
        raise DataError(f"empty file; {RATINGS_DAT}", path)
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=":", header=None, names=range(7), usecols=range(7), dtype=str, keep_default_na=False,
            na_values=[], quoting=csv.QUOTE_NONE, engine="c", skip_blank_lines=False,
        )  # fmt: skip
    except pd.errors.ParserError:
        _first_bad_ratings_line(text, path)
    spaced = " " in text or "\t" in text  # GroupLens's files have none: skip the slow per-cell strip
    cols = [frame[c].str.strip() if spaced else frame[c] for c in range(7)]
    filled = np.stack([(c != "").to_numpy() for c in cols], axis=1)
    blank = ~filled.any(axis=1)
    good = filled[:, ::2].all(axis=1) & ~filled[:, 1::2].any(axis=1)
    # extra fields are dropped by usecols: the colon count catches them (each good line has exactly 6)
    if not (good | blank).all() or text.count(":") != 6 * int((~blank).sum()):
        _first_bad_ratings_line(text, path)
    keep = ~blank
    out = pd.DataFrame({name: cols[2 * k][keep].to_numpy() for k, name in enumerate(["user_id", "item_id", "rating", "timestamp"])})
    out.attrs["lines"] = np.flatnonzero(keep) + 1
    return out


def _first_bad_ratings_line(text: str, path: Path) -> None:
    """Raise a DataError naming the first line of ``ratings.dat`` that is not ``UserID::MovieID::Rating::Timestamp``."""
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped:
            continue
        parts = stripped.split("::")
        if len(parts) != 4 or any(not p.strip() or ":" in p for p in parts):
            shown = stripped if len(stripped) <= 80 else stripped[:77] + "..."
            raise DataError(f"{RATINGS_DAT}, got {shown!r}", path, lineno)
    raise DataError(f"malformed file; {RATINGS_DAT}", path)


def _movies_dat(path: Path) -> pd.DataFrame:
    """GroupLens's 1M ``movies.dat``: ``MovieID::Title::Genres`` (ISO-8859-1), genres joined by ``|``."""
    rows = []
    for lineno, line in enumerate(_read_text(path, "latin-1").split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split("::")
        if len(parts) < 3 or not parts[0].strip():
            raise DataError(f"expected 3 '::'-separated fields MovieID::Title::Genres, got {len(parts)}", path, lineno)
        rows.append((parts[0].strip(), parts[-1].strip()))  # a title holding '::' keeps its pieces in the middle
    if not rows:
        raise DataError("empty file; expected MovieID::Title::Genres lines", path)
    return pd.DataFrame(rows, columns=["item_id", "genre"])
