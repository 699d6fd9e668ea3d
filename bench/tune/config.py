"""How one ``bench tune`` worker runs: its study, storage, trial budget, sampler seed and pruner (no optuna import,
so the CLI's parser takes its defaults from here cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class TuneConfig:
    """One worker of a study: ``model``, ``study`` name and ``storage`` URL; ``trials`` (None: until ``timeout``),
    ``timeout`` seconds, ``jobs`` (threads), TPE ``seed``, ``pruner``, the storage's heartbeat and retries."""

    model: str
    study: str
    storage: str
    trials: int | None = 20
    timeout: float | None = None
    jobs: int = 1
    seed: int = 0
    pruner: str = "median"
    heartbeat_interval: int = 10
    max_retry: int = 3

    def __post_init__(self) -> None:
        if self.trials is not None and self.trials <= 0:
            raise ValueError(f"--trials must be positive, got {self.trials}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"--timeout must be positive, got {self.timeout}")
        if self.jobs <= 0 or self.heartbeat_interval <= 0:
            raise ValueError("--jobs and --heartbeat-interval must be positive")
        if self.pruner not in ("median", "hyperband", "none"):
            raise ValueError(f"unknown pruner {self.pruner!r}; allowed: median, hyperband, none")


DEFAULTS = {f.name: f.default for f in fields(TuneConfig) if f.name not in ("model", "study", "storage")}
