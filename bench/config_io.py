"""Frozen dataclasses from TOML dictionaries: unknown keys are errors, nested dataclasses recurse."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build ``cls`` from ``data``; a key that ``cls`` lacks raises ValueError naming the allowed ones."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where or cls.__name__}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
    values = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, f"{where}.{key}" if where else key)
        values[key] = value
    try:
        return cls(**values)
    except TypeError as err:  # a wrong type caught by a __post_init__ comparison
        raise ValueError(f"{where or cls.__name__}: {err}") from err


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain TOML/JSON-friendly values (tuples become lists)."""
    return json_ready(dataclasses.asdict(obj))


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from err
