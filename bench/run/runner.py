"""Runs a suite cell by cell (dataset x row x seed); a stopped run continues where it stopped.

A cell is trained, evaluated on test, its test predictions saved, then its row appended to
``runs.csv``: a row on disk means the cell is complete. The non-learned rows
(``bench/heuristics.py``) are cells too, with nothing to train.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dien_core import Plan

from .. import heuristics, metrics, results_io
from ..data import DataConfig, Dataset, Split, load_dataset
from ..models import build_model, model_plan
from ..suite import Row, SuiteConfig
from ..train import LOCAL, Local, RunSpec, evaluate, train
from . import predictions, report

KEY = ["dataset", "model", "seed"]
UNTRAINED_AUX = 2 * math.log(2)  # the auxiliary loss of a net that outputs 0.5 for every pair
UNTRAINED_TOL = 0.01


def cells_of(suite: SuiteConfig) -> list[tuple[DataConfig, Row | str, int]]:
    """Every cell, seed by seed (each seed's data set is built once): heuristics first."""
    extra = heuristics.HEURISTICS if suite.heuristics else ()
    return [(data, row, seed) for data in suite.data for seed in suite.seeds for row in (*extra, *suite.rows)]


def cell_name(row: Row | str) -> str:
    return row if isinstance(row, str) else row.name


def cell_hash(suite: SuiteConfig, data: DataConfig, row: Row | str) -> str:
    return suite.heuristic_hash(data) if isinstance(row, str) else suite.cell_hash(data, row)


def check_folder(suite: SuiteConfig, out: Path) -> None:
    """Refuse a folder that holds another configuration, before anything is written into it."""
    meta_path, runs_path = out / "metadata.json", out / "runs.csv"
    held = json.loads(meta_path.read_text()).get("folder_hash") if meta_path.is_file() else None
    if held is None and not runs_path.is_file():
        return  # a new folder (or one no run has written into yet)
    if held != suite.folder_hash():
        what = "an unrecorded configuration" if held is None else f"configuration {held}"
        raise ValueError(
            f"{out} holds results of {what}, not this suite's ({suite.folder_hash()}: suite {suite.name!r} with its data, "
            "model and training settings); use another --out, or delete that folder to start over"
        )


def run_suite(
    suite: SuiteConfig, out: Path, device: torch.device, log=print, dry_run: bool = False, execute: Execute | None = None
) -> pd.DataFrame:
    """Train and evaluate every unfinished cell, append its row, then write the reports.

    ``execute(suite, todo, device, log)`` runs the cells and yields each finished one (default: one after
    another in this process; ``bench/distributed``: as Ray tasks, or data-parallel under torchrun). Whatever
    runs them, this process alone writes, as each cell arrives; with ``execute.writes`` False it writes nothing.
    """
    check_folder(suite, out)
    runs_path, curves_path = out / "runs.csv", out / "curves.csv"
    done = results_io.read_csv(runs_path)
    done_hashes = dict(zip(map(tuple, done[KEY].to_numpy().tolist()), done["config_hash"])) if len(done) else {}
    cells = cells_of(suite)
    todo = []
    for data, row, seed in cells:
        earlier = done_hashes.get((data.dataset, cell_name(row), seed))
        if earlier is not None and earlier != cell_hash(suite, data, row):
            raise ValueError(
                f"{runs_path} holds {cell_name(row)} seed {seed} on {data.dataset} from a different configuration; "
                "use another --out, or delete that folder to start over"
            )
        if earlier is None:
            todo.append((data, row, seed))
    log(f"{len(cells) - len(todo)} of {len(cells)} cells already done in {out}; {len(todo)} to run on {device}")
    if dry_run:
        for data, row, seed in todo:
            log(f"  would run {cell_name(row)} seed {seed} on {data.dataset}")
        return pd.DataFrame()
    if not getattr(execute, "writes", True):  # a torchrun rank other than 0: trains its share, writes nothing
        for _ in execute(suite, todo, device, log):
            pass
        return pd.DataFrame()
    out.mkdir(parents=True, exist_ok=True)
    meta = results_io.metadata("run", device, suite.to_dict(), list(suite.seeds))
    meta["folder_hash"] = suite.folder_hash()
    cells_device = torch.device(getattr(execute, "device", device))  # under Ray, the cells' device, not the driver's
    plans = row_plans(suite, [row for _, row, _ in todo], cells_device)
    for name, plan in plans.items():
        log(f"{name}: {plan}")
    meta["plans"] = {name: plan.as_dict() for name, plan in plans.items()}
    meta.update(getattr(execute, "metadata", {}))
    results_io.write_metadata_of_invocations(out, meta, cells_run=0)
    predictions.describe(out, done)  # folders an interrupted earlier invocation left undescribed
    for i, (cell, test) in enumerate((execute or run_in_process)(suite, todo, device, log), 1):
        key = {"dataset": cell.dataset, "model": cell.model, "seed": cell.seed}
        if cell.curve is not None:
            write_curve(curves_path, key, cell.curve)
        predictions.save(out, key, test, cell.scores)
        results_io.append_rows(runs_path, [{
            **key, **cell.values, "device": cell.device, "threads": cell.threads,
            "config_hash": cell.config_hash, "commit": results_io.git_commit(),
        }])  # fmt: skip
        results_io.write_metadata_of_invocations(out, meta, cells_run=i)
        runs = results_io.read_csv(runs_path)
        predictions.describe(out, runs[(runs["dataset"] == cell.dataset) & (runs["model"] == cell.model)])  # as each file is written
        values = cell.values
        log(f"[{i}/{len(todo)}] {cell.model} seed {cell.seed}: val AUC {values['val_auc']:.4f}, test AUC {values['test_auc']:.4f}"
            + (f" ({values['epochs']} epochs, stopped by {values['stopped']}, {values['train_seconds']:.0f} s)"
               if cell.curve is not None else " (non-learned)"))  # fmt: skip
    runs = results_io.read_csv(runs_path)
    wanted = {(d.dataset, cell_name(r), s) for d, r, s in cells}
    runs = runs[[k in wanted for k in map(tuple, runs[KEY].to_numpy().tolist())]]
    curves = results_io.read_csv(curves_path)
    table = report.write_reports(out, runs, curves, suite.comparisons, baseline="sum-pooling", sweeps=suite.sweeps())
    results_io.write_metadata_of_invocations(out, meta, cells_run=len(todo), finished=True)
    return table


@dataclass(frozen=True)
class CellResult:
    """What one cell computed, for the process that writes: its runs.csv values, test scores and curve."""

    dataset: str
    model: str
    seed: int
    values: dict
    scores: np.ndarray  # the test rows' scores, in order
    curve: list[dict] | None  # None for a non-learned row
    device: str
    threads: int
    config_hash: str


# (suite, cells to run, device, log) -> each finished cell with its data set's test split
Execute = Callable[[SuiteConfig, list, torch.device, Callable], Iterator[tuple[CellResult, Split]]]


def cell_data(data: DataConfig, row: Row | str, seed: int) -> DataConfig:
    """The data set a cell trains on: the suite's, with the row's data overrides, for the seed."""
    return (data if isinstance(row, str) else row.data_config(data)).for_seed(seed)


def run_cell(
    suite: SuiteConfig, data: DataConfig, row: Row | str, seed: int, dataset: Dataset, device: torch.device, desc: str, log,
    parallel: Local = LOCAL, on_epoch=None,
) -> CellResult:  # fmt: skip
    """One cell, start to end, writing nothing: in this process, in a Ray task, or on every torchrun rank."""
    if isinstance(row, str):
        values, scores = run_heuristic(row, dataset)
        curve = None
    else:
        values, scores, curve = run_model(suite, row, seed, cell_data(data, row, seed), dataset, device, desc, log, parallel, on_epoch)
    return CellResult(
        data.dataset, cell_name(row), seed, values, scores, curve, str(device), torch.get_num_threads(), cell_hash(suite, data, row)
    )


def run_in_process(
    suite: SuiteConfig, todo: list, device: torch.device, log, parallel: Local = LOCAL, load=load_dataset
) -> Iterator[tuple[CellResult, Split]]:
    """The cells one after another in this process, each seed's data sets built once."""
    datasets: OrderedDict[DataConfig, Dataset] = OrderedDict()
    for i, (data, row, seed) in enumerate(todo, 1):
        config = cell_data(data, row, seed)
        if config not in datasets:
            datasets[config] = load(config)
            log(f"{datasets[config].describe()} (seed {seed})")
            while len(datasets) > 2:  # a seed's data sets serve its rows; older ones go
                datasets.popitem(last=False)
        dataset = datasets[config]
        desc = f"[{i}/{len(todo)}] {cell_name(row)} seed {seed}"
        yield run_cell(suite, data, row, seed, dataset, device, desc, log, parallel), dataset.test


def run_heuristic(name: str, dataset: Dataset) -> tuple[dict, np.ndarray]:
    val, test = (heuristics.scores(name, dataset, s) for s in (dataset.valid, dataset.test))
    values = {
        "epochs": 0, "best_epoch": 0, "stopped": "none", "val_auc": metrics.auc(dataset.valid.label, val),
        "test_auc": metrics.auc(dataset.test.label, test), "test_gauc": metrics.gauc(dataset.test.label, test, dataset.test.group),
        "test_logloss": float("nan"), "aux_loss_epoch1": float("nan"), "train_seconds": 0.0, "samples_per_second": float("nan"),
    }  # fmt: skip
    return values, test


def run_model(
    suite: SuiteConfig, row: Row, seed: int, data: DataConfig, dataset: Dataset, device: torch.device, desc: str, log,
    parallel: Local = LOCAL, on_epoch=None,
) -> tuple[dict, np.ndarray, list[dict]]:  # fmt: skip
    config, train_config = row.model_config(suite.model), row.train_config(suite.train)
    torch.manual_seed(seed)
    model = build_model(row.model, config, dataset.vocab, device)
    result = train(model, dataset, RunSpec.for_data(train_config, data, seed, device, desc), on_epoch=on_epoch, parallel=parallel)
    test_logits = parallel.predict(model, dataset, dataset.test, suite.train.eval_batch_size, device)
    test = evaluate(model, dataset, dataset.test, suite.train.eval_batch_size, device, logits=test_logits)
    aux_first = result.curve[0]["aux_loss"] if config.use_aux_loss and result.curve else float("nan")
    if aux_not_trained(aux_first):
        log(f"{desc}: WARNING auxiliary loss did not train: {aux_first:.4f} after epoch 1, within {UNTRAINED_TOL} of 2 ln 2")
    values = {
        "epochs": result.epochs_run, "best_epoch": result.best_epoch, "stopped": result.stop_reason, "val_auc": result.val_auc,
        "test_auc": test["auc"], "test_gauc": test["gauc"], "test_logloss": test["logloss"], "aux_loss_epoch1": aux_first,
        "train_seconds": round(result.train_seconds, 3), "samples_per_second": round(result.samples_per_second, 1),
    }  # fmt: skip
    return values, test_logits, result.curve


def row_plans(suite: SuiteConfig, rows: list[Row | str], device: torch.device) -> dict[str, Plan]:
    """How each learned row's pieces run on ``device`` (``model.plan`` of its cells), by row name."""
    learned = {row.name: row for row in rows if isinstance(row, Row)}
    return {name: model_plan(row.model, row.model_config(suite.model), device) for name, row in learned.items()}


def aux_not_trained(aux_loss_epoch1: float) -> bool:
    return bool(np.isfinite(aux_loss_epoch1) and abs(aux_loss_epoch1 - UNTRAINED_AUX) < UNTRAINED_TOL)


def write_curve(path: Path, key: dict, curve: list[dict]) -> None:
    curves = results_io.read_csv(path)
    if len(curves):  # a cell stopped after its curve was written is replaced, not duplicated
        curves = curves[[k != tuple(key.values()) for k in map(tuple, curves[KEY].to_numpy().tolist())]]
    results_io.write_csv(path, pd.concat([curves, pd.DataFrame([{**key, **c} for c in curve])], ignore_index=True))
