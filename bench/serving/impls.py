"""The implementations timed side by side on the same requests.

Each is ``Impl(name, prepare, run)``: ``prepare(request)`` is what a server holds before the
clock starts (the request's tensors in the form it takes, on the device), ``run(prepared)`` is
timed and returns the K scores.

- ``batched``: ``Request.to_batch`` (K rows, the history repeated) through the training model, eval mode;
- ``shared``: ``ServingModel``, the history's work once (the layers' C++ / Triton loops);
- ``shared-cudagraph`` (CUDA): the same, captured once per shape in a CUDA graph and replayed;
- ``exported``: the AOTInductor package of ``export.py``;
- ``onnx``: the ONNX Runtime session of ``export.py`` (CPU; to compare the export routes);
- ``deepctr-torch``: DeepCTR-Torch's DIEN or DIN (``peers.py``) on the same request.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

import baselines
import dien_core
from dien_core.serving import Request, ServingModel, stack

from . import export, peers

IMPLS = ("batched", "shared", "shared-cudagraph", "exported", "onnx")
PEER_IMPL = "deepctr-torch"


@dataclass(frozen=True)
class Impl:
    """One implementation: ``prepare(request)`` (untimed), ``run(prepared)`` (timed) -> scores ``(K,)``;
    ``logits`` says whether they are logits (ours) or probabilities (DeepCTR-Torch)."""

    name: str
    prepare: Callable[[Request], Any]
    run: Callable[[Any], torch.Tensor]
    logits: bool = True


class CudaGraphScorer:
    """``ServingModel`` captured in one CUDA graph for one shape (K candidates, history T): a call
    copies the request into the graph's input buffers and replays it, one launch for the whole
    path instead of one per operator. Args: ``serving``, ``example`` (a request of that shape)."""

    def __init__(self, serving: ServingModel, example: Request) -> None:
        self.inputs = tuple(t.clone() for t in stack([example]).tensors())
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):  # warm-up outside the capture: Triton compiles, allocator pools
                serving(*self.inputs)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.output = serving(*self.inputs)

    def __call__(self, tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
        for buffer, t in zip(self.inputs, tensors):
            buffer.copy_(t, non_blocking=True)
        self.graph.replay()
        return self.output


def make_impls(names: tuple[str, ...], model: torch.nn.Module, model_name: str, seq_len: int, example: Request, device: torch.device,
               workdir: Path, threads: int, log=print) -> tuple[dict[str, Impl], dict[str, float]]:  # fmt: skip
    """The implementations ``names`` of ``model`` (eval mode) for requests shaped like ``example``
    (those that cannot run on ``device`` are left out, with a message), and the seconds each export
    took (``exported``, ``onnx``; compiling included), for the table."""
    impls: dict[str, Impl] = {}
    export_seconds: dict[str, float] = {}
    serving = ServingModel(model)
    for name in names:
        if name not in IMPLS:
            raise ValueError(f"unknown implementation {name!r}; allowed: {', '.join(IMPLS)}")
        if (name == "shared-cudagraph" and device.type != "cuda") or (name == "onnx" and device.type != "cpu"):
            log(f"skipping {name} on {device.type}")
            continue
        start = time.perf_counter()
        impls[name] = make_impl(name, model, serving, model_name, seq_len, example, device, workdir, threads)
        if name in ("exported", "onnx"):
            export_seconds[name] = time.perf_counter() - start
    return impls, export_seconds


@cache
def code_stamp() -> str:
    """A short hash of the code an export traces and how (``dien_core``, ``baselines``, ``export.py``)
    and of torch's version: a package compiled from other code is never picked up again by its file name."""
    digest = hashlib.sha256(torch.__version__.encode())
    for package in (dien_core, baselines):
        root = Path(package.__file__).parent
        for source in sorted(root.rglob("*.py")):
            digest.update(str(source.relative_to(root)).encode() + source.read_bytes())
    digest.update(Path(export.__file__).read_bytes())
    return digest.hexdigest()[:10]


def make_impl(name: str, model: torch.nn.Module, serving: ServingModel, model_name: str, seq_len: int, example: Request,
              device: torch.device, workdir: Path, threads: int) -> Impl:  # fmt: skip
    def tensors(r: Request) -> tuple[torch.Tensor, ...]:
        return stack([r]).tensors()

    if name == "batched":
        return Impl(name, Request.to_batch, lambda b: model(b).logits)
    if name == "shared":
        return Impl(name, tensors, lambda t: serving(*t))
    if name == "shared-cudagraph":
        return Impl(name, tensors, CudaGraphScorer(serving, example))
    stem = f"{model_name.replace('+', '_')}-T{seq_len}-{device.type}-{code_stamp()}"  # compiled from this code, for this T
    path = workdir / f"{stem}.{'pt2' if name == 'exported' else 'onnx'}"
    if name == "exported":
        if not path.is_file():
            export.export_aoti(model, seq_len, path, device)
        runner = export.load_aoti(path)
        return Impl(name, tensors, lambda t: runner(*t))
    if not path.is_file():
        export.export_onnx(model, seq_len, path)
    scorer = export.OnnxScorer(path, threads)
    return Impl(name, lambda r: scorer.feeds(tensors(r)), scorer)


def make_peer_impl(model_name: str, seq_len: int, device: torch.device) -> Impl | None:
    """DeepCTR-Torch's model of the same kind as ``model_name`` (DIEN, DIN), or None where it has none."""
    if model_name not in peers.PEER_OF:
        return None
    prepare, run = peers.make_peer(model_name, seq_len, device)
    return Impl(PEER_IMPL, prepare, run, logits=False)
