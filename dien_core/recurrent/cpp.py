"""The C++ form of ``FusedRecurrence``'s loops (``csrc/recurrence_cpu.cpp``), built on first use.

torch's extension builder compiles it once per machine (about 40 s) into a folder
named by a hash of the source, the torch and Python versions and the flags, under
``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``). Later processes
import the built library directly: they take no build lock, so a process killed
while loading cannot leave one behind for the next. A lock left by a process killed
while building is removed once it is older than any build. Where no compiler is
found or the build fails, ``loops()`` returns None with one warning, and layers on
``backend="auto"`` run the Python loops instead. ``DIEN_CORE_CPP=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import time
import warnings
from functools import cache
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).parent / "csrc" / "recurrence_cpu.cpp"
NAME = "dien_core_recurrence_cpu"
FLAGS = ["-O3"]
STALE_LOCK_SECONDS = 600  # a build takes ~40 s; a lock this old belongs to a killed build


def build_directory() -> Path:
    from torch.utils import cpp_extension

    stamp = f"{torch.__version__} {sys.version} {' '.join(FLAGS)}".encode()  # the library is built for this torch and Python
    key = hashlib.sha256(SOURCE.read_bytes() + stamp).hexdigest()[:16]
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    return Path(root) / f"{NAME}_{key}"


def import_built(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(NAME, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def loops() -> ModuleType | None:
    """The compiled module (``forward_loop``, ``backward``), or None where it cannot be built."""
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
        print(f"dien_core: building the C++ recurrence loops in {folder} (once, ~40 s)", file=sys.stderr, flush=True)
        return cpp_extension.load(NAME, [str(SOURCE)], extra_cflags=FLAGS, build_directory=str(folder), verbose=False)
    except Exception as error:  # noqa: BLE001 - any build failure means "use the Python loops"
        warnings.warn(
            f"dien_core: C++ recurrence loops unavailable ({type(error).__name__}: {error}); using the Python loops", stacklevel=2
        )
        return None


def available() -> bool:
    return loops() is not None
