"""``python -m bench breakdown``: where one step's time goes, and what bounds it.

One model, one shape: the step is timed without the profiler, then run under
``torch.profiler`` to count what it launches (CUDA kernels; on CPU, the top-level ATen
operators, each of which is one or more kernels on a GPU) and how long the device is busy.
A GPU busy for a small part of the wall time is bound by launches and the host; one busy
all along is bound by its kernels, whose GFLOP/s against a large product's tell arithmetic
from memory. Writes a markdown report (summary, then the operators by self time) and records the run in
``metadata.json`` beside it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from torch.utils.benchmark import Timer

from .. import results_io
from ..models import PAPER_SHAPES, REALISTIC_VOCAB, check_model_name, model_plan, plans_of
from .steps import make_step, random_batch
from .timing import DTYPES, count_flops, matmul_gflops


@dataclass(frozen=True)
class BreakdownConfig:
    """What ``python -m bench breakdown`` measures."""

    device: str = "cuda"
    model: str = "dien-augru+aux"
    mode: str = "train"
    dtype: str = "float32"
    batch_size: int = 4096
    seq_len: int = 100
    lengths: str = "full"
    steps: int = 5  # profiled steps (the counts are per step)
    rows: int = 25  # operators in the table

    def __post_init__(self) -> None:
        check_model_name(self.model)
        for name, value, allowed in (
            ("device", self.device, ("cpu", "cuda")),
            ("mode", self.mode, ("forward", "train")),
            ("dtype", self.dtype, tuple(DTYPES)),
            ("lengths", self.lengths, ("full", "mixed")),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        for name in ("batch_size", "seq_len", "steps", "rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but torch sees no CUDA GPU here")


def launches(events, device: torch.device) -> int:
    """CUDA kernels, or on CPU the ATen operators not called from another ATen operator."""
    if device.type == "cuda":
        return sum(1 for e in events if e.device_type == DeviceType.CUDA)

    def top_level(e) -> bool:
        return e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))

    return sum(1 for e in events if top_level(e))


def breakdown(config: BreakdownConfig) -> str:
    """The report's markdown for ``config``."""
    device = torch.device(config.device)
    batch = random_batch(config.batch_size, config.seq_len, config.lengths, REALISTIC_VOCAB, device)
    step = make_step(config.model, config.mode, batch, device, DTYPES[config.dtype])
    for _ in range(3):  # warm-up: allocations, lazy init, Triton compiles
        step()
    wall = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=1.0).median
    flops = count_flops(make_step(config.model, config.mode, batch, device, DTYPES[config.dtype], backend="torch"))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(config.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    averages = prof.key_averages()
    per_step = launches(prof.events(), device) / config.steps
    gflops, peak = flops / wall / 1e9, matmul_gflops(device)
    lines = [
        f"# Step breakdown: {config.model} {config.mode}, {config.dtype}, batch {config.batch_size}, length {config.seq_len} "
        f"({config.lengths}), {results_io.device_name(device)}",
        "",
        f"- plan: {model_plan(config.model, PAPER_SHAPES, device, autocast=config.dtype != 'float32')}",
        f"- wall time per step (no profiler, median): {wall * 1e3:.2f} ms, {config.batch_size / wall:,.0f} samples/s",
        f"- {'CUDA kernels' if device.type == 'cuda' else 'top-level ATen operators'} per step: {per_step:,.0f}",
        f"- arithmetic: {flops / 1e9:.2f} GFLOP per step, {gflops:,.0f} GFLOP/s; a 2048² float32 product: {peak:,.0f} GFLOP/s "
        f"({gflops / peak:.0%})",
    ]
    if device.type == "cuda":
        busy = sum(e.self_device_time_total for e in averages if e.device_type == DeviceType.CUDA) / config.steps / 1e6
        lines.append(
            f"- GPU busy per step (kernel time, under the profiler): {busy * 1e3:.2f} ms, {busy / wall:.0%} of the wall time; "
            f"the rest is launch gaps and host work"
        )
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    lines += [
        f"- threads: {torch.get_num_threads()}; profiled steps: {config.steps}; config: {asdict(config)}",
        "",
        f"Operators by self {'device' if device.type == 'cuda' else 'CPU'} time over {config.steps} steps (torch.profiler):",
        "",
        "```",
        averages.table(sort_by=sort, row_limit=config.rows, max_name_column_width=60),
        "```",
        "",
    ]
    return "\n".join(lines)


CLI_FIELDS = ("model", "mode", "dtype", "batch_size", "seq_len", "lengths", "steps")  # --device is added with its own default


def add_breakdown_parser(sub) -> None:
    defaults = BreakdownConfig.__dataclass_fields__
    p = sub.add_parser("breakdown", help="where one step's time goes: launches, device busy time, operators")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda (default: cuda if present)")
    for name in CLI_FIELDS:
        default = defaults[name].default
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default, help=f"(default: {default})")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's default)")
    p.add_argument("--out", help="markdown file to write, with metadata.json beside it (default: print it)")
    p.add_argument("--keep-denormals", action="store_true", help=results_io.KEEP_DENORMALS_HELP)
    p.set_defaults(func=cmd_breakdown)


def cmd_breakdown(args: argparse.Namespace) -> int:
    config = BreakdownConfig(device=args.device, **{name: getattr(args, name) for name in CLI_FIELDS})
    if args.threads:
        torch.set_num_threads(args.threads)
    results_io.flush_denormals(keep=args.keep_denormals)
    report = breakdown(config)
    if args.out:
        out = Path(args.out)
        results_io.write_text(out, report)
        meta = results_io.metadata("breakdown", torch.device(config.device), asdict(config))
        meta["plans"] = plans_of((config.model,), PAPER_SHAPES, torch.device(config.device), (config.dtype,))
        results_io.write_metadata_of_invocations(out.parent, meta, report=out.name)
        print(f"breakdown in {out} (how it was made: {out.parent / 'metadata.json'})", file=sys.stderr)
    else:
        print(report)
    return 0
