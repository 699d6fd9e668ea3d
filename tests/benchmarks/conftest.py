"""Writes metadata.json beside --benchmark-json output, as every results/ folder has."""

from pathlib import Path

import torch


def pytest_sessionfinish(session, exitstatus):
    json_out = session.config.getoption("benchmark_json", default=None)
    if not json_out or exitstatus != 0:
        return
    from bench import results_io

    on_gpu = torch.cuda.is_available() and any("cuda" in item.name for item in session.items)
    device = torch.device("cuda" if on_gpu else "cpu")
    meta = results_io.metadata("pytest tests/benchmarks", device, {"benchmark_json": Path(json_out.name).name})
    results_io.write_json(Path(json_out.name).parent / "metadata.json", meta)
