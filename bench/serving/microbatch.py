"""Micro-batching (the paper's second serving technique), simulated with real model calls.

Requests arrive open-loop, at exponential gaps drawn with a seed (a Poisson process at the
offered rate), into a batcher with a maximum wait and a maximum batch. A batch closes when it is
full or when its first request has waited ``max_wait``; it starts when a worker is free, taking
every request that has arrived by then (up to ``max_batch``). Its requests are stacked
(``dien_core.serving.stack``) and scored in one real call, and that call's measured wall time is
its service time on a virtual clock: the simulation never sleeps, so a run at any load takes
the time of its model calls only, and the arrivals, the requests and so the batches are the same
for a seed (given the service times; a ``cost`` function in place of the clock makes the whole
schedule deterministic, as the tests do). ``max_batch = 1`` is a server without batching.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dien_core.serving import Request, ServingModel, stack


def arrival_times(count: int, rate: float, seed: int) -> np.ndarray:
    """``count`` arrival times (s) of a Poisson process at ``rate`` requests/s: cumulated exponential gaps."""
    if count < 1 or rate <= 0:
        raise ValueError(f"arrivals need count >= 1 and a positive rate, got {count}, {rate}")
    return np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate, size=count))


@dataclass(frozen=True)
class Served:
    """What the simulation did with each request, indexed like the requests: ``arrival``, ``start``,
    ``finish`` (s, virtual clock), ``batch`` (the batch's index, in dispatch order), ``responses``
    (each request's scores ``(K,)``)."""

    arrival: np.ndarray
    start: np.ndarray
    finish: np.ndarray
    batch: np.ndarray
    responses: list[torch.Tensor]

    @property
    def latency(self) -> np.ndarray:
        return self.finish - self.arrival

    @property
    def batches(self) -> int:
        return int(self.batch.max()) + 1


def simulate(requests: Sequence[Request], arrivals: np.ndarray, score: Callable[[list[Request]], list[torch.Tensor]], max_wait: float,
             max_batch: int, workers: int = 1, cost: Callable[[int], float] | None = None) -> Served:  # fmt: skip
    """Serve ``requests`` arriving at ``arrivals`` (sorted, s) through the batcher onto ``workers``;
    ``score(batch)`` returns one response per request of the batch, in its order. ``cost(n)``, if
    given, is the service time of a batch of n instead of the measured wall time of ``score``."""
    n = len(requests)
    if len(arrivals) != n or n == 0 or np.any(np.diff(arrivals) < 0):
        raise ValueError("simulate needs one sorted arrival time per request, and at least one request")
    if max_wait < 0 or max_batch < 1 or workers < 1:
        raise ValueError(f"max_wait >= 0, max_batch >= 1 and workers >= 1, got {max_wait}, {max_batch}, {workers}")
    start, finish, batch = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)
    responses: list[torch.Tensor | None] = [None] * n
    free = [0.0] * workers  # a heap of the times the workers become free
    i, b = 0, 0
    while i < n:
        close = arrivals[i] + max_wait
        if i + max_batch - 1 < n:  # a full batch closes at once
            close = min(close, arrivals[i + max_batch - 1])
        begin = max(free[0], close)
        j = min(int(np.searchsorted(arrivals, begin, side="right")), i + max_batch)  # every request there by then
        members = list(requests[i:j])
        clock = time.perf_counter()
        out = score(members)
        service = cost(len(members)) if cost is not None else time.perf_counter() - clock
        if len(out) != len(members):
            raise ValueError(f"score returned {len(out)} responses for a batch of {len(members)}")
        heapq.heapreplace(free, begin + service)
        start[i:j], finish[i:j], batch[i:j] = begin, begin + service, b
        responses[i:j] = out
        i, b = j, b + 1
    return Served(np.asarray(arrivals, dtype=np.float64), start, finish, batch, responses)


def batch_scorer(serving: ServingModel) -> Callable[[list[Request]], list[torch.Tensor]]:
    """``score`` for ``simulate``: the batch's requests stacked and scored in one call, then split."""

    def score(batch: list[Request]) -> list[torch.Tensor]:
        stacked = stack(batch)
        return stacked.split(serving.score(stacked))

    return score


def service_times(score: Callable[[list[Request]], list[torch.Tensor]], requests: Sequence[Request], sizes: Sequence[int],
                  repeats: int = 15) -> dict[int, float]:  # fmt: skip
    """Median seconds of one call on a batch of each of ``sizes`` requests (``repeats`` calls per size,
    each on other requests, the sizes interleaved), after each size is scored three times untimed
    (allocations, lazy initialisation). Size 1 is one request alone, the scale of the loads; the
    curve is also the service time of ``steady_service``."""
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < 1 or sizes[-1] > len(requests):
        raise ValueError(f"batch sizes must lie in 1..{len(requests)} (the requests), got {sizes}")
    for size in sizes:
        for _ in range(3):
            score(list(requests[:size]))
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for i in range(repeats):
        for size in sizes:
            first = (i * size) % (len(requests) - size + 1)
            clock = time.perf_counter()
            score(list(requests[first : first + size]))
            times[size].append(time.perf_counter() - clock)
    return {size: float(np.median(t)) for size, t in times.items()}


def steady_service(curve: dict[int, float]) -> Callable[[int], float]:
    """``cost`` for ``simulate``: a batch of n takes the curve's median time for n (``service_times``),
    interpolated linearly between the sizes measured (the end values past them). Replaying a schedule
    with it separates what the queue costs from what the machine's slow calls cost."""
    sizes = np.array(sorted(curve), dtype=np.float64)
    seconds = np.array([curve[int(s)] for s in sizes])
    return lambda n: float(np.interp(n, sizes, seconds))


def replay(count: int, arrivals: np.ndarray, cost: Callable[[int], float], max_wait: float, max_batch: int, workers: int = 1) -> Served:
    """``simulate`` with no model call: every batch takes ``cost(n)``; the responses are None."""
    return simulate([None] * count, arrivals, lambda batch: [None] * len(batch), max_wait, max_batch, workers, cost=cost)
