"""dien_core's C++ kernels for CPU (``csrc/``), built on first use: ``FusedRecurrence``'s loops
(``csrc/recurrence_cpu.cpp``), the fused auxiliary loss (``csrc/aux_loss_cpu.cpp``) and the
embedding lookup's backward (``csrc/embedding_cpu.cpp``).

torch's extension builder compiles them once per machine (about a minute) into a folder
named by a hash of the sources, the torch and Python versions, the flags and the CPU, under
``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``). Later processes
import the built library directly: they take no build lock, so a process killed
while loading cannot leave one behind for the next. A lock left by a process killed
while building is removed once it is older than any build. Where no compiler is
found or the build fails, ``kernels()`` returns None with one warning, and modules on
``backend="auto"`` run their torch-op forms instead. ``DIEN_CORE_CPP=0`` turns it off.
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

CSRC = Path(__file__).parent / "csrc"
SOURCES = [CSRC / name for name in ("module.cpp", "recurrence_cpu.cpp", "aux_loss_cpu.cpp", "embedding_cpu.cpp")]
NAME = "dien_core_cpu"
# -march=native: built on the machine that runs it (the folder is keyed by its CPU). -fopenmp: ATen's
# parallel_for is an OpenMP pragma in its header (without the flag it runs on one thread), and the
# SIMD loops are declared with OpenMP pragmas; -fno-math-errno lets them vectorise.
FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno"]
STALE_LOCK_SECONDS = 600  # a build takes about a minute; a lock this old belongs to a killed build


def build_directory() -> Path:
    from torch.utils import cpp_extension

    # the library is built for this torch, this Python and this CPU
    stamp = f"{torch.__version__} {sys.version} {' '.join(FLAGS)} {cpu_features()}".encode()
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
    """The compiled module (``forward_loop``, ``backward``, ``aux_loss``, ``embedding_backward``), or None where it cannot be built."""
    if os.environ.get("DIEN_CORE_CPP", "1") == "0":
        return None
    try:
        folder = build_directory()
        built = folder / f"{NAME}.so"
        if built.is_file():
            return import_built(built)
        from torch.utils import cpp_extension

        folder.mkdir(parents=True, exist_ok=True)
        lock = folder / "lock"
        if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS:
            lock.unlink(missing_ok=True)
        print(f"dien_core: building the C++ kernels in {folder} (once, ~1 min)", file=sys.stderr, flush=True)
        sources = [str(path) for path in SOURCES]
        return cpp_extension.load(NAME, sources, extra_cflags=FLAGS, extra_ldflags=["-fopenmp"], build_directory=str(folder), verbose=False)
    except Exception as error:  # noqa: BLE001 - any build failure means "use the torch-op forms"
        warnings.warn(f"dien_core: C++ kernels unavailable ({type(error).__name__}: {error}); using the torch-op forms", stacklevel=2)
        return None


def available() -> bool:
    return kernels() is not None
