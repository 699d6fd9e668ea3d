"""Data-parallel training (bench/distributed/ddp.py): DDP over gloo equals one process on the same global batches."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bench.data import BatchLoader, load_dataset
from bench.distributed.ddp import DataParallel, aux_pairs, bounds
from bench.models import build_model
from bench.suite import load_suite
from bench.train import LOCAL, RunSpec, train

TINY = str(Path(__file__).with_name("tiny_suite.toml"))
MODEL = "dien-augru+aux"  # embeddings, the recurrences and the auxiliary loss, whose mean spans the ranks
ALPHA = 0.5  # the model's weight of its auxiliary loss, which the loss reads from its output
WORLD = 2


def setting(batch_size: int):
    suite = load_suite(TINY)
    data = suite.data[0].for_seed(0)
    return suite, data, replace(suite.train, epochs=1, batch_size=batch_size)


def odd_batch_size(n_train: int) -> int:
    """A batch size that leaves a last batch of 1 row, so one rank's shard of it is empty, and splits the others unevenly."""
    return next(b for b in range(41, 400, 2) if n_train % b == 1)


def train_once(rank: int, world: int, batch_size: int, out: str) -> None:
    """Rank ``rank`` (``world`` > 1) or the single process (``world`` = 1): one epoch, then save the weights."""
    torch.set_num_threads(1)
    suite, data, config = setting(batch_size)
    dataset = load_dataset(data)
    parallel = None
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{out}.store", rank=rank, world_size=world)
        parallel = DataParallel(rank, world, torch.device("cpu"))
    how = parallel or LOCAL
    torch.manual_seed(0)
    probe = build_model(MODEL, replace(suite.model, alpha=ALPHA), dataset.vocab)  # the first global batch's gradient, before any step
    loader = BatchLoader(dataset, dataset.train, batch_size, shuffle=True, seed=0, bucket=True, negatives=data.negative_sampling)
    batch = next(iter(how.batches(loader)))
    net = how.wrap(probe)  # held: DDP all-reduces in backward only while its wrapper lives
    how.loss(net(batch), batch)[0].backward()
    grads = {k: p.grad.clone() for k, p in probe.named_parameters()}
    torch.manual_seed(0)
    model = build_model(MODEL, replace(suite.model, alpha=ALPHA), dataset.vocab)
    result = train(model, dataset, RunSpec(config, 0, torch.device("cpu"), data.negative_sampling), parallel=how)
    if rank == 0:
        torch.save({"state": model.state_dict(), "curve": result.curve, "seen": result.samples_per_second * result.train_seconds,
                    "grads": grads}, out)  # fmt: skip
    if world > 1:
        dist.destroy_process_group()


def test_shards_cover_each_batch_once():
    for n in (1, 2, 7, 64):
        parts = [bounds(n, r, 3) for r in range(3)]
        assert parts[0][0] == 0 and parts[-1][1] == n and all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert int(aux_pairs(torch.tensor([0, 1, 4, 10]))) == 3 + 9


def test_ddp_on_two_gloo_processes_equals_one_process(tmp_path):
    suite, data, _ = setting(64)
    batch_size = odd_batch_size(len(load_dataset(data).train))  # built (and cached) once, before the ranks start
    assert bounds(1, 1, WORLD) == (0, 1) and bounds(1, 0, WORLD) == (0, 0)  # the last batch: rank 0's shard is empty
    single, ddp = str(tmp_path / "single.pt"), str(tmp_path / "ddp.pt")
    train_once(0, 1, batch_size, single)
    mp.spawn(train_once, args=(WORLD, batch_size, ddp), nprocs=WORLD, join=True)
    one, two = torch.load(single), torch.load(ddp)
    assert one["state"].keys() == two["state"].keys()
    for name, grad in one["grads"].items():  # DDP's all-reduced mean is the gradient of the whole batch's mean loss
        scale = float(grad.abs().max())
        assert scale > 0, name
        torch.testing.assert_close(two["grads"][name], grad, rtol=1e-4, atol=1e-4 * scale, msg=lambda m, n=name: f"{n}: {m}")
    torch.manual_seed(0)
    start = build_model(MODEL, suite.model, load_dataset(data).vocab).state_dict()
    moved = max(float((one["state"][k] - v).abs().max()) for k, v in start.items())
    assert moved > 1e-2  # the epoch moved the weights
    # The gradients agree to float summation noise; Adam divides each by its own running scale, so where a
    # gradient is near 0 (a bias's ~1e-8) that noise moves the update by up to lr * noise / eps.
    for name, value in one["state"].items():
        departs, step = float((two["state"][name] - value).norm()), float((value - start[name]).norm())
        assert departs <= 0.01 * step, f"{name}: DDP departs {departs:.2e} from one process, which moved it {step:.2e}"
        torch.testing.assert_close(two["state"][name], value, rtol=1e-2, atol=1e-3, msg=lambda m, n=name: f"{n}: {m}")
    (a,), (b,) = one["curve"], two["curve"]
    assert abs(a["train_loss"] - b["train_loss"]) < 1e-5 and abs(a["aux_loss"] - b["aux_loss"]) < 1e-5
    assert abs(a["val_auc"] - b["val_auc"]) < 1e-6  # scored over both ranks' validation rows
    assert round(two["seen"]) == round(one["seen"]) == len(load_dataset(data).train)  # every row once, counted globally


@pytest.mark.slow
def test_torchrun_end_to_end_writes_its_results_once(tmp_path):
    """`torchrun --nproc-per-node 2 -m bench run`: rank 0 writes runs.csv, and its cells score as one process's."""
    out, ref = tmp_path / "ddp", tmp_path / "one"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DIEN_BENCH_CACHE": str(tmp_path / "cache")}
    args = ["run", "--suite", TINY, "--device", "cpu", "--models", MODEL, "--seeds", "1", "--epochs", "1"]
    cwd = Path(__file__).parents[1]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "bench"]
    done = subprocess.run([*launch, *args, "--out", str(out)], env=env, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("# AUC comparison") == 1  # rank 0 alone reports
    plain = subprocess.run([sys.executable, "-m", "bench", *args, "--out", str(ref)], env=env, capture_output=True, timeout=300, cwd=cwd)
    assert plain.returncode == 0
    runs, want = (pd.read_csv(o / "runs.csv").set_index("model") for o in (out, ref))
    assert len(runs) == 3 and not runs.index.duplicated().any()  # the two non-learned rows and the model, once each
    assert runs.loc[MODEL, "epochs"] == 1 and (out / "predictions" / "synthetic" / MODEL / "seed-0.npz").is_file()
    for metric in ("val_auc", "test_auc", "test_logloss"):
        assert abs(runs.loc[MODEL, metric] - want.loc[MODEL, metric]) < 1e-4, metric
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["execution"] == {"engine": "torchrun", "world_size": 2, "backend": "gloo"}
    assert len(meta["invocations"]) == 1 and meta["invocations"][0]["cells_run"] == 3
