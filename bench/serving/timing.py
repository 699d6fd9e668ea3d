"""Per-request timing: every implementation on the same requests, in interleaved blocks.

On CPU a request is timed with ``time.perf_counter_ns`` around its call. On CUDA, by a pair of
CUDA events around it and a synchronisation on the end event, so the time is the device's from
the first launch to the last kernel's end, host launch overhead included. Implementations take
turns by blocks of requests (the order rotating each block), so slow drifts of the machine fall
on all of them alike while each still runs warm for a block, as a server does.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from tqdm import tqdm

from dien_core.serving import Request

from .impls import Impl

PARITY_ATOL = 1e-5


def time_call(run: Callable[[], torch.Tensor], device: torch.device) -> float:
    """Seconds of one call."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    begin = time.perf_counter_ns()
    run()
    return (time.perf_counter_ns() - begin) / 1e9


def check_parity(impls: dict[str, Impl], reference: Impl, requests: list[Request], atol: float = PARITY_ATOL) -> dict[str, float]:
    """Each logit implementation's largest difference from ``reference`` over ``requests``; a ValueError
    past ``atol`` (a stale export, a broken path), since timing it would mean nothing."""
    diffs = {}
    with torch.inference_mode():
        for name, impl in impls.items():
            if not impl.logits:
                continue
            worst = 0.0
            for r in requests:
                want = reference.run(reference.prepare(r)).float().cpu()
                got = torch.as_tensor(impl.run(impl.prepare(r))).float().cpu().reshape(-1)
                worst = max(worst, float((got - want).abs().max()))
            if worst > atol:
                raise ValueError(f"{name} differs from {reference.name} by {worst:.2e} (> {atol:g}); a stale export? delete it and rerun")
            diffs[name] = worst
    return diffs


def time_impls(impls: dict[str, Impl], requests: list[Request], warmup: list[Request], device: torch.device, block: int = 100,
               counts: dict[str, int] | None = None, desc: str = "") -> dict[str, np.ndarray]:  # fmt: skip
    """Seconds per request for each implementation: ``warmup`` untimed, then ``requests`` (the first
    ``counts[name]`` of them where given) in blocks of ``block``."""
    counts = {name: min(len(requests), (counts or {}).get(name, len(requests))) for name in impls}
    times: dict[str, list[float]] = {name: [] for name in impls}
    names = list(impls)
    with torch.inference_mode():
        for name in names:
            for r in warmup:
                impls[name].run(impls[name].prepare(r))
        blocks = list(range(0, len(requests), block))
        with tqdm(total=sum(counts.values()), desc=desc, unit="req", leave=False, mininterval=1.0) as bar:
            for b, begin in enumerate(blocks):
                for name in names[b % len(names) :] + names[: b % len(names)]:
                    impl, end = impls[name], min(begin + block, counts[name])
                    gc.collect()  # no collection of earlier garbage inside a block
                    for r in requests[begin:end]:
                        prepared = impl.prepare(r)
                        times[name].append(time_call(partial(impl.run, prepared), device))
                    bar.update(max(0, end - begin))
    return {name: np.array(t) for name, t in times.items()}
