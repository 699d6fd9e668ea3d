"""Suites: which data, models, seeds and training settings a comparison runs (TOML in bench/suites/)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dien_core import ModelConfig

from .config_io import from_dict, read_toml, to_dict
from .data import DataConfig
from .heuristics import HEURISTICS
from .models import check_model_name, config_for
from .resources import CellResources
from .train import TrainConfig

SUITES_DIR = Path(__file__).parent / "suites"
SHORT_NAMES = {"att_normalization": "att", "augru_convention": "augru", "targets_per_user": "targets", "aux_activation": "aux-act"}
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
# data settings a row may change (the rest describe the data set itself and stay the suite's)
ROW_DATA_FIELDS = ("targets_per_user", "user_feature", "user_dropout", "negative_sampling", "target_negatives")
# training settings a row may change: a cap on a slow row whose outcome its first epochs already
# show, and the optimiser's settings of a tuned row (`bench run --params-from`)
ROW_TRAIN_FIELDS = ("epochs", "lr", "lr_decay", "weight_decay", "batch_size", "grad_clip")
ROW_FIELDS = (*ROW_DATA_FIELDS, *ROW_TRAIN_FIELDS)


@dataclass(frozen=True)
class Row:
    """One line of the comparison: a model name plus model- or data-config overrides (ablation
    variants); ``label`` names a row whose overrides are too many to spell (a tuned one)."""

    model: str
    overrides: tuple[tuple[str, Any], ...] = ()
    label: str = ""

    def __post_init__(self) -> None:
        if self.label and not self.label.startswith(f"{self.model}/"):
            raise ValueError(f"row label {self.label!r} must start with its model's name, {self.model}/")

    @property
    def name(self) -> str:
        """Self-explaining: ``dien-augru+aux/att-softmax/augru-original``, ``din/targets-all``, ``din/tuned``."""
        return self.label or "/".join([self.model, *(f"{SHORT_NAMES.get(k, k)}-{v}" for k, v in self.overrides)])

    def model_config(self, base: ModelConfig) -> ModelConfig:
        model = {k: v for k, v in self.overrides if k not in ROW_FIELDS}
        if unknown := sorted(set(model) - set(MODEL_FIELDS)):
            allowed = ", ".join([*MODEL_FIELDS, *ROW_FIELDS])
            raise ValueError(f"variant {self.name}: unknown model setting {', '.join(unknown)}; allowed: {allowed}")
        return config_for(self.model, replace(base, **model))

    def data_config(self, base: DataConfig) -> DataConfig:
        return replace(base, **{k: v for k, v in self.overrides if k in ROW_DATA_FIELDS})

    def train_config(self, base: TrainConfig) -> TrainConfig:
        return replace(base, **{k: v for k, v in self.overrides if k in ROW_TRAIN_FIELDS})


@dataclass(frozen=True)
class SuiteConfig:
    name: str
    description: str = ""
    data: tuple[DataConfig, ...] = (DataConfig(),)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    models: tuple[str, ...] = ()
    variants: tuple[Row, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    comparisons: tuple[tuple[str, str], ...] = ()  # (row, row) pairs tested over seeds, Holm-corrected
    heuristics: bool = True  # add the non-learned rows (bench/heuristics.py) to every table
    resources: CellResources = field(default_factory=CellResources)  # what each cell asks of Ray (`run --ray`)

    def __post_init__(self) -> None:
        object.__setattr__(self, "comparisons", tuple(tuple(c) for c in self.comparisons))
        for m in self.models:
            check_model_name(m)
        if not self.seeds:
            raise ValueError("a suite needs at least one seed")
        if not self.models and not self.variants:
            raise ValueError("a suite needs at least one model")
        for row in self.rows:
            row.model_config(self.model)  # unknown overrides fail now, not after an hour of training
            row.train_config(self.train)
            for data in self.data:
                row.data_config(data)
        names = {r.name for r in self.rows} | set(HEURISTICS if self.heuristics else ())
        for pair in self.comparisons:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"a comparison names two different rows, got {list(pair)}")
            if missing := [n for n in pair if n not in names]:
                raise ValueError(f"comparison {list(pair)}: no row named {', '.join(missing)}; rows: {', '.join(sorted(names))}")

    @property
    def rows(self) -> tuple[Row, ...]:
        return tuple(Row(m) for m in self.models) + self.variants

    def cell_config(self, data: DataConfig, row: Row) -> dict[str, Any]:
        """Everything that decides one cell's result, for its hash and for metadata."""
        return {
            "data": to_dict(row.data_config(data)),
            "model": to_dict(row.model_config(self.model)),
            "train": to_dict(row.train_config(self.train)),
        }

    def cell_hash(self, data: DataConfig, row: Row) -> str:
        return config_hash(self.cell_config(data, row))

    def heuristic_hash(self, data: DataConfig) -> str:
        """A non-learned row depends on the data alone."""
        return config_hash({"data": to_dict(data)})

    def folder_hash(self) -> str:
        """What a results folder holds one of: the data and the base model and training settings.
        More seeds or rows may join a folder; another configuration may not."""
        return config_hash({"name": self.name, "data": [to_dict(d) for d in self.data], "model": to_dict(self.model),
                            "train": to_dict(self.train)})  # fmt: skip

    def sweeps(self) -> dict[tuple[str, str], tuple[tuple[float, str], ...]]:
        """Rows that differ from a model's row in one numeric setting, as ``(model, setting) ->
        ((value, row name), ...)`` sorted by value; the plain row joins at its configured value.
        ``alpha`` variants of ``dien-augru+aux`` make the alpha sweep."""
        found: dict[tuple[str, str], dict[float, str]] = {}
        for row in self.variants:
            if len(row.overrides) != 1 or row.label:
                continue
            key, value = row.overrides[0]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or key not in MODEL_FIELDS:
                continue
            found.setdefault((row.model, key), {})[float(value)] = row.name
        for (model, key), points in found.items():
            if model in self.models:
                points.setdefault(float(getattr(config_for(model, self.model), key)), model)
        return {k: tuple(sorted(v.items())) for k, v in found.items() if len(v) > 1}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "data": [to_dict(d) for d in self.data],
            "model": to_dict(self.model), "train": to_dict(self.train), "models": list(self.models),
            "variants": [{"model": v.model, **({"label": v.label} if v.label else {}), **dict(v.overrides)} for v in self.variants],
            "seeds": list(self.seeds),
            "comparisons": [list(c) for c in self.comparisons], "heuristics": self.heuristics,
            "resources": to_dict(self.resources),
        }  # fmt: skip


def config_hash(config: dict[str, Any]) -> str:
    config = json.loads(json.dumps(config))
    for data in config.get("data", []) if isinstance(config.get("data"), list) else [config.get("data", {})]:
        data.pop("data_dir", None)  # where the files lie does not change the result
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def parse_suite(raw: dict[str, Any], where: str) -> SuiteConfig:
    raw = dict(raw)
    allowed = {f.name for f in dataclasses.fields(SuiteConfig)}
    if unknown := sorted(set(raw) - allowed):
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    data = raw.pop("data", [{}])
    data = [data] if isinstance(data, dict) else data
    variants = [Row(v["model"], tuple((k, x) for k, x in v.items() if k not in ("model", "label")), v.get("label", ""))
                for v in raw.pop("variants", [])]  # fmt: skip
    return SuiteConfig(
        name=raw.pop("name", Path(where).stem),
        data=tuple(from_dict(DataConfig, d, "data") for d in data),
        model=from_dict(ModelConfig, raw.pop("model", {}), "model"),
        train=from_dict(TrainConfig, raw.pop("train", {}), "train"),
        models=tuple(raw.pop("models", ())),
        variants=tuple(variants),
        seeds=tuple(raw.pop("seeds", (0, 1, 2))),
        comparisons=tuple(tuple(c) for c in raw.pop("comparisons", ())),
        resources=from_dict(CellResources, raw.pop("resources", {}), "resources"),
        **raw,
    )


def load_suite(name_or_path: str) -> SuiteConfig:
    """A built-in suite by name (``quick``, ``standard``, ``paper``) or a TOML file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.toml")))
            raise ValueError(f"unknown suite {name_or_path!r}; built-in suites: {known}, or give a .toml path")
    return parse_suite(read_toml(path), str(path))
