"""What one suite cell asks of a Ray cluster: the suite's ``[resources]`` table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellResources:
    """CPUs and GPUs that Ray reserves for each cell of ``bench run --ray`` (a suite's ``[resources]``).

    ``cpus_per_cell`` is also the cell's torch thread count (at least 1). ``gpus_per_cell`` > 0 trains the
    cell on the GPU Ray assigns it (Ray sets ``CUDA_VISIBLE_DEVICES``); a fraction below 1 packs cells
    onto one GPU (0.5: two cells a GPU). Neither is in the cell's hash (like ``--device``): rows equal
    one process's at the same device and thread count.
    """

    cpus_per_cell: float = 1
    gpus_per_cell: float = 0

    def __post_init__(self) -> None:
        for name in ("cpus_per_cell", "gpus_per_cell"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"resources.{name} must be a number, got {value!r}")
        if not self.cpus_per_cell > 0:
            raise ValueError(f"resources.cpus_per_cell must be > 0 (Ray reserves that many CPUs per cell), got {self.cpus_per_cell}")
        if self.gpus_per_cell < 0:
            raise ValueError(f"resources.gpus_per_cell must be >= 0, got {self.gpus_per_cell}")
        if self.gpus_per_cell > 1:
            raise ValueError(
                f"resources.gpus_per_cell = {self.gpus_per_cell}: a cell trains on one device; "
                "for several GPUs on one cell use torchrun (docs/distributed.md)"
            )

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus_per_cell))

    @property
    def device(self) -> str:
        """The device a cell trains on inside its Ray task."""
        return "cuda" if self.gpus_per_cell > 0 else "cpu"
