"""Runs land outside results/, `bench compare`, provenance, overrides, masked secrets, --help examples."""

import json
import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench import cli, results_io
from bench.cli import main
from bench.overrides import apply_data_overrides
from bench.run import cli as run_cli
from bench.suite import load_suite, parse_suite
from tests.conftest import write_amazon_fixture

ROOT = Path(__file__).resolve().parents[1]
TINY = str(Path(__file__).with_name("tiny_suite.toml"))


def tree_digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_default_run_leaves_results_untouched(tmp_path, monkeypatch):
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "results", clone / "results")
    before = tree_digest(clone / "results")
    monkeypatch.chdir(clone)
    assert main(["run", "--suite", TINY, "--device", "cpu", "--models", "sum-pooling", "--seeds", "1", "--epochs", "1"]) == 0
    assert tree_digest(clone / "results") == before
    assert (clone / "runs" / "tiny" / "runs.csv").is_file()


def tiny_run(out: Path, *args: str) -> None:
    assert main(["run", "--suite", TINY, "--device", "cpu", "--models", "sum-pooling", "--epochs", "1", "--out", str(out), *args]) == 0


def test_compare_exit_codes(tmp_path, capsys):
    ref, run = tmp_path / "ref", tmp_path / "run"
    tiny_run(ref)
    shutil.copytree(ref, run)
    assert main(["compare", str(run), str(ref)]) == 0
    assert "within tolerance" in capsys.readouterr().err
    runs = pd.read_csv(run / "runs.csv")
    pooled = runs["model"] == "sum-pooling"
    shift = 0.05 + 2 * float(runs.loc[pooled, "test_auc"].std())  # past the default tolerance, 2 sd / sqrt(seeds)
    runs.loc[pooled, "test_auc"] += shift
    runs.to_csv(run / "runs.csv", index=False)
    assert main(["compare", str(run), str(ref)]) == 1
    printed = capsys.readouterr().out
    assert "DIFFERS" in printed and f"+{shift:.4f}" in printed  # the difference as formatted, its sign kept
    assert main(["compare", str(run), str(ref), "--tol", f"{shift + 0.01}"]) == 0
    assert main(["compare", str(tmp_path / "missing"), str(ref)]) == 2
    assert "no such folder" in capsys.readouterr().err
    runs.iloc[:-1].to_csv(run / "runs.csv", index=False)  # a cell of the reference without a match
    assert main(["compare", str(run), str(ref), "--tol", f"{shift + 0.01}"]) == 1
    assert "unmatched: sum-pooling seed 1 on synthetic only in" in capsys.readouterr().err
    runs.assign(config_hash="other").to_csv(run / "runs.csv", index=False)
    assert main(["compare", str(run), str(ref)]) == 2  # nothing matches on configuration


def test_metadata_keeps_every_invocation_and_rows_name_their_commit(tmp_path):
    out = tmp_path / "out"
    tiny_run(out, "--seeds", "1")
    tiny_run(out, "--seeds", "2")  # one more seed joins the folder
    meta = json.loads((out / "metadata.json").read_text())
    assert [i["cells_run"] for i in meta["invocations"]] == [3, 3]
    assert all({"argv", "git_commit", "dirty", "written", "finished"} <= set(i) for i in meta["invocations"])
    runs = pd.read_csv(out / "runs.csv")
    assert (runs["commit"] == results_io.git_commit()).all()


def test_a_folder_never_mixes_configurations(tmp_path, capsys):
    out = tmp_path / "out"
    tiny_run(out, "--seeds", "1")
    (tmp_path / "data").mkdir()
    assert main(["run", "--suite", TINY, "--device", "cpu", "--dataset", "movielens-100k", "--out", str(out)]) == 2
    assert "holds results of configuration" in capsys.readouterr().err
    assert len(pd.read_csv(out / "runs.csv")) == 3  # nothing was added
    (out / "runs.csv").unlink()  # a first run stopped before its first row: the folder is still its
    assert main(["run", "--suite", TINY, "--device", "cpu", "--dataset", "movielens-100k", "--out", str(out)]) == 2


def test_secrets_are_masked_in_metadata_and_messages(tmp_path, capsys, monkeypatch):
    url = "postgresql://alice:hunter2@127.0.0.1:1/optuna"
    code = main(["tune", "--model", "sum-pooling", "--suite", TINY, "--trials", "1", "--storage", url, "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert code == 2 and "hunter2" not in err and "alice:***@" in err
    assert "hunter2" not in json.dumps(results_io.metadata("tune", __import__("torch").device("cpu"), {"storage": url}))
    for tricky in ("postgresql://alice:hun/ter2@host/db", "postgresql://alice:hunter2@host/db?sslmode=x", "mysql://h/db?password=hunter2"):
        assert "hunter2" not in results_io.mask_secrets(tricky) and "ter2" not in results_io.mask_secrets(tricky)
    monkeypatch.setenv("DIEN_BENCH_STORAGE", url)  # the URL may come from the environment, out of argv
    assert main(["tune", "--model", "sum-pooling", "--suite", TINY, "--trials", "1", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "127.0.0.1" in err


def two_file_suite(tmp_path):
    return parse_suite({"name": "two", "models": ["din"], "data": [{"dataset": "synthetic"}, {"dataset": "movielens-1m"},
                        {"dataset": "amazon"}]}, "two.toml")  # fmt: skip


def test_override_combinations(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    quick, standard = load_suite("quick"), load_suite("standard")
    # --dataset alone: one source; the suite's own settings for it when it has that dataset
    only = apply_data_overrides(standard, "movielens-1m", None)
    own = next(d for d in standard.data if d.dataset == "movielens-1m")
    assert [d.dataset for d in only.data] == ["movielens-1m"] and only.data[0] == own
    assert apply_data_overrides(quick, "amazon", None).data[0].dataset == "amazon"  # no data_dir needed up front
    # --dataset with --data-dir, every dataset
    for name in ("movielens-100k", "movielens-1m", "amazon", "synthetic"):
        data = apply_data_overrides(quick, name, str(folder)).data
        assert len(data) == 1 and data[0].dataset == name and data[0].data_dir == str(folder)
    # --data-dir alone: to the one source that reads files
    data = apply_data_overrides(standard, None, str(folder)).data
    assert [d.data_dir for d in data if d.dataset == "movielens-1m"] == [str(folder)]
    assert all(d.data_dir is None for d in data if d.dataset != "movielens-1m")
    with pytest.raises(ValueError, match="reads no files"):
        apply_data_overrides(quick, None, str(folder))
    with pytest.raises(ValueError, match="reads files for movielens-1m, amazon; add --dataset"):
        apply_data_overrides(two_file_suite(tmp_path), None, str(folder))
    with pytest.raises(ValueError, match="data folder not found"):
        apply_data_overrides(quick, "amazon", str(tmp_path / "nope"))
    assert apply_data_overrides(quick, None, None) == quick


def test_amazon_is_reachable_from_the_cli(tmp_path):
    folder = write_amazon_fixture(tmp_path / "dien-data")
    out = tmp_path / "out"
    assert main(["run", "--suite", TINY, "--dataset", "amazon", "--data-dir", str(folder), "--models", "sum-pooling",
                 "--seeds", "1", "--epochs", "1", "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    assert set(pd.read_csv(out / "runs.csv")["dataset"]) == {"amazon"}


def help_examples(text: str) -> list[list[str]]:
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in text.splitlines()]
    return [shlex.split(line)[3:] for line in lines if line.startswith("python -m bench")]


def test_run_help_examples_run(tmp_path, monkeypatch, capsys):
    """Every `bench run` example of --help, as a dry run, with the folders it names made first."""
    home = tmp_path / "home"
    write_amazon_fixture(home / "dien-data")
    (home / "data" / "movielens").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    suite = load_suite("quick")
    from bench.config_io import to_dict
    from bench.models import config_for

    for root, model in (("results", "dien-augru+aux"), ("runs", "dien-augru+aux"), ("runs", "din")):
        tuned = tmp_path / root / "tuning" / model
        tuned.mkdir(parents=True, exist_ok=True)
        best = {"study": model, "model": model, "data_config": to_dict(suite.data[0]),
                "model_config": to_dict(config_for(model, suite.model)), "train_config": to_dict(suite.train)}  # fmt: skip
        (tuned / "best.json").write_text(json.dumps(best))
    examples = help_examples(run_cli.RUN_EXAMPLES)
    assert len(examples) >= 6
    for argv in examples:
        argv = [a.replace("~", str(home)) for a in argv]
        if argv[0] == "run":
            assert main([*argv, "--dry-run", "--device", "cpu"]) == 0, argv
            assert "cells already done" in capsys.readouterr().err
        else:
            cli.build_parser().parse_args(argv)  # compare needs two runs: parsed here, run in test_compare_exit_codes


@pytest.mark.parametrize("command", ["tune", "profile", "compare", "data"])
def test_other_help_examples_parse(command):
    from bench.profile import cli as profile_cli
    from bench.run import compare
    from bench.tune import cli as tune_cli

    parser = cli.build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    epilog = action.choices[command].epilog or ""
    texts = {"tune": tune_cli.TUNE_EXAMPLES, "profile": profile_cli.PROFILE_EXAMPLES}.get(command, epilog)
    assert compare  # imported for its parser
    for argv in help_examples(texts):
        parser.parse_args(argv)
