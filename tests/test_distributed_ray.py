"""`bench run --ray`: suite cells as Ray tasks, written by the driver alone (bench/distributed/ray_cells.py)."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench import results_io
from bench.cli import main
from bench.distributed.ray_cells import RayCells, cell_device, parse_address
from bench.resources import CellResources
from bench.run.runner import KEY, run_suite
from bench.suite import load_suite, parse_suite

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

TINY = str(Path(__file__).with_name("tiny_suite.toml"))
TIMING = ["train_seconds", "samples_per_second"]
ARGS = ["--suite", TINY, "--device", "cpu", "--epochs", "1"]  # 2 models x 2 seeds, plus the 2 non-learned rows per seed
SMALL_STORE = 200 * 1024**2


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray (2 CPUs, a small object store) for the module; `--ray local` uses it when it is there."""
    ray.init(address="local", num_cpus=2, object_store_memory=SMALL_STORE, include_dashboard=False, log_to_driver=True)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The tiny suite in one process, with one thread, as each Ray cell runs (cpus_per_cell = 1)."""
    folder = tmp_path_factory.mktemp("in-process")
    out = folder / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:  # a module fixture: conftest's per-test cache is not set up yet
        patch.setenv("DIEN_BENCH_CACHE", str(folder / "cache"))
        try:
            assert main(["run", *ARGS, "--out", str(out)]) == 0
        finally:
            torch.set_num_threads(threads)
            torch.set_flush_denormal(False)
    return out


def rows(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "runs.csv").sort_values(KEY).reset_index(drop=True)


def test_ray_local_gives_the_rows_of_one_process(ray_local, in_process, tmp_path, monkeypatch, capsys):
    puts = []
    real_put = ray.put
    monkeypatch.setattr(ray, "put", lambda value, **kw: puts.append(type(value).__name__) or real_put(value, **kw))
    out = tmp_path / "ray"
    assert main(["run", *ARGS, "--out", str(out), "--ray", "local"]) == 0
    assert "Ray at local: each cell a task with 1 CPUs, 0 GPUs, on cpu" in capsys.readouterr().err
    want, got = rows(in_process), rows(out)
    assert len(got) == 8 and not got.duplicated(KEY).any()
    pd.testing.assert_frame_equal(got.drop(columns=TIMING), want.drop(columns=TIMING))
    assert (got.loc[got["epochs"] > 0, "samples_per_second"] > 0).all()
    curves = [pd.read_csv(o / "curves.csv").sort_values([*KEY, "epoch"]).reset_index(drop=True) for o in (in_process, out)]
    pd.testing.assert_frame_equal(curves[1], curves[0])
    for row in got.itertuples():  # the driver wrote every cell's predictions, equal to one process's
        path = Path("predictions") / "synthetic" / row.model.replace("/", "~") / f"seed-{row.seed}.npz"
        with np.load(out / path) as a, np.load(in_process / path) as b:
            assert (a["score"] == b["score"]).all() and (a["label"] == b["label"]).all()
    assert puts == ["Dataset", "Dataset"]  # one data set per seed, built by the driver, shared by its 4 cells
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["execution"]["engine"] == "ray" and meta["execution"]["cpus_per_cell"] == 1
    assert meta["invocations"][-1]["cells_run"] == 8 and (out / "auc.md").is_file()
    assert main(["run", *ARGS, "--out", str(out), "--ray", "local"]) == 0  # resumable: nothing left to run
    assert "8 of 8 cells already done" in capsys.readouterr().err
    assert len(pd.read_csv(out / "runs.csv")) == 8


def test_a_worker_killed_mid_cell_is_rerun_and_counted_once(ray_local, in_process, tmp_path):
    marker = tmp_path / "killed"

    def die_once(key, epoch, val_auc):  # runs inside the Ray task, after the cell's first epoch
        if key["model"] == "dien-augru+aux" and key["seed"] == 1 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)

    suite = load_suite(TINY)
    suite = replace(suite, train=replace(suite.train, epochs=1))
    out = tmp_path / "out"
    threads = torch.get_num_threads()
    results_io.flush_denormals()  # as `bench run` does, so the cells match the in-process ones
    cells = RayCells("local", suite.resources, "cpu", max_retries=2, on_epoch=die_once)
    try:
        run_suite(suite, out, torch.device("cpu"), log=lambda m: None, execute=cells)
    finally:
        torch.set_num_threads(threads)
    assert marker.is_file()  # the first attempt's worker died mid-cell
    runs = rows(out)
    assert len(runs) == 8 and not runs.duplicated(KEY).any()
    killed = runs[(runs["model"] == "dien-augru+aux") & (runs["seed"] == 1)]
    assert len(killed) == 1
    reference = rows(in_process)
    expect = reference[(reference["model"] == "dien-augru+aux") & (reference["seed"] == 1)]
    assert killed["val_auc"].item() == expect["val_auc"].item() and killed["test_auc"].item() == expect["test_auc"].item()
    curves = pd.read_csv(out / "curves.csv")
    assert not curves.duplicated([*KEY, "epoch"]).any() and len(curves) == 4  # 2 learned rows x 2 seeds x 1 epoch


def test_a_failing_cell_stops_the_run_with_its_error_and_keeps_finished_cells(ray_local, tmp_path):
    def fail(key, epoch, val_auc):
        if key["model"] == "dien-augru+aux":
            raise ValueError(f"planned failure in {key['model']} seed {key['seed']}")

    suite = replace(load_suite(TINY), seeds=(0,))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="planned failure in dien-augru"):
        run_suite(suite, out, torch.device("cpu"), log=lambda m: None, execute=RayCells("local", suite.resources, on_epoch=fail))
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs["model"]) == {"popularity", "recent-category", "sum-pooling"}  # the other cells were drained and written


@pytest.mark.parametrize(
    "text, message",
    [("", "--ray takes an address"), ("local:0", "CPU count N >= 1"), ("local:x", "CPU count N >= 1")],
)
def test_bad_ray_addresses_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_address(text)


def test_addresses_and_devices():
    assert parse_address("local") == ("local", None) and parse_address("local:3") == ("local", 3)
    assert parse_address("ray://head:10001") == ("ray://head:10001", None)
    assert cell_device("auto", CellResources()) == "cpu" and cell_device("auto", CellResources(gpus_per_cell=0.5)) == "cuda"
    for text, resources, message in [
        ("cpu", CellResources(gpus_per_cell=1), "set it to 0"),
        ("cuda", CellResources(), "needs gpus_per_cell > 0"),
        ("cuda:1", CellResources(gpus_per_cell=1), "Ray chooses each cell's GPU"),
    ]:
        with pytest.raises(ValueError, match=message):
            cell_device(text, resources)


def test_resources_table_is_typed_and_checked(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\nmodels = ["din"]\n[resources]\ncpus_per_cell = 2\ngpus_per_cell = 0.25\n')
    loaded = load_suite(str(suite))
    assert loaded.resources == CellResources(cpus_per_cell=2, gpus_per_cell=0.25) and loaded.resources.threads == 2
    assert loaded.to_dict()["resources"] == {"cpus_per_cell": 2, "gpus_per_cell": 0.25}
    assert parse_suite(loaded.to_dict(), "again").folder_hash() == loaded.folder_hash()  # resources never change results
    for body, message in [
        ("cpus_per_cell = 0", "cpus_per_cell must be > 0"),
        ("gpus_per_cell = -1", "gpus_per_cell must be >= 0"),
        ("gpus_per_cell = 2", "use torchrun"),
        ('cpus_per_cell = "two"', "must be a number"),
        ("gpu_per_cell = 1", "unknown key.*gpu_per_cell.*allowed"),
    ]:
        suite.write_text(f'name = "s"\nmodels = ["din"]\n[resources]\n{body}\n')
        with pytest.raises(ValueError, match=message):
            load_suite(str(suite))


def test_a_cell_no_node_fits_is_refused_before_anything_runs(ray_local, tmp_path, capsys):
    suite = tmp_path / "big.toml"
    suite.write_text(Path(TINY).read_text() + "\n[resources]\ncpus_per_cell = 64\n")
    assert main(["run", "--suite", str(suite), "--device", "cpu", "--out", str(tmp_path / "o"), "--ray", "local"]) == 2
    err = capsys.readouterr().err
    assert "no node of the Ray cluster" in err and "64 CPUs" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "runs.csv").exists()


def test_ray_and_torchrun_do_not_mix(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["run", *ARGS, "--ray", "local"]) == 2
    assert "--ray and torchrun do not mix" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_starts_and_stops_its_own_local_ray(tmp_path):
    """`--ray local:2` in a fresh process: it starts Ray itself, runs the cells, shuts Ray down, exits 0."""
    out = tmp_path / "out"
    env = {**os.environ, "RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES": str(SMALL_STORE), "DIEN_BENCH_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "bench", "run", *ARGS, "--models", "sum-pooling", "--out", str(out), "--ray", "local:2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Started a local Ray instance" in done.stderr
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6 and not runs.duplicated(KEY).any()  # (2 non-learned + sum-pooling) x 2 seeds
