"""`python -m bench tune`: outputs, continuation, pruning, errors, and workers sharing one PostgreSQL study."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from bench.cli import main
from bench.config_io import to_dict
from bench.run import predictions

ROOT = Path(__file__).parents[1]
TINY = str(Path(__file__).with_name("tiny_suite.toml"))


def tune(out: Path, *args: str) -> int:
    return main(["tune", "--model", "dien-augru+aux", "--suite", TINY, "--device", "cpu", "--out", str(out), *args])


def test_three_trials_write_every_output_and_continue(tmp_path, capsys):
    out = tmp_path / "study"
    assert tune(out, "--trials", "3", "--epochs", "1") == 0
    for name in ("trials.csv", "best.json", "best.md", "optimization_history.png", "metadata.json", "study.db"):
        assert (out / name).is_file(), name
    assert (out / "param_importances.png").is_file() or (out / "slice_alpha_attention.png").is_file()
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 3 and "user_attrs_model_config" in trials.columns and "user_attrs_seed" in trials.columns
    best = json.loads((out / "best.json").read_text())
    assert best["model"] == "dien-augru+aux" and best["metric"] == "val_auc"
    complete = trials[trials["state"] == "COMPLETE"]
    assert best["value"] == pytest.approx(complete["value"].max())  # the best finished trial's validation AUC
    chosen = trials.set_index("number").loc[best["trial"]]  # best.json names that trial, with its parameters
    assert chosen["state"] == "COMPLETE" and chosen["value"] == pytest.approx(best["value"])
    assert {k: chosen[f"params_{k}"] for k in best["params"]} == pytest.approx(best["params"])
    assert best["model_config"]["gru_type"] == "AUGRU" and best["model_config"]["use_aux_loss"] is True
    assert json.loads((out / "metadata.json").read_text())["flush_denormal"] is True
    assert tune(out, "--trials", "2", "--epochs", "1") == 0  # the same study goes on
    assert len(pd.read_csv(out / "trials.csv")) == 5
    # the tuned configuration evaluates over seeds on test, into the normal tables
    assert main(["run", "--params-from", str(out / "best.json"), "--seeds", "2", "--device", "cpu", "--out", str(tmp_path / "eval")]) == 0
    runs = pd.read_csv(tmp_path / "eval" / "runs.csv")
    learned = runs[runs["model"] == "dien-augru+aux/tuned"]
    assert sorted(learned["seed"]) == [0, 1]
    for row in learned.itertuples():  # each seed's test AUC is that of its saved test predictions
        saved = predictions.load(tmp_path / "eval", "synthetic", row.model, row.seed)
        assert row.test_auc == pytest.approx(roc_auc_score(saved.label, saved.score), abs=1e-9)
    assert set(runs["model"]) == {"dien-augru+aux/tuned", "popularity", "recent-category"}  # beside the non-learned rows


def test_tuned_against_tuned_trains_each_study_config_in_one_table(tmp_path, capsys):
    """Two studies on the same data, each row trained with its own study's model and optimiser
    settings, the pair declared as a comparison; a bare model name in --models means its tuned
    row; studies on other data or with other untuned settings, and two studies of one model
    under one study name, are refused."""
    from bench.suite import load_suite
    from bench.tune.params import apply_params

    space = tmp_path / "space.toml"
    space.write_text('[batch_size]\ntype = "choice"\nvalues = [32, 64]\n')
    for model, lr in (("din", "0.003"), ("dien-augru+aux", "0.02")):  # pinned apart: the rows must differ in lr
        args = ["--trials", "2", "--epochs", "1", "--space", str(space), "--pruner", "none", "--fix", f"lr={lr}"]
        assert main(["tune", "--model", model, "--suite", TINY, "--device", "cpu", "--out", str(tmp_path / model), *args]) == 0
    bests = [tmp_path / m / "best.json" for m in ("din", "dien-augru+aux")]
    suite = apply_params(load_suite(TINY), bests)
    rows = {r.name: r for r in suite.rows}
    assert set(rows) == {"din/tuned", "dien-augru+aux/tuned"} and suite.comparisons == (("din/tuned", "dien-augru+aux/tuned"),)
    assert ("lr", 0.02) in rows["dien-augru+aux/tuned"].overrides  # the second study's optimiser setting, as a row override
    for name, path in zip(rows, bests):
        best = json.loads(path.read_text())
        row = rows[name]
        assert to_dict(row.model_config(suite.model)) == best["model_config"]
        assert to_dict(row.train_config(suite.train)) == best["train_config"]
    eval_dir = tmp_path / "eval"
    assert main(["run", "--params-from", ",".join(map(str, bests)), "--seeds", "2", "--device", "cpu", "--out", str(eval_dir)]) == 0
    runs = pd.read_csv(eval_dir / "runs.csv")
    assert sorted(runs.loc[runs["model"].str.endswith("/tuned"), "model"].value_counts().items()) == [
        ("dien-augru+aux/tuned", 2), ("din/tuned", 2)]  # fmt: skip
    comparisons = pd.read_csv(eval_dir / "comparisons.csv")
    assert comparisons[["a", "b"]].values.tolist() == [["din/tuned", "dien-augru+aux/tuned"]]
    capsys.readouterr()
    assert main(["run", "--params-from", ",".join(map(str, bests)), "--models", "dien-augru+aux", "--dry-run"]) == 0
    listed = capsys.readouterr()
    assert "dien-augru+aux/tuned" in listed.out + listed.err and "din/tuned" not in listed.out + listed.err
    assert main(["run", "--params-from", str(bests[0]), "--models", "gru-att", "--dry-run"]) == 2
    assert "not among the tuned rows" in capsys.readouterr().err

    def altered(name: str, change) -> Path:
        best = json.loads(bests[0].read_text())
        change(best)
        (tmp_path / name).write_text(json.dumps(best))
        return tmp_path / name

    other_data = altered("other_data.json", lambda b: b["data_config"].update(maxlen=b["data_config"]["maxlen"] + 1))
    with pytest.raises(ValueError, match="different data"):
        apply_params(load_suite(TINY), [other_data, bests[1]])
    moved_files = altered("moved_files.json", lambda b: b["data_config"].update(data_dir="/elsewhere"))
    assert len(apply_params(load_suite(TINY), [moved_files, bests[1]]).rows) == 2  # where the files lie is not the data
    other_patience = altered("other_patience.json", lambda b: b["train_config"].update(patience=7))
    with pytest.raises(ValueError, match="patience differ"):
        apply_params(load_suite(TINY), [bests[1], other_patience])
    with pytest.raises(ValueError, match="distinct --study names"):
        apply_params(load_suite(TINY), [bests[0], altered("same_study.json", lambda b: None)])
    moved = altered("moved.json", lambda b: b["model_config"].update(use_aux_loss=True))  # din never builds with it
    with pytest.raises(ValueError, match="no longer builds"):
        apply_params(load_suite(TINY), [moved])


def test_pruning_stops_a_hopeless_configuration(tmp_path):
    """On tiny data with uniform target negatives (popularity alone separates them, so a model that
    learns anything leaves 0.5 at once), a learning rate of 1e-9 is what the pruner stops."""
    space = tmp_path / "space.toml"
    space.write_text('replace_all = true\n[lr]\ntype = "choice"\nvalues = [0.02, 1e-9]\n')
    suite = tmp_path / "tiny_uniform.toml"
    suite.write_text(Path(TINY).read_text().replace("targets_per_user = 2", 'targets_per_user = 2\ntarget_negatives = "uniform"'))
    out = tmp_path / "study"
    args = ["tune", "--model", "dien-augru+aux", "--suite", str(suite), "--device", "cpu", "--out", str(out)]
    assert main([*args, "--trials", "10", "--epochs", "3", "--space", str(space)]) == 0
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["state"] == "PRUNED").any()
    assert (trials.loc[trials["state"] == "PRUNED", "params_lr"] == 1e-9).all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--storage", "nosuchdb://x"], "cannot open storage"),
        (["--storage", "not a url"], "bad storage URL"),
        (["--fix", "alpah=1"], "unknown parameter"),
        (["--trials", "0"], "--trials must be positive"),
        (["--pruner", "random"], "unknown pruner"),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, args, message):
    assert tune(tmp_path / "s", *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_parameter_in_user_space_exits_2(tmp_path, capsys):
    space = tmp_path / "space.toml"
    space.write_text('[attention_size]\ntype = "int"\nlow = 1\nhigh = 4\n')
    assert tune(tmp_path / "s", "--space", str(space)) == 2
    assert "unknown search-space parameter 'attention_size'" in capsys.readouterr().err
    space.write_text('[alpha]\ntype = "float"\nlow = 0.1\nhigh = 1\nstep = 2\n')
    assert tune(tmp_path / "s", "--space", str(space)) == 2
    assert "unknown key(s) step" in capsys.readouterr().err


# --- several workers on one PostgreSQL study (.ci/run starts the server) ---


@pytest.fixture
def pg_url():
    url = os.environ.get("DIEN_BENCH_PG_URL")
    if not url:
        pytest.skip("no PostgreSQL: set DIEN_BENCH_PG_URL (.ci/run starts a server on 127.0.0.1)")
    return url


def worker(url: str, study: str, out: Path, trials: int, seed: int, epochs: int = 1, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "tune",
        "--model",
        "dien-augru+aux",
        "--suite",
        TINY,
        "--device",
        "cpu",
        "--storage",
        url,
        "--study",
        study,
        "--trials",
        str(trials),
        "--seed",
        str(seed),
        "--epochs",
        str(epochs),
        "--heartbeat-interval",
        "1",
        "--pruner",
        "none",
        "--out",
        str(out),
        *extra,
    ]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def load(url: str, study: str):
    import optuna

    return optuna.load_study(study_name=study, storage=url)


@pytest.mark.postgres
def test_two_workers_share_one_study(pg_url, tmp_path):
    study = f"pair-{uuid.uuid4().hex[:8]}"
    procs = [worker(pg_url, study, tmp_path / f"w{i}", trials=3, seed=i) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    trials = load(pg_url, study).trials
    assert len(trials) == 6 and sorted(t.number for t in trials) == list(range(6))
    assert all(t.state.name == "COMPLETE" for t in trials)


@pytest.mark.postgres
def test_killed_worker_trial_fails_and_is_retried(pg_url, tmp_path):
    import optuna

    study = f"kill-{uuid.uuid4().hex[:8]}"
    # Trials long enough that the kill lands inside one: many epochs, early stopping pinned off.
    doomed = worker(pg_url, study, tmp_path / "a", 5, 0, 200, "--fix", "patience=1000")
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if any(t.state == optuna.trial.TrialState.RUNNING for t in load(pg_url, study).trials):
                break
        except KeyError:  # the study does not exist yet
            pass
        time.sleep(0.5)
    time.sleep(1.5)  # mid-trial, with heartbeats recorded
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    time.sleep(3)  # past the grace period (2 heartbeats of 1 s)
    survivor = worker(pg_url, study, tmp_path / "b", trials=2, seed=1)
    _, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    trials = load(pg_url, study).trials
    failed = [t for t in trials if t.state.name == "FAIL"]
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(failed) == 1 and len(done) == 2 and not any(t.state.name == "RUNNING" for t in trials)
    retry = optuna.storages.RetryFailedTrialCallback
    assert [retry.retried_trial_number(t) for t in done].count(failed[0].number) == 1  # retried exactly once


def test_open_storage_retries_the_table_creation_race(monkeypatch):
    """Two workers on a fresh database: the loser's CREATE TABLE fails on a duplicate; it tries again."""
    import optuna
    import sqlalchemy.exc

    from bench.tune import study

    calls = []

    def storage(url, **kwargs):
        calls.append(url)
        if len(calls) == 1:
            raise sqlalchemy.exc.IntegrityError("CREATE TABLE studies", {}, Exception("duplicate key"))
        return "opened"

    monkeypatch.setattr(optuna.storages, "RDBStorage", storage)
    monkeypatch.setattr(study.time, "sleep", lambda s: None)
    assert study.open_storage("postgresql://x/db", 5, 1) == "opened" and len(calls) == 2

    def always(url, **kwargs):
        raise sqlalchemy.exc.IntegrityError("CREATE TABLE studies", {}, Exception("duplicate key"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", always)
    with pytest.raises(ValueError, match="cannot open storage"):
        study.open_storage("postgresql://x/db", 5, 1)
