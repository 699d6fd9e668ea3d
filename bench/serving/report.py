"""latency.md / latency.png and microbatch.md / microbatch.png of a serving run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tabulate import tabulate  # noqa: E402

from .. import results_io  # noqa: E402
from .load import capacity  # noqa: E402

IMPL_ORDER = ["batched", "shared", "shared-cudagraph", "exported", "onnx", "deepctr-torch"]
STYLES = {"batched": ":", "shared": "-", "shared-cudagraph": "-.", "exported": "--", "onnx": (0, (1, 1)),
          "deepctr-torch": (0, (5, 1, 1, 1))}  # fmt: skip


def _ordered(impls) -> list[str]:
    return sorted(set(impls), key=lambda i: IMPL_ORDER.index(i) if i in IMPL_ORDER else len(IMPL_ORDER))


def _table(rows: list[list], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github") + "\n"


def ratios(latency: pd.DataFrame) -> pd.DataFrame:
    """Per model, T and K: p99 of each implementation over the shared path's, and the exported's."""
    p99 = latency.pivot_table(index=["model", "seq_len", "candidates"], columns="impl", values="p99_ms", aggfunc="first")
    out = pd.DataFrame(index=p99.index)
    if "shared" in p99:
        for impl in ("batched", "deepctr-torch"):
            if impl in p99:
                out[f"{impl} / shared"] = p99[impl] / p99["shared"]
        if "exported" in p99:
            out["shared / exported"] = p99["shared"] / p99["exported"]
    if "exported" in p99:
        for impl in ("batched", "deepctr-torch"):
            if impl in p99:
                out[f"{impl} / exported"] = p99[impl] / p99["exported"]
    return out.reset_index()


def latency_markdown(latency: pd.DataFrame, meta: dict) -> str:
    parts = [
        f"# Per-request latency on {meta['device_name']} ({meta['device']})\n\n",
        f"torch {meta['torch']}, {meta['threads']} threads, float32, the paper's sizes (embedding 18, attention 80-40, MLP 200-80) "
        "with the Amazon Electronics vocabularies. A request is one user, a history of T steps and K candidates; each timed request "
        "has its own (the same requests for every model and implementation). Cells: p99 (p50) in ms over the cell's requests "
        "(`requests` in latency.csv), after a warm-up. `batched`: the K rows through the training model in eval mode; `shared`: "
        "`dien_core.serving.ServingModel`, the history's work once per request; `exported`: the AOTInductor package of the serving "
        "path; `onnx`: the same graph in ONNX Runtime; `deepctr-torch`: DeepCTR-Torch 0.3.0's model of the same kind on the same "
        "request's K rows.\n",
    ]
    for (model, T), g in latency.groupby(["model", "seq_len"], sort=True):
        cells = g.assign(cell=[f"{r.p99_ms:.2f} ({r.p50_ms:.2f})" for r in g.itertuples()])
        pivot = cells.pivot_table(index="impl", columns="candidates", values="cell", aggfunc="first").reindex(_ordered(g["impl"]))
        body = [[impl, *("" if pd.isna(v) else v for v in row)] for impl, row in zip(pivot.index, pivot.to_numpy())]
        parts.append(f"\n## {model}, T = {T}\n\n" + _table(body, ["impl", *(f"K={k}" for k in pivot.columns)]))
    r = ratios(latency)
    if len(r.columns) > 3:
        body = [[*row[:3], *("" if pd.isna(v) else f"{v:.2f}x" for v in row[3:])] for row in r.itertuples(index=False)]
        parts.append("\n## p99 ratios (higher: the second is faster)\n\n" + _table(body, ["model", "T", "K", *r.columns[3:]]))
    exports = latency.dropna(subset=["export_s"]) if "export_s" in latency else latency.iloc[:0]
    if len(exports):
        e = exports.drop_duplicates(["model", "impl", "seq_len"])
        body = [[x.model, x.impl, x.seq_len, f"{x.export_s:.0f}"] for x in e.itertuples()]
        parts.append("\nExport and compile time, once per model and T (s): the graph has T fixed and K dynamic.\n\n"
                     + _table(body, ["model", "impl", "T", "seconds"]))  # fmt: skip
    if "parity_max_abs" in latency and latency["parity_max_abs"].notna().any():
        worst = latency["parity_max_abs"].max()
        parts.append(f"\nEvery implementation's logits were checked against `batched` on each cell's first requests before timing: "
                     f"largest difference {worst:.1e}.\n")  # fmt: skip
    return "".join(parts)


def plot_latency(latency: pd.DataFrame, path: Path) -> None:
    """p99 against K, one panel per T, a line per (model, implementation)."""
    lengths = sorted(latency["seq_len"].unique())
    fig, axes = plt.subplots(1, len(lengths), figsize=(5.5 * len(lengths), 4.5), squeeze=False)
    colors = {m: f"C{i}" for i, m in enumerate(sorted(latency["model"].unique()))}
    for ax, T in zip(axes[0], lengths):
        g = latency[latency["seq_len"] == T]
        for (model, impl), line in g.groupby(["model", "impl"], sort=True):
            line = line.sort_values("candidates")
            ax.plot(line["candidates"], line["p99_ms"], linestyle=STYLES.get(impl, "-"), color=colors[model], marker="o", ms=3,
                    label=f"{model} {impl}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("candidates per request K")
        ax.set_ylabel("p99 latency per request (ms)")
        ax.set_title(f"history T = {T}")
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(fontsize=7, loc="best")
    results_io.save_figure(fig, path)


def _rate(held: float, first_over: float, lowest: float) -> str:
    """A held rate for the capacity table: ``< lowest`` where even the lowest rate tried broke the
    budget, ``>= held`` where no rate tried did (the sweep stopped below the capacity)."""
    if np.isnan(held):
        return f"< {lowest:,.0f}"
    return f">= {held:,.0f}" if np.isnan(first_over) else f"{held:,.0f}"


def microbatch_markdown(table: pd.DataFrame, budgets_ms: tuple[float, ...], meta: dict) -> str:
    first = table.iloc[0]
    parts = [
        f"# Micro-batching on {meta['device_name']} ({meta['device']})\n\n",
        f"Open-loop Poisson arrivals at each offered rate into a batcher (max wait, max batch), {int(first.workers)} worker(s) of "
        f"{int(first.threads)} threads, `{first.impl}` path, K = {int(first.candidates)}, T = {int(first.seq_len)}, "
        f"{int(first.requests)} requests per point; service times are the real calls' wall times on a virtual clock. "
        "Policy (0 ms, 1) is a server without batching. Latency is from arrival to the end of the request's batch. "
        "*p99 at median service* replays the same arrivals with every call at its median time for its batch size "
        "(measured before the sweep): the queue's share of the tail. Where the measured p99 is far above it, "
        "the machine's slow calls made the tail, not the load.\n",
    ]
    body = []
    for budget in sorted(budgets_ms):
        for c in capacity(table, budget).itertuples():
            first_over = "none over" if np.isnan(c.first_rps_over_budget) else f"{c.first_rps_over_budget:,.0f}"
            calm = _rate(c.max_rps_within_budget_median_service, c.first_rps_over_budget_median_service, c.lowest_rps_tried)
            held = _rate(c.max_rps_within_budget, c.first_rps_over_budget, c.lowest_rps_tried)
            body.append([c.model, f"{budget:g}", f"{c.max_wait_ms:g} ms, {c.max_batch}", held, first_over, calm])
    headers = ["model", "p99 budget ms", "max wait, max batch", "req/s held", "first req/s over", "req/s held at median service"]
    parts.append("\n## Requests per second held within a p99 budget\n\n"
                 "The highest rate tried below the first one whose p99 broke the budget.\n\n" + _table(body, headers))  # fmt: skip
    for model, g in table.groupby("model", sort=False):
        body = [[f"{r.max_wait_ms:g} ms, {r.max_batch}", f"{r.offered_rps:,.0f}", f"{r.achieved_rps:,.0f}", f"{r.p50_ms:.2f}",
                 f"{r.p99_ms:.2f}", f"{r.p99_ms_median_service:.2f}", f"{r.mean_batch:.1f}", f"{r.utilization:.0%}"]
                for r in g.itertuples()]  # fmt: skip
        headers = ["max wait, max batch", "offered req/s", "served req/s", "p50 ms", "p99 ms", "p99 ms at median service", "mean batch",
                   "busy"]  # fmt: skip
        curve = ", ".join(f"{size}: {ms} ms" for size, ms in (x.split(":") for x in g["service_ms_by_batch"].iloc[0].split(";")))
        parts.append(f"\n## {model}\n\nOne call's median time by batch size: {curve}.\n\n" + _table(body, headers))
    return "".join(parts)


def plot_microbatch(table: pd.DataFrame, budgets_ms: tuple[float, ...], path: Path) -> None:
    """p99 against the offered load, one panel per model, a line per batching policy (solid: measured;
    dotted: the same arrivals at the median service time)."""
    models = list(table["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models):
        g = table[table["model"] == model]
        for (wait, size), line in g.groupby(["max_wait_ms", "max_batch"], sort=True):
            line = line.sort_values("offered_rps")
            label = "no batching" if size == 1 else f"wait {wait:g} ms, batch {size}"
            (drawn,) = ax.plot(line["offered_rps"], line["p99_ms"], marker="o", ms=3, label=label)
            ax.plot(line["offered_rps"], line["p99_ms_median_service"], ls=":", color=drawn.get_color())
        ax.plot([], [], ls=":", color="gray", label="same arrivals, median service")
        for budget, style in zip(sorted(budgets_ms), ["--", "-.", (0, (5, 5)), (0, (1, 3))] * len(budgets_ms)):
            ax.axhline(budget, color="black", ls=style, lw=1, label=f"p99 budget {budget:g} ms")
        ax.set_yscale("log")
        ax.set_xlabel("offered load (requests / s)")
        ax.set_ylabel("p99 latency (ms)")
        ax.set_title(f"{model}: K = {int(g['candidates'].iloc[0])}, T = {int(g['seq_len'].iloc[0])}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    results_io.save_figure(fig, path)


def write_latency_reports(out: Path, latency: pd.DataFrame, meta: dict) -> None:
    results_io.write_text(out / "latency.md", latency_markdown(latency, meta))
    plot_latency(latency, out / "latency.png")


def write_microbatch_reports(out: Path, table: pd.DataFrame, budgets_ms: tuple[float, ...], meta: dict) -> None:
    results_io.write_csv(out / "microbatch.csv", table)
    results_io.write_text(out / "microbatch.md", microbatch_markdown(table, budgets_ms, meta))
    plot_microbatch(table, budgets_ms, out / "microbatch.png")
