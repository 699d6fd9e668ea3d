"""What a study leaves in results/tuning/<study>/: trials.csv, best.json, best.md, plots, metadata."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from tabulate import tabulate  # noqa: E402

from .. import results_io  # noqa: E402


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def best_record(study: optuna.Study) -> dict:
    best = study.best_trial
    return {
        "study": study.study_name, "model": study.user_attrs.get("model"), "value": best.value, "metric": "val_auc",
        "trial": best.number, "params": best.params, "seed": best.user_attrs.get("seed"),
        "model_config": best.user_attrs["model_config"], "train_config": best.user_attrs["train_config"],
        "data_config": best.user_attrs["data_config"],
    }  # fmt: skip


def save_plot(ax_or_fig, path: Path) -> None:
    fig = ax_or_fig.figure if hasattr(ax_or_fig, "figure") and not isinstance(ax_or_fig, plt.Figure) else ax_or_fig
    if not isinstance(fig, plt.Figure):  # some plots return an array of axes
        fig = ax_or_fig.flat[0].figure
    fig.set_size_inches(max(fig.get_size_inches()[0], 7), max(fig.get_size_inches()[1], 5))
    results_io.save_figure(fig, path, dpi=100)


def write_outputs(study: optuna.Study, out: Path, meta: dict) -> dict | None:
    """Every output file; returns the best record (None while no trial has completed)."""
    out.mkdir(parents=True, exist_ok=True)
    frame = study.trials_dataframe()
    results_io.write_csv(out / "trials.csv", frame)
    results_io.write_json(out / "metadata.json", meta)
    if not finished(study):
        return None
    best = best_record(study)
    results_io.write_json(out / "best.json", best)
    counts = frame["state"].value_counts().to_dict() if len(frame) else {}
    rows = [[k, v] for k, v in sorted(best["params"].items())]
    text = (
        f"# Tuning study `{study.study_name}` ({best['model']})\n\n"
        f"Objective: validation AUC (test is never used). Trials: {', '.join(f'{v} {k.lower()}' for k, v in counts.items())}.\n\n"
        f"Best: trial {best['trial']}, validation AUC {best['value']:.4f}. Evaluate it over seeds on test with\n"
        f"`python -m bench run --params-from {out / 'best.json'}`.\n\n"
        + tabulate(rows, headers=["parameter", "value"], tablefmt="github")
        + "\n"
    )
    results_io.write_text(out / "best.md", text)
    vis = optuna.visualization.matplotlib
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib backend is marked experimental
        save_plot(vis.plot_optimization_history(study), out / "optimization_history.png")
        if len(finished(study)) >= 2 and len(best["params"]) >= 2:
            try:
                save_plot(vis.plot_param_importances(study), out / "param_importances.png")
            except (RuntimeError, ValueError):
                pass  # importances need variation in the parameters
        names = [n for n in ("alpha", "attention_hidden_0", "attention_hidden_layers") if any(n in t.params for t in finished(study))]
        if names:
            save_plot(vis.plot_slice(study, params=names), out / "slice_alpha_attention.png")
    return best
