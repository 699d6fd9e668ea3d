"""Runs a suite cell by cell (dataset x model x seed); a stopped run continues where it stopped."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from . import report, results_io
from .data import load_dataset
from .models import build_model
from .suite import SuiteConfig
from .train import evaluate, train

KEY = ["dataset", "model", "seed"]


def run_suite(suite: SuiteConfig, out: Path, device: torch.device, log=print) -> pd.DataFrame:
    """Train and evaluate every unfinished cell, append its row, then write the reports."""
    out.mkdir(parents=True, exist_ok=True)
    runs_path, curves_path = out / "runs.csv", out / "curves.csv"
    results_io.write_json(out / "metadata.json", results_io.metadata("run", device, suite.to_dict(), list(suite.seeds)))
    done = results_io.read_csv(runs_path)
    done_hashes = dict(zip(map(tuple, done[KEY].to_numpy().tolist()), done["config_hash"])) if len(done) else {}
    cells = [(data, row, seed) for data in suite.data for seed in suite.seeds for row in suite.rows]
    todo = []
    for data, row, seed in cells:
        earlier = done_hashes.get((data.dataset, row.name, seed))
        if earlier is not None and earlier != suite.cell_hash(data, row):
            raise ValueError(
                f"{runs_path} holds {row.name} seed {seed} on {data.dataset} from a different configuration; "
                "use another --out, or delete that folder to start over"
            )
        if earlier is None:
            todo.append((data, row, seed))
    log(f"{len(cells) - len(todo)} of {len(cells)} cells already done in {out}; {len(todo)} to run on {device}")
    datasets = {}
    for i, (data, row, seed) in enumerate(todo, 1):
        if data not in datasets:
            datasets[data] = load_dataset(data)
            log(datasets[data].describe())
        dataset = datasets[data]
        config = row.model_config(suite.model)
        torch.manual_seed(seed)
        model = build_model(row.model, config, dataset.vocab)
        desc = f"[{i}/{len(todo)}] {row.name} seed {seed}"
        result = train(model, dataset, suite.train, config.alpha, seed, device, data.negative_sampling, desc=desc)
        test = evaluate(model, dataset, dataset.test, suite.train.eval_batch_size, device)
        key = {"dataset": data.dataset, "model": row.name, "seed": seed}
        curves = results_io.read_csv(curves_path)
        if len(curves):  # a cell stopped after its curve was written is replaced, not duplicated
            curves = curves[[k != tuple(key.values()) for k in map(tuple, curves[KEY].to_numpy().tolist())]]
        results_io.write_csv(curves_path, pd.concat([curves, pd.DataFrame([{**key, **c} for c in result.curve])], ignore_index=True))
        results_io.append_rows(runs_path, [{
            **key, "epochs": result.epochs_run, "best_epoch": result.best_epoch, "val_auc": result.val_auc,
            "test_auc": test["auc"], "test_gauc": test["gauc"], "test_logloss": test["logloss"],
            "train_seconds": round(result.train_seconds, 3), "samples_per_second": round(result.samples_per_second, 1),
            "device": str(device), "threads": torch.get_num_threads(), "config_hash": suite.cell_hash(data, row),
        }])  # fmt: skip
        log(f"{desc}: val AUC {result.val_auc:.4f}, test AUC {test['auc']:.4f} ({result.epochs_run} epochs, {result.train_seconds:.0f} s)")
    runs = results_io.read_csv(runs_path)
    wanted = {(d.dataset, r.name, s) for d, r, s in cells}
    runs = runs[[k in wanted for k in map(tuple, runs[KEY].to_numpy().tolist())]]
    table = report.write_reports(out, runs, results_io.read_csv(curves_path), baseline="sum-pooling")
    results_io.write_json(out / "metadata.json", results_io.metadata("run", device, suite.to_dict(), list(suite.seeds)))
    return table
