"""Reading a tuning study's best.json back into a suite (``bench run --params-from``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from dien_core import ModelConfig

from .config_io import from_dict
from .data import DataConfig
from .suite import Row, SuiteConfig
from .train import TrainConfig


def apply_params(suite: SuiteConfig, path: Path) -> SuiteConfig:
    """The suite narrowed to the tuned model, with the study's data, model and training configs."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file (expected best.json of `python -m bench tune`)")
    try:
        best = json.loads(path.read_text())
        model = best["model"]
        return replace(
            suite,
            name=f"tuned-{best['study']}",
            data=(from_dict(DataConfig, best["data_config"], "data_config"),),
            model=from_dict(ModelConfig, best["model_config"], "model_config"),
            train=from_dict(TrainConfig, best["train_config"], "train_config"),
            models=(),
            variants=(Row(model),),
            comparisons=(),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a best.json written by `python -m bench tune` ({err})") from err
