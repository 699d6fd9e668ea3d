"""Search spaces as data: TOML tables turned into Optuna suggestions and config overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dien_core import ModelConfig

from ..config_io import read_toml
from ..train import TrainConfig

SPACES_DIR = Path(__file__).resolve().parents[1] / "spaces"
TYPES = ("float", "int", "choice", "layers")
MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)}
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    zero: bool = False
    values: tuple[Any, ...] = ()
    layers: tuple[int, int] = (1, 1)
    widths: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        where = f"search-space parameter {self.name!r}"
        if self.name not in MODEL_FIELDS | TRAIN_FIELDS:
            raise ValueError(
                f"unknown {where}; parameters are fields of the model or training config: {', '.join(sorted(MODEL_FIELDS | TRAIN_FIELDS))}"
            )
        if self.type not in TYPES:
            raise ValueError(f"{where}: unknown type {self.type!r}; allowed: {', '.join(TYPES)}")
        if self.type in ("float", "int") and (
            self.low is None or self.high is None or self.low > self.high or (self.log and self.low <= 0)
        ):
            raise ValueError(f"{where}: needs low <= high (and low > 0 with log)")
        if self.type == "choice" and not self.values:
            raise ValueError(f"{where}: a choice needs values = [...]")
        if self.type == "layers" and (not self.widths or not 1 <= self.layers[0] <= self.layers[1]):
            raise ValueError(f"{where}: layers needs layers = [min, max] with 1 <= min <= max and widths = [...]")

    def suggest(self, trial) -> Any:
        if self.type == "float":
            if self.zero and trial.suggest_categorical(f"{self.name}_is_zero", [False, True]):
                return 0.0
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        if self.type == "choice":
            return trial.suggest_categorical(self.name, list(self.values))
        n = trial.suggest_int(f"{self.name}_layers", self.layers[0], self.layers[1])
        return tuple(trial.suggest_categorical(f"{self.name}_{i}", list(self.widths)) for i in range(n))


def parse_space(raw: dict[str, Any], where: str) -> dict[str, Param]:
    params = {}
    allowed = {f.name for f in dataclasses.fields(Param)} - {"name"}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ValueError(f'{where}: {name!r} must be a table such as [{name}] type = "float" ...')
        if unknown := sorted(set(table) - allowed):
            raise ValueError(f"{where}: parameter {name!r} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        table = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
        params[name] = Param(name=name, **table)
    return params


def family(model: str) -> str:
    return "dien" if model.startswith("dien-") else model


def load_space(model: str, user_space: Path | None = None, fixed: dict[str, Any] | None = None) -> dict[str, Param]:
    """The family's space, with a user TOML's tables replacing those of the same name
    (``replace_all = true`` in it drops the defaults), and ``fixed`` parameters removed."""
    space = parse_space(read_toml(SPACES_DIR / f"{family(model)}.toml"), f"{family(model)}.toml")
    if user_space is not None:
        raw = read_toml(user_space)
        if raw.pop("replace_all", False):
            space = {}
        space.update(parse_space(raw, str(user_space)))
    for name in fixed or {}:
        if name not in MODEL_FIELDS | TRAIN_FIELDS:
            raise ValueError(f"--fix {name}: unknown parameter; parameters are fields of the model or training config")
        space.pop(name, None)
    if not space:
        raise ValueError("the search space is empty: nothing to tune")
    return space


def split_values(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parameter values -> (model-config overrides, train-config overrides)."""
    model = {k: v for k, v in values.items() if k in MODEL_FIELDS}
    train = {k: v for k, v in values.items() if k in TRAIN_FIELDS and k not in MODEL_FIELDS}
    return model, train
