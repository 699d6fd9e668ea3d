"""The C++ kernels outside the recurrence: the fused auxiliary loss against the literal concatenation
(values, gradients, dispatch), and the embedding lookup against nn.Embedding."""

import os

import pytest
import torch

from dien_core import AuxiliaryLoss
from dien_core.kernels import cpp
from dien_core.kernels.aux_loss import FusedAuxiliaryLoss
from tests.helpers import assert_loops_match_python, loop_inputs, needs_cpp


def inputs(B: int, T: int, H: int, E: int, dtype: torch.dtype, seed: int = 0, time_major: bool = False):
    """``states, clicked, negative (B, T, .)`` (``time_major``: views of ``(T, B, .)`` tensors, as the
    model passes them), ``mask (B, T)``."""
    g = torch.Generator().manual_seed(seed)
    if time_major:
        tensors = [torch.randn(T, B, D, generator=g, dtype=dtype).requires_grad_().transpose(0, 1) for D in (H, E, E)]
    else:
        tensors = [torch.randn(B, T, D, generator=g, dtype=dtype).requires_grad_() for D in (H, E, E)]
    lengths = torch.randint(0, T + 1, (B,), generator=g)
    lengths[:2] = torch.tensor([0, T])  # an empty row and a full one
    return (*tensors, torch.arange(T)[None, :] < lengths[:, None])


def loss_and_grads(aux: AuxiliaryLoss, forward, args):
    *tensors, mask = args
    loss = forward(*tensors, mask)
    return [loss, *torch.autograd.grad(loss, [*tensors, *aux.parameters()])]


@needs_cpp
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("time_major", [True, False])
@pytest.mark.parametrize("hidden", [(100, 50), (7,), (9, 6, 4)])
def test_kernel_equals_concatenation_values_and_gradients(hidden, time_major, activation):
    """Several tiles (1,160 pairs) split between threads, padded pairs, one to three hidden layers,
    sigmoid (the authors') or ReLU hidden layers, inputs laid out time-major (read in place) or
    batch-major (copied first)."""
    torch.manual_seed(0)
    aux = AuxiliaryLoss(6, 5, hidden, implementation="cpp", activation=activation)
    args = inputs(B=40, T=30, H=6, E=5, dtype=torch.float32, time_major=time_major)
    got = loss_and_grads(aux, aux.forward, args)
    want = loss_and_grads(aux, aux.reference_forward, args)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4), (a - b).abs().max()


@needs_cpp
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_kernel_gradcheck_float64_and_thread_count(activation):
    torch.manual_seed(1)
    aux = AuxiliaryLoss(4, 3, (5, 2), implementation="cpp", activation=activation).double()
    states, pos, neg, mask = inputs(B=5, T=6, H=4, E=3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s, p, n: aux(s, p, n, mask), (states, pos, neg))
    weights = [p.detach().clone().requires_grad_() for p in aux.parameters()]
    layers = [*aux.mlp.linears, aux.mlp.out]
    n = len(layers)

    def flat(*ws):  # the same loss as a function of the weights, for gradcheck
        rows = [x.detach().transpose(0, 1).reshape(-1, x.shape[-1]) for x in (states, pos, neg)]  # time-major
        valid = mask.t()[1:].reshape(-1).double()
        ordered = [ws[2 * i] for i in range(n)] + [ws[2 * i + 1] for i in range(n)]  # parameters() alternates weight, bias
        return FusedAuxiliaryLoss.apply(True, activation == "relu", states.shape[0], *rows, valid / valid.sum(), *ordered)

    assert torch.autograd.gradcheck(flat, tuple(weights))
    # thread count: 1,160 pairs are three 512-pair tiles, so two threads share the work
    big = inputs(B=40, T=30, H=4, E=3, dtype=torch.float64)
    threads = torch.get_num_threads()
    try:
        results = []
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            results.append(loss_and_grads(aux, aux.forward, big))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results):
        assert torch.allclose(one, two, atol=1e-12, rtol=1e-10)


@needs_cpp
def test_kernel_without_grad_and_padding_garbage(monkeypatch):
    """Under no_grad (inputs and weights still require grad) the kernel is asked for no gradients."""
    torch.manual_seed(2)
    aux = AuxiliaryLoss(6, 5, (8, 4), implementation="cpp")
    states, pos, neg, mask = inputs(B=9, T=7, H=6, E=5, dtype=torch.float32)
    compiled, asked = cpp.kernels(), []

    class Spy:
        def aux_loss(self, *args):
            asked.append(args[-1])  # with_grad
            return compiled.aux_loss(*args)

    monkeypatch.setattr(cpp, "kernels", lambda: Spy())
    with torch.no_grad():
        got = aux(states, pos, neg, mask)
    assert asked == [False]
    with torch.no_grad():
        noisy = [x.clone() for x in (states, pos, neg)]
        for x in noisy:
            x[~mask] = 1e4  # padded steps: no weight, no NaN
        assert torch.allclose(got, aux(*noisy, mask))
    assert torch.allclose(got, aux.reference_forward(states, pos, neg, mask), atol=1e-6)
    assert aux(states, pos, neg, torch.zeros_like(mask)) == 0


@needs_cpp
def test_kernel_reads_time_major_inputs_in_place(monkeypatch):
    """The model's states and behaviours are time-major in memory: the kernel gets them without a copy."""
    aux = AuxiliaryLoss(6, 5, (8, 4), implementation="cpp")
    states, pos, neg, mask = inputs(B=4, T=5, H=6, E=5, dtype=torch.float32, time_major=True)
    compiled, seen = cpp.kernels(), []

    class Spy:
        def aux_loss(self, *args):
            seen.extend(x.data_ptr() for x in args[:3])  # h, pos, neg
            return compiled.aux_loss(*args)

    monkeypatch.setattr(cpp, "kernels", lambda: Spy())
    aux(states, pos, neg, mask)
    assert seen == [x.data_ptr() for x in (states, pos, neg)]


@needs_cpp
def test_cpp_aux_loss_runs_the_kernel_and_the_others_do_not(monkeypatch):
    torch.manual_seed(3)
    forms = {name: AuxiliaryLoss(6, 5, (8, 4), implementation=name) for name in ("cpp", "torch", "reference")}
    for aux in forms.values():
        aux.load_state_dict(forms["cpp"].state_dict())
    args = inputs(B=4, T=5, H=6, E=5, dtype=torch.float32)
    calls = []
    compiled = cpp.kernels()

    class Spy:
        def aux_loss(self, *a):
            calls.append("aux_loss")
            return compiled.aux_loss(*a)

    monkeypatch.setattr(cpp, "kernels", lambda: Spy())
    losses = {name: aux(*args) for name, aux in forms.items()}
    assert calls == ["aux_loss"]  # the C++ form only
    for name in ("cpp", "torch"):
        assert torch.allclose(losses[name], losses["reference"], atol=1e-6)


def test_aux_loss_forms_and_refusals():
    """The torch form (split first layer) equals the literal concatenation for an activation the C++
    kernel lacks; a C++ form it cannot compute, or an unknown one, is refused when built."""
    torch.manual_seed(4)
    prelu = AuxiliaryLoss(6, 5, (8, 4), implementation="torch", activation="prelu")
    args = inputs(B=4, T=5, H=6, E=5, dtype=torch.float32)
    assert torch.allclose(prelu(*args), prelu.reference_forward(*args), atol=1e-6) and prelu(*args) > 0.1
    with pytest.raises(ValueError, match="C\\+\\+ auxiliary loss implements"):
        AuxiliaryLoss(6, 5, (8, 4), implementation="cpp", activation="prelu")
    with pytest.raises(ValueError, match="no 'tensorrt' form"):
        AuxiliaryLoss(6, 5, (8, 4), implementation="tensorrt")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_kernel", [pytest.param(True, marks=needs_cpp), False])
def test_table_lookup_equals_nn_embedding_with_padding(dtype, with_kernel):
    """Two groups, one reading two tables side by side and one reading the first again; repeated ids
    (accumulated), id 0 (zeros, no gradient), enough ids for the kernel to split the tables between
    threads, an incoming gradient laid out time-major (read in place by the kernel)."""
    from dien_core.kernels.lookup import TableLookup

    torch.manual_seed(5)
    tables = [torch.nn.Embedding(V, 3, padding_idx=0).to(dtype) for V in (50, 7)]
    with torch.no_grad():
        for table in tables:
            table.weight[0] = 0
    wide = [torch.randint(0, V, (100, 90)) for V in (50, 7)]
    wide[0][0] = 7  # one id many times
    narrow = torch.randint(0, 50, (1, 40))
    got = TableLookup.apply(((0, 1), (0,)), with_kernel, tables[0].weight, tables[1].weight, *wide, narrow)
    want = [torch.cat([tables[0](wide[0]), tables[1](wide[1])], dim=-1), tables[0](narrow)]
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    scale = [torch.randn(90, 100, 6, dtype=dtype).transpose(0, 1), torch.randn(1, 40, 3, dtype=dtype)]

    def grads(outputs):
        loss = sum((out * w).sum() for out, w in zip(outputs, scale))
        return torch.autograd.grad(loss, [table.weight for table in tables])

    for a, b in zip(grads(got), grads(want)):
        assert a[0].abs().max() == 0 and b[1:].abs().max() > 0
        assert torch.allclose(a, b, atol=1e-5 if dtype == torch.float32 else 1e-12)
    with torch.no_grad():
        tables[0].weight[0] = 1.0  # even a padding row that is not zero reads as zeros
    (out,) = TableLookup.apply(((0,),), with_kernel, tables[0].weight, torch.tensor([[0, 3]]))
    assert out[0, 0].abs().max() == 0 and torch.equal(out[0, 1], tables[0].weight[3])
    for bad in (50, -1):
        with pytest.raises((RuntimeError, IndexError)):
            TableLookup.apply(((0,),), with_kernel, tables[0].weight, torch.tensor([[3, bad]]))


@needs_cpp
@pytest.mark.slow
def test_portable_build_when_the_native_one_fails(tmp_path):
    """A compiler that rejects the native flags (Apple clang has no -fopenmp) gets the portable build,
    which must compile and compute the same; the failure is remembered for later processes."""
    import subprocess
    import sys

    code = """
import torch
import dien_core.kernels.cpp as c
from dien_core.kernels.fused import PythonLoops
c.BUILDS = (("native", ["-O3", "-fno-such-flag"], []),) + c.BUILDS[1:]
k = c.kernels()
assert k is not None
assert (c.build_directory(["-O3", "-fno-such-flag"]) / "failed").is_file()
gi, c0, w, bi, bh = torch.randn(4, 3, 12), torch.rand(4, 3, 1), torch.randn(12, 4), torch.randn(12), torch.randn(12)
got, want = k.forward_loop(gi, c0, -c0, w, bi, bh, True), PythonLoops.forward_loop(gi, c0, -c0, w, bi, bh, True)
assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(got, want))
print("portable ok")
"""
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0 and "portable ok" in done.stdout, done.stderr[-3000:]


@needs_cpp
@pytest.mark.parametrize("G", [3, 2])
@pytest.mark.parametrize("H", [36, 12, 17])
@pytest.mark.parametrize("B", [600, 35])
@pytest.mark.parametrize("threads", [1, 2])
def test_recurrence_loops_equal_float64_python_loops(G, H, B, threads):
    """The C++ loops on every output of the loop contract, the bias sums (per-thread, then
    added) included, at a batch that splits between the threads; B = 35 leaves each thread a
    number of rows the forward's product takes in blocks of 6 plus a tail, and H = 17 gate
    blocks that are no multiple of its 16-wide tiles."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert_loops_match_python(cpp.kernels(), G, H, B=B)
    finally:
        torch.set_num_threads(before)


@needs_cpp
def test_forward_loop_reads_a_broadcast_or_strided_input_projection_in_place():
    """The serving path hands the forward one request's projection expanded over its K candidates
    (stride 0), or gathered rows transposed to time-major: each gives what its contiguous copy gives."""
    gi, c0, c1, w_hh, b_ih, b_hh = (t.float() if t is not None else None for t in loop_inputs(3, 9, 13, 12, seed=5))
    k = cpp.kernels()
    for strided in (gi[:, :1].expand(9, 13, gi.shape[2]), gi.transpose(0, 1).contiguous().transpose(0, 1)):
        assert not strided.is_contiguous()
        got = k.forward_loop(strided, c0, c1, w_hh, b_ih, b_hh, False)[0]
        torch.testing.assert_close(got, k.forward_loop(strided.contiguous(), c0, c1, w_hh, b_ih, b_hh, False)[0], atol=0, rtol=0)


@needs_cpp
def test_forward_loop_refuses_rows_it_cannot_read():
    gi, c0, c1, w_hh, b_ih, b_hh = (t.float() if t is not None else None for t in loop_inputs(3, 4, 5, 6, seed=5))
    k = cpp.kernels()
    stacked = gi[:, :2]  # two requests' rows
    for rows, message in [
        (torch.tensor([0, 1, 2, 0, 1]), r"rows out of 0..R-1"),
        (torch.tensor([0, 1, -1, 0, 1]), r"rows out of 0..R-1"),
        (torch.zeros(5, dtype=torch.int32), r"rows \(B,\) int64"),
        (torch.zeros(4, dtype=torch.long), r"c0 \(T, B, 1\) for B rows"),
    ]:
        with pytest.raises(RuntimeError, match=message):
            k.forward_loop(stacked, c0, c1, w_hh, b_ih, b_hh, False, rows)
    rows = torch.tensor([0, 1, 1, 0, 1])
    with pytest.raises(RuntimeError, match=r"c1 \(T, B, 1\) for B rows"):  # a per-request c1 where rows need one per row
        k.forward_loop(stacked, c0, c1[:, :2], w_hh, b_ih, b_hh, False, rows)
