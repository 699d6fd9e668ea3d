"""`python -m bench latency` through the CLI on CPU: every file with its columns, reruns, bad input."""

import json
import re
import shlex

import pandas as pd
import pytest
import torch

from bench.cli import build_parser, main
from bench.serving.cli import LATENCY_EXAMPLES
from bench.serving.latency import COLUMNS

TINY = ["--requests", "12", "--warmup", "2", "--block", "5", "--threads", "1", "--device", "cpu"]


def latency(out, *args: str) -> int:
    return main(["latency", "--out", str(out), *TINY, *args])


def test_latency_writes_every_file_with_its_columns(tmp_path, capsys):
    args = ("--models", "din,dien-augru", "--impls", "batched,shared", "--candidates", "1,3", "--seq-lens", "4,6")
    assert latency(tmp_path, *args) == 0
    folder = tmp_path / "cpu"
    for name in ("latency.csv", "latency.md", "latency.png", "metadata.json"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    t = pd.read_csv(folder / "latency.csv")
    assert list(t.columns[: len(COLUMNS)]) == COLUMNS
    assert len(t) == 2 * 2 * 2 * 2 and set(t["impl"]) == {"batched", "shared"} and (t["requests"] == 12).all()
    assert (t["device"] == "cpu").all() and (t["dtype"] == "float32").all() and (t["threads"] == 1).all()
    assert ((t["p50_ms"] <= t["p90_ms"]) & (t["p90_ms"] <= t["p99_ms"]) & (t["p99_ms"] <= t["p999_ms"])).all() and (t["p50_ms"] > 0).all()
    assert (t["parity_max_abs"] <= 1e-5).all()
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["command"] == "latency" and meta["threads"] == 1 and meta["torch"] == torch.__version__ and meta["flush_denormal"] is True
    assert meta["config"]["latency"]["candidates"] == [1, 3] and len(meta["invocations"]) == 1
    md = (folder / "latency.md").read_text()
    assert "## dien-augru, T = 4" in md and "## din, T = 6" in md and "| batched" in md and "batched / shared" in md
    assert "# Per-request latency" in capsys.readouterr().out
    # a rerun times nothing again; a wider one adds only the new cells
    assert latency(tmp_path, *args) == 0
    assert pd.read_csv(folder / "latency.csv").equals(t)
    assert latency(tmp_path, "--models", "din", "--impls", "batched,shared", "--candidates", "1,3,5", "--seq-lens", "4") == 0
    again = pd.read_csv(folder / "latency.csv")
    assert len(again) == len(t) + 2 and set(again.loc[len(t) :, "candidates"]) == {5}
    assert len(json.loads((folder / "metadata.json").read_text())["invocations"]) == 3


def test_microbatch_and_breakdown_files(tmp_path):
    args = ["--models", "din", "--no-latency", "--microbatch", "--breakdown", "--at", "3,4", "--mb-requests", "40", "--loads", "0.5,2",
            "--policies", "0:1,1:4"]  # fmt: skip
    assert latency(tmp_path, *args) == 0
    folder = tmp_path / "cpu"
    for name in ("microbatch.csv", "microbatch.md", "microbatch.png", "breakdown.md", "metadata.json"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    assert not (folder / "latency.csv").exists()
    t = pd.read_csv(folder / "microbatch.csv")
    expected = {"model", "impl", "workers", "candidates", "seq_len", "max_wait_ms", "max_batch", "offered_rps", "achieved_rps", "requests",
                "p50_ms", "p90_ms", "p99_ms", "p999_ms", "mean_ms", "mean_batch", "utilization", "p99_ms_median_service",
                "service_ms_by_batch"}  # fmt: skip
    assert expected <= set(t.columns) and len(t) == 2 * 2 and (t["requests"] == 40).all()
    assert (t.loc[t["max_batch"] == 1, "mean_batch"] == 1).all() and (t["mean_batch"] <= t["max_batch"]).all()
    assert (t["candidates"] == 3).all() and (t["seq_len"] == 4).all()
    assert (t["service_ms_by_batch"].str.match(r"^1:[\d.]+;2:[\d.]+;4:[\d.]+$")).all()  # the policies' sizes 1, 4 and the power 2
    md = (folder / "microbatch.md").read_text()
    assert "Requests per second held within a p99 budget" in md and "p99 ms at median service" in md
    assert [line.split("|")[2].strip() for line in md.splitlines() if line.startswith("| din ")][:4] == ["20", "20", "50", "50"]
    text = (folder / "breakdown.md").read_text()
    assert "## din" in text and "attention scores (K x T)" in text and "aten::" in text
    assert re.search(r"shared path: [\d.]+ MFLOP per request", text)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "dien-lstm"], "unknown model 'dien-lstm'"),
        (["--impls", "batched,turbo"], "unknown implementation 'turbo'"),
        (["--candidates", "0,10"], "at least 1"),
        (["--seq-lens", "ten"], "comma list of whole numbers"),
        (["--requests", "0"], "--requests must be at least 1"),
        (["--policies", "2-16"], "max_wait_ms:max_batch"),
        (["--at", "100"], "--at takes K,T"),
        (["--p99-budget-ms", "20,-5"], "--p99-budget-ms takes positive budgets"),
        (["--p99-budget-ms", "20,nan"], "--p99-budget-ms takes positive budgets"),
        (["--p99-budget-ms", "20,20"], "lists a budget twice"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_latency_flags_exit_2(tmp_path, capsys, args, message):
    assert latency(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "cpu" / "latency.csv").exists()


def test_latency_help_examples_parse():
    parser = build_parser()
    examples = [shlex.split(re.sub(r"\s+#.*$", "", line).strip())[3:] for line in LATENCY_EXAMPLES.splitlines()
                if line.strip().startswith("python -m bench")]  # fmt: skip
    assert len(examples) >= 4
    for argv in examples:
        assert parser.parse_args(argv).command == "latency"


@pytest.mark.slow
def test_quick_smoke_run_with_the_exported_form(tmp_path):
    """``--quick`` as documented, with one model to keep it short: the AOTInductor export included."""
    assert main(["latency", "--quick", "--models", "din", "--out", str(tmp_path), "--threads", "1"]) == 0
    t = pd.read_csv(tmp_path / "cpu" / "latency.csv")
    assert set(t["impl"]) == {"batched", "shared", "exported"} and (t["requests"] == 100).all()
    assert t.loc[t["impl"] == "exported", "export_s"].notna().all() and (t["parity_max_abs"] <= 1e-5).all()
