"""MovieLens in GroupLens's own formats (1M ``::`` files with latin-1 titles, 100K tab and '|' files), bad lines, data paths."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bench.data import DataConfig, DataError, load_dataset
from bench.data.movielens import find_files, read_movielens
from bench.data.paths import data_root, default_data_dir

# 12 movies: (id, title, genres). Titles as GroupLens writes them: ':' inside, accents in ISO-8859-1.
MOVIES_1M = [
    (1, "Toy Story (1995)", "Animation|Children's|Comedy"),
    (2, "Café au lait (Métisse) (1993)", "Comedy"),
    (3, "Star Wars: Episode IV - A New Hope (1977)", "Action|Adventure|Fantasy|Sci-Fi"),
    (4, "Amélie (Le Fabuleux Destin d'Amélie Poulain) (2001)", "Romance|Comedy"),
    (5, "Château, Le (1999)", "Drama"),
    (6, "Heat (1995)", "Action|Crime|Thriller"),
    (7, "Nosferatu (Nosferatu, eine Symphonie des Grauens) (1922)", "Horror"),
    (8, "Seven (Se7en) (1995)", "Crime|Thriller"),
    (9, "Fargo (1996)", "Crime|Drama|Thriller"),
    (10, "Île de beauté, L' (1999)", "Documentary"),
    (11, "Alien (1979)", "Horror|Sci-Fi"),
    (12, "Casablanca (1942)", "Drama|Romance|War"),
]
USERS = 30
FIRST_GENRE = {str(m): g.split("|")[0] for m, _, g in MOVIES_1M}


def ratings_rows(users: int = USERS) -> list[tuple[int, int, int, int]]:
    """(user, movie, rating, timestamp): user u rates 6 + u % 5 movies, each at its own time."""
    rows = []
    for u in range(1, users + 1):
        for k in range(6 + u % 5):
            rows.append((u, (u * 5 + k * 7) % 12 + 1, 1 + (u + k) % 5, 978_300_000 + u * 1000 + k * 10))
    return rows


def ml_1m_files() -> dict[str, bytes]:
    """ratings.dat, movies.dat, users.dat and README exactly in the 1M release's formats (movies.dat latin-1)."""
    ratings = "".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in ratings_rows())
    movies = "".join(f"{m}::{title}::{genres}\n" for m, title, genres in MOVIES_1M)
    users = "".join(f"{u}::{'FM'[u % 2]}::{[1, 18, 25, 35][u % 4]}::{u % 21}::{48000 + u}\n" for u in range(1, USERS + 1))
    return {
        "ratings.dat": ratings.encode("ascii"),
        "movies.dat": movies.encode("latin-1"),
        "users.dat": users.encode("ascii"),
        "README": b"SUMMARY\n================================================================================\n",
    }


GENRES_100K = "unknown Action Adventure Animation Children's Comedy Crime Documentary Drama".split() + ["x"] * 10


def ml_100k_files() -> dict[str, bytes]:
    """u.data (tab separated), u.item ('|' separated, latin-1 titles, 19 genre flags), u.user."""
    data = "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in ratings_rows())
    items = []
    for m, title, _ in MOVIES_1M:
        flags = ["0"] * 19
        flags[m % 8 + 1] = "1"  # genres 1..8: Action .. Drama
        items.append(f"{m}|{title}|01-Jan-1995||http://us.imdb.com/M/title-exact?{title.replace(' ', '%20')}|{'|'.join(flags)}\n")
    users = "".join(f"{u}|{20 + u}|{'FM'[u % 2]}|technician|{85700 + u}\n" for u in range(1, USERS + 1))
    return {"u.data": data.encode("ascii"), "u.item": "".join(items).encode("latin-1"), "u.user": users.encode("ascii")}


def make_zip(folder: str, files: dict[str, bytes]) -> bytes:
    """A zip archive holding ``files`` inside ``folder/``, as GroupLens ships them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{folder}/", b"")
        for name, content in files.items():
            zf.writestr(f"{folder}/{name}", content)
    return buffer.getvalue()


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def check_1m(inter) -> None:
    """The interactions read from ``ml_1m_files()``: every user, movie, first genre and time."""
    rows = ratings_rows()
    assert len(inter.user) == len(rows) and len(np.unique(inter.user)) == USERS
    assert sorted(np.unique(inter.item), key=int) == [str(m) for m, _, _ in MOVIES_1M]
    assert inter.user.tolist() == [str(u) for u, _, _, _ in rows] and inter.item.tolist() == [str(m) for _, m, _, _ in rows]
    assert inter.cate.tolist() == [FIRST_GENRE[i] for i in inter.item.tolist()]
    assert inter.time.tolist() == [float(t) for _, _, _, t in rows]
    assert set(inter.cate[inter.item == "2"]) == {"Comedy"} and set(inter.cate[inter.item == "10"]) == {"Documentary"}  # accented titles


def test_grouplens_movies_dat_is_latin1():
    """The fixture really holds ISO-8859-1 bytes (not UTF-8), as GroupLens's movies.dat does."""
    movies = ml_1m_files()["movies.dat"]
    assert b"2::Caf\xe9 au lait (M\xe9tisse) (1993)::Comedy\n" in movies
    with pytest.raises(UnicodeDecodeError):
        movies.decode("utf-8")


@pytest.mark.parametrize("layout", ["", "ml-1m", "movielens/ml-1m"])
def test_grouplens_1m_files_load_directly(tmp_path, layout):
    write_files(tmp_path / layout, ml_1m_files())
    check_1m(read_movielens(tmp_path, "1m"))
    ds = load_dataset(DataConfig(dataset="movielens-1m", data_dir=str(tmp_path), maxlen=5, targets_per_user=2))
    assert ds.vocab.cates <= len(set(FIRST_GENRE.values())) + 2  # first genres, plus padding and unknown
    assert len(ds.valid) == 2 * round(USERS * 0.1) and len(ds.test) == 2 * round(USERS * 0.1)


def test_1m_crlf_blank_lines_and_gzip(tmp_path):
    import gzip

    files = ml_1m_files()
    ratings = files["ratings.dat"].replace(b"\n", b"\r\n")
    files["ratings.dat"] = gzip.compress(b"\r\n" + ratings + b"\r\n\r\n")
    files["movies.dat"] = files["movies.dat"].replace(b"\n", b"\r\n") + b"\r\n"
    check_1m(read_movielens(write_files(tmp_path / "ml-1m", files), "1m"))


def test_100k_grouplens_files_load(tmp_path):
    write_files(tmp_path / "ml-100k", ml_100k_files())
    inter = read_movielens(tmp_path, "100k")
    assert len(inter.user) == len(ratings_rows()) and len(np.unique(inter.user)) == USERS
    assert set(np.unique(inter.cate)) <= set(GENRES_100K[1:9])
    assert set(inter.cate[inter.item == "2"]) == {GENRES_100K[2 % 8 + 1]}  # "Café ..." keeps its genre flags in place


GOOD = "1::1::5::978300760\n1::2::3::978300761\n"
BAD_RATINGS = {
    "3 fields": (
        GOOD + "1::3::4\n",
        "ratings.dat, line 3: expected 4 '::'-separated fields UserID::MovieID::Rating::Timestamp, got '1::3::4'",
    ),
    "5 fields": (GOOD + "1::3::4::978300762::9\n", "line 3: expected 4 '::'-separated fields"),
    "trailing ::": (GOOD + "1::3::4::978300762::\n", "line 3: expected 4"),
    "single colons": (GOOD + "1:3:4:978300762\n", "line 3: expected 4"),
    "empty field": (GOOD + "1::::4::978300762\n", "line 3: expected 4"),
    "tabs": (GOOD + "1\t3\t4\t978300762\n", "line 3: expected 4"),
    "timestamp": (GOOD + "1::3::4::soon\n", "ratings.dat, line 3: timestamp must be a number, got 'soon'"),
    "blank lines count": ("\n" + GOOD + "\n\n1::3::4::soon\n", "line 6: timestamp must be a number"),
    "empty file": ("", "ratings.dat: empty file"),
    "only blank lines": ("\n\n", "ratings.dat: empty file"),
}


@pytest.mark.parametrize("case", BAD_RATINGS)
def test_malformed_ratings_dat_names_the_line(tmp_path, case):
    content, message = BAD_RATINGS[case]
    folder = write_files(tmp_path / "ml-1m", {**ml_1m_files(), "ratings.dat": content.encode()})
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(DataConfig(dataset="movielens-1m", data_dir=str(folder)))


def test_malformed_movies_dat_names_the_line(tmp_path):
    movies = ml_1m_files()["movies.dat"] + b"13::No genres here (2000)\n"
    folder = write_files(tmp_path, {**ml_1m_files(), "movies.dat": movies})
    with pytest.raises(DataError, match=r"movies.dat, line 13: expected 3 '::'-separated fields MovieID::Title::Genres, got 2"):
        read_movielens(folder, "1m")


def test_data_root_and_default_dirs(tmp_path, monkeypatch):
    monkeypatch.delenv("DIEN_BENCH_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "dien-bench" / "data"
    monkeypatch.setenv("DIEN_BENCH_DATA", str(tmp_path / "root"))
    assert data_root() == tmp_path / "root"
    assert default_data_dir("movielens-1m") == default_data_dir("movielens-100k") == tmp_path / "root" / "movielens"
    assert default_data_dir("amazon") == tmp_path / "root" / "amazon"


def test_missing_movielens_names_folder_and_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DIEN_BENCH_DATA", str(tmp_path / "root"))
    default = default_data_dir("movielens-1m")
    with pytest.raises(DataError) as err:
        find_files(default, "1m")
    text = str(err.value)
    assert text.startswith(f"{default}: data folder not found") and "\n" not in text
    assert "run `python -m bench data fetch movielens-1m` to download it" in text and "--dest" not in text
    assert f"put ratings.dat and movies.dat in {default / 'ml-1m'} by hand" in text

    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(dataset="movielens-100k", data_dir=str(tmp_path / "mine")))
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'mine'}: MovieLens 100K not found") and "expected u.data and u.item" in text
    assert f"`python -m bench data fetch movielens-100k --dest {tmp_path / 'mine'}`" in text
