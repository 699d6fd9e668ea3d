"""One error type for bad input data: it names the file, the line and what was expected."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Malformed or missing input data. The CLI prints it and exits with status 2."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}" + (f", line {line}" if line is not None else "") + ": "
        super().__init__(where + message)
        self.path, self.line = path, line
