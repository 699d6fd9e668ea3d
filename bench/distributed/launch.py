"""Which engine runs a suite's cells: this process, Ray (``--ray``), or the ranks of a torchrun job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .ddp import torchrun_group, torchrun_world


@contextmanager
def execution(ray_address: str | None, device_text: str, suite) -> Iterator[tuple[torch.device, object]]:
    """``(device, execute)`` for ``bench.run.runner.run_suite``; Ray is shut down and a process group destroyed on exit
    (where this started them). ``execute`` is None for the plain run in this process."""
    from ..results_io import parse_device

    under_torchrun = torchrun_world() is not None
    if ray_address is not None and under_torchrun:
        raise ValueError("--ray and torchrun do not mix: Ray runs many cells at once, torchrun one cell over many processes")
    if ray_address is not None:
        from .ray_cells import RayCells

        cells = RayCells(ray_address, suite.resources, device_text)
        try:
            yield torch.device("cpu"), cells  # the driver's device; the cells' is in cells.device
        finally:
            cells.close()
    elif under_torchrun:
        with torchrun_group(device_text) as (device, cells):
            yield device, cells
    else:
        yield parse_device(device_text), None
