"""`python -m bench run` end to end: files, resumption, bad flags."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from bench.cli import main
from bench.run import predictions

TINY = str(Path(__file__).with_name("tiny_suite.toml"))
RUNS_COLUMNS = [
    "model",
    "dataset",
    "seed",
    "epochs",
    "val_auc",
    "test_auc",
    "test_gauc",
    "test_logloss",
    "train_seconds",
    "samples_per_second",
]


def run(*args: str) -> int:
    return main(["run", "--suite", TINY, "--device", "cpu", *args])


def test_tiny_suite_writes_every_file_and_resumes(tmp_path, capsys):
    out = tmp_path / "out"
    assert run("--out", str(out)) == 0
    for name in ("runs.csv", "curves.csv", "auc.md", "auc.csv", "auc.png", "curves.png", "metadata.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    runs = pd.read_csv(out / "runs.csv")
    assert set(RUNS_COLUMNS) <= set(runs.columns)
    assert len(runs) == 8 and set(runs["seed"]) == {0, 1}
    assert set(runs["model"]) == {"popularity", "recent-category", "sum-pooling", "dien-augru+aux"}
    learned = runs[~runs["model"].isin(["popularity", "recent-category"])]
    # 2 epochs with patience 2: no cell can stop early; each runs to the cap and logs one curve row per epoch
    assert (learned["stopped"] == "cap").all() and (learned["epochs"] == 2).all() and (runs["commit"] == runs["commit"].iloc[0]).all()
    curves = pd.read_csv(out / "curves.csv")
    assert curves.groupby(["model", "seed"]).size().to_dict() == {(r.model, r.seed): r.epochs for r in learned.itertuples()}
    from bench.data import load_dataset
    from bench.models import model_plan
    from bench.suite import load_suite

    data = load_suite(TINY).data[0]
    for row in learned.itertuples():  # throughput is the training rows seen over the training time (written to the ms)
        rows = len(load_dataset(data.for_seed(row.seed)).train) * row.epochs
        assert row.samples_per_second * row.train_seconds == pytest.approx(rows, abs=row.samples_per_second * 5e-4 + 1), row
    for row in runs.itertuples():  # every cell's test predictions, for the bootstrap: its test AUC is theirs
        assert (out / "predictions" / "synthetic" / row.model.replace("/", "~") / f"seed-{row.seed}.npz").is_file()
        saved = predictions.load(out, "synthetic", row.model, row.seed)
        assert row.test_auc == pytest.approx(roc_auc_score(saved.label, saved.score), abs=1e-9)
        made = json.loads((out / "predictions" / "synthetic" / row.model.replace("/", "~") / "metadata.json").read_text())
        cell = next(c for c in made["cells"] if c["seed"] == row.seed)  # which code and config wrote this file
        assert (cell["commit"], cell["config_hash"], cell["device"]) == (row.commit, row.config_hash, row.device)
        assert sorted(c["seed"] for c in made["cells"]) == [0, 1]
    meta = json.loads((out / "metadata.json").read_text())
    for key in ("git_commit", "python", "torch", "optuna", "device_name", "threads", "seeds", "config"):
        assert key in meta
    assert meta["config"]["train"]["epochs"] == 2 and meta["seeds"] == [0, 1]
    assert meta["flush_denormal"] is True  # as in `bench profile`: denormals slow long sequences
    want = {m: model_plan(m, load_suite(TINY).model, "cpu").as_dict() for m in ("sum-pooling", "dien-augru+aux")}  # each learned row
    assert meta["plans"] == want and set(want["dien-augru+aux"]["pieces"]) == {"embedding", "GRU", "AUGRU", "aux_loss", "serving_attention"}
    printed = capsys.readouterr()
    assert "dien-augru+aux: backend auto on cpu float32: embedding" in printed.err  # the plan, before the cells run
    table = (out / "auc.md").read_text()
    assert "dien-augru+aux" in table and "RelaImpr" in table and "bootstrap 95% CI" in table and "popularity" in table
    assert "# AUC comparison" in printed.out  # the table is printed at the end
    before = (out / "runs.csv").read_text()
    assert run("--out", str(out)) == 0  # second run: nothing to train
    assert (out / "runs.csv").read_text() == before
    assert "8 of 8 cells already done" in capsys.readouterr().err
    invocations = json.loads((out / "metadata.json").read_text())["invocations"]
    assert [i["cells_run"] for i in invocations] == [8, 0]  # the second invocation kept the first's record
    assert all(i["argv"][:3] == ["python -m bench", "run", "--suite"] for i in invocations)


def test_changed_config_in_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert run("--out", str(out), "--models", "sum-pooling", "--seeds", "1") == 0
    assert run("--out", str(out), "--models", "sum-pooling", "--seeds", "1", "--epochs", "1") == 2
    assert "holds results of configuration" in capsys.readouterr().err


def test_keep_denormals_is_recorded(tmp_path):
    out = tmp_path / "out"
    assert run("--out", str(out), "--models", "sum-pooling", "--seeds", "1", "--epochs", "1", "--keep-denormals") == 0
    assert json.loads((out / "metadata.json").read_text())["flush_denormal"] is False


def test_killed_run_continues_without_duplicates(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "bench", "run", "--suite", TINY, "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=Path(__file__).parents[1])
    deadline = time.time() + 240
    while time.time() < deadline:  # kill as soon as one cell is done and before all are
        if (out / "runs.csv").is_file() and len(pd.read_csv(out / "runs.csv")) >= 1:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 1 <= len(pd.read_csv(out / "runs.csv")) < 8
    assert not list(out.glob(".*.tmp"))  # nothing half-written
    subprocess.run(cmd, check=True, env=env, capture_output=True, cwd=Path(__file__).parents[1])
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 8 and not runs.duplicated(["dataset", "model", "seed"]).any()
    curves = pd.read_csv(out / "curves.csv")
    assert not curves.duplicated(["dataset", "model", "seed", "epoch"]).any()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "dien-lstm"], "unknown model 'dien-lstm'"),
        (["--seeds", "0"], "--seeds takes a count >= 1"),
        (["--dataset", "movielens-1m", "--data-dir", "/nonexistent/dir"], "data folder not found"),
        (["--dataset", "amazon"], "amazon dataset needs local_train_splitByUser"),
        (["--data-dir", "/"], "reads no files (its data: synthetic); add --dataset"),
        (["--suite", "nosuch"], "unknown suite 'nosuch'"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_flags_exit_2_with_a_message(tmp_path, capsys, args, message):
    assert main(["run", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_dataset_name_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--dataset", "criteo"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_builtin_suites_parse_and_name_the_ablation():
    from bench.suite import load_suite

    for name in ("quick", "standard", "paper"):
        suite = load_suite(name)
        assert {r.name for r in suite.rows} >= {"sum-pooling", "din", "dien-augru+aux"}
    standard = load_suite("standard")
    names = {r.name for r in standard.rows}
    assert {"dien-augru+aux/att-softmax", "dien-augru+aux/augru-original", "dien-augru+aux/att-softmax/augru-original"} <= names
    assert {"synthetic", "movielens-1m"} <= {d.dataset for d in standard.data}
    assert all(d.data_dir is None for name in ("quick", "standard", "paper") for d in load_suite(name).data)  # no outside paths
    paper = load_suite("paper")
    assert paper.model.embedding_dim == 18 and paper.model.attention_hidden == (80, 40) and paper.model.mlp_hidden == (200, 80)
    assert paper.train.batch_size == 128 and paper.train.lr == 1e-3 and paper.data[0].maxlen == 100 and paper.model.alpha == 1.0


def test_unknown_suite_key_is_refused(tmp_path):
    from bench.suite import load_suite

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nmodels = ["din"]\n[train]\nepoch = 3\n')
    with pytest.raises(ValueError, match="unknown key.*epoch.*allowed"):
        load_suite(str(bad))
    bad.write_text('name = "x"\n[[variants]]\nmodel = "din"\nattention_norm = "softmax"\n')
    with pytest.raises(ValueError, match="unknown model setting"):
        load_suite(str(bad))


@pytest.mark.slow
def test_default_synthetic_ranks_dien_over_din_over_sum_pooling():
    """On the built-in data with default knobs and the earlier protocol (uniform target negatives,
    2 targets per user, 3 epochs, one split), over 3 seeds, in mean test AUC: a regression check of the models' ordering.
    Under the default protocol (popularity negatives) the ordering is what results/quick measures."""
    from dataclasses import replace

    import torch

    from bench.data import DataConfig, load_dataset
    from bench.models import build_model
    from bench.suite import load_suite
    from bench.train import RunSpec, evaluate, train

    quick = load_suite("quick")
    data = DataConfig(maxlen=quick.data[0].maxlen, targets_per_user=2, target_negatives="uniform")
    dataset = load_dataset(data)
    mean = {}
    for name in ("sum-pooling", "din", "dien-augru+aux"):
        aucs = []
        for seed in (0, 1, 2):
            torch.manual_seed(seed)
            model = build_model(name, quick.model, dataset.vocab)
            train(model, dataset, RunSpec(replace(quick.train, epochs=3), seed, torch.device("cpu")))
            aucs.append(evaluate(model, dataset, dataset.test, 4096, torch.device("cpu"))["auc"])
        mean[name] = sum(aucs) / 3
    assert mean["dien-augru+aux"] > mean["din"] > mean["sum-pooling"], mean


def test_an_interrupted_run_leaves_every_predictions_folder_described(tmp_path):
    """Each predictions folder's metadata.json is written as its file is, so a run stopped after its
    first learned cell (Ctrl-C) still says which cell wrote each file; the next run keeps them."""
    from dataclasses import replace

    import torch

    from bench.run import runner
    from bench.suite import load_suite

    suite = replace(load_suite(TINY), seeds=(0,))
    out = tmp_path / "out"

    def stops_after_a_learned_cell(suite, todo, device, log):
        for cell, test in runner.run_in_process(suite, todo, device, log):
            yield cell, test
            if cell.curve is not None:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run_suite(suite, out, torch.device("cpu"), log=lambda m: None, execute=stops_after_a_learned_cell)
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["model"]) == ["popularity", "recent-category", "sum-pooling"]  # three cells, then the interrupt
    for row in runs.itertuples():
        made = json.loads((out / "predictions" / "synthetic" / row.model / "metadata.json").read_text())
        assert [(c["seed"], c["commit"], c["config_hash"]) for c in made["cells"]] == [(0, row.commit, row.config_hash)]
