"""The latency percentiles on known distributions, and the micro-batcher: it never drops or
reorders a request, it is deterministic given a seed, and it agrees with queueing theory."""

import numpy as np
import pytest
import torch

from bench.serving.load import capacity
from bench.serving.microbatch import arrival_times, batch_scorer, replay, service_times, simulate, steady_service
from bench.serving.stats import latency_summary
from bench.serving.workload import random_requests
from dien_core.serving import ServingModel
from tests.helpers import VOCAB
from tests.test_serving import trained_like

# --- percentiles -----------------------------------------------------------------------------------


def order_statistic(sorted_values: np.ndarray, q: float) -> float:
    """The q-quantile by linear interpolation between the order statistics at h = (n - 1) q, written out."""
    h = (len(sorted_values) - 1) * q
    lo = int(np.floor(h))
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo]))


def test_percentiles_of_a_shuffled_uniform_grid():
    """1..1000 ms in random order: p50 = 500.5, p90 = 900.1, p99 = 990.01, p99.9 = 999.001 ms."""
    values = np.random.default_rng(0).permutation(np.arange(1, 1001)) / 1e3  # seconds
    s = latency_summary(values)
    assert s["p50_ms"] == pytest.approx(500.5) and s["p90_ms"] == pytest.approx(900.1)
    assert s["p99_ms"] == pytest.approx(990.01) and s["p999_ms"] == pytest.approx(999.001) and s["mean_ms"] == pytest.approx(500.5)
    skewed = np.random.default_rng(1).lognormal(size=777)
    ordered = np.sort(skewed)
    for key, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99), ("p999_ms", 0.999)):
        assert latency_summary(skewed)[key] == pytest.approx(order_statistic(ordered, q) * 1e3, rel=1e-12)


def test_percentiles_of_an_exponential_distribution():
    """Exponential with mean 2 ms: the q-quantile is -2 ln(1 - q) ms."""
    values = np.random.default_rng(2).exponential(2e-3, size=400_000)
    s = latency_summary(values)
    for key, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99), ("p999_ms", 0.999)):
        assert s[key] == pytest.approx(-2 * np.log1p(-q), rel=0.03), key
    assert s["mean_ms"] == pytest.approx(2.0, rel=0.01)
    assert s["p50_ms"] < s["p90_ms"] < s["p99_ms"] < s["p999_ms"]


def test_percentiles_reject_bad_input():
    for bad in (np.array([]), np.array([1.0, -1.0]), np.array([np.nan]), np.ones((2, 2))):
        with pytest.raises(ValueError):
            latency_summary(bad)


# --- the micro-batcher ---------------------------------------------------------------------------------


def test_arrivals_are_a_seeded_poisson_process():
    a, b = arrival_times(50_000, 200.0, seed=3), arrival_times(50_000, 200.0, seed=3)
    assert np.array_equal(a, b) and not np.array_equal(a, arrival_times(50_000, 200.0, seed=4))
    gaps = np.diff(np.concatenate([[0.0], a]))
    assert (gaps > 0).all() and gaps.mean() == pytest.approx(1 / 200, rel=0.02) and gaps.std() == pytest.approx(1 / 200, rel=0.03)
    with pytest.raises(ValueError):
        arrival_times(10, 0.0, seed=0)


@pytest.mark.parametrize("max_wait, max_batch, workers", [(0.0, 1, 1), (0.002, 4, 1), (0.0, 8, 1), (0.005, 3, 2)])
def test_every_response_is_its_own_requests(max_wait, max_batch, workers):
    """Requests of different K and T batched under load: each response equals scoring its request
    alone; nothing is dropped; batches are runs of consecutive requests, within max_batch."""
    model = trained_like("dien-augru")
    serving = ServingModel(model)
    requests = [random_requests(1, 1 + i % 4, i % 7, seed=i, vocab=VOCAB)[0] for i in range(40)]
    arrivals = arrival_times(len(requests), rate=2000.0, seed=5)
    served = simulate(requests, arrivals, batch_scorer(serving), max_wait, max_batch, workers, cost=lambda n: 1e-3 + 2e-4 * n)
    assert len(served.responses) == len(requests)
    for request, response in zip(requests, served.responses):
        torch.testing.assert_close(response, serving.score_request(request), atol=1e-5, rtol=0)
    assert (np.diff(served.batch) >= 0).all() and (np.diff(served.batch) <= 1).all()  # batches in arrival order, none skipped
    sizes = np.bincount(served.batch)
    assert sizes.max() <= max_batch and sizes.sum() == len(requests)
    assert (served.start >= served.arrival - 1e-12).all() and (served.start <= served.arrival + max_wait + 1.0).all()
    assert np.allclose(served.finish - served.start, 1e-3 + 2e-4 * sizes[served.batch])
    if max_batch > 1:
        assert served.batches < len(requests)  # at 2 requests per ms of work, batches do form


def test_the_schedule_is_deterministic_given_a_seed():
    requests = random_requests(200, 2, 3, seed=0, vocab=VOCAB)

    def score(batch):
        return [torch.zeros(r.candidates) for r in batch]

    def run(seed):
        return simulate(requests, arrival_times(200, 900.0, seed), score, 0.002, 8, cost=lambda n: 5e-4 + 1e-4 * n)

    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a.finish, b.finish) and np.array_equal(a.batch, b.batch)
    assert not np.array_equal(a.finish, c.finish)


def test_no_batching_at_low_load_costs_the_service_time_only():
    requests = random_requests(30, 1, 2, seed=0, vocab=VOCAB)
    arrivals = np.arange(1, 31) * 0.01  # every 10 ms, a 1 ms service: no queue
    served = simulate(requests, arrivals, lambda b: [torch.zeros(1)] * len(b), 0.0, 1, cost=lambda n: 1e-3)
    assert np.allclose(served.latency, 1e-3) and served.batches == 30


def test_a_queue_without_batching_matches_m_d_1():
    """Poisson arrivals, a deterministic service of 1 ms, one worker, no batching: M/D/1, whose mean
    wait in queue is rho / (2 mu (1 - rho)) (Pollaczek-Khinchine)."""
    n, service, rho = 40_000, 1e-3, 0.7
    requests = random_requests(1, 1, 1, seed=0, vocab=VOCAB) * n
    served = simulate(requests, arrival_times(n, rho / service, seed=9), lambda b: [None] * len(b), 0.0, 1, cost=lambda _: service)
    waited = served.latency.mean() - service
    assert waited == pytest.approx(rho * service / (2 * (1 - rho)), rel=0.06)


def test_bad_schedules_are_refused():
    requests = random_requests(3, 1, 2, seed=0, vocab=VOCAB)
    with pytest.raises(ValueError, match="sorted arrival"):
        simulate(requests, np.array([0.2, 0.1, 0.3]), lambda b: [None] * len(b), 0.0, 1)
    with pytest.raises(ValueError, match="max_batch >= 1"):
        simulate(requests, np.array([0.1, 0.2, 0.3]), lambda b: [None] * len(b), 0.0, 0)
    with pytest.raises(ValueError, match="responses for a batch"):
        simulate(requests, np.array([0.1, 0.2, 0.3]), lambda b: [], 0.0, 1)


def test_capacity_reads_the_highest_rate_below_the_first_over_the_budget():
    import pandas as pd

    cases = [  # (max wait, max batch, rate, p99, p99 at median service)
        (0, 1, 100, 5, 4), (0, 1, 200, 30, 12),  # held 100; at median service every rate holds
        (2, 8, 100, 6, 5), (2, 8, 200, 9, 6), (2, 8, 400, 25, 21),  # held 200, then 400 over
        (5, 8, 100, 40, 30),  # even the lowest rate is over
        (1, 4, 100, 5, 5), (1, 4, 200, 21, 5), (1, 4, 300, 8, 5),  # a pass past a failure is not counted
    ]  # fmt: skip
    rows = [{"model": "m", "impl": "shared", "workers": 1, "threads": 2, "candidates": 10, "seq_len": 5, "max_wait_ms": w, "max_batch": b,
             "offered_rps": rate, "p99_ms": p99, "p99_ms_median_service": calm} for w, b, rate, p99, calm in cases]  # fmt: skip
    cap = capacity(pd.DataFrame(rows).sample(frac=1, random_state=0), budget_ms=20)  # rows in any order
    cap = cap.set_index(["max_wait_ms", "max_batch"]).loc[[(0, 1), (2, 8), (5, 8), (1, 4)]]
    nan = float("nan")
    assert cap["max_rps_within_budget"].tolist() == pytest.approx([100, 200, nan, 100], nan_ok=True)
    assert cap["first_rps_over_budget"].tolist() == pytest.approx([200, 400, 100, 200], nan_ok=True)
    assert cap["max_rps_within_budget_median_service"].tolist() == pytest.approx([200, 200, nan, 300], nan_ok=True)
    assert cap["first_rps_over_budget_median_service"].tolist() == pytest.approx([nan, 400, 100, nan], nan_ok=True)
    assert (cap["lowest_rps_tried"] == 100).all()


def test_the_service_curve_times_each_batch_size_on_other_requests():
    requests = random_requests(12, 2, 3, seed=0, vocab=VOCAB)
    seen: list[tuple[int, ...]] = []

    def score(batch):
        seen.append(tuple(id(r) for r in batch))
        return [torch.zeros(2)] * len(batch)

    curve = service_times(score, requests, [4, 1, 4], repeats=5)
    assert sorted(curve) == [1, 4] and all(t > 0 for t in curve.values())
    timed = seen[6:]  # after three untimed calls per size
    assert len(timed) == 10 and {len(b) for b in timed} == {1, 4}
    assert len({b for b in timed if len(b) == 1}) == 5  # each timed call on other requests
    with pytest.raises(ValueError, match="batch sizes must lie in 1..12"):
        service_times(score, requests, [0, 2])


def test_steady_service_interpolates_the_curve_and_replays_without_calls():
    cost = steady_service({1: 0.002, 4: 0.005, 16: 0.011})
    assert [cost(n) for n in (1, 2, 4, 10, 16, 32)] == pytest.approx([0.002, 0.003, 0.005, 0.008, 0.011, 0.011])
    arrivals = np.array([0.0, 0.0005, 0.001, 0.1])
    served = replay(4, arrivals, cost, max_wait=0.002, max_batch=4)
    # the first three arrive within the wait: one batch of 3 (4 ms) closing at 2 ms; the fourth waits 2 ms alone
    assert served.batch.tolist() == [0, 0, 0, 1] and served.responses == [None] * 4
    assert served.finish.tolist() == pytest.approx([0.006, 0.006, 0.006, 0.104])


def test_the_capacity_table_says_below_the_sweep_and_above_it():
    import pandas as pd

    from bench.serving.report import microbatch_markdown

    base = {"model": "m", "impl": "shared", "workers": 1, "threads": 2, "candidates": 10, "seq_len": 5, "requests": 100,
            "achieved_rps": 1.0, "p50_ms": 1.0, "mean_batch": 1.0, "utilization": 0.5, "service_ms_by_batch": "1:6.50;2:8.00"}  # fmt: skip
    rows = [{**base, "max_wait_ms": 0, "max_batch": b, "offered_rps": rate, "p99_ms": p99, "p99_ms_median_service": calm}
            for b, rate, p99, calm in [(1, 39, 25, 12), (1, 78, 40, 30), (2, 39, 10, 9), (2, 78, 15, 14)]]  # fmt: skip
    text = microbatch_markdown(pd.DataFrame(rows), (50, 20), {"device_name": "a CPU", "device": "cpu"})
    lines = [[c.strip() for c in line.split("|")[2:7]] for line in text.splitlines() if line.startswith("| m ")]
    assert lines == [  # budget, policy, held, first over, held at median service; the budgets in order
        ["20", "0 ms, 1", "< 39", "39", "39"], ["20", "0 ms, 2", ">= 78", "none over", ">= 78"],
        ["50", "0 ms, 1", ">= 78", "none over", ">= 78"], ["50", "0 ms, 2", ">= 78", "none over", ">= 78"],
    ]  # fmt: skip
    assert "1: 6.50 ms, 2: 8.00 ms" in text
