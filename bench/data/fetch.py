"""Download a GroupLens MovieLens archive, check its pinned sha256 and unpack it atomically.

``fetch("movielens-1m")`` puts GroupLens's files in ``<root>/movielens/ml-1m/`` (root: ``data_root()``),
where the MovieLens reader looks by default. The archive is downloaded and unpacked into a temporary
folder next to that one and renamed into place only when complete: a failure leaves neither a half
folder nor temporary files. Every failure is one DataError line: what went wrong, the URL, and where to
put the files by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .errors import DataError
from .paths import data_root

CHUNK = 1 << 16


@dataclass(frozen=True)
class Source:
    """One GroupLens archive: where it is served, its pinned sha256, and the files the reader needs."""

    url: str
    sha256: str
    size: int
    folder: str  # the folder inside the zip, and the one made under <dest>/movielens/
    files: tuple[str, ...]
    page: str  # GroupLens's page for the dataset, for getting it by hand


# sha256 and sizes as pinned by TensorFlow Datasets (tensorflow_datasets/url_checksums/movielens.txt) and
# other public loaders; GroupLens publishes the md5 (ml-1m.zip.md5: c4d9eecfca2ab87c1945afe126590906).
SOURCES = {
    "movielens-1m": Source(
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        5_917_549, "ml-1m", ("ratings.dat", "movies.dat"), "https://grouplens.org/datasets/movielens/1m/",
    ),
    "movielens-100k": Source(
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        4_924_029, "ml-100k", ("u.data", "u.item"), "https://grouplens.org/datasets/movielens/100k/",
    ),
}  # fmt: skip


TIMEOUT_SECONDS = 60.0  # how long fetch waits on the network before giving up

def target_dir(name: str, dest: str | Path | None = None) -> Path:
    """The folder ``fetch(name, dest)`` fills: ``<dest or data_root()>/movielens/ml-<variant>``."""
    source = _source(name)
    return (Path(dest).expanduser() if dest else data_root()) / "movielens" / source.folder


def fetch(
    name: str,
    dest: str | Path | None = None,
    url: str | None = None,
    sha256: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
    progress: bool | None = None,
) -> Path:
    """Download ``name`` (``movielens-1m`` or ``movielens-100k``) into ``target_dir(name, dest)`` and return it.

    ``url`` replaces GroupLens's (a mirror); ``sha256`` the pinned checksum (for another archive). ``timeout``
    bounds each network wait, in seconds. ``progress``: show a tqdm bar (None: only on a terminal). A folder
    that already holds the files is kept and returned without a download."""
    source = _source(name)
    target = target_dir(name, dest)
    url = url or source.url
    expected = (sha256 or source.sha256).strip().lower()
    by_hand = f"get {Path(source.url).name} from {source.page} and put {' and '.join(source.files)} in {target} by hand"
    if target.exists():
        if all((target / f).is_file() for f in source.files):
            return target
        raise DataError(f"folder exists but lacks {' or '.join(source.files)}; remove it and fetch again, or {by_hand}", target)
    try:
        made = _make_parents(target.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{source.folder}-", suffix=".tmp", dir=target.parent))
    except OSError as err:
        raise DataError(f"cannot write there ({_reason(err)}); choose another --dest, or {by_hand}", target.parent) from err
    try:
        archive = tmp / Path(source.url).name
        digest = _download(url, archive, timeout, progress, name, by_hand)
        if digest != expected:
            raise DataError(f"sha256 mismatch for {url}: got {digest}, expected {expected} (corrupt or changed download); {by_hand}")
        unpacked = _unpack(archive, tmp / "unpacked", source, url, by_hand)
        os.replace(unpacked, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(made):  # the parents this call made, innermost first, if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    return target


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown dataset to fetch {name!r}; allowed: {', '.join(SOURCES)}")
    return SOURCES[name]


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, outermost first."""
    missing = []
    for p in (folder, *folder.parents):
        if p.exists():
            break
        missing.append(p)
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _download(url: str, path: Path, timeout: float, progress: bool | None, name: str, by_hand: str) -> str:
    """Stream ``url`` into ``path`` with a progress bar; returns the sha256 of what arrived."""
    hasher, got, length = hashlib.sha256(), 0, None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as out:
            header = response.headers.get("Content-Length")
            length = int(header) if header and header.isdigit() else None
            bar = tqdm(
                total=length, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=None if progress is None else not progress
            )
            with bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    hasher.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        raise DataError(f"download failed: HTTP {err.code} {err.reason} for {url}; {by_hand}") from err
    except urllib.error.URLError as err:
        raise DataError(f"download failed (offline?): {_reason(err.reason)} for {url}; {by_hand}") from err
    except http.client.IncompleteRead as err:
        raise DataError(f"download truncated: got {got + len(err.partial)} of {length} bytes from {url}; {by_hand}") from err
    except (TimeoutError, OSError, http.client.HTTPException) as err:
        raise DataError(f"download failed after {got} bytes: {_reason(err)} for {url}; {by_hand}") from err
    if length is not None and got < length:
        raise DataError(f"download truncated: got {got} of {length} bytes from {url}; {by_hand}")
    return hasher.hexdigest()


def _reason(err: object) -> str:
    """An exception (or URLError's reason) as a short phrase on one line."""
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    text = str(getattr(err, "strerror", None) or err).replace("\n", " ").strip()
    return text or type(err).__name__


def _unpack(archive: Path, into: Path, source: Source, url: str, by_hand: str) -> Path:
    """Extract ``archive`` and return the folder holding ``source.files`` (the zip's ``ml-<variant>/``)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)  # zipfile drops absolute paths and '..' from member names
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise DataError(f"download from {url} is not a readable zip archive ({_reason(err)}); {by_hand}") from err
    for folder in (into / source.folder, into):
        if all((folder / f).is_file() for f in source.files):
            return folder
    raise DataError(f"archive from {url} holds no {source.folder}/{' and '.join(source.files)}; {by_hand}")
