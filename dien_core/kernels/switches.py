"""The environment switches that change a plan, read here and nowhere else in ``dien_core``.

- ``DIEN_CORE_CPP=0``: do not build or load the C++ kernels (``auto`` plans the torch forms, and says so);
- ``DIEN_CORE_TRITON=0``: do not use the Triton loops even where triton imports;
- ``TRITON_INTERPRET=1`` (Triton's own): its interpreter runs the Triton loops on CPU tensors (for tests).

Each plan records the ones that were set when it was made (``Plan.switches``, in ``metadata.json``),
so a run that turned a kernel off says so beside its numbers.
"""

from __future__ import annotations

import os

CPP, TRITON, INTERPRET = "DIEN_CORE_CPP", "DIEN_CORE_TRITON", "TRITON_INTERPRET"
NAMES = (CPP, TRITON, INTERPRET)


def cpp_off() -> bool:
    """Whether ``DIEN_CORE_CPP=0`` turned the C++ kernels off."""
    return os.environ.get(CPP, "1") == "0"


def triton_off() -> bool:
    """Whether ``DIEN_CORE_TRITON=0`` turned the Triton loops off."""
    return os.environ.get(TRITON, "1") == "0"


def triton_interpreted() -> bool:
    """Whether Triton's interpreter runs its kernels (on CPU tensors)."""
    return os.environ.get(INTERPRET) == "1"


def current() -> tuple[tuple[str, str], ...]:
    """The switches set now, as ``(name, value)`` pairs in ``NAMES`` order."""
    return tuple((name, os.environ[name]) for name in NAMES if name in os.environ)
