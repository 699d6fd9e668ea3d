"""Latency percentiles of timed requests (numpy's percentile, linear interpolation)."""

from __future__ import annotations

import numpy as np

PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9}


def latency_summary(seconds: np.ndarray) -> dict[str, float]:
    """``seconds (n,)`` per request -> ``p50_ms, p90_ms, p99_ms, p999_ms, mean_ms``: numpy's
    ``percentile`` with linear interpolation between order statistics (its default, "type 7").
    With n requests the p99.9 is the largest but about n / 1000 of them: read it with n >= 1,000."""
    values = np.asarray(seconds, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"latency_summary needs a non-empty 1-d array of seconds, got shape {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("latencies must be finite and non-negative")
    points = np.percentile(values, list(PERCENTILES.values())) * 1e3
    return {**dict(zip(PERCENTILES, map(float, points))), "mean_ms": float(values.mean() * 1e3)}
