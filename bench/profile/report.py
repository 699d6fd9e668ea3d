"""timings.md and the throughput / step-time plots of a profile."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from tabulate import tabulate  # noqa: E402

from .. import results_io  # noqa: E402


def row_label(r) -> str:
    name = r.model if r.impl == "dien-bench" else f"{r.model} (peer)"
    return name + ("" if r.lengths == "full" else f" [{r.lengths} lengths]") + ("" if r.dtype == "float32" else f" [{r.dtype}]")


def markdown(timings: pd.DataFrame, meta: dict) -> str:
    t = timings.assign(label=[row_label(r) for r in timings.itertuples()])
    parts = [
        f"# Step timings on {meta['device_name']} ({meta['device']})\n\n",
        f"torch {meta['torch']}, {meta['threads']} threads; CUDA {meta.get('cuda')}. `forward`: eval, no grad. `train`: forward, loss "
        "(auxiliary loss where on), backward, Adam step. Cells: samples/s (median ms per step, IQR in timings.csv). "
        "Random batches with the Amazon Electronics vocabularies and the paper's shapes (embedding 18, attention 80-40, MLP 200-80). "
        "`mixed`: lengths uniform in 1..T, padded to T.\n",
    ]
    if meta.get("bfloat16_note"):
        parts.append(f"\n**bfloat16:** {meta['bfloat16_note']}.\n")
    if meta.get("flush_denormal"):
        parts.append("\nDenormal floats are flushed to zero (`torch.set_flush_denormal`), for every model including the peers.\n")
    if meta.get("matmul_gflops"):
        parts.append(f"\nA 2048x2048 float32 matrix product runs at {meta['matmul_gflops']:.1f} GFLOP/s on this device.")
        if meta.get("model_matmul_gflops"):
            shapes = "; ".join(f"{name}: {v:.1f}" for name, v in meta["model_matmul_gflops"].items())
            parts.append(f" The products a DIEN step is made of (rows B*T at batch 1024, T = 50) run at, in GFLOP/s: {shapes}.")
        parts.append("\n")
    for (mode, batch), g in t.groupby(["mode", "batch"], sort=True):
        cells = g.assign(cell=[f"{r.samples_per_s:,.0f} ({r.median_ms:.1f} ms)" for r in g.itertuples()])
        pivot = cells.pivot_table(index="label", columns="seq_len", values="cell", aggfunc="first")
        pivot = pivot.reindex(g.drop_duplicates("label").sort_values(["impl", "lengths", "dtype"], kind="stable")["label"])
        pivot = pivot.fillna("")  # a row without this length (mixed lengths or bfloat16 run at fewer T)
        headers = ["model"] + [f"T={c}" for c in pivot.columns]
        parts.append(
            f"\n## {mode}, batch {batch}\n\n" + tabulate(pivot.reset_index().values.tolist(), headers=headers, tablefmt="github") + "\n"
        )
        flops = g.pivot_table(index="label", columns="seq_len", values="gflops", aggfunc="first").round(1)
        flops = flops.astype(object).where(flops.notna(), "")
        parts.append(f"\nAchieved GFLOP/s (matrix-product FLOPs counted by torch's FlopCounterMode), {mode}, batch {batch}:\n\n")
        parts.append(
            tabulate(flops.reset_index().values.tolist(), headers=["model"] + [f"T={c}" for c in flops.columns], tablefmt="github") + "\n"
        )
    parts.append(speedups(timings))
    return "".join(parts)


PEER_PAIRS = {"dien-augru+aux": "deepctr-torch/dien-augru+aux", "din": "deepctr-torch/din"}


def speedups(timings: pd.DataFrame) -> str:
    """Our samples/s over the peer's, same shape and dtype, same run."""
    full = timings[timings["lengths"] == "full"]
    shape = ["model", "mode", "dtype", "batch", "seq_len"]
    ours = full[full["impl"] == "dien-bench"][[*shape, "samples_per_s"]]
    theirs = full[full["impl"] != "dien-bench"].assign(model=lambda d: d["model"].map({v: k for k, v in PEER_PAIRS.items()}))
    pairs = ours.merge(theirs[[*shape, "samples_per_s"]], on=shape, suffixes=("", "_peer"))
    rows = pairs.assign(x=pairs["samples_per_s"] / pairs["samples_per_s_peer"]).to_dict("records")
    if not rows:
        return ""
    table = pd.DataFrame(rows).pivot_table(index=["mode", "model", "dtype", "batch"], columns="seq_len", values="x", aggfunc="first")
    body = [[*idx, *("" if pd.isna(v) else f"{v:.2f}x" for v in row)] for idx, row in zip(table.index, table.to_numpy())]
    headers = ["mode", "model", "dtype", "batch", *(f"T={c}" for c in table.columns)]
    return (
        "\n## Speed-up over DeepCTR-Torch 0.3.0 (same shapes, same run)\n\n"
        "This project's samples/s divided by the peer's (`dien-augru+aux` against its DIEN with AUGRU and negative sampling, "
        "`din` against its DIN), every row at full length; `bfloat16`: both under autocast.\n\n"
        + tabulate(body, headers=headers, tablefmt="github")
        + "\n"
    )


def plot(timings: pd.DataFrame, value: str, ylabel: str, path: Path) -> None:
    full = timings[(timings["lengths"] == "full") & (timings["dtype"] == "float32")]
    panels = sorted(full.groupby(["mode", "batch"]).groups)
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for ax, (mode, batch) in zip(axes[0], panels):
        g = full[(full["mode"] == mode) & (full["batch"] == batch)]
        for (impl, model), line in g.groupby(["impl", "model"], sort=False):
            line = line.sort_values("seq_len")
            style = "--" if impl != "dien-bench" else "-"
            ax.plot(line["seq_len"], line[value], style, marker="o", ms=3, label=model if impl == "dien-bench" else f"{model} (peer)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{mode}, batch {batch}")
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(fontsize=7, loc="best")
    results_io.save_figure(fig, path)


def write_reports(out: Path, timings: pd.DataFrame, meta: dict) -> None:
    results_io.write_text(out / "timings.md", markdown(timings, meta))
    plot(timings, "samples_per_s", "samples / s", out / "throughput.png")
    plot(timings, "median_ms", "ms per step (median)", out / "step_time.png")
