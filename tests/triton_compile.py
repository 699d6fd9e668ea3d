"""Compile the Triton recurrence kernels for an H100/H200 (sm_90) without a GPU and print, per
kernel, the registers and stack (spills) ptxas gave it, one JSON object per line.

Run as a script with TRITON_INTERPRET unset (the interpreter replaces the kernels):
``python tests/triton_compile.py [HP ...]``; ``tests/test_triton.py`` runs it in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from dien_core.kernels import triton_loops

FORWARD_ARGS = "gi c0 c1 w_hh b_ih b_hh hs gates n_all gh_n T B H".split()
BACKWARD_ARGS = "d_hs gates n_all gh_n hs c0 c1 w_hh dgi dgh_n dc0 dc1 T B H".split()
CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


def resources(kernel, args: list[str], constants: dict, folder: str) -> dict:
    """Registers, stack bytes and shared memory of ``kernel`` compiled for sm_90 with ``constants``."""
    signature = {name: "i32" if name in ("T", "B", "H") else "*fp32" for name in args}
    signature.update({name: "constexpr" for name in constants})
    compiled = triton.compile(
        ASTSource(kernel, signature, constexprs=constants),
        target=GPUTarget("cuda", 90, 32),
        options={"num_warps": triton_loops.NUM_WARPS},
    )
    path = os.path.join(folder, "kernel.cubin")
    with open(path, "wb") as file:
        file.write(compiled.asm["cubin"])
    usage = subprocess.run([CUOBJDUMP, "--dump-resource-usage", path], capture_output=True, text=True, check=True).stdout
    registers, stack = (int(re.search(rf"{key}:(\d+)", usage).group(1)) for key in ("REG", "STACK"))
    return {"registers": registers, "stack_bytes": stack, "shared_bytes": compiled.metadata.shared}


def main(padded_sizes: list[int]) -> None:
    import tempfile

    assert os.environ.get("TRITON_INTERPRET") != "1", "unset TRITON_INTERPRET: the interpreter has nothing to compile"
    block = {"BLOCK_B": triton_loops.BLOCK_B}
    with tempfile.TemporaryDirectory() as folder:
        for hp in padded_sizes:
            for has_z in (True, False):
                for save in (True, False):
                    constants = {"HAS_Z": has_z, "SAVE": save, **block, "HP": hp}
                    row = resources(triton_loops._forward_kernel, FORWARD_ARGS, constants, folder)
                    print(json.dumps({"kernel": "forward", **constants, **row}), flush=True)
                constants = {"HAS_Z": has_z, **block, "HP": hp}
                row = resources(triton_loops._backward_kernel, BACKWARD_ARGS, constants, folder)
                print(json.dumps({"kernel": "backward", **constants, **row}), flush=True)


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [16, 64])
