"""Tables (tabulate) and plots (matplotlib) from runs.csv and curves.csv."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy import stats  # noqa: E402
from tabulate import tabulate  # noqa: E402

from . import metrics, results_io  # noqa: E402

METRICS = ["val_auc", "test_auc", "test_gauc", "test_logloss"]


def summarize(runs: pd.DataFrame, baseline: str = "sum-pooling") -> pd.DataFrame:
    """One row per dataset and model: mean and std over seeds, RelaImpr, paired test against the best."""
    rows = []
    for dataset, frame in runs.groupby("dataset", sort=False):
        by_model = {m: g.set_index("seed") for m, g in frame.groupby("model", sort=False)}
        best = max(by_model, key=lambda m: by_model[m]["test_auc"].mean())
        base = by_model[baseline]["test_auc"].mean() if baseline in by_model else np.nan
        for model, g in by_model.items():
            row = {"dataset": dataset, "model": model, "seeds": len(g)}
            for m in METRICS:
                row[f"{m}_mean"], row[f"{m}_std"] = g[m].mean(), g[m].std(ddof=1) if len(g) > 1 else np.nan
            row["rela_impr"] = metrics.rela_impr(row["test_auc_mean"], base)
            common = g.index.intersection(by_model[best].index)
            if model == best:
                row["p_vs_best"], row["significant"] = np.nan, "best"
            elif len(common) >= 2:
                diff = by_model[best].loc[common, "test_auc"] - g.loc[common, "test_auc"]
                p = stats.ttest_rel(by_model[best].loc[common, "test_auc"], g.loc[common, "test_auc"]).pvalue if diff.std() > 0 else 0.0
                row["p_vs_best"], row["significant"] = p, "yes" if p < 0.05 else "no"
            else:
                row["p_vs_best"], row["significant"] = np.nan, "n/a (1 seed)"
            row["samples_per_second"] = g["samples_per_second"].mean()
            rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(["dataset", "test_auc_mean"], ascending=[True, False], kind="stable").reset_index(drop=True)


def markdown(table: pd.DataFrame, baseline: str) -> str:
    def pm(mean: float, std: float) -> str:
        return f"{mean:.4f}" if np.isnan(std) else f"{mean:.4f} ± {std:.4f}"

    parts = [
        "# AUC comparison\n",
        f"Mean ± std over seeds. RelaImpr = ((AUC - 0.5) / (AUC({baseline}) - 0.5) - 1) x 100 on test AUC. "
        "`significant`: paired t-test over seeds of test AUC against the best model, p < 0.05. "
        "Model selection (early stopping) used validation only.\n",
    ]
    for dataset, t in table.groupby("dataset", sort=False):
        body = [
            [
                r.model, r.seeds,
                *(pm(getattr(r, f"{m}_mean"), getattr(r, f"{m}_std")) for m in METRICS),
                f"{r.rela_impr:+.2f}%", "" if np.isnan(r.p_vs_best) else f"{r.p_vs_best:.3f}",
                r.significant, f"{r.samples_per_second:,.0f}",
            ]
            for r in t.itertuples()
        ]  # fmt: skip
        headers = [
            "model",
            "seeds",
            "val_auc",
            "test_auc",
            "test_gauc",
            "test_logloss",
            "RelaImpr",
            "p_vs_best",
            "significant",
            "samples/s",
        ]
        parts.append(f"\n## {dataset}\n\n" + tabulate(body, headers=headers, tablefmt="github") + "\n")
    return "".join(parts)


def plot_auc(table: pd.DataFrame, path: Path) -> None:
    groups = list(table.groupby("dataset", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 0.45 * table["model"].nunique() + 1.8), squeeze=False)
    for ax, (dataset, t) in zip(axes[0], groups):
        t = t.iloc[::-1]
        ax.barh(t["model"], t["test_auc_mean"], xerr=t["test_auc_std"].fillna(0), color="tab:blue", alpha=0.8, capsize=3)
        low = (t["test_auc_mean"] - t["test_auc_std"].fillna(0)).min()
        ax.set_xlim(max(0.5, low - 0.02), min(1.0, t["test_auc_mean"].max() + t["test_auc_std"].fillna(0).max() + 0.01))
        ax.set_xlabel("test AUC (mean ± std over seeds)")
        ax.set_title(dataset)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    results_io.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def plot_curves(curves: pd.DataFrame, path: Path) -> None:
    groups = list(curves.groupby("dataset", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 4.5), squeeze=False)
    for ax, (dataset, c) in zip(axes[0], groups):
        for model, g in c.groupby("model", sort=False):
            mean = g.groupby("epoch")["val_auc"].mean()
            ax.plot(mean.index, mean.values, marker="o", ms=3, label=model)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation AUC (mean over seeds)")
        ax.set_title(f"learning curves: {dataset}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    results_io.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def write_reports(out: Path, runs: pd.DataFrame, curves: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """``auc.md``, ``auc.csv`` (the summary), ``auc.png`` and ``curves.png`` in ``out``."""
    if runs.empty:
        return pd.DataFrame()
    table = summarize(runs, baseline)
    results_io.write_text(out / "auc.md", markdown(table, baseline))
    results_io.write_csv(out / "auc.csv", table)
    plot_auc(table, out / "auc.png")
    if not curves.empty:
        plot_curves(curves, out / "curves.png")
    return table
