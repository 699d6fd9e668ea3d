"""The plots of a run (matplotlib): test AUC with its intervals, the learning curves, and sweeps of one setting."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .. import results_io  # noqa: E402


def plot_auc(table: pd.DataFrame, path: Path) -> None:
    """Test AUC per row: mean over seeds with its t interval; non-learned rows in grey."""
    groups = list(table.groupby("dataset", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 0.45 * table["model"].nunique() + 1.8), squeeze=False)
    for ax, (dataset, t) in zip(axes[0], groups):
        t = t.iloc[::-1]
        mean = t["test_auc_mean"].to_numpy()
        lo, hi = t["test_auc_lo"].fillna(t["test_auc_mean"]).to_numpy(), t["test_auc_hi"].fillna(t["test_auc_mean"]).to_numpy()
        colors = ["tab:gray" if k == "non-learned" else "tab:blue" for k in t["kind"]]
        ax.barh(t["model"], mean, xerr=np.stack([mean - lo, hi - mean]), color=colors, alpha=0.8, capsize=3)
        ax.set_xlim(max(0.4, np.nanmin(lo) - 0.02), min(1.0, np.nanmax(hi) + 0.01))
        ax.set_xlabel("test AUC (mean over seeds, 95% t interval); grey: non-learned")
        ax.set_title(dataset)
        ax.grid(axis="x", alpha=0.3)
    results_io.save_figure(fig, path)


def plot_curves(curves: pd.DataFrame, path: Path) -> None:
    """Per dataset: validation AUC, and the auxiliary loss (of the models that have one), by epoch."""
    groups = list(curves.groupby("dataset", sort=False))
    fig, axes = plt.subplots(2, len(groups), figsize=(7 * len(groups), 8), squeeze=False)
    for col, (dataset, c) in enumerate(groups):
        val_ax, aux_ax = axes[0][col], axes[1][col]
        for model, g in c.groupby("model", sort=False):
            by_epoch = g.groupby("epoch")
            val_ax.plot(by_epoch["val_auc"].mean(), marker="o", ms=3, label=model)
            aux = by_epoch["aux_loss"].mean()
            if (aux > 0).any():
                aux_ax.plot(aux, marker="o", ms=3, label=model)
        aux_ax.axhline(2 * np.log(2), color="black", ls="--", lw=1, label="2 ln 2 (untrained)")
        for ax, label in ((val_ax, "validation AUC"), (aux_ax, "auxiliary loss (train)")):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"{label}, mean over seeds")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        val_ax.set_title(f"learning curves: {dataset}")
    results_io.save_figure(fig, path)


def plot_sweep(sweep: pd.DataFrame, path: Path) -> None:
    """Test AUC against one swept setting (e.g. alpha), a panel per dataset: mean over seeds with its t interval."""
    setting = sweep["setting"].iloc[0]
    groups = list(sweep.groupby("dataset", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.2), squeeze=False)
    for ax, (dataset, g) in zip(axes[0], groups):
        for model, m in g.groupby("model", sort=False):
            m = m.sort_values("value")
            mean = m["test_auc"].to_numpy()
            lo, hi = m["test_auc_lo"].fillna(m["test_auc"]).to_numpy(), m["test_auc_hi"].fillna(m["test_auc"]).to_numpy()
            ax.errorbar(m["value"], mean, yerr=np.stack([mean - lo, hi - mean]), marker="o", capsize=3, label=model)
        if (g["value"] > 0).any() and (g["value"] == 0).any():
            ax.set_xscale("symlog", linthresh=max(1e-3, float(g.loc[g["value"] > 0, "value"].min())))
        elif (g["value"] > 0).all() and g["value"].max() / g["value"].min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel(setting)
        ax.set_ylabel("test AUC (mean over seeds, 95% t interval)")
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    results_io.save_figure(fig, path)
