"""The AUC tables of a run (tabulate), from runs.csv and the saved test predictions.

Per row: mean over seeds with a t interval, and a user-level bootstrap interval of the test
AUC; the best row is chosen on validation AUC. The suite's declared comparisons are paired
over seeds and Holm-corrected. Flags say where a table should not be read at face value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from .. import metrics, results_io
from ..heuristics import is_heuristic
from . import plots, predictions, stats

METRICS = ["val_auc", "test_auc", "test_gauc", "test_logloss"]


def summarize(runs: pd.DataFrame, out: Path | None = None, baseline: str = "sum-pooling", n_resamples: int = 1000) -> pd.DataFrame:
    """One row per dataset and model: means, intervals, RelaImpr, flags; the best on validation marked."""
    rows = []
    for dataset, frame in runs.groupby("dataset", sort=False):
        by_model = {m: g.sort_values("seed") for m, g in frame.groupby("model", sort=False)}
        base = by_model[baseline]["test_auc"].mean() if baseline in by_model else np.nan
        learned = [m for m in by_model if not is_heuristic(m)]
        best = max(learned, key=lambda m: by_model[m]["val_auc"].mean()) if learned else None
        floor = max((by_model[m]["test_auc"].mean() for m in by_model if is_heuristic(m)), default=np.nan)
        for model, g in by_model.items():
            row = {"dataset": dataset, "model": model, "kind": "non-learned" if is_heuristic(model) else "learned", "seeds": len(g)}
            for m in METRICS:
                row[f"{m}_mean"] = g[m].mean()
            _, row["test_auc_lo"], row["test_auc_hi"] = stats.mean_ci(g["test_auc"].to_numpy())
            cells = [predictions.load(out, dataset, model, int(s)) for s in g["seed"]] if out is not None else []
            found = [c for c in cells if c is not None]
            row["boot_lo"], row["boot_hi"] = stats.bootstrap_ci(found, n_resamples) if found else (np.nan, np.nan)
            row["rela_impr"] = metrics.rela_impr(row["test_auc_mean"], base)
            row["best_on_valid"] = model == best
            capped = int((g.get("stopped", pd.Series(dtype=str)) == "cap").sum())
            untrained = int((np.abs(g.get("aux_loss_epoch1", pd.Series(dtype=float)) - 2 * np.log(2)) < 0.01).sum())
            row["capped"], row["aux_untrained"] = capped, untrained
            row["samples_per_second"] = g["samples_per_second"].mean()
            row["flags"] = "; ".join(flags(row, floor))
            rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(["dataset", "test_auc_mean"], ascending=[True, False], kind="stable").reset_index(drop=True)


def flags(row: dict, floor: float) -> list[str]:
    if row["kind"] != "learned":
        return []
    notes = []
    if np.isfinite(floor) and not row["test_auc_mean"] > floor:
        notes.append("does not beat the non-learned rows")
    if row["capped"] * 2 > row["seeds"]:
        notes.append(f"hit the epoch cap in {row['capped']}/{row['seeds']} seeds (undertrained?)")
    if row["aux_untrained"]:
        notes.append(f"auxiliary loss did not train in {row['aux_untrained']}/{row['seeds']} seeds")
    return notes


def compare(runs: pd.DataFrame, pairs: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    """Each declared (a, b) on each dataset: paired over common seeds, Holm within a dataset."""
    rows = []
    for dataset, frame in runs.groupby("dataset", sort=False):
        found = []
        for a, b in pairs:
            ga, gb = (frame[frame["model"] == m].set_index("seed")["test_auc"] for m in (a, b))
            common = ga.index.intersection(gb.index).sort_values()
            if len(common):
                found.append((a, b, stats.paired(ga.loc[common].to_numpy(), gb.loc[common].to_numpy())))
        adjusted = stats.holm([r.p for *_, r in found])
        for (a, b, r), p_holm in zip(found, adjusted):
            rows.append({
                "dataset": dataset, "a": a, "b": b, "seeds": r.n, "diff": r.diff, "diff_lo": r.lo, "diff_hi": r.hi, "p": r.p,
                "p_holm": p_holm, "detectable": r.detectable, "verdict": stats.verdict(r, p_holm, a, b),
            })  # fmt: skip
    return pd.DataFrame(rows)


def sweep_table(table: pd.DataFrame, sweeps: dict[tuple[str, str], tuple[tuple[float, str], ...]]) -> pd.DataFrame:
    """Per dataset and swept setting: the value, its row and that row's test AUC with its intervals."""
    rows = []
    for (model, setting), points in sweeps.items():
        for value, name in points:
            for r in table[table["model"] == name].itertuples():
                rows.append({"dataset": r.dataset, "model": model, "setting": setting, "value": value, "row": name, "seeds": r.seeds,
                             "test_auc": r.test_auc_mean, "test_auc_lo": r.test_auc_lo, "test_auc_hi": r.test_auc_hi,
                             "boot_lo": r.boot_lo, "boot_hi": r.boot_hi, "val_auc": r.val_auc_mean})  # fmt: skip
    return pd.DataFrame(rows)


def sweep_markdown(sweep: pd.DataFrame) -> str:
    parts = []
    for (dataset, model, setting), g in sweep.groupby(["dataset", "model", "setting"], sort=False):
        body = [[f"{r.value:g}", r.row, r.seeds, _f(r.val_auc), _f(r.test_auc), _interval(r.test_auc_lo, r.test_auc_hi),
                 _interval(r.boot_lo, r.boot_hi)] for r in g.itertuples()]  # fmt: skip
        headers = [setting, "row", "seeds", "val_auc", "test_auc", "test_auc 95% CI (t)", "bootstrap 95% CI"]
        title = f"\n## {dataset}: {model} by {setting} (`sweep-{setting}.png`)\n\n"
        parts.append(title + tabulate(body, headers=headers, tablefmt="github", disable_numparse=True) + "\n")
    return "".join(parts)


def _f(x: float, digits: int = 4) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _p(p: float) -> str:
    """A p-value as written: three decimals, "< 0.001" below that (never a bare 0)."""
    return "" if p is None or not np.isfinite(p) else ("< 0.001" if p < 0.0005 else f"{p:.3f}")


def _interval(lo: float, hi: float) -> str:
    return "" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:.4f}, {hi:.4f}]"


def markdown(table: pd.DataFrame, comparisons: pd.DataFrame, baseline: str) -> str:
    parts = [
        "# AUC comparison\n\n",
        "Means over seeds; each seed draws its own split (and, for synthetic data, its own data). `test_auc 95% CI (t)`: t interval "
        "over seeds; `bootstrap 95% CI`: user-level bootstrap of the test users each seed scored (the test-set noise). "
        f"RelaImpr = ((AUC - 0.5) / (AUC({baseline}) - 0.5) - 1) x 100 on test AUC. `best`: highest mean validation AUC, "
        "so the choice never looks at test. Non-learned rows (`popularity`, `recent-category`) score the same rows without "
        "training; `flags` names learned rows that do not beat them, that hit the epoch cap in most seeds, or whose auxiliary "
        "loss did not train (within 0.01 of 2 ln 2 after the first epoch).\n",
    ]
    headers = ["model", "seeds", "val_auc", "test_auc", "test_auc 95% CI (t)", "bootstrap 95% CI", "test_gauc", "test_logloss",
               "RelaImpr", "best", "samples/s", "flags"]  # fmt: skip
    for dataset, t in table.groupby("dataset", sort=False):
        body = [[
            r.model, r.seeds, _f(r.val_auc_mean), _f(r.test_auc_mean), _interval(r.test_auc_lo, r.test_auc_hi),
            _interval(r.boot_lo, r.boot_hi), _f(r.test_gauc_mean), _f(r.test_logloss_mean),
            "n/a" if not np.isfinite(r.rela_impr) else f"{r.rela_impr:+.2f}%",
            "best" if r.best_on_valid else "", "" if not np.isfinite(r.samples_per_second) else f"{r.samples_per_second:,.0f}", r.flags,
        ] for r in t.itertuples()]  # fmt: skip
        parts.append(f"\n## {dataset}\n\n" + tabulate(body, headers=headers, tablefmt="github", disable_numparse=True) + "\n")
        c = comparisons[comparisons["dataset"] == dataset] if len(comparisons) else comparisons
        if len(c):
            parts.append(
                "\nDeclared comparisons of test AUC, paired over seeds (t-test), Holm-corrected over this table. `detectable`: "
                "the smallest difference these seeds detect with 80% power at p < 0.05, from the spread of the paired differences.\n\n"
            )
            body = [[r.a, r.b, r.seeds, f"{r.diff:+.4f}", _interval(r.diff_lo, r.diff_hi), _p(r.p), _p(r.p_holm),
                     _f(r.detectable), r.verdict] for r in c.itertuples()]  # fmt: skip
            headers_c = ["a", "b", "seeds", "a - b", "95% CI", "p", "p (Holm)", "detectable", "verdict"]
            parts.append(tabulate(body, headers=headers_c, tablefmt="github", disable_numparse=True) + "\n")
    return "".join(parts)


def write_reports(
    out: Path,
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    pairs: tuple[tuple[str, str], ...] = (),
    baseline: str = "sum-pooling",
    sweeps: dict[tuple[str, str], tuple[tuple[float, str], ...]] | None = None,
) -> pd.DataFrame:
    """``auc.md``, ``auc.csv`` (the summary), ``comparisons.csv``, ``auc.png`` and ``curves.png`` in ``out``; with
    ``sweeps`` (``SuiteConfig.sweeps``), ``sweep-<setting>.csv`` and ``.png`` per swept setting too."""
    if runs.empty:
        return pd.DataFrame()
    table = summarize(runs, out, baseline)
    comparisons = compare(runs, pairs)
    sweep = sweep_table(table, sweeps or {})
    results_io.write_text(out / "auc.md", markdown(table, comparisons, baseline) + (sweep_markdown(sweep) if len(sweep) else ""))
    for setting, g in sweep.groupby("setting", sort=False) if len(sweep) else ():
        results_io.write_csv(out / f"sweep-{setting}.csv", g)
        plots.plot_sweep(g, out / f"sweep-{setting}.png")
    results_io.write_csv(out / "auc.csv", table)
    if len(comparisons):
        results_io.write_csv(out / "comparisons.csv", comparisons)
    else:
        (out / "comparisons.csv").unlink(missing_ok=True)  # none declared for these rows: no stale table
    plots.plot_auc(table, out / "auc.png")
    reported = set(map(tuple, runs[["dataset", "model", "seed"]].to_numpy().tolist()))
    if not curves.empty:
        curves = curves[[k in reported for k in map(tuple, curves[["dataset", "model", "seed"]].to_numpy().tolist())]]
    if not curves.empty:
        plots.plot_curves(curves, out / "curves.png")
    return table
