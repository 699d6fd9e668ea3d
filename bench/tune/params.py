"""Reading tuning studies' best.json back into a suite (``bench run --params-from``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path

from dien_core import ModelConfig

from ..config_io import from_dict, to_dict
from ..data import DataConfig
from ..suite import ROW_TRAIN_FIELDS, Row, SuiteConfig, config_hash
from ..train import TrainConfig


@dataclass(frozen=True)
class Tuned:
    """One study's best trial: its model, study name and the three configs it trained with."""

    model: str
    study: str
    data: DataConfig
    model_config: ModelConfig
    train_config: TrainConfig
    written_model_config: dict  # as best.json holds it (a study made before a field existed lacks it)


# the optimiser's settings a tuning space may tune; every other training setting must agree
# between the studies of one table (``epochs`` too, so that ``--epochs`` reaches every row)
TUNED_TRAIN_FIELDS = tuple(name for name in ROW_TRAIN_FIELDS if name != "epochs")


def read_best(path: Path) -> Tuned:
    if not path.is_file():
        raise ValueError(f"{path}: no such file (expected best.json of `python -m bench tune`)")
    try:
        best = json.loads(path.read_text())
        return Tuned(
            model=best["model"],
            study=best["study"],
            data=from_dict(DataConfig, best["data_config"], "data_config"),
            model_config=from_dict(ModelConfig, best["model_config"], "model_config"),
            train_config=from_dict(TrainConfig, best["train_config"], "train_config"),
            written_model_config=dict(best["model_config"]),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a best.json written by `python -m bench tune` ({err})") from err


def tuned_row(tuned: Tuned, base_model: ModelConfig, base_train: TrainConfig, label: str) -> Row:
    """A row that trains with the study's configs: its overrides are what differs from the bases."""
    overrides = [(f.name, getattr(tuned.model_config, f.name)) for f in dataclasses.fields(ModelConfig)
                 if getattr(tuned.model_config, f.name) != getattr(base_model, f.name)]  # fmt: skip
    untunable = [f.name for f in dataclasses.fields(TrainConfig)
                 if f.name not in TUNED_TRAIN_FIELDS and getattr(tuned.train_config, f.name) != getattr(base_train, f.name)]  # fmt: skip
    if untunable:
        raise ValueError(f"study {tuned.study}: training settings {', '.join(untunable)} differ from the first study's; "
                         "evaluate them apart (one --params-from each)")  # fmt: skip
    overrides += [(name, getattr(tuned.train_config, name)) for name in TUNED_TRAIN_FIELDS
                  if getattr(tuned.train_config, name) != getattr(base_train, name)]  # fmt: skip
    row = Row(tuned.model, tuple(overrides), label)
    built = to_dict(row.model_config(base_model))
    if changed := sorted(k for k, v in tuned.written_model_config.items() if built.get(k) != v):
        raise ValueError(f"study {tuned.study}: {tuned.model} no longer builds the configuration it was tuned with "
                         f"({', '.join(changed)} differ); retune it")  # fmt: skip
    return row


def apply_params(suite: SuiteConfig, paths: Sequence[Path]) -> SuiteConfig:
    """The suite narrowed to one tuned row per study (``<model>/tuned``, or ``<model>/tuned-<study>``
    where two studies tuned one model), on the studies' data, with every pair of them declared
    as a comparison in the order given. The first study's settings are the folder's base: give
    the files in the same order to continue a folder. Studies tuned on different data, or with
    different untuned training settings, are refused: their rows could not share a table."""
    if not paths:
        raise ValueError("--params-from needs at least one best.json")
    studies = [read_best(Path(p)) for p in paths]
    first = studies[0]
    for other in studies[1:]:
        if config_hash({"data": to_dict(other.data)}) != config_hash({"data": to_dict(first.data)}):  # data_dir aside
            raise ValueError(f"studies {first.study} and {other.study} were tuned on different data; evaluate them apart")
    models = [s.model for s in studies]
    labels = [f"{s.model}/tuned" if models.count(s.model) == 1 else f"{s.model}/tuned-{s.study}" for s in studies]
    if repeated := sorted({label for label in labels if labels.count(label) > 1}):
        raise ValueError(f"--params-from: two studies of one model share a study name ({', '.join(repeated)}); "
                         "tune them with distinct --study names")  # fmt: skip
    base_model, base_train = first.model_config, first.train_config
    rows = tuple(tuned_row(s, base_model, base_train, label) for s, label in zip(studies, labels))
    return replace(
        suite,
        name="tuned-" + "+".join(s.study for s in studies),
        data=(first.data,),
        model=base_model,
        train=base_train,
        models=(),
        variants=rows,
        comparisons=tuple(combinations(labels, 2)),
    )
