"""The Triton recurrence kernels: on the GPU where there is one, else under Triton's interpreter
(tests/conftest.py sets TRITON_INTERPRET=1 without CUDA), against the float64 Python loops and
the float64 per-step reference; and compiled for sm_90 without a GPU (registers, no spills)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.models import build_model
from dien_core import ModelConfig, total_loss
from dien_core.kernels import triton_loops
from dien_core.kernels.plan import Target, resolve
from dien_core.recurrent import AGRU, AIGRU, AUGRU, GRU
from tests.helpers import VOCAB, assert_loops_match_python, random_batch

pytestmark = pytest.mark.skipif(triton_loops.triton is None, reason="triton is not installed (pip install -e '.[dev]' installs it)")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # the interpreter's numpy, saturated gates
@pytest.mark.parametrize("G", [3, 2])
@pytest.mark.parametrize("H", [36, 12])
def test_loops_equal_float64_python_loops(G, H):
    """Both kernels against PythonLoops in float64: every output of the loop contract, with
    rows of length 0, rows that end early, saturated gates and a batch no multiple of BLOCK_B."""
    assert_loops_match_python(triton_loops.TritonLoops, G, H, DEVICE)


@pytest.mark.parametrize("cls, convention", [(GRU, "paper"), (AIGRU, "paper"), (AGRU, "paper"), (AUGRU, "paper"), (AUGRU, "original")])
def test_layer_on_triton_equals_float64_reference(cls, convention):
    torch.manual_seed(3)
    B, T, I, H = 19, 9, 6, 5
    kwargs = {"convention": convention} if cls is AUGRU else {}
    ref = cls(I, H, implementation="reference", **kwargs).double()
    fast = cls(I, H, implementation="triton", **kwargs).to(DEVICE)
    fast.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    att = torch.rand(B, T, dtype=torch.float64, requires_grad=True)
    lengths = torch.randint(0, T + 1, (B,))
    lengths[:2] = torch.tensor([0, T])
    inputs = [x.detach().float().to(DEVICE).requires_grad_(True), att.detach().float().to(DEVICE).requires_grad_(True)]
    results = []
    for layer, (xi, ai) in ((ref, (x, att)), (fast, inputs)):
        out, last = layer(xi, ai, lengths.to(xi.device))
        loss = (out * torch.linspace(-1, 1, H, device=xi.device, dtype=xi.dtype)).sum() + last.pow(2).sum()
        grads = torch.autograd.grad(loss, [xi, ai, *layer.parameters()], allow_unused=True)
        results.append((out, last, grads))
    (o1, l1, g1), (o2, l2, g2) = results
    assert (o1 - o2.double().cpu()).abs().max() < 1e-5 and (l1 - l2.double().cpu()).abs().max() < 1e-5
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            assert (a - b.double().cpu()).abs().max() < 1e-4


def test_model_on_triton_equals_python_loops(monkeypatch):
    """A whole dien-augru+aux training loss and its gradients, Triton against the Python loops."""
    calls = []
    for name in ("forward_loop", "backward"):
        real = getattr(triton_loops.TritonLoops, name)
        monkeypatch.setattr(triton_loops.TritonLoops, name, lambda *a, real=real, name=name: calls.append(name) or real(*a))
    config = ModelConfig(embedding_dim=4, attention_hidden=(8,), aux_hidden=(8,), mlp_hidden=(16,), use_aux_loss=True)
    losses, grads = [], []
    for backend in ("torch", "triton"):
        torch.manual_seed(0)
        model = build_model("dien-augru+aux", ModelConfig(**{**config.__dict__, "backend": backend}), VOCAB, DEVICE)
        output = model(random_batch(B=21, T=8).to(DEVICE))
        loss = total_loss(output, random_batch(B=21, T=8).label.to(DEVICE))
        loss.backward()
        losses.append(loss.detach().cpu())
        grads.append({n: p.grad.cpu() for n, p in model.named_parameters() if p.grad is not None})
    assert calls == ["forward_loop", "forward_loop", "backward", "backward"]  # the extractor's GRU and the AUGRU
    assert torch.allclose(losses[0], losses[1], atol=1e-6)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-5), name


def test_plans_with_triton(monkeypatch):
    """Where the plan sends the recurrences on CUDA, and what it refuses, before any tensor is seen."""
    cuda = Target(device="cuda")
    assert resolve("auto", ("GRU", "AUGRU"), cuda).choices == (("GRU", "native"), ("AUGRU", "triton"))
    assert resolve("auto", ("AGRU",), Target("cuda", torch.float64))["AGRU"] == "torch"
    assert resolve("auto", ("AUGRU",), Target("cuda", hidden_size=65))["AUGRU"] == "torch"  # too large for the kernels
    named = resolve("triton", ("embedding", "GRU", "aux_loss"), cuda)
    assert named.choices == (("embedding", "torch"), ("GRU", "triton"), ("aux_loss", "torch")) and len(named.notes) == 2
    with pytest.raises(ValueError, match="float32"):
        resolve("triton", ("AUGRU",), Target("cuda", torch.bfloat16))
    with pytest.raises(ValueError, match="up to 64"):
        resolve("triton", ("AUGRU",), Target("cuda", hidden_size=100))
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="CUDA tensors"):
        resolve("triton", ("AUGRU",), Target("cpu"))
    with pytest.raises(ValueError, match="planned for the Triton loops"):  # a layer built for CUDA, given CPU tensors
        AUGRU(3, 4, implementation="triton")(torch.randn(1, 2, 3), torch.rand(1, 2), torch.tensor([2]))
    monkeypatch.setenv("DIEN_CORE_TRITON", "0")
    assert resolve("auto", ("AUGRU",), cuda)["AUGRU"] == "torch"
    with pytest.raises(ValueError, match="DIEN_CORE_TRITON=0"):
        resolve("triton", ("AUGRU",), cuda)


def test_kernels_compile_for_h100_without_spills():
    """ptxas for sm_90 (run offline: no GPU needed) gives every kernel variant up to H = 64 its
    registers with no spills to the stack, in under an SM's shared memory (227 KB per block)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    script = Path(__file__).with_name("triton_compile.py")
    done = subprocess.run([sys.executable, str(script), "16", "64"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 12
    for row in rows:
        assert row["stack_bytes"] == 0 and row["registers"] <= 128 and row["shared_bytes"] <= 227 * 1024, row


def test_layer_on_triton_under_bf16_autocast_stays_close():
    """Under autocast the input projection runs in bf16 and the loop in float32 (the weights' dtype)."""
    torch.manual_seed(7)
    ref = AUGRU(8, 8, implementation="reference")
    fast = AUGRU(8, 8, implementation="triton").to(DEVICE)
    fast.load_state_dict(ref.state_dict())
    x, att, lengths = torch.randn(20, 10, 8), torch.rand(20, 10), torch.randint(0, 11, (20,))
    want, _ = ref(x, att, lengths)
    xd = x.to(DEVICE).requires_grad_(True)
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        got, last = fast(xd, att.to(DEVICE), lengths.to(DEVICE))
    (got.float().sum() + last.float().sum()).backward()
    assert (got.float().cpu() - want).abs().max() < 5e-2 and torch.isfinite(xd.grad).all()
