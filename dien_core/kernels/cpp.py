"""dien_core's C++ kernels for CPU (``csrc/``), built on first use: ``FusedRecurrence``'s loops
(``csrc/recurrence_cpu.cpp``), the fused auxiliary loss (``csrc/aux_loss_cpu.cpp``), the
embedding lookup and its backward (``csrc/embedding_cpu.cpp``) and the serving path's attention
scores (``csrc/attention_cpu.cpp``).

torch's extension builder compiles them once per machine (about a minute) into a folder
named by a hash of the sources, the torch and Python versions, the flags and the CPU, under
``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``). Later processes
import the built library directly: they take no build lock, so a process killed
while loading cannot leave one behind for the next. A lock left by a process killed
while building is removed once it is older than any build. Where no compiler is
found or the build fails, ``kernels()`` returns None with one warning, and plans on
``backend="auto"`` (``plan.py``) choose the torch forms instead. ``DIEN_CORE_CPP=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
import time
import warnings
from functools import cache
from pathlib import Path
from types import ModuleType

import torch

from . import switches

CSRC = Path(__file__).parent / "csrc"
SOURCES = [CSRC / name for name in ("module.cpp", "recurrence_cpu.cpp", "aux_loss_cpu.cpp", "embedding_cpu.cpp", "attention_cpu.cpp")]
NAME = "dien_core_cpu"
# Builds tried in order: (name, compile flags, link flags). "native": -march=native (built on the
# machine that runs it; the folder is keyed by its CPU), -fopenmp (ATen's parallel_for is an OpenMP
# pragma in its header: without the flag it runs on one thread; the SIMD loops are OpenMP pragmas
# too), -fno-math-errno and -fno-trapping-math (let them vectorise: without the second, GCC keeps
# the clamps of ``exp_of`` as branches, and every loop that calls it runs one lane at a time). "portable": for compilers without OpenMP or
# -march=native (Apple clang): the same code on one thread per kernel.
BUILDS = (
    ("native", ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"], ["-fopenmp"]),
    ("portable", ["-O3", "-fno-math-errno", "-fno-trapping-math"], []),
)
FLAGS = BUILDS[0][1]
STALE_LOCK_SECONDS = 600  # a build takes about a minute; a lock this old belongs to a killed build


def build_directory(flags: list[str] = FLAGS) -> Path:
    from torch.utils import cpp_extension

    # the library is built for this torch, this Python and this CPU
    stamp = f"{torch.__version__} {sys.version} {' '.join(flags)} {cpu_features()}".encode()
    code = b"".join(path.read_bytes() for path in sorted(CSRC.iterdir()) if path.suffix in (".cpp", ".h"))
    key = hashlib.sha256(code + stamp).hexdigest()[:16]
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    return Path(root) / f"{NAME}_{key}"


def cpu_features() -> str:
    """The CPU's model and instruction sets (Linux), so a cache shared by machines keeps one build per CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return " ".join(line for line in lines if line.startswith(("model name", "flags")))[:8192]


def import_built(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(NAME, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def kernels() -> ModuleType | None:
    """The compiled module (``forward_loop``, ``backward``, ``aux_loss``, ``gather_rows``, ``scatter_rows``,
    ``attention_scores``), or None
    where no build succeeds. A build that failed leaves ``failed`` (the compiler's message) in its
    folder, so later processes go straight to the next one; delete it to try again."""
    if turned_off():
        return None
    errors = []
    for name, cflags, ldflags in BUILDS:
        try:
            folder = build_directory(cflags)
            built, failed = folder / f"{NAME}.so", folder / "failed"
            if built.is_file():
                return import_built(built)
            if failed.is_file():
                errors.append(f"{name}: failed before, see {failed}")
                continue
            from torch.utils import cpp_extension

            folder.mkdir(parents=True, exist_ok=True)
            lock = folder / "lock"
            if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS:
                lock.unlink(missing_ok=True)
            print(f"dien_core: building the C++ kernels ({name}) in {folder} (once, ~1 min)", file=sys.stderr, flush=True)
            sources = [str(path) for path in SOURCES]
            try:
                return cpp_extension.load(NAME, sources, extra_cflags=cflags, extra_ldflags=ldflags, build_directory=str(folder))
            except Exception as error:  # noqa: BLE001 - a compile error: remember it, try the next build
                failed.write_text(f"{type(error).__name__}: {error}\n")
                raise
        except Exception as error:  # noqa: BLE001 - any build failure means "try the next, else the torch-op forms"
            errors.append(f"{name}: {type(error).__name__}: {error}")
    warnings.warn(f"dien_core: C++ kernels unavailable ({'; '.join(errors)}); using the torch-op forms", stacklevel=2)
    return None


def planned_kernels(device: torch.device, what: str) -> ModuleType:
    """The C++ kernels for a piece the plan gave them (``what`` names it in the message), for tensors on
    ``device``: a ValueError off the CPU (a model planned for another device)."""
    if device.type != "cpu":
        raise ValueError(f"this {what} was planned for the C++ kernels (CPU), got {device.type} tensors; "
                         "build the model for this device (bench.models.build_model(..., device=...))")  # fmt: skip
    built = kernels()
    assert built is not None, "the plan chose the C++ kernels only where they built"
    return built


def available() -> bool:
    return kernels() is not None


def turned_off() -> bool:
    """Whether ``DIEN_CORE_CPP=0`` turned the C++ kernels off (``switches.py``)."""
    return switches.cpp_off()


def unavailable_reason() -> str:
    """Why ``available()`` is False, for the plan's notes."""
    if turned_off():
        return "the C++ kernels are off (DIEN_CORE_CPP=0)"
    return "the C++ kernels could not be built here (see the warning)"


def needs_backward(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd will run the backward of a Function applied to ``tensors``, for kernels that
    keep (or compute) what it needs only then. Ask before ``apply``: inside ``forward``,
    ``ctx.needs_input_grad`` ignores ``torch.no_grad``."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
