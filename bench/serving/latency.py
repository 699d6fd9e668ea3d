"""Per-request latency cells: (model, implementation, K candidates, history T), one CSV row each."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from dien_core.serving import Request

from .. import results_io
from ..models import MODEL_NAMES, PAPER_SHAPES, REALISTIC_VOCAB, build_model
from . import peers
from .impls import IMPLS, PEER_IMPL, Impl, make_impls, make_peer_impl
from .stats import latency_summary
from .timing import check_parity, time_impls
from .workload import random_requests

COLUMNS = ["model", "impl", "device", "dtype", "threads", "candidates", "seq_len", "requests", "p50_ms", "p90_ms", "p99_ms", "p999_ms",
           "mean_ms"]  # fmt: skip
EXTRA_COLUMNS = ["lengths", "parity_max_abs", "export_s"]  # after the columns
KEY = ["model", "impl", "device", "dtype", "threads", "candidates", "seq_len", "lengths"]


@dataclass(frozen=True)
class LatencyConfig:
    """What ``python -m bench latency`` times. Sizes are the paper's (``PAPER_SHAPES``, Amazon
    Electronics vocabularies); ``requests`` are timed per cell after ``warmup`` untimed ones,
    ``peer_requests`` (default: ``requests``) for DeepCTR-Torch, whose requests take far longer."""

    models: tuple[str, ...] = ("din", "dien-augru+aux")
    impls: tuple[str, ...] = ("batched", "shared", "shared-cudagraph", "exported")
    candidates: tuple[int, ...] = (1, 10, 100, 500)
    seq_lens: tuple[int, ...] = (50, 100, 200)
    requests: int = 1000
    warmup: int = 50
    block: int = 100
    threads: int | None = None
    peers: bool = False
    peer_requests: int | None = None
    lengths: str = "full"
    seed: int = 0

    def __post_init__(self) -> None:
        for m in self.models:
            if m not in MODEL_NAMES:
                raise ValueError(f"unknown model {m!r}; known models: {', '.join(MODEL_NAMES)}")
        for i in self.impls:
            if i not in IMPLS:
                raise ValueError(f"unknown implementation {i!r}; allowed: {', '.join(IMPLS)}")
        if not self.models or not self.impls or not self.candidates or not self.seq_lens:
            raise ValueError("give at least one model, implementation, candidate count and sequence length")
        if any(k < 1 for k in self.candidates) or any(t < 1 for t in self.seq_lens):
            raise ValueError(f"candidate counts and sequence lengths must be at least 1, got {self.candidates}, {self.seq_lens}")
        for name in ("requests", "warmup", "block"):
            if getattr(self, name) < (0 if name == "warmup" else 1):
                raise ValueError(f"--{name} must be at least {0 if name == 'warmup' else 1}, got {getattr(self, name)}")
        if self.peer_requests is not None and self.peer_requests < 1:
            raise ValueError(f"--peer-requests must be at least 1, got {self.peer_requests}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be positive, got {self.threads}")
        if self.lengths not in ("full", "mixed"):
            raise ValueError(f"unknown lengths {self.lengths!r}; allowed: full, mixed")


def model_for(name: str, device: torch.device, backend: str = PAPER_SHAPES.backend) -> torch.nn.Module:
    """``name`` at the paper's sizes with the Amazon vocabularies, seeded, in eval mode, planned for ``device``."""
    torch.manual_seed(0)
    return build_model(name, replace(PAPER_SHAPES, backend=backend), REALISTIC_VOCAB, device).eval()


def run_latency(config: LatencyConfig, device: torch.device, out: Path, export_dir: Path | None = None, log=print) -> pd.DataFrame:
    """Every cell into ``out/latency.csv``; cells already there are kept, not timed again. Exports go
    to ``export_dir`` (default: a temporary folder, removed after the run)."""
    path = out / "latency.csv"
    done = results_io.read_csv(path)
    done_keys = set(map(tuple, done[KEY].astype(str).to_numpy())) if len(done) else set()
    threads = torch.get_num_threads()
    runs_here = {"shared-cudagraph": device.type == "cuda", "onnx": device.type == "cpu"}  # the others run on every device
    wanted = tuple(i for i in config.impls if runs_here.get(i, True))
    with tempfile.TemporaryDirectory(prefix="dien-serving-") as tmp:
        for model_name in config.models:
            with_peer = config.peers and model_name in peers.PEER_OF
            for seq_len in config.seq_lens:
                names = (*wanted, *[PEER_IMPL] * with_peer)
                todo = {
                    k: [i for i in names if tuple(map(str, (model_name, i, device.type, "float32", threads, k, seq_len, config.lengths)))
                        not in done_keys]
                    for k in config.candidates
                }  # fmt: skip
                if not any(todo.values()):
                    continue
                cells = LengthCells(config, model_name, seq_len, device, export_dir or Path(tmp), threads, log)
                for k in config.candidates:
                    if todo[k]:
                        rows = cells.time(k, todo[k])
                        results_io.append_rows(path, rows)
                        log(f"{model_name} K={k} T={seq_len} p99 ms: " + ", ".join(f"{r['impl']} {r['p99_ms']:.2f}" for r in rows))
    return results_io.read_csv(path)


class LengthCells:
    """One model at one history length: its implementations built (and exported) once, then one
    cell per candidate count. A CUDA graph is captured again for each shape."""

    def __init__(self, config: LatencyConfig, model_name: str, seq_len: int, device: torch.device, workdir: Path, threads: int,
                 log=print) -> None:  # fmt: skip
        self.config, self.model_name, self.seq_len, self.device, self.threads, self.log = config, model_name, seq_len, device, threads, log
        self.workdir = workdir
        self.model = model_for(model_name, device)
        self.reference = Impl("batched", Request.to_batch, lambda b: self.model(b).logits)
        self.built: dict[str, Impl] = {}
        self.export_seconds: dict[str, float] = {}
        self.peer = make_peer_impl(model_name, seq_len, device) if config.peers else None

    def build(self, names: list[str], example: Request) -> None:
        names = [n for n in names if n != PEER_IMPL and (n not in self.built or n == "shared-cudagraph")]
        if names:
            self.log(f"{self.model_name} T={self.seq_len}: building {', '.join(names)}")
            built, seconds = make_impls(tuple(names), self.model, self.model_name, self.seq_len, example, self.device, self.workdir,
                                        self.threads, self.log)  # fmt: skip
            self.built.update(built)
            self.export_seconds.update(seconds)

    def time(self, k: int, names: list[str]) -> list[dict]:
        """Rows of the cell with ``k`` candidates for the implementations ``names``."""
        config, T = self.config, self.seq_len
        cell_seed = config.seed * 1_000_003 + T * 1009 + k  # the same requests for every model and implementation
        requests = random_requests(config.requests, k, T, cell_seed, device=self.device, lengths=config.lengths)
        warmup = random_requests(config.warmup, k, T, cell_seed + 1, device=self.device, lengths=config.lengths)
        self.build(names, requests[0])
        impls = {n: self.built[n] for n in names if n in self.built}
        if PEER_IMPL in names and self.peer is not None:
            impls[PEER_IMPL] = self.peer
        parity = check_parity(impls, self.reference, requests[:3])
        counts = {PEER_IMPL: config.peer_requests or config.requests}
        times = time_impls(impls, requests, warmup, self.device, config.block, counts, desc=f"{self.model_name} K={k} T={T}")
        return [
            {
                "model": self.model_name,
                "impl": impl,
                "device": self.device.type,
                "dtype": "float32",
                "threads": self.threads,
                "candidates": k,
                "seq_len": T,
                "requests": len(seconds),
                **latency_summary(seconds),
                "lengths": config.lengths,
                "parity_max_abs": parity.get(impl),
                "export_s": self.export_seconds.get(impl),
            }  # fmt: skip
            for impl, seconds in times.items()
        ]
