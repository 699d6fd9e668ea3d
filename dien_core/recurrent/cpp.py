"""The C++ form of ``FusedRecurrence``'s loops (``csrc/recurrence_cpu.cpp``), built on first use.

torch's extension builder compiles it once per machine (about 40 s, cached under
``~/.cache/torch_extensions``; set ``TORCH_EXTENSIONS_DIR`` to move it). Where no
compiler is found or the build fails, ``loops()`` returns None with one warning, and
layers on ``backend="auto"`` run the Python loops instead. ``DIEN_CORE_CPP=0`` turns
it off.
"""

from __future__ import annotations

import os
import sys
import warnings
from functools import cache
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).parent / "csrc" / "recurrence_cpu.cpp"


@cache
def loops() -> ModuleType | None:
    """The compiled module (``forward_loop``, ``backward``), or None where it cannot be built."""
    if os.environ.get("DIEN_CORE_CPP", "1") == "0":
        return None
    try:
        from torch.utils import cpp_extension

        print("dien_core: loading the C++ recurrence loops (built once per machine, ~40 s)", file=sys.stderr, flush=True)
        return cpp_extension.load("dien_core_recurrence_cpu", [str(SOURCE)], extra_cflags=["-O3"], verbose=False)
    except Exception as error:  # noqa: BLE001 - any build failure means "use the Python loops"
        warnings.warn(
            f"dien_core: C++ recurrence loops unavailable ({type(error).__name__}: {error}); using the Python loops", stacklevel=2
        )
        return None


def available() -> bool:
    return loops() is not None
