"""``python -m bench compare RUN REF``: does a run reproduce a reference folder?

Cells are matched on (dataset, model, seed) and their configuration hash; per model it
prints both means of test AUC, their difference and its t interval over the matched
seeds, and fails (exit 1) where a model differs by more than the tolerance, or where a
cell of either folder has no match (each is named).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from .. import results_io
from . import stats

KEY = ["dataset", "model", "seed", "config_hash"]
MIN_TOL = 0.002  # below this, AUC differences are within what thread counts and BLAS builds move


class CompareError(ValueError):
    """Bad input to compare (exit 2)."""


def read_runs(folder: Path) -> pd.DataFrame:
    path = Path(folder) / "runs.csv"
    if not Path(folder).is_dir():
        raise CompareError(f"{folder}: no such folder")
    runs = results_io.read_csv(path)
    if runs.empty:
        raise CompareError(f"{path}: no runs.csv (or it is empty): not a folder written by `python -m bench run`")
    missing = [k for k in [*KEY, "test_auc"] if k not in runs.columns]
    if missing:
        raise CompareError(f"{path}: missing column(s) {', '.join(missing)}")
    return runs


def compare_folders(run: Path, ref: Path, tol: float | None = None) -> tuple[pd.DataFrame, int]:
    """The per-model table and the exit status (0 all within tolerance, 1 some not)."""
    a, b = read_runs(run), read_runs(ref)
    matched = a.merge(b, on=KEY, suffixes=("_run", "_ref"))
    if matched.empty:
        raise CompareError(f"no cell of {run} matches one of {ref} on (dataset, model, seed) and configuration hash")
    cells = ["dataset", "model", "seed"]
    unmatched = pd.concat([frame[cells].assign(only_in=name) for name, frame in ((str(run), a), (str(ref), b))])
    unmatched = unmatched.merge(matched[cells], on=cells, how="left", indicator=True)
    unmatched = unmatched[unmatched["_merge"] == "left_only"].drop(columns="_merge")
    rows, status = [], 0 if unmatched.empty else 1
    for cell in unmatched.itertuples():
        print(f"unmatched: {cell.model} seed {cell.seed} on {cell.dataset} only in {cell.only_in} "
              "(or with another configuration hash)", file=sys.stderr)  # fmt: skip
    for (dataset, model), g in matched.groupby(["dataset", "model"], sort=False):
        ref_all = b[(b["dataset"] == dataset) & (b["model"] == model)]["test_auc"]
        spread = float(ref_all.std(ddof=1)) if len(ref_all) > 1 else 0.0
        limit = tol if tol is not None else max(MIN_TOL, 2 * spread / np.sqrt(len(g)))
        result = stats.paired(g["test_auc_run"].to_numpy(), g["test_auc_ref"].to_numpy())
        ok = abs(result.diff) <= limit
        status = status or (0 if ok else 1)
        rows.append({
            "dataset": dataset, "model": model, "seeds": len(g), "run": g["test_auc_run"].mean(), "ref": g["test_auc_ref"].mean(),
            "diff": result.diff, "ci": "" if not np.isfinite(result.lo) else f"[{result.lo:+.4f}, {result.hi:+.4f}]",
            "tol": limit, "status": "ok" if ok else "DIFFERS",
        })  # fmt: skip
    return pd.DataFrame(rows), status


def add_compare_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="check a run against a reference folder (exit 1 past the tolerance)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m bench run\n  python -m bench compare runs/quick results/quick\n"
        "  python -m bench compare runs/quick results/quick --tol 0.005\n",
    )  # fmt: skip
    p.add_argument("run", help="folder of the run to check (e.g. runs/quick)")
    p.add_argument("ref", help="reference folder (e.g. results/quick)")
    p.add_argument("--tol", type=float, help=f"largest allowed |difference| of mean test AUC per model (default: "
                   f"max({MIN_TOL}, 2 x the reference's std over seeds / sqrt(matched seeds)))")  # fmt: skip
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    if args.tol is not None and args.tol < 0:
        raise ValueError(f"--tol must be >= 0, got {args.tol}")
    table, status = compare_folders(Path(args.run), Path(args.ref), args.tol)
    shown = table.assign(**{c: table[c].map(lambda x: f"{x:.4f}") for c in ("run", "ref", "tol")})
    shown["diff"] = table["diff"].map(lambda x: f"{x:+.4f}")
    print(tabulate(shown.to_numpy().tolist(), headers=list(shown.columns), tablefmt="github", disable_numparse=True))  # as formatted
    differs = int((table["status"] != "ok").sum())
    print(f"{len(table) - differs} of {len(table)} models within tolerance" + (f"; {differs} differ" if differs else ""), file=sys.stderr)
    return status
