"""Latency against offered load, with and without micro-batching: one CSV row per (model, policy, rate)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from dien_core.serving import Request, ServingModel, stack

from .latency import model_for
from .microbatch import arrival_times, batch_scorer, replay, service_times, simulate, steady_service
from .stats import latency_summary
from .workload import random_requests

MICROBATCH_IMPLS = ("shared", "batched")
DEFAULT_LOADS = (0.1, 0.2, 0.3, 0.5, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0)
DEFAULT_POLICIES = ((0.0, 1), (0.0, 16), (2.0, 16), (5.0, 32))  # (max wait ms, max batch); (0, 1): no batching


@dataclass(frozen=True)
class MicrobatchConfig:
    """The load sweep of ``python -m bench latency --microbatch``: ``requests`` per point at each
    rate (``rates`` in requests/s, or ``loads``: multiples of what ``workers`` hold without batching,
    from one request's measured service time), for each batching ``policy`` (max wait ms, max batch);
    the capacity table reads each of ``p99_budgets_ms``."""

    candidates: int = 100
    seq_len: int = 100
    requests: int = 1000
    rates: tuple[float, ...] | None = None
    loads: tuple[float, ...] = DEFAULT_LOADS
    policies: tuple[tuple[float, int], ...] = DEFAULT_POLICIES
    workers: int = 1
    impl: str = "shared"
    p99_budgets_ms: tuple[float, ...] = (20.0, 50.0, 100.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.seq_len < 0 or self.requests < 1 or self.workers < 1:
            raise ValueError("microbatch: candidates, requests and workers must be at least 1, seq_len at least 0")
        if self.impl not in MICROBATCH_IMPLS:
            raise ValueError(f"unknown microbatch implementation {self.impl!r}; allowed: {', '.join(MICROBATCH_IMPLS)}")
        if any(r <= 0 for r in self.rates or ()) or any(x <= 0 for x in self.loads):
            raise ValueError("--rates and --loads must be positive")
        if not self.policies or any(w < 0 or b < 1 for w, b in self.policies):
            raise ValueError(f"policies are (max wait ms >= 0, max batch >= 1), got {self.policies}")
        if not self.p99_budgets_ms or any(not math.isfinite(b) or b <= 0 for b in self.p99_budgets_ms):
            raise ValueError(f"--p99-budget-ms takes positive budgets, got {self.p99_budgets_ms}")
        if len(set(self.p99_budgets_ms)) != len(self.p99_budgets_ms):
            raise ValueError(f"--p99-budget-ms lists a budget twice: {self.p99_budgets_ms}")


def scorer_for(impl: str, model: torch.nn.Module) -> Callable[[list[Request]], list[torch.Tensor]]:
    """One call for a batch of requests: ``shared`` stacks them into ``ServingModel``; ``batched``
    scores all their candidates' rows through the training model."""
    if impl == "shared":
        return batch_scorer(ServingModel(model))

    def score(batch: list[Request]) -> list[torch.Tensor]:
        stacked = stack(batch)
        with torch.inference_mode():
            return stacked.split(model(stacked.to_batch()).logits)

    return score


def run_microbatch(config: MicrobatchConfig, models: tuple[str, ...], device: torch.device, log=print) -> pd.DataFrame:
    """Rows of latency percentiles against the offered load, per model, policy and rate."""
    rows = []
    threads = torch.get_num_threads()
    for name in models:
        model = model_for(name, device)
        score = scorer_for(config.impl, model)
        requests = random_requests(config.requests, config.candidates, config.seq_len, config.seed, device=device)
        largest = max(b for _, b in config.policies)
        sizes = {1, largest, *(2**i for i in range(1, largest.bit_length()) if 2**i < largest)}
        curve = service_times(score, requests, sorted({min(s, len(requests)) for s in sizes}))  # no batch exceeds the requests
        alone, steady = curve[1], steady_service(curve)
        rates = config.rates or tuple(load * config.workers / alone for load in config.loads)
        by_batch = ";".join(f"{size}:{seconds * 1e3:.2f}" for size, seconds in curve.items())  # batch size: median ms
        log(f"microbatch {name}: one call's median ms per batch size {by_batch}; rates {', '.join(f'{r:,.0f}' for r in rates)} req/s")
        points = [(policy, rate) for rate in rates for policy in config.policies]  # policies interleaved at each rate
        for (wait_ms, max_batch), rate in tqdm(points, desc=f"microbatch {name}", unit="point", leave=False):
            arrivals = arrival_times(config.requests, rate, config.seed + 1)
            served = simulate(requests, arrivals, score, wait_ms / 1e3, max_batch, config.workers)
            if any(r is None for r in served.responses) or len(served.responses) != len(requests):
                raise RuntimeError("the batcher lost a request")  # simulate serves every one; a guard for the table
            span = float(served.finish.max() - served.arrival.min())
            _, first = np.unique(served.batch, return_index=True)  # each batch's first request
            busy = float((served.finish[first] - served.start[first]).sum())
            # the same arrivals with every call at its median time: the queue's share of the tail
            calm = replay(len(requests), arrivals, steady, wait_ms / 1e3, max_batch, config.workers)
            rows.append({
                "model": name, "impl": config.impl, "device": device.type, "dtype": "float32", "threads": threads,
                "workers": config.workers, "candidates": config.candidates, "seq_len": config.seq_len, "max_wait_ms": wait_ms,
                "max_batch": max_batch, "offered_rps": rate, "achieved_rps": len(requests) / span, "requests": len(requests),
                **latency_summary(served.latency), "mean_batch": len(requests) / served.batches,
                "utilization": busy / (span * config.workers), "alone_ms": alone * 1e3,
                "p99_ms_median_service": latency_summary(calm.latency)["p99_ms"], "service_ms_by_batch": by_batch,
            })  # fmt: skip
    return pd.DataFrame(rows).sort_values(["model", "max_wait_ms", "max_batch", "offered_rps"], kind="stable", ignore_index=True)


def capacity(table: pd.DataFrame, budget_ms: float) -> pd.DataFrame:
    """Per model and policy, the rate held within ``budget_ms``: the highest offered rate below the
    first one whose p99 exceeds the budget, so every lower rate tried held it too (a rate past a
    failure that happens to pass is not counted: on a noisy machine one slow call decides a p99);
    NaN where the lowest rate tried already exceeds it. ``first_rps_over_budget`` is that first
    rate (NaN where none does), ``lowest_rps_tried`` the sweep's start. The same read of
    ``p99_ms_median_service`` (each call at its median time) gives ``..._median_service``."""
    keys = ["model", "impl", "workers", "threads", "candidates", "seq_len", "max_wait_ms", "max_batch"]
    rows = []
    for values, g in table.groupby(keys, sort=False):
        g = g.sort_values("offered_rps")
        row = {**dict(zip(keys, values)), "p99_budget_ms": budget_ms, "lowest_rps_tried": float(g["offered_rps"].iloc[0])}
        for column, suffix in (("p99_ms", ""), ("p99_ms_median_service", "_median_service")):
            if column not in g:
                continue
            over = g[g[column] > budget_ms]["offered_rps"]
            first_over = float(over.iloc[0]) if len(over) else float("nan")
            held = g[g["offered_rps"] < first_over]["offered_rps"] if len(over) else g["offered_rps"]
            row["max_rps_within_budget" + suffix] = float(held.max()) if len(held) else float("nan")
            row["first_rps_over_budget" + suffix] = first_over
        rows.append(row)
    return pd.DataFrame(rows)
