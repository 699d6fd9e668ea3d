"""Model names of DESIGN.md and how each one is built from dien_core and baselines."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from baselines import BST, DIN, PNN, GRUAttention, SumPooling, WideDeep
from dien_core import DIEN, ModelConfig, VocabSizes

GRU_SUFFIXES = {"gru": "GRU", "aigru": "AIGRU", "agru": "AGRU", "augru": "AUGRU"}
# The baselines without an auxiliary loss, by name: sum pooling, DIN, the DIEN paper's Table 2 models, BST.
BASELINES: dict[str, type[nn.Module]] = {
    "sum-pooling": SumPooling,
    "din": DIN,
    "wide-deep": WideDeep,
    "pnn": PNN,
    "gru-att": GRUAttention,
    "bst": BST,
}
MODEL_NAMES: tuple[str, ...] = (
    *BASELINES,
    *(f"dien-{s}" for s in GRU_SUFFIXES),
    *(f"dien-{s}+aux" for s in GRU_SUFFIXES),
)


def check_model_name(name: str) -> str:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    return name


def config_for(name: str, base: ModelConfig) -> ModelConfig:
    """The base config with the gru type and auxiliary loss that the model name says."""
    check_model_name(name)
    if not name.startswith("dien-"):
        return replace(base, use_aux_loss=False)
    suffix = name.removeprefix("dien-")
    aux = suffix.endswith("+aux")
    return replace(base, gru_type=GRU_SUFFIXES[suffix.removesuffix("+aux")], use_aux_loss=aux)


def build_model(name: str, base: ModelConfig, vocab: VocabSizes) -> nn.Module:
    """A fresh model for ``name`` (see ``MODEL_NAMES``)."""
    config = config_for(name, base)
    if name in BASELINES:
        return BASELINES[name](config, vocab)
    return DIEN(config, vocab)
