"""Model names of DESIGN.md and how each one is built from dien_core and baselines."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from baselines import BST, DIN, PNN, GRUAttention, SumPooling, WideDeep
from dien_core import DIEN, ModelConfig, Plan, VocabSizes, plan_for

# Amazon Electronics as in the DIEN paper: 192,403 users, 63,001 goods, 801 categories (+ padding, unknown).
REALISTIC_VOCAB = VocabSizes(users=192_405, items=63_003, cates=803)
# The authors' shapes: embedding 18 per feature, attention 80-40, MLP 200-80, auxiliary MLP 100-50.
PAPER_SHAPES = ModelConfig(embedding_dim=18, attention_hidden=(80, 40), aux_hidden=(100, 50), mlp_hidden=(200, 80))
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


def build_model(name: str, base: ModelConfig, vocab: VocabSizes, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                autocast: bool = False) -> nn.Module:  # fmt: skip
    """A fresh model for ``name`` (see ``MODEL_NAMES``) on ``device``, its plan (``model.plan``) resolved from
    ``base.backend`` for that device and dtype (``autocast``: it will run under bfloat16 autocast)."""
    config = config_for(name, base)
    return BASELINES.get(name, DIEN)(config, vocab, model_plan(name, base, device, dtype, autocast)).to(device=device, dtype=dtype)


def model_plan(name: str, base: ModelConfig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
               autocast: bool = False) -> Plan:  # fmt: skip
    """The plan ``build_model`` gives ``name`` (``dien_core/kernels/plan.py``), without building it."""
    config = config_for(name, base)
    return plan_for(config, BASELINES.get(name, DIEN).pieces(config), device, dtype, autocast)


def plans_of(names: tuple[str, ...], base: ModelConfig, device: torch.device, dtypes: tuple[str, ...] = ("float32",), log=None) -> dict:
    """``model_plan`` of each model name on ``device``, per dtype name ("bfloat16": float32 weights under
    autocast), as ``metadata.json`` records them: {"<model> <dtype>": plan dict}; each printed with ``log``."""
    out = {}
    for dtype in dtypes:
        for name in names:
            plan = model_plan(name, base, device, autocast=dtype != "float32")
            if log is not None:
                log(f"{name} {dtype}: {plan}")
            out[f"{name} {dtype}"] = plan.as_dict()
    return out
