"""Recurrent layers against torch.nn.GRU, float64 per-step references and gradcheck."""

import pytest
import torch

from dien_core.kernels import cpp
from dien_core.recurrent import AGRU, AIGRU, AUGRU, GRU
from tests.helpers import needs_cpp

# Implementations every layer has (kernels/plan.py); "native" (torch's GRU kernel) is GRU's and AIGRU's only.
BACKENDS = ["reference", "torch", pytest.param("cpp", marks=needs_cpp)]
FAST_BACKENDS = ["torch", pytest.param("cpp", marks=needs_cpp)]


@needs_cpp
def test_cpp_loops_build():
    assert cpp.available(), "the C++ recurrence loops failed to build (see the warning above)"


@needs_cpp
def test_a_lock_left_by_a_killed_process_does_not_block_loading():
    """A run killed mid-load (the killed-run tests do that) must not hang every later process."""
    import subprocess
    import sys

    assert cpp.available()
    lock = cpp.build_directory() / "lock"
    lock.touch()
    try:
        code = "from dien_core.kernels import cpp; print(cpp.available())"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
        assert done.stdout.strip() == "True"
    finally:
        lock.unlink(missing_ok=True)


def copy_from_nn_gru(layer, gru: torch.nn.GRU) -> None:
    with torch.no_grad():
        layer.weight_ih.copy_(gru.weight_ih_l0)
        layer.weight_hh.copy_(gru.weight_hh_l0)
        layer.bias_ih.copy_(gru.bias_ih_l0)
        layer.bias_hh.copy_(gru.bias_hh_l0)


def nn_gru_per_row(gru: torch.nn.GRU, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.GRU on each row's valid prefix alone: no packing, no padding involved."""
    B, T, _ = x.shape
    H = gru.hidden_size
    out, last = torch.zeros(B, T, H), torch.zeros(B, H)
    for b in range(B):
        L = int(lengths[b])
        if L:
            o, h = gru(x[b : b + 1, :L])
            out[b, :L], last[b] = o[0], h[0, 0]
    return out, last


@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_and_augru_with_full_attention_equal_nn_gru(backend):
    torch.manual_seed(0)
    B, T, I, H = 9, 12, 5, 7
    gru = torch.nn.GRU(I, H, batch_first=True)
    x = torch.randn(B, T, I)
    lengths = torch.tensor([0, 1, 12, 5, 7, 12, 3, 2, 11])
    want_out, want_last = nn_gru_per_row(gru, x, lengths)
    ones, zeros = torch.ones(B, T), torch.zeros(B, T)
    # The paper's AUGRU is a GRU at a = 1; the authors' "original" form is one at a = 0.
    cases = (
        (GRU(I, H, implementation=backend), ones),
        (AUGRU(I, H, "paper", implementation=backend), ones),
        (AUGRU(I, H, "original", implementation=backend), zeros),
    )
    for layer, att in cases:
        copy_from_nn_gru(layer, gru)
        out, last = layer(x, att, lengths)
        assert (out - want_out).abs().max() <= 1e-5, type(layer).__name__
        assert (last - want_last).abs().max() <= 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("convention", ["paper", "original"])
def test_augru_keeps_state_where_attention_says_so(backend, convention):
    torch.manual_seed(1)
    B, T, I, H = 4, 6, 3, 5
    layer = AUGRU(I, H, convention, implementation=backend)
    x, lengths = torch.randn(B, T, I), torch.tensor([6, 3, 1, 0])
    zero, one = torch.zeros(B, T), torch.ones(B, T)
    if convention == "paper":
        out, last = layer(x, zero, lengths)  # a = 0: u = 0, the zero state is kept
        assert out.abs().max() == 0 and last.abs().max() == 0
    else:
        # The authors' form: a = 1 keeps z' = 0 and moves fully to n; a = 0 is a plain GRU step.
        gru = GRU(I, H, implementation=backend)
        gru.load_state_dict(layer.state_dict())
        assert torch.allclose(layer(x, zero, lengths)[1], gru(x, None, lengths)[1], atol=1e-6)
        assert not torch.allclose(layer(x, one, lengths)[1], gru(x, None, lengths)[1], atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "make", [lambda: GRU(3, 4), lambda: AIGRU(3, 4), lambda: AGRU(3, 4), lambda: AUGRU(3, 4), lambda: AUGRU(3, 4, "original")]
)
def test_gradcheck_float64(make, backend):
    torch.manual_seed(2)
    layer = make().double()
    layer.implementation = backend
    x = torch.randn(3, 5, 3, dtype=torch.float64, requires_grad=True)
    att = torch.rand(3, 5, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2, 0])
    names = [n for n, _ in layer.named_parameters()]

    def f(x, att, *weights):
        return torch.func.functional_call(layer, dict(zip(names, weights)), (x, att, lengths))

    weights = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    assert torch.autograd.gradcheck(f, (x, att, *weights), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("cls", [GRU, AIGRU, AGRU, AUGRU])
@pytest.mark.parametrize("convention", ["paper", "original"])
def test_fused_equals_reference_values_and_gradients(cls, convention, backend):
    torch.manual_seed(3)
    B, T, I, H = 7, 9, 6, 5
    kwargs = {"convention": convention} if cls is AUGRU else {}
    ref, fused = cls(I, H, implementation="reference", **kwargs), cls(I, H, implementation=backend, **kwargs)
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, I, requires_grad=True)
    att = torch.rand(B, T, requires_grad=True)
    lengths = torch.tensor([0, 9, 4, 1, 9, 2, 6])
    results = []
    for layer in (ref, fused):
        out, last = layer(x, att, lengths)
        loss = (out * torch.linspace(-1, 1, H)).sum() + last.pow(2).sum()
        grads = torch.autograd.grad(loss, [x, att, *layer.parameters()], allow_unused=True)
        results.append((out, last, grads))
    (o1, l1, g1), (o2, l2, g2) = results
    assert torch.allclose(o1, o2, atol=1e-6) and torch.allclose(l1, l2, atol=1e-6)
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("cls", [GRU, AGRU, AUGRU])
def test_fast_path_without_grad_equals_reference(cls, backend):
    """Serving (no grad: the loop keeps nothing for a backward) at a width that is no multiple of
    the vector length, with gates driven into saturation, must still equal the reference."""
    torch.manual_seed(4)
    B, T, I, H = 33, 11, 37, 37
    ref, fast = cls(I, H, implementation="reference"), cls(I, H, implementation=backend)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, I) * 4  # pre-activations up to about +-30
    att, lengths = torch.rand(B, T), torch.randint(0, T + 1, (B,))
    with torch.no_grad():
        want_out, want_last = ref(x, att, lengths)
        out, last = fast(x, att, lengths)
    assert (out - want_out).abs().max() <= 1e-5 and (last - want_last).abs().max() <= 1e-5


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_fused_bfloat16_close_to_float32_reference(backend):
    torch.manual_seed(4)
    ref = AUGRU(8, 8, implementation="reference")
    fused = AUGRU(8, 8, implementation=backend).to(torch.bfloat16)
    fused.load_state_dict({k: v.to(torch.bfloat16) for k, v in ref.state_dict().items()})
    x, att, lengths = torch.randn(4, 10, 8), torch.rand(4, 10), torch.tensor([10, 3, 0, 7])
    out_ref, _ = ref(x, att, lengths)
    out_bf16, _ = fused(x.bfloat16(), att.bfloat16(), lengths)
    assert (out_bf16.float() - out_ref).abs().max() < 5e-2


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_does_not_change_a_row(backend):
    torch.manual_seed(5)
    layer = AUGRU(3, 4, implementation=backend)
    x, att, lengths = torch.randn(2, 4, 3), torch.rand(2, 4), torch.tensor([4, 2])
    out, last = layer(x, att, lengths)
    out_long, last_long = layer(torch.cat([x, torch.randn(2, 5, 3)], 1), torch.cat([att, torch.rand(2, 5)], 1), lengths)
    assert torch.allclose(last, last_long) and torch.allclose(out, out_long[:, :4]) and out_long[:, 4:].abs().max() == 0
    assert out[1, 2:].abs().max() == 0


def test_empty_sequence_and_bad_sizes():
    layer = AUGRU(3, 4)
    out, last = layer(torch.zeros(2, 0, 3), torch.zeros(2, 0), torch.zeros(2, dtype=torch.long))
    assert out.shape == (2, 0, 4) and last.shape == (2, 4) and last.abs().max() == 0
    with pytest.raises(ValueError, match="positive"):
        GRU(0, 4)
    with pytest.raises(ValueError, match="paper, original"):
        AUGRU(3, 4, convention="tf")
    with pytest.raises(ValueError, match="needs attention"):
        AGRU(3, 4)(torch.zeros(1, 2, 3), None, torch.tensor([2]))


def test_parameter_layout_matches_nn_gru():
    for layer, G in ((GRU(3, 4), 3), (AUGRU(3, 4), 3), (AGRU(3, 4), 2), (AIGRU(3, 4), 3)):
        shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
        assert shapes == {"weight_ih": (G * 4, 3), "weight_hh": (G * 4, 4), "bias_ih": (G * 4,), "bias_hh": (G * 4,)}


@needs_cpp
@pytest.mark.parametrize("cls", [GRU, AIGRU, AGRU, AUGRU])
def test_cpp_layers_run_the_cpp_loops(cls, monkeypatch):
    """A layer planned for "cpp" runs its forward loop and backward in the C++ module."""
    compiled = cpp.kernels()
    calls = []

    class Spy:
        def forward_loop(self, *args):
            calls.append("forward")
            return compiled.forward_loop(*args)

        def backward(self, *args):
            calls.append("backward")
            return compiled.backward(*args)

    monkeypatch.setattr(cpp, "kernels", lambda: Spy())
    x, att = torch.randn(2, 3, 4, requires_grad=True), torch.rand(2, 3)
    out, _ = cls(4, 4, implementation="cpp")(x, att, torch.tensor([3, 1]))
    out.sum().backward()
    assert calls == ["forward", "backward"]


@pytest.mark.parametrize("cls", [GRU, AIGRU])
def test_native_gru_kernel_equals_reference(cls):
    """GRU and AIGRU on torch's own GRU kernel ("native"), values and gradients, against the per-step loop."""
    torch.manual_seed(8)
    ref, native = cls(4, 5, implementation="reference"), cls(4, 5, implementation="native")
    native.load_state_dict(ref.state_dict())
    x, att, lengths = torch.randn(4, 6, 4, requires_grad=True), torch.rand(4, 6), torch.tensor([6, 0, 2, 5])
    outs = []
    for layer in (ref, native):
        out, last = layer(x, att, lengths)
        (out.square().sum() + last.sum()).backward()
        outs.append((out, last, x.grad.clone(), layer.weight_hh.grad.clone()))
        x.grad = None
    for want, got in zip(*outs):
        assert torch.allclose(want, got, atol=1e-5)


def test_a_layer_refuses_a_form_it_does_not_have():
    with pytest.raises(ValueError, match="AUGRU has no 'native' form"):
        AUGRU(3, 4, implementation="native")


@pytest.mark.parametrize("kind", ["GRU", "AIGRU"])
def test_fused_function_gru_modes_equal_reference(kind):
    """``fused_recurrence``'s GRU and AIGRU forms (the "torch" implementation's), called directly, in float64."""
    from dien_core.batch import step_mask
    from dien_core.kernels.fused import fused_recurrence
    from dien_core.reference import reference_recurrence

    torch.manual_seed(6)
    layer = GRU(4, 3).double()
    weights = (layer.weight_ih, layer.weight_hh, layer.bias_ih, layer.bias_hh)
    x, att, lengths = torch.randn(5, 6, 4, dtype=torch.float64), torch.rand(5, 6, dtype=torch.float64), torch.tensor([6, 0, 3, 1, 5])
    want = reference_recurrence(kind, x, att, lengths, weights)
    got = fused_recurrence(kind, x, att, step_mask(lengths, 6), weights)
    assert torch.allclose(want[0], got[0]) and torch.allclose(want[1], got[1])


@pytest.mark.parametrize("cls", [AGRU, AUGRU, AIGRU, GRU])
def test_bfloat16_autocast_runs_and_stays_close(cls):
    torch.manual_seed(7)
    layer = cls(8, 8)
    x = torch.randn(4, 10, 8, requires_grad=True)
    att, lengths = torch.rand(4, 10), torch.tensor([10, 3, 0, 7])
    want, _ = layer(x, att, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, last = layer(x, att, lengths)
    (got.float().sum() + last.float().sum()).backward()
    assert (got.float() - want).abs().max() < 5e-2 and x.grad is not None and torch.isfinite(x.grad).all()
