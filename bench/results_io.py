"""Writing results: atomic files, CSV rows that survive interruption, and metadata.json."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename over ``path``: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """A matplotlib figure as PNG at ``path``: laid out, written atomically, then closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    plt.close(fig)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Add rows to a CSV by rewriting it atomically (results files are small)."""
    write_csv(path, pd.concat([read_csv(path), pd.DataFrame(rows)], ignore_index=True))


@functools.cache
def git_commit() -> str:
    """The commit (``-dirty`` with uncommitted changes) when first asked: the CLI asks at start,
    since a running process keeps the code it loaded then, whatever is edited later."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        code = ["dien_core", "baselines", "bench", "pyproject.toml"]  # what results depend on; prose and tests do not count
        status = ["git", "status", "--porcelain", "--untracked-files=no", "--", *code]
        dirty = subprocess.run(status, cwd=root, capture_output=True, text=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)  # no import: `bench profile` stays free of optuna
    except importlib.metadata.PackageNotFoundError:
        return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


_denormals_flushed = False
KEEP_DENORMALS_HELP = "do not flush denormal floats to zero on CPU (flushed by default: they slow long sequences many times)"


def flush_denormals(keep: bool = False) -> bool:
    """Flush denormal floats to zero on CPU (for the whole process), unless ``keep``.

    Gradients that decay over long sequences reach denormal floats, which x86 CPUs handle up
    to ~100x slower (AIGRU at T=200: 8x slower steps); TensorFlow flushes them by default.
    Returns whether they are flushed (False where the CPU cannot); ``metadata`` records it."""
    global _denormals_flushed
    _denormals_flushed = torch.set_flush_denormal(not keep) and not keep
    return _denormals_flushed


SECRET_IN_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<secret>\S+)@")  # to the last @
SECRET_IN_QUERY = re.compile(r"(?P<key>[?&]password=)[^&\s]*", re.IGNORECASE)


def mask_secrets(value: Any) -> Any:
    """Passwords in URLs (``scheme://user:PASSWORD@host``, ``?password=...``) as ``***``, in strings, lists and dicts."""
    if isinstance(value, str):
        value = SECRET_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", value)
        return SECRET_IN_QUERY.sub(lambda m: f"{m['key']}***", value)
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    return value


_argv: list[str] | None = None


def set_argv(argv: list[str]) -> None:
    """The command line this process was given (``main(argv)`` in tests is not ``sys.argv``)."""
    global _argv
    _argv = list(argv)


def write_metadata_of_invocations(folder: Path, meta: dict[str, Any], **what: Any) -> None:
    """``folder/metadata.json``: ``meta`` of the latest invocation, with ``invocations`` listing every
    one that wrote into the folder (its argv, time, commit, dirty tree or not, config and ``what``),
    earlier ones kept. One ``metadata()`` call is one invocation: writing its ``meta`` again updates its entry."""
    path = folder / "metadata.json"
    earlier = json.loads(path.read_text()).get("invocations", []) if path.is_file() else []
    earlier = [e for e in earlier if e.get("id") != meta["invocation"]]
    commit = meta["git_commit"]
    this = {"id": meta["invocation"], **{k: meta[k] for k in ("argv", "written", "git_commit", "config")},
            "dirty": commit.endswith("-dirty"), **what}  # fmt: skip
    write_json(path, {**meta, "invocations": [*earlier, this]})


def metadata(command: str, device: torch.device, config: dict[str, Any], seeds: list[int] | None = None) -> dict[str, Any]:
    return {
        "command": command,
        "invocation": uuid.uuid4().hex[:12],
        "argv": mask_secrets(_argv if _argv is not None else sys.argv),
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "triton": version("triton") if device.type == "cuda" else None,
        "optuna": version("optuna"),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "flush_denormal": _denormals_flushed and device.type == "cpu",
        "seeds": seeds,
        "config": mask_secrets(config),
    }


def parse_device(text: str) -> torch.device:
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text not in ("cpu", "cuda") and not text.startswith("cuda:"):
        raise ValueError(f"unknown device {text!r}; allowed: auto, cpu, cuda, cuda:N")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {text!r} asked for, but torch sees no CUDA GPU here")
    return torch.device(text)
