"""Issue 14: why DIEN's auxiliary loss sits at 2 ln 2 on order-only data, and what fixes it.

Four commands, each prints its table (markdown) and can append its rows to a CSV:

- ``oracle``: hand-made scores on the data, no training: an order-free one (how many history
  clicks are predecessors of the target's category, the signal a model without order can use)
  against recency-weighted ones (the same, weighted by ``w ** age``).
- ``run``: train models, each with candidate fixes, over seeds; per cell the auxiliary loss after
  epoch 1 and at the end, validation and test AUC. Models are ``bench.models.MODEL_NAMES``;
  ``gru-att`` is the recurrent baseline. The candidate fixes live in ``aux_study_fixes.py``.
- ``grads``: gradient norms, from the auxiliary loss and from the main loss separately, of the
  auxiliary MLP's first layer (its ``h_t`` and ``e_{t+1}`` blocks), the extractor GRU and the
  embedding tables, at initialisation and after some Adam steps; with the spread of the states
  and of the auxiliary MLP's first pre-activations across rows (how much of them depends on
  the input at all).
- ``summary``: mean and standard deviation per (data, model, fix) of CSVs written by ``run``.

A fix is ``name`` or comma-separated ``key=value`` items (``--fix emb_std=0.3,aux_act=relu``):

- ``emb_std=S`` (embedding tables N(0, S^2) after build), ``emb_init=xavier``;
- ``aux_act=sigmoid|relu|prelu|dice`` (the auxiliary MLP's hidden activations: ModelConfig's
  ``aux_activation``, whose default is relu; ``sigmoid`` is the authors' MLP), ``aux_init=xavier``
  (its Linear layers, zero biases), ``aux_input=product`` (the auxiliary MLP reads
  ``[h, e, h * e]``), ``aux_grad=detach`` (no auxiliary gradient into the GRU);
- ``att_act=...``, ``mlp_act=...`` (ModelConfig's attention and head activations);
- ``alpha=A``, ``lr=L``, ``warmup=N`` (linear warm-up over N steps), ``batch=B``, ``epochs=E``,
  ``neg=uniform|popularity`` (the auxiliary loss's negatives).

Examples (one thread, as the numbers in the issue were made)::

    OMP_NUM_THREADS=1 python scripts/aux_study.py oracle --data order
    OMP_NUM_THREADS=1 python scripts/aux_study.py run --data order --sizes paper \\
        --models din,dien-augru+aux,gru-att --fix base --fix aux_act=sigmoid --seeds 0,1,2 --csv runs.csv
    OMP_NUM_THREADS=1 python scripts/aux_study.py grads --data order --sizes paper --fix aux_act=sigmoid --fix base
    python scripts/aux_study.py summary runs.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench.train as bench_train  # noqa: E402
from bench import metrics  # noqa: E402
from bench.data import BatchLoader, DataConfig, load_dataset  # noqa: E402
from bench.data.synthetic import SyntheticConfig  # noqa: E402
from bench.models import MODEL_NAMES, build_model  # noqa: E402
from dien_core import ModelConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aux_study_fixes import DetachedStates, Fix, ProductAux, WarmupAdam  # noqa: E402

TWO_LN2 = 2 * math.log(2)
SIZES = {
    "paper": dict(embedding_dim=18, attention_hidden=(80, 40), aux_hidden=(100, 50), mlp_hidden=(200, 80)),
    "quick": dict(embedding_dim=8, attention_hidden=(32, 16), aux_hidden=(32, 16), mlp_hidden=(64, 32)),
}
# Training defaults per data set: the paper-size runs on order data, the quick suite on the default data.
TRAIN_DEFAULTS = {"order": dict(lr=1e-3, batch=128, epochs=4), "default": dict(lr=3e-3, batch=256, epochs=3)}


# ----------------------------------------------------------------------------------------- data


def data_config(args: argparse.Namespace) -> DataConfig:
    """The order-only data (``SyntheticConfig.order_only``) or the quick suite's default synthetic data."""
    if args.data == "order":
        synthetic = SyntheticConfig.order_only(
            users=args.users or 8000, items=args.items or 2000, min_len=args.min_len or 30, max_len=args.max_len or 50, seed=args.data_seed
        )
        return _data(synthetic, args.maxlen or 50, args.targets_per_user or 3, 0.1, args.target_negatives)
    synthetic = SyntheticConfig(users=args.users or 5000, items=args.items or 2000, seed=args.data_seed)
    if args.min_len or args.max_len:
        synthetic = replace(synthetic, min_len=args.min_len or synthetic.min_len, max_len=args.max_len or synthetic.max_len)
    return _data(synthetic, args.maxlen or 30, args.targets_per_user or 2, 0.2, args.target_negatives)


def _data(synthetic: SyntheticConfig, maxlen: int, targets: int, test_fraction: float, target_negatives: str | None) -> DataConfig:
    names = {f.name for f in fields(DataConfig)}
    extra = {"vary_with_seed": False} if "vary_with_seed" in names else {}  # one data set for every cell of a seed
    if target_negatives:
        if "target_negatives" not in names:
            raise SystemExit("--target-negatives: this DataConfig has no target_negatives field")
        extra["target_negatives"] = target_negatives
    return DataConfig(
        dataset="synthetic", synthetic=synthetic, maxlen=maxlen, targets_per_user=targets, test_fraction=test_fraction, **extra
    )


def dataset_for(config: DataConfig, seed: int, vary: bool):
    """The data of ``seed``: its own synthetic draw and split when ``vary`` (as ``bench run`` does)."""
    if vary:
        synthetic = replace(config.synthetic, seed=config.synthetic.seed + seed)
        config = replace(config, split_seed=config.split_seed + seed, synthetic=synthetic)
    return load_dataset(config, use_cache=False)


# ----------------------------------------------------------------------------------------- models


# ----------------------------------------------------------------------------------------- commands


def base_model_config(args: argparse.Namespace) -> ModelConfig:
    return ModelConfig(**SIZES[args.sizes], alpha=1.0)


def make_model(name: str, config: ModelConfig, vocab) -> nn.Module:
    return build_model(name, config, vocab)


def train_cell(args, data, name: str, fix: Fix, seed: int) -> dict:
    torch.manual_seed(seed)
    np.random.seed(seed)
    config = fix.model_config(base_model_config(args))
    model = fix.patch(make_model(name, config, data.vocab))
    defaults = TRAIN_DEFAULTS[args.data]
    tv = fix.values
    tc = bench_train.TrainConfig(
        epochs=tv.get("epochs", args.epochs or defaults["epochs"]), batch_size=tv.get("batch", args.batch or defaults["batch"]),
        lr=tv.get("lr", args.lr or defaults["lr"]), patience=args.patience,
    )  # fmt: skip
    spec = bench_train.RunSpec(tc, seed, torch.device("cpu"), tv.get("neg", "uniform"))  # alpha: the model's own
    start = time.perf_counter()
    with WarmupAdam(tv.get("warmup", 0)):
        result = bench_train.train(model, data, spec)
    test = bench_train.evaluate(model, data, data.test, tc.eval_batch_size, torch.device("cpu"))
    curve = result.curve
    return {
        "data": args.data, "negatives": getattr(data_config(args), "target_negatives", "uniform"), "sizes": args.sizes,
        "model": name, "fix": fix.name, "seed": seed,
        "epochs": result.epochs_run, "best_epoch": result.best_epoch,
        "aux_epoch1": curve[0]["aux_loss"], "aux_end": curve[-1]["aux_loss"],
        "aux_curve": " ".join(f"{c['aux_loss']:.4f}" for c in curve), "val_curve": " ".join(f"{c['val_auc']:.4f}" for c in curve),
        "val_auc": result.val_auc, "test_auc": test["auc"], "seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip


def cmd_run(args: argparse.Namespace) -> None:
    config = data_config(args)
    fixes = [Fix.parse(f) for f in (args.fix or ["base"])]
    models = args.models.split(",")
    for m in models:
        if m not in MODEL_NAMES:
            raise SystemExit(f"unknown model {m!r}; known: {', '.join(MODEL_NAMES)}")
    negatives = getattr(config, "target_negatives", "uniform")
    print(
        f"data {args.data}: {config.synthetic}, maxlen {config.maxlen}, targets/user {config.targets_per_user}, "
        f"target negatives {negatives}; sizes {args.sizes}"
    )
    rows = []
    for seed in parse_seeds(args.seeds):
        data = dataset_for(config, seed, args.vary_data)
        print(f"seed {seed}: train {len(data.train)}, valid {len(data.valid)}, test {len(data.test)} rows", flush=True)
        for fix in fixes:
            for name in models:
                row = train_cell(args, data, name, fix, seed)
                rows.append(row)
                print(
                    f"  {name:16s} {fix.name:28s} aux {row['aux_curve']:30s} val {row['val_curve']:30s} "
                    f"test {row['test_auc']:.4f}  ({row['seconds']} s)",
                    flush=True,
                )
                if args.csv:
                    append_csv(args.csv, row)
    print()
    print_summary(rows)


def parse_seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",")]


def append_csv(path: str, row: dict) -> None:
    new = not Path(path).exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def print_summary(rows: list[dict]) -> None:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["data"], r.get("negatives", ""), r["sizes"], r["model"], r["fix"]), []).append(r)

    def ms(values) -> str:
        values = [float(v) for v in values]
        return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else f"{values[0]:.4f}"

    columns = "data | target negatives | sizes | model | fix | seeds | aux loss, epoch 1 | 2 ln 2 - that | aux loss, end"
    columns += " | val AUC | test AUC"
    print(f"| {columns} |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (d, n, s, m, f), rs in groups.items():
        aux1 = ms(r["aux_epoch1"] for r in rs) if m.endswith("+aux") else "-"
        drop = ms(TWO_LN2 - float(r["aux_epoch1"]) for r in rs) if m.endswith("+aux") else "-"
        aux2 = ms(r["aux_end"] for r in rs) if m.endswith("+aux") else "-"
        val, test = ms(r["val_auc"] for r in rs), ms(r["test_auc"] for r in rs)
        print(f"| {d} | {n} | {s} | {m} | {f} | {len(rs)} | {aux1} | {drop} | {aux2} | {val} | {test} |")


def cmd_summary(args: argparse.Namespace) -> None:
    rows = []
    for path in args.csv_files:
        with open(path) as f:
            rows += list(csv.DictReader(f))
    print_summary(rows)


def cmd_oracle(args: argparse.Namespace) -> None:
    """Scores from the category transitions estimated on training histories (no model)."""
    config = data_config(args)
    data = dataset_for(config, 0, False)
    C, fc = data.vocab.cates, data.flat_cate
    T = np.zeros((C, C))
    np.add.at(T, (fc[:-1], fc[1:]), 1.0)  # consecutive clicks (across users too: a little noise)
    T /= T.sum(axis=1, keepdims=True).clip(1)
    s = data.test
    idx = s.hist_start[:, None] + np.arange(config.maxlen)[None, :]
    valid = np.arange(config.maxlen)[None, :] < s.hist_len[:, None]
    hist = np.where(valid, fc[np.where(valid, idx, 0)], 0)
    age = (s.hist_len[:, None] - 1 - np.arange(config.maxlen)[None, :]).clip(0)
    trans = T[hist, s.cate[:, None]] * valid  # P(target category | this click's category)
    present = ((hist == s.cate[:, None]) & valid).any(axis=1)
    print(f"data {args.data}: {config.synthetic}, maxlen {config.maxlen}; test rows {len(s)}")
    print("| score | test AUC |\n|---|---|")
    print(f"| target category present in the history (order-free) | {metrics.auc(s.label, present + 1e-6 * np.random.rand(len(s))):.4f} |")
    print(f"| sum of transition probabilities from the history (order-free) | {metrics.auc(s.label, trans.sum(axis=1)):.4f} |")
    for w in (0.9, 0.7, 0.5):
        print(f"| the same, weighted by {w} ** age (recency) | {metrics.auc(s.label, (trans * w**age).sum(axis=1)):.4f} |")
    print(f"| last click only | {metrics.auc(s.label, (trans * (age == 0)).sum(axis=1)):.4f} |")


def grad_norms(model: nn.Module, batch, alpha: float) -> dict:
    """Per-part gradient norms of the auxiliary loss and of the main loss, one batch."""
    aux_mod = model.extractor.aux
    inner = aux_mod.inner if isinstance(aux_mod, DetachedStates) else aux_mod
    first = inner.mlp.first
    H = model.extractor.gru.hidden_size
    parts = {
        "aux W_h": lambda: first.weight.grad[:, :H], "aux W_e": lambda: first.weight.grad[:, H : 2 * H],
        "aux out": lambda: inner.mlp.out.weight.grad,
        "GRU W_ih": lambda: model.extractor.gru.weight_ih.grad, "GRU W_hh": lambda: model.extractor.gru.weight_hh.grad,
        "emb item": lambda: model.embedding.item.weight.grad, "emb cate": lambda: model.embedding.cate.weight.grad,
    }  # fmt: skip
    out = {}
    for which in ("aux", "main"):
        model.zero_grad(set_to_none=False)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        o = model(batch)
        loss = alpha * o.aux_loss if which == "aux" else F.binary_cross_entropy_with_logits(o.logits, batch.label)
        loss.backward()
        for k, g in parts.items():
            out[f"{which}:{k}"] = float(g().norm())
        if which == "aux":
            out["aux loss"] = float(o.aux_loss)
    model.zero_grad(set_to_none=True)
    # How input-dependent are the states and the auxiliary MLP's first pre-activations?
    with torch.no_grad():
        emb = model.embedding(batch, with_negatives=True)
        states, _ = model.extractor.gru(emb.hist, None, batch.lengths)
        m = emb.mask
        h = states[m]
        out["|h| mean"] = float(h.abs().mean())
        out["h spread"] = float(h.std(dim=0).mean())  # across rows and steps, per unit
        out["e spread"] = float(emb.hist[m].std(dim=0).mean())
        pairs = m[:, 1:]

        def aux_logit(e):  # the auxiliary MLP's first pre-activations and logits, valid pairs only
            x = torch.cat([states[:, :-1], e[:, 1:]], -1)
            if isinstance(inner, ProductAux):
                x = torch.cat([x, states[:, :-1] * e[:, 1:]], -1)
            pre = first(x[pairs])
            return pre, inner.mlp.forward_from_first(pre)

        pre, pos = aux_logit(emb.hist)
        _, neg = aux_logit(emb.neg)
        out["pre spread"] = float(pre.std(dim=0).mean())  # input-dependent part of the first pre-activations
        out["pre |bias|"] = float(first.bias.abs().mean())
        out["aux logit spread"] = float(torch.cat([pos, neg]).std())
        out["aux AUC"] = metrics.auc(np.r_[np.ones(len(pos)), np.zeros(len(neg))], torch.cat([pos, neg]).numpy())
    return out


def cmd_grads(args: argparse.Namespace) -> None:
    config = data_config(args)
    data = dataset_for(config, 0, False)
    probes = sorted({int(s) for s in args.steps.split(",")})
    defaults = TRAIN_DEFAULTS[args.data]
    print(f"data {args.data}: {config.synthetic}; sizes {args.sizes}; model dien-augru+aux; probe steps {probes}")
    for fix_text in args.fix or ["base"]:
        fix = Fix.parse(fix_text)
        torch.manual_seed(0)
        mc = fix.model_config(base_model_config(args))
        model = fix.patch(build_model("dien-augru+aux", mc, data.vocab))
        lr = fix.values.get("lr", args.lr or defaults["lr"])
        batch_size = fix.values.get("batch", args.batch or defaults["batch"])
        with WarmupAdam(fix.values.get("warmup", 0)):
            opt = bench_train.make_adam(model, lr)
        loader = BatchLoader(data, data.train, batch_size, shuffle=True, seed=0, bucket=True, negatives=fix.values.get("neg", "uniform"))
        probe_loader = BatchLoader(data, data.train, 1024, shuffle=True, seed=123, negatives="uniform")
        probe_batch = next(iter(probe_loader))
        rows, step = [], 0
        batches = iter(())
        while step <= probes[-1]:
            if step in probes:
                model.train()
                rows.append((step, grad_norms(model, probe_batch, mc.alpha)))
            try:
                b = next(batches)
            except StopIteration:
                batches = iter(loader)
                b = next(batches)
            model.train()
            opt.zero_grad(set_to_none=True)
            o = model(b)
            loss = F.binary_cross_entropy_with_logits(o.logits, b.label) + mc.alpha * o.aux_loss
            loss.backward()
            opt.step()
            step += 1
        keys = list(rows[0][1])
        print(f"\nfix {fix.name} (lr {lr}, batch {batch_size}, alpha {mc.alpha})")
        print("| quantity | " + " | ".join(f"step {s}" for s, _ in rows) + " |")
        print("|---|" + "---|" * len(rows))
        for k in keys:
            print(f"| {k} | " + " | ".join(f"{r.get(k, float('nan')):.3g}" for _, r in rows) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--data", choices=("order", "default"), default="order", help="order-only data or the quick suite's default data")
        p.add_argument("--sizes", choices=tuple(SIZES), default="paper")
        p.add_argument("--users", type=int, default=0, help="synthetic users (default: 8000 order, 5000 default)")
        p.add_argument("--items", type=int, default=0, help="synthetic items (default: 2000)")
        p.add_argument("--min-len", type=int, default=0)
        p.add_argument("--max-len", type=int, default=0)
        p.add_argument("--maxlen", type=int, default=0, help="history cut (default: 50 order, 30 default)")
        p.add_argument("--targets-per-user", type=int, default=0, help="(default: 3 order, 2 default)")
        p.add_argument("--data-seed", type=int, default=0)
        p.add_argument("--target-negatives", help="the protocol's paired negatives (popularity, uniform; default: DataConfig's)")
        p.add_argument("--lr", type=float, default=0.0, help="(default: 1e-3 order, 3e-3 default; a fix's lr= wins)")
        p.add_argument("--batch", type=int, default=0, help="(default: 128 order, 256 default)")
        p.add_argument("--epochs", type=int, default=0, help="(default: 4 order, 3 default)")
        p.add_argument("--fix", action="append", help="a candidate fix (repeatable; see the module docstring); default: base")

    p = sub.add_parser("run", help="train models with candidate fixes, over seeds")
    common(p)
    p.add_argument("--models", default="sum-pooling,din,dien-augru,dien-augru+aux,gru-att")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--vary-data", action="store_true", help="each seed its own synthetic draw and split (as bench run does)")
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--csv", help="append each cell's row to this CSV")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("grads", help="gradient norms of dien-augru+aux at init and after some steps")
    common(p)
    p.add_argument("--steps", default="0,50,200,1000", help="comma-separated probe steps")
    p.set_defaults(func=cmd_grads)

    p = sub.add_parser("oracle", help="order-free and recency scores on the data, no training")
    common(p)
    p.set_defaults(func=cmd_oracle)

    p = sub.add_parser("summary", help="mean ± std per (data, model, fix) of run CSVs")
    p.add_argument("csv_files", nargs="+")
    p.set_defaults(func=cmd_summary)

    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.func(args)


if __name__ == "__main__":
    main()
