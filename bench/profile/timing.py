"""Timing forward and training steps across sequence lengths; one CSV row per cell."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.benchmark import Timer
from torch.utils.flop_counter import FlopCounterMode

from .. import results_io
from ..models import MODEL_NAMES, REALISTIC_VOCAB
from . import peers
from .steps import make_step, random_batch

MODES = ("forward", "train")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
LENGTHS = ("full", "mixed")
DEFAULT_BATCHES = {"cpu": (128, 1024), "cuda": (1024, 4096)}
KEY = ["impl", "model", "mode", "device", "dtype", "batch", "seq_len", "lengths"]


@dataclass(frozen=True)
class ProfileConfig:
    models: tuple[str, ...] = MODEL_NAMES
    seq_lens: tuple[int, ...] = (10, 20, 50, 100, 200)
    batch_sizes: tuple[int, ...] | None = None  # None: DEFAULT_BATCHES for each device
    modes: tuple[str, ...] = MODES
    dtypes: tuple[str, ...] = ("float32",)
    lengths: tuple[str, ...] = LENGTHS
    threads: int | None = None
    min_run_time: float = 0.5  # seconds of blocked_autorange per model and round
    rounds: int = 2  # interleaved rounds over the models of one shape
    peers: bool = False

    def __post_init__(self) -> None:
        for m in self.models:
            if m not in MODEL_NAMES:
                raise ValueError(f"unknown model {m!r}; known models: {', '.join(MODEL_NAMES)}")
        for name, values, allowed in (
            ("mode", self.modes, MODES),
            ("dtype", self.dtypes, tuple(DTYPES)),
            ("lengths", self.lengths, LENGTHS),
        ):
            for v in values:
                if v not in allowed:
                    raise ValueError(f"unknown {name} {v!r}; allowed: {', '.join(allowed)}")
        if any(n <= 0 for n in self.seq_lens) or any(b <= 0 for b in self.batch_sizes or ()):
            raise ValueError(f"sequence lengths and batch sizes must be positive, got {self.seq_lens}, {self.batch_sizes}")
        if self.threads is not None and self.threads <= 0:
            raise ValueError(f"--threads must be positive, got {self.threads}")
        if self.min_run_time <= 0 or self.rounds <= 0:
            raise ValueError("min_run_time and rounds must be positive")


def bfloat16_note(device: torch.device) -> str | None:
    """Why bfloat16 may run slower than float32 here: on a CPU whose flags (``/proc/cpuinfo``) show no
    bfloat16 instructions (``avx512_bf16``, ``amx_bf16``), autocast's products and conversions are
    emulated. None on CUDA, on a CPU that has them, or where the flags cannot be read."""
    if device.type != "cpu":
        return None
    from dien_core.kernels.cpp import cpu_features

    text = cpu_features()
    if "flags" not in text:
        return None
    if {"avx512_bf16", "amx_bf16"} & set(text.split()):
        return None
    return ("this CPU has no bfloat16 instructions (no avx512_bf16 or amx_bf16 among its flags): bfloat16 autocast is emulated "
            "and runs slower than float32 here (6-14x for our models on an AVX2 CPU, results/profile/amd-epyc)")  # fmt: skip


def device_slug(device: torch.device) -> str:
    name = results_io.device_name(device)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def peak_memory_start(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: "5" resets the process's peak resident set size (VmHWM)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_flops(step: Callable[[], None]) -> float:
    """FLOPs of one step as torch's counter sees its operators. It cannot see into the C++ or Triton
    kernels, so give it a step of a model built with ``backend="torch"``: the same products, as torch ops."""
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def matmul_gflops(device: torch.device, m: int = 2048, k: int = 2048, n: int = 2048, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of one ``(m, k) @ (k, n)`` product. The default, a large square one, is the
    machine's practical ceiling; ``MODEL_PRODUCTS`` are the shapes a DIEN step is made of."""
    a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
    timing = Timer("a @ b", globals={"a": a, "b": b}).blocked_autorange(min_run_time=1.0)
    return 2 * m * k * n / timing.median / 1e9


# The largest products of a dien-augru+aux training step at batch 1024, T = 50 (rows B * (T - 1)
# or B * T): auxiliary MLP layer 2, attention MLP layer 1, the recurrences' input projection.
MODEL_PRODUCTS = {"aux 100->50": (50176, 100, 50), "attention 36->80": (51200, 36, 80), "GRU input 36->108": (51200, 36, 108)}


def measure_shape(
    steps: dict[str, Callable[[], None]], flop_steps: dict[str, Callable[[], Callable[[], None]]], device: torch.device,
    config: ProfileConfig,
) -> dict[str, tuple[np.ndarray, float, float]]:  # fmt: skip
    """Time every step of one shape, interleaved over ``rounds``: name -> (replicate seconds, peak MB, flops).
    ``flop_steps`` make the same steps on models whose operators the FLOP counter sees (``count_flops``),
    each after its step's peak memory is read and dropped after counting."""
    extra = {}
    for name, step in steps.items():
        step()  # warm-up (allocations, lazy init)
        peak_memory_start(device)
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        extra[name] = (peak_memory_mb(device), count_flops(flop_steps[name]()))
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(config.rounds):
        for name, step in steps.items():
            # Timer synchronises CUDA before each clock read; no host sync inside the step itself.
            m = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads()).blocked_autorange(
                min_run_time=config.min_run_time
            )
            times[name].extend(m.times)
    return {name: (np.array(times[name]), *extra[name]) for name in steps}


def profile_device(device: torch.device, config: ProfileConfig, out: Path, log=print) -> pd.DataFrame:
    """Every cell for one device into ``out/timings.csv``; cells already there are kept, not re-timed."""
    path = out / "timings.csv"
    done = results_io.read_csv(path)
    done_keys = set(map(tuple, done[KEY].astype(str).to_numpy())) if len(done) else set()
    batches = config.batch_sizes or DEFAULT_BATCHES[device.type]
    impls = [("dien-bench", m) for m in config.models]
    if config.peers:
        impls += [("deepctr-torch", m) for m in peers.PEER_MODELS]
    shapes = [
        (mode, dtype, b, t, lengths)
        for dtype in config.dtypes
        for mode in config.modes
        for b in batches
        for t in config.seq_lens
        for lengths in config.lengths
    ]
    for i, (mode, dtype, b, t, lengths) in enumerate(shapes, 1):
        peer_shape = lengths == "full"  # the peer is timed at full length only
        todo = [
            (impl, m)
            for impl, m in impls
            if (impl == "dien-bench" or peer_shape) and tuple(map(str, (impl, m, mode, device.type, dtype, b, t, lengths))) not in done_keys
        ]
        if not todo:
            continue
        batch = random_batch(b, t, lengths, REALISTIC_VOCAB, device)
        steps, flop_steps = {}, {}
        for impl, m in todo:
            if impl == "deepctr-torch":
                steps[(impl, m)] = step = peers.make_peer_step(m, mode, batch, device, DTYPES[dtype])
                flop_steps[(impl, m)] = lambda step=step: step
            else:
                steps[(impl, m)] = make_step(m, mode, batch, device, DTYPES[dtype])
                flop_steps[(impl, m)] = partial(make_step, m, mode, batch, device, DTYPES[dtype], backend="torch")
        log(f"[{i}/{len(shapes)}] {device.type} {mode} {dtype} batch {b} length {t} ({lengths}): {len(steps)} models")
        measured = measure_shape(steps, flop_steps, device, config)
        rows = []
        for (impl, m), (times, peak, flops) in measured.items():
            median = float(np.median(times))
            q1, q3 = np.percentile(times, [25, 75])
            rows.append({
                "impl": impl, "model": m, "mode": mode, "device": device.type, "dtype": dtype, "batch": b, "seq_len": t, "lengths": lengths,
                "median_ms": median * 1e3, "iqr_ms": (q3 - q1) * 1e3, "samples_per_s": b / median, "peak_mem_mb": round(peak, 1),
                "gflop_per_step": flops / 1e9, "gflops": flops / median / 1e9, "replicates": len(times), "threads": torch.get_num_threads(),
            })  # fmt: skip
        results_io.append_rows(path, rows)
    return results_io.read_csv(path)
