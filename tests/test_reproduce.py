"""CI's reproduction check: a few cells of the committed results/quick, rerun at HEAD, match their rows.

A change that moves results fails here until the reference results are regenerated
(`python -m bench run --out results/quick`, after committing the change), which is the point.
"""

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.run.runner import run_suite
from bench.suite import parse_suite

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "quick"
CELLS = ("popularity", "recent-category", "sum-pooling", "din")  # the cheap ones, seed 0
# Same code, same thread count, same CPU kind: the C++ kernels and MKL reduce in a fixed order, so
# a rerun agrees to float32 noise; a different CPU or BLAS build may move an AUC in the 4th digit.
TOLERANCE = 2e-3


@pytest.mark.slow
def test_quick_reference_cells_reproduce_at_head(tmp_path):
    meta = json.loads((REFERENCE / "metadata.json").read_text())
    reference = pd.read_csv(REFERENCE / "runs.csv")
    suite = parse_suite(meta["config"], "results/quick/metadata.json")
    narrowed = replace(suite, models=tuple(m for m in CELLS if m in suite.models), variants=(), seeds=(0,), comparisons=())
    wanted = reference[(reference["seed"] == 0) & reference["model"].isin(CELLS)]
    assert set(wanted["model"]) == set(CELLS), f"results/quick lacks seed-0 cells of {set(CELLS) - set(wanted['model'])}"
    threads = torch.get_num_threads()
    torch.set_num_threads(int(wanted["threads"].iloc[0]))
    try:
        run_suite(narrowed, tmp_path / "rerun", torch.device("cpu"), log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    rerun = pd.read_csv(tmp_path / "rerun" / "runs.csv").set_index("model")
    for row in wanted.itertuples():
        again = rerun.loc[row.model]
        assert again["config_hash"] == row.config_hash, (
            f"{row.model}: the configuration at HEAD differs from the one results/quick was made with; regenerate results/quick"
        )
        for metric in ("val_auc", "test_auc"):
            assert abs(again[metric] - getattr(row, metric)) <= TOLERANCE, (
                f"{row.model} {metric}: {again[metric]:.5f} at HEAD against {getattr(row, metric):.5f} in results/quick "
                f"(commit {row.commit}); regenerate results/quick if the change is meant to move results"
            )
