"""The exported serving path, loadable without this repository's code.

``ServingModel(model, loops="unrolled")`` (torch ops only, the recurrences unrolled step by step) goes
through ``torch.export`` with the candidate count dynamic and the history length fixed: a graph
serves any history up to its T, padded, since ``lengths`` masks the rest. Then either

- ``aoti`` (the choice; docs/serving.md says why): AOTInductor compiles the graph to a shared
  library in a ``.pt2`` package, loaded by ``torch._inductor.aoti_load_package`` in Python or by
  libtorch's ``AOTIModelPackageLoader`` in C++;
- ``onnx``: the ONNX file of ``torch.onnx.export`` (dynamo), run by ONNX Runtime (``pip install
  -e ".[serving]"``), kept to compare.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dien_core import VocabSizes
from dien_core.serving import ServingModel, stack

from .workload import random_requests

FORMATS = ("aoti", "onnx")
INPUT_NAMES = ("user", "hist_item", "hist_cate", "lengths", "item", "cate", "owner")


def export_program(model: torch.nn.Module, seq_len: int, device: torch.device) -> torch.export.ExportedProgram:
    """``torch.export`` of one request's serving path: ``user (1,)``, ``hist_item, hist_cate (1, seq_len)``,
    ``lengths (1,)``, then ``item, cate, owner (K,)`` with K dynamic (>= 1) -> logits ``(K,)``."""
    if seq_len < 1:
        raise ValueError(f"an exported graph has a fixed history length T >= 1 (shorter histories are padded), got {seq_len}")
    if model.training:
        raise ValueError("export the model in eval mode: call model.eval() first")
    serving = ServingModel(model, loops="unrolled")
    tables = model.embedding
    vocab = VocabSizes(tables.user.num_embeddings, tables.item.num_embeddings, tables.cate.num_embeddings)
    # K = 3 in the example: torch.export specialises dimensions of size 0 or 1
    example = stack(random_requests(1, 3, seq_len, vocab=vocab, device=device)).tensors()
    candidates = torch.export.Dim("candidates", min=1)
    dynamic = {name: ({0: candidates} if name in ("item", "cate", "owner") else None) for name in INPUT_NAMES}
    with torch.no_grad():
        return torch.export.export(serving, example, dynamic_shapes=dynamic)


def export_aoti(model: torch.nn.Module, seq_len: int, path: Path, device: torch.device) -> Path:
    """Compile the serving path with AOTInductor into the package ``path`` (``.pt2``)."""
    program = export_program(model, seq_len, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(torch._inductor.aoti_compile_and_package(program, package_path=str(path)))


def load_aoti(path: Path):
    """The compiled package as a callable: the seven input tensors -> logits ``(K,)``."""
    return torch._inductor.aoti_load_package(str(path))


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(model: torch.nn.Module, seq_len: int, path: Path) -> Path:
    """The serving path as an ONNX file (CPU), through ``torch.export`` and the dynamo exporter."""
    if not onnx_available():
        raise ValueError('the onnx implementation needs onnx, onnxscript and onnxruntime: pip install -e ".[serving]"')
    program = export_program(model, seq_len, torch.device("cpu"))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(program, dynamo=True, optimize=True, verbose=False).save(str(path))
    return path


class OnnxScorer:
    """An ONNX Runtime session on the exported file. Args: ``path``, ``threads`` (intra-op; inter-op 1).
    ``feeds(tensors)`` makes its inputs (numpy views of CPU tensors); calling it on them returns logits ``(K,)``."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def feeds(self, tensors: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
        return {name: t.cpu().numpy() for name, t in zip(self.names, tensors)}

    def __call__(self, feeds: dict[str, np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, feeds)[0])
