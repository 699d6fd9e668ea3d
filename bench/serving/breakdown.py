"""``breakdown.md``: where one request's time goes on the shared path, and what bounds it.

Per model at one (K, T): the whole request on each path (``Timer.blocked_autorange`` medians),
the shared path's two halves (the history's, the candidates'), the candidates' half split into
its stages for the models with attention (scores, the recurrence or the pooling, the head), the
FLOPs and achieved GFLOP/s against a large product's, and ``torch.profiler``'s operators by self
time. The C++ recurrence loop is one call from Python: the profiler sees its products (``aten::mm``)
and the copy of its inputs, its row passes show only in the stage time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.benchmark import Timer

from dien_core.serving import ServingModel, stack
from dien_core.serving import parts as P

from ..profile.timing import count_flops, matmul_gflops
from .latency import model_for
from .workload import random_requests


def _median_ms(fn, min_run_time: float) -> float:
    fn()
    return Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=min_run_time).median * 1e3


def stages(model: torch.nn.Module, history: P.History, item, cate, owner) -> dict[str, Callable[[], object]]:
    """The candidates' half in stages, for the models that have attention (DIEN, DIN, gru-att)."""
    attention = getattr(model, "attention", None) or getattr(getattr(model, "evolution", None), "attention", None)
    if attention is None:
        return {}
    keys = history.extra.get("keys", history.extra.get("states", history.hist))
    target = P.embed_candidates(model.embedding, item, cate)

    planned = P.attention_implementation(model.plan, "planned")

    def scores(implementation: str = planned):
        return P.candidate_attention(attention, keys, history.extra["key_part"], target, owner, history.mask, implementation)

    out = {"candidate lookups": lambda: P.embed_candidates(model.embedding, item, cate), f"attention scores (K x T), {planned}": scores}
    if planned != "torch":  # what the plan's form saves against the torch ops
        out["attention scores (K x T), torch (not run by the request)"] = lambda: scores("torch")
    weights = scores()
    if "inputs" in history.extra:
        layer = model.evolution.gru
        out[f"{layer.kind} recurrence (K rows, T steps)"] = lambda: P.candidate_recurrence(
            layer, history.extra["inputs"], weights, history.mask, owner, "planned"
        )
    else:
        out["attention pooling"] = lambda: P.pool(weights, keys, owner)
    return out


def model_section(name: str, candidates: int, seq_len: int, device: torch.device, peak: float, min_run_time: float, rows: int) -> str:
    model = model_for(name, device)
    serving = ServingModel(model)
    request = random_requests(1, candidates, seq_len, seed=7, device=device)[0]
    a = stack([request])
    batch = request.to_batch()
    with torch.inference_mode():
        history = model.encode_history(a.user, a.hist_item, a.hist_cate, a.lengths)
        timed = {
            "batched (the K rows through the training model)": lambda: model(batch),
            "shared: the whole request": lambda: serving(*a.tensors()),
            "shared: the history's half (once)": lambda: model.encode_history(a.user, a.hist_item, a.hist_cate, a.lengths),
            "shared: the candidates' half": lambda: model.score_candidates(history, a.item, a.cate, a.owner),
        }
        timed.update({f"  {k}": v for k, v in stages(model, history, a.item, a.cate, a.owner).items()})
        ms = {label: _median_ms(fn, min_run_time) for label, fn in timed.items()}
        counted = ServingModel(model_for(name, device, backend="torch"))  # operators the FLOP counter sees
        flops = count_flops(lambda: counted(*a.tensors()))
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            for _ in range(5):
                serving(*a.tensors())
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    gflops = flops / ms["shared: the whole request"] / 1e6
    lines = [f"- {label}: {value:.3f} ms" for label, value in ms.items()]
    lines.append(f"- shared path: {flops / 1e6:.1f} MFLOP per request, {gflops:.1f} GFLOP/s ({gflops / peak:.0%} of the large product)")
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=rows, max_name_column_width=50)
    return f"\n## {name}\n\n" + "\n".join(lines) + "\n\nShared path, operators by self time over 5 requests:\n\n```\n" + table + "\n```\n"


def breakdown_markdown(names: tuple[str, ...], candidates: int, seq_len: int, device: torch.device, min_run_time: float = 0.5,
                       rows: int = 15) -> str:  # fmt: skip
    """The report for each model in ``names`` at ``candidates`` K and history ``seq_len`` T."""
    peak = matmul_gflops(device)
    head = (f"# Where a request's time goes: K = {candidates}, T = {seq_len}, {device.type}, {torch.get_num_threads()} threads\n\n"
            f"A 2048² float32 product runs at {peak:.0f} GFLOP/s here. Times are `Timer.blocked_autorange` medians.\n")  # fmt: skip
    return head + "".join(model_section(n, candidates, seq_len, device, peak, min_run_time, rows) for n in names)
