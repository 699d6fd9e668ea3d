"""Reading delimited text files (plain or gzipped) into string columns, with errors that name file and line."""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError


def open_text(path: Path, encoding: str = "utf-8"):
    """Open a plain or gzipped text file (by its magic bytes, not its name)."""
    if not path.is_file():
        raise DataError("file not found", path)
    with open(path, "rb") as raw:
        magic = raw.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding=encoding, errors="replace", newline="")
    return open(path, encoding=encoding, errors="replace", newline="")


def read_table(
    path: Path, sep: str, columns: list[str], header: bool, encoding: str = "utf-8", required: list[str] | None = None
) -> pd.DataFrame:
    """All ``columns`` as strings. ``header=True`` skips one line. A line missing a
    ``required`` field (default: every column), or an empty file, is a DataError naming the line."""
    try:
        with open_text(path, encoding) as f:
            frame = pd.read_csv(
                f, sep=sep, header=None, skiprows=1 if header else 0, dtype=str, keep_default_na=False,
                na_values=[], quoting=csv.QUOTE_NONE, names=range(len(columns)), usecols=range(len(columns)),
                engine="c", on_bad_lines="error", skip_blank_lines=False,
            )  # fmt: skip
    except pd.errors.EmptyDataError as err:
        raise DataError(f"empty file; expected {sep!r}-separated fields {', '.join(columns)}", path) from err
    except pd.errors.ParserError as err:
        raise DataError(f"malformed line ({err}); expected {sep!r}-separated fields {', '.join(columns)}", path) from err
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"truncated or corrupt gzip file ({err})", path) from err
    # Blank lines are read (so that row i is line i + offset) and then dropped, keeping each row's line.
    lines = np.arange(len(frame)) + (2 if header else 1)
    blank = (frame[0] == "").to_numpy().copy()  # a blank line reads as all ""; check the rest only there
    blank[blank] = (frame[blank] == "").all(axis=1).to_numpy()
    frame, lines = frame[~blank].reset_index(drop=True), lines[~blank]
    if frame.empty:
        raise DataError(f"no data rows; expected {sep!r}-separated fields {', '.join(columns)}", path)
    frame.columns = columns
    for name in columns:
        col = frame[name].fillna("").str.strip()  # also drops the \r of CRLF files
        frame[name] = col
        missing = col == ""
        if name in (required or columns) and missing.any():
            line = int(lines[np.flatnonzero(missing.to_numpy())[0]])
            raise DataError(f"missing field {name!r}; expected {len(columns)} fields: {', '.join(columns)}", path, line)
    frame.attrs["lines"] = lines
    return frame


def numeric(frame: pd.DataFrame, name: str, path: Path) -> np.ndarray:
    """Column ``name`` as float64; the first non-numeric value is a DataError with its line."""
    values = pd.to_numeric(frame[name], errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        line = int(frame.attrs["lines"][row]) if "lines" in frame.attrs else row + 1
        raise DataError(f"{name} must be a number, got {frame[name].iloc[row]!r}", path, line)
    return values.to_numpy(dtype=np.float64)
