"""`python -m bench profile` through the CLI on CPU."""

import json
import re
import types

import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.models import REALISTIC_VOCAB
from bench.profile.steps import make_step, random_batch
from bench.profile.timing import MODEL_PRODUCTS, count_flops
from tests.helpers import needs_cpp

COLUMNS = ["model", "mode", "device", "dtype", "batch", "seq_len", "lengths", "median_ms", "iqr_ms", "samples_per_s", "peak_mem_mb"]
FAST = ["--min-run-time", "0.05", "--rounds", "1", "--batch-sizes", "8"]


def profile(out, *args: str) -> int:
    return main(["profile", "--out", str(out), *FAST, *args])


def test_two_models_two_lengths_write_every_file(tmp_path, capsys):
    assert profile(tmp_path, "--devices", "cpu", "--models", "din,dien-augru+aux", "--seq-lens", "5,10", "--threads", "1") == 0
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for name in ("timings.csv", "timings.md", "throughput.png", "step_time.png", "metadata.json"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    t = pd.read_csv(folder / "timings.csv")
    assert set(COLUMNS) <= set(t.columns)
    assert len(t) == 2 * 2 * 2 * 2  # models x lengths x modes x (full, mixed)
    assert (t[["median_ms", "samples_per_s", "peak_mem_mb"]] > 0).all().all()
    assert t["samples_per_s"].to_numpy() == pytest.approx(t["batch"] * 1e3 / t["median_ms"], rel=1e-9)  # throughput is the median's
    assert t["gflops"].to_numpy() == pytest.approx(t["gflop_per_step"] * 1e3 / t["median_ms"], rel=1e-9)  # and so is GFLOP/s
    cpu = torch.device("cpu")
    for r in t.itertuples():  # each cell's arithmetic, counted again on the same seeded batch
        batch = random_batch(r.batch, r.seq_len, r.lengths, REALISTIC_VOCAB, cpu)
        step = make_step(r.model, r.mode, batch, cpu, torch.float32, backend="torch")  # what the profile counts on
        assert r.gflop_per_step == pytest.approx(count_flops(step) / 1e9, rel=1e-9), r
    assert set(t["mode"]) == {"forward", "train"} and set(t["lengths"]) == {"full", "mixed"} and (t["threads"] == 1).all()
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["threads"] == 1 and meta["device"] == "cpu" and meta["torch"] == torch.__version__ and meta["matmul_gflops"] > 0
    assert set(meta["model_matmul_gflops"]) == {f"{name} float32" for name in MODEL_PRODUCTS}
    assert all(v > 0 for v in meta["model_matmul_gflops"].values())
    assert "The products a DIEN step is made of" in (folder / "timings.md").read_text()
    assert meta["flush_denormal"] is True and len(meta["invocations"]) == 1
    assert set(meta["plans"]) == {"din float32", "dien-augru+aux float32"}  # each model's plan, as it was timed
    din_plan = meta["plans"]["din float32"]
    assert set(din_plan["pieces"]) == {"embedding", "serving_attention"} and din_plan["device"] == "cpu"
    md = (folder / "timings.md").read_text()
    assert "## forward, batch 8" in md and "## train, batch 8" in md and "T=10" in md


def test_cell_statistics_are_those_of_its_replicates(tmp_path, monkeypatch):
    """With the timer's replicates fixed, every timing column of a cell is known exactly."""
    import bench.profile.timing

    times = [1e-3, 2e-3, 3e-3, 4e-3, 10e-3]  # median 3 ms (the mean is 4), quartiles 2 and 4 ms

    class FixedTimer:
        def __init__(self, *args, **kwargs):
            pass

        def blocked_autorange(self, min_run_time):
            return types.SimpleNamespace(times=list(times), median=3e-3)

    monkeypatch.setattr(bench.profile.timing, "Timer", FixedTimer)
    args = ["--devices", "cpu", "--models", "din", "--seq-lens", "4", "--modes", "train", "--lengths", "full", "--rounds", "2"]
    assert main(["profile", "--out", str(tmp_path), "--min-run-time", "0.05", "--batch-sizes", "8", *args]) == 0
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    (row,) = pd.read_csv(folder / "timings.csv").to_dict("records")
    assert row["replicates"] == 2 * len(times)  # both rounds' replicates
    assert row["median_ms"] == pytest.approx(3.0) and row["iqr_ms"] == pytest.approx(2.0)
    assert row["samples_per_s"] == pytest.approx(8 / 3e-3)
    assert row["gflops"] == pytest.approx(row["gflop_per_step"] / 3e-3)
    assert json.loads((folder / "metadata.json").read_text())["matmul_gflops"] == pytest.approx(2 * 2048**3 / 3e-3 / 1e9)


def test_existing_cells_are_kept_on_a_rerun(tmp_path):
    args = ["--devices", "cpu", "--models", "din", "--seq-lens", "4", "--modes", "forward", "--lengths", "full"]
    assert profile(tmp_path, *args) == 0
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    first = pd.read_csv(folder / "timings.csv")
    assert profile(tmp_path, *args) == 0
    assert pd.read_csv(folder / "timings.csv").equals(first)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where there is no GPU")
def test_cuda_is_skipped_with_a_message_without_gpu(tmp_path, capsys):
    assert profile(tmp_path, "--devices", "cuda", "--models", "din", "--seq-lens", "4") == 0
    assert "skipping cuda" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "dien-lstm"], "unknown model 'dien-lstm'"),
        (["--devices", "tpu"], "unknown device 'tpu'"),
        (["--seq-lens", "10,0"], "must be positive"),
        (["--seq-lens", "ten"], "comma list of whole numbers"),
        (["--modes", "serve"], "unknown mode 'serve'"),
    ],
)
def test_bad_profile_flags_exit_2(tmp_path, capsys, args, message):
    assert profile(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_profile_imports_no_optuna():
    import subprocess
    import sys

    code = (
        "import sys, bench.cli; bench.cli.build_parser(); import bench.profile.timing, bench.profile.report; print('optuna' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_peer_rows(tmp_path):
    pytest.importorskip("deepctr_torch", reason="the peer rows need deepctr-torch (pip install -e '.[peers]')")
    args = ("--devices", "cpu", "--models", "din", "--seq-lens", "6", "--lengths", "full", "--dtype", "float32,bfloat16", "--peers")
    assert profile(tmp_path, *args) == 0
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    t = pd.read_csv(folder / "timings.csv")
    peer = t[t["impl"] == "deepctr-torch"]
    assert set(t["impl"]) == {"dien-bench", "deepctr-torch"} and len(peer) == 2 * 2 * 2 and set(peer["dtype"]) == {"float32", "bfloat16"}
    md = (folder / "timings.md").read_text()
    assert "Speed-up over DeepCTR-Torch" in md and "| train   | din     | float32" in md and "| train   | din     | bfloat16" in md


def test_report_leaves_cells_it_has_no_timing_for_blank():
    from bench.profile.report import markdown

    def row(impl, model, dtype, seq_len, sps):
        return {
            "impl": impl, "model": model, "mode": "train", "device": "cpu", "dtype": dtype, "batch": 8, "seq_len": seq_len,
            "lengths": "full", "median_ms": 8e3 / sps, "iqr_ms": 0.1, "samples_per_s": sps, "peak_mem_mb": 1.0,
            "gflop_per_step": 0.1, "gflops": 1.0, "replicates": 3, "threads": 1,
        }  # fmt: skip

    rows = [row("dien-bench", "din", "float32", t, 100.0) for t in (10, 50)]
    rows += [row("deepctr-torch", "deepctr-torch/din", "float32", t, 50.0) for t in (10, 50)]
    rows += [row("dien-bench", "din", "bfloat16", 50, 120.0), row("deepctr-torch", "deepctr-torch/din", "bfloat16", 50, 40.0)]
    md = markdown(pd.DataFrame(rows), {"device_name": "cpu", "device": "cpu", "torch": "x", "threads": 1})
    assert "nan" not in md
    speedup_rows = [" ".join(line.split()) for line in md.splitlines() if line.startswith("| train")]
    assert speedup_rows == ["| train | din | bfloat16 | 8 | | 3.00x |", "| train | din | float32 | 8 | 2.00x | 2.00x |"]


@needs_cpp
def test_flops_are_counted_on_the_torch_plan():
    """The counter cannot see into the C++ kernels, which is why the profile counts on a model built
    with backend "torch": on the default CPU plan it misses the products inside the fused auxiliary loss
    (about a tenth of this step's) and, on more than one thread, those in the loops' parallel regions."""
    from bench.models import REALISTIC_VOCAB
    from bench.profile.steps import make_step, random_batch

    batch = random_batch(600, 6, "full", REALISTIC_VOCAB, torch.device("cpu"))
    kernels = make_step("dien-augru+aux", "train", batch, torch.device("cpu"), torch.float32)
    torch_ops = make_step("dien-augru+aux", "train", batch, torch.device("cpu"), torch.float32, backend="torch")
    assert count_flops(torch_ops) > 1.05 * count_flops(kernels) > 0


def test_breakdown_reports_launches_arithmetic_and_operators(tmp_path, capsys):
    out = tmp_path / "breakdown.md"
    args = ["breakdown", "--device", "cpu", "--batch-size", "16", "--seq-len", "6", "--steps", "2", "--threads", "1", "--out", str(out)]
    assert main(args) == 0
    text = out.read_text()
    launches = int(re.search(r"top-level ATen operators per step: ([\d,]+)", text).group(1).replace(",", ""))
    gflop = float(re.search(r"arithmetic: ([\d.]+) GFLOP per step", text).group(1))
    cpu = torch.device("cpu")
    step = make_step("dien-augru+aux", "train", random_batch(16, 6, "full", REALISTIC_VOCAB, cpu), cpu, torch.float32, backend="torch")
    assert gflop == pytest.approx(count_flops(step) / 1e9, abs=0.005)  # the report's 2 decimals of the same batch's count
    assert launches > 50 and "'model': 'dien-augru+aux'" in text
    assert "FusedRecurrenceBackward" in text and "aten::mm" in text  # the operator table
    made = json.loads((tmp_path / "metadata.json").read_text())  # how it was made
    assert made["command"] == "breakdown" and made["config"]["batch_size"] == 16 and made["threads"] == 1
    assert made["git_commit"] and made["flush_denormal"] is True
    # a forward step launches fewer operators than a training step
    assert main([*args[:-2], "--mode", "forward", "--out", str(tmp_path / "fwd.md")]) == 0
    fwd = int(re.search(r"operators per step: ([\d,]+)", (tmp_path / "fwd.md").read_text()).group(1).replace(",", ""))
    assert 0 < fwd < launches
    made = json.loads((tmp_path / "metadata.json").read_text())  # both reports are listed
    assert [(i["report"], i["config"]["mode"]) for i in made["invocations"]] == [("breakdown.md", "train"), ("fwd.md", "forward")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mode", "fly"], "unknown mode 'fly'"),
        (["--model", "dien-lstm"], "unknown model"),
        (["--seq-len", "0"], "seq_len must be at least 1"),
    ],
)
def test_breakdown_bad_input_exits_2(args, message, capsys):
    assert main(["breakdown", "--device", "cpu", *args]) == 2
    assert message in capsys.readouterr().err


def test_bfloat16_on_a_cpu_without_its_instructions_is_flagged(tmp_path, monkeypatch, capsys):
    from bench.profile import timing
    from dien_core.kernels import cpp

    cpu = torch.device("cpu")
    monkeypatch.setattr(cpp, "cpu_features", lambda: "model name : An AVX2 CPU flags : fpu sse2 avx2 fma")
    note = timing.bfloat16_note(cpu)
    assert note and "no bfloat16 instructions" in note
    assert timing.bfloat16_note(torch.device("cuda")) is None
    assert profile(tmp_path, "--devices", "cpu", "--models", "din", "--seq-lens", "5", "--modes", "forward", "--dtype", "bfloat16",
                   "--lengths", "full", "--threads", "1") == 0  # fmt: skip
    assert "warning: this CPU has no bfloat16 instructions" in capsys.readouterr().err
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert json.loads((folder / "metadata.json").read_text())["bfloat16_note"] == note
    assert f"**bfloat16:** {note}." in (folder / "timings.md").read_text()
    for flags in ("fpu avx512f avx512_bf16", "fpu amx_bf16 amx_tile"):
        monkeypatch.setattr(cpp, "cpu_features", lambda flags=flags: f"model name : X flags : {flags}")
        assert timing.bfloat16_note(cpu) is None
    monkeypatch.setattr(cpp, "cpu_features", lambda: "x86_64")  # no /proc/cpuinfo: nothing known, nothing said
    assert timing.bfloat16_note(cpu) is None
