"""The candidate fixes that scripts/aux_study.py measures: a ``Fix`` parsed from ``key=value``
items (ModelConfig fields, training settings, or patches of a built model), the auxiliary-loss
variants the patches install, and a linear learning-rate warm-up for ``bench.train``."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

import bench.train as bench_train
from dien_core import ModelConfig
from dien_core.mlp import MLP


class ProductAux(nn.Module):
    """The auxiliary loss with the MLP over ``[h_t, e_{t+1}, h_t * e_{t+1}]``: the interaction is an input."""

    def __init__(self, dim: int, hidden: tuple[int, ...], activation: str) -> None:
        super().__init__()
        self.mlp = MLP(3 * dim, hidden, activation)

    def forward(self, states, clicked, negative, mask):
        h, valid = states[:, :-1], mask[:, 1:]

        def logit(e):
            return self.mlp(torch.cat([h, e, h * e], dim=-1), valid)

        pos, neg = logit(clicked[:, 1:]), logit(negative[:, 1:])
        loss = F.softplus(-pos) + F.softplus(neg)
        weight = valid.to(loss.dtype)
        return (loss * weight).sum() / weight.sum().clamp_min(1.0)


class DetachedStates(nn.Module):
    """Wraps the auxiliary loss so that its gradient stops at the extractor's states."""

    def __init__(self, aux: nn.Module) -> None:
        super().__init__()
        self.inner = aux

    def forward(self, states, clicked, negative, mask):
        return self.inner(states.detach(), clicked, negative, mask)


# ----------------------------------------------------------------------------------------- fixes

MODEL_KEYS = {"alpha": float, "att_act": str, "mlp_act": str, "att_norm": str}
TRAIN_KEYS = {"lr": float, "warmup": int, "batch": int, "epochs": int, "neg": str}
PATCH_KEYS = {"emb_std": float, "emb_init": str, "aux_act": str, "aux_init": str, "aux_input": str, "aux_grad": str}
MODEL_FIELD = {"att_act": "attention_activation", "mlp_act": "mlp_activation", "att_norm": "att_normalization"}


@dataclass(frozen=True)
class Fix:
    name: str
    values: dict

    @classmethod
    def parse(cls, text: str) -> Fix:
        if text in ("base", ""):
            return cls("base", {})
        values = {}
        for item in text.split(","):
            key, sep, raw = item.partition("=")
            kinds = {**MODEL_KEYS, **TRAIN_KEYS, **PATCH_KEYS}
            if not sep or key not in kinds:
                raise SystemExit(f"bad fix item {item!r}: expected key=value with key in {', '.join(kinds)}")
            values[key] = kinds[key](raw)
        return cls(text, values)

    def model_config(self, base: ModelConfig) -> ModelConfig:
        over = {MODEL_FIELD.get(k, k): v for k, v in self.values.items() if k in MODEL_KEYS}
        if "aux_act" in self.values:
            over["aux_activation"] = self.values["aux_act"]
        return replace(base, **over)

    def patch(self, model: nn.Module) -> nn.Module:
        """The fixes that no ModelConfig field expresses, applied to a built model."""
        v = self.values
        if "emb_std" in v or "emb_init" in v:
            emb = model.embedding
            for table in (emb.user, emb.item, emb.cate):
                if v.get("emb_init") == "xavier":
                    nn.init.xavier_normal_(table.weight)
                else:
                    nn.init.normal_(table.weight, std=v.get("emb_std", 0.05))
                with torch.no_grad():
                    table.weight[0].zero_()
        extractor = getattr(model, "extractor", None)
        aux = getattr(extractor, "aux", None)
        if aux is None:
            return model
        if v.get("aux_input") == "product":
            activation = v.get("aux_act", getattr(aux, "activation", "sigmoid"))
            aux = ProductAux(aux.hidden_size, tuple(lin.out_features for lin in aux.mlp.linears), activation)
        if v.get("aux_init") == "xavier":
            for lin in [*aux.mlp.linears, aux.mlp.out]:
                nn.init.xavier_uniform_(lin.weight)
                nn.init.zeros_(lin.bias)
        if v.get("aux_grad") == "detach":
            aux = DetachedStates(aux)
        extractor.aux = aux
        return model


class WarmupAdam:
    """Patches ``bench.train.make_adam`` so that the learning rate ramps up linearly over ``steps``
    (a step pre-hook, which leaves ``opt.step`` to the schedulers that wrap it)."""

    def __init__(self, steps: int) -> None:
        self.steps, self.original = steps, bench_train.make_adam

    def __enter__(self):
        steps, original = self.steps, self.original

        def make_adam(model, lr, weight_decay=0.0):
            opt = original(model, lr, weight_decay)
            if steps <= 0:
                return opt
            peak, count = [g["lr"] for g in opt.param_groups], [0]

            def ramp(optimizer, args, kwargs):
                count[0] += 1
                for group, top in zip(optimizer.param_groups, peak):
                    group["lr"] = top * min(1.0, count[0] / steps)

            opt.register_step_pre_hook(ramp)
            return opt

        bench_train.make_adam = make_adam
        return self

    def __exit__(self, *exc):
        bench_train.make_adam = self.original
