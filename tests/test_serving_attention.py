"""The serving path's C++ attention scores (``dien_core/kernels/attention.py``) against the literal
concatenation of ``AttentionUnit.reference_scores`` in float64, on tiles of every shape, at 1 and 2
threads; and the plan's ``serving_attention`` deciding which form the models' serving path runs."""

import dataclasses

import pytest
import torch

from bench.models import build_model
from dien_core import AttentionUnit, ModelConfig
from dien_core.kernels import cpp
from dien_core.kernels.attention import serving_scores
from dien_core.kernels.plan import Target, resolve
from dien_core.serving import ServingModel
from dien_core.serving import parts as P
from tests.helpers import VOCAB, needs_cpp
from tests.test_serving import SMALL, batched, shapes, trained_like

# (R requests, T steps, N candidates): one tile, several tiles with a partial last one (512 rows
# per tile), more steps than a tile holds (one candidate per tile), one step, no step.
SHAPES = [(1, 100, 100), (3, 7, 200), (2, 1, 3), (1, 0, 4), (2, 600, 3)]


def unit_and_inputs(hidden, activation, R, T, N, seed=0):
    torch.manual_seed(seed)
    unit = AttentionUnit(5, hidden, activation, "softmax").double()
    with torch.no_grad():  # biases off zero, so that a dropped bias would show
        for p in unit.parameters():
            p.add_(0.3 * torch.randn_like(p))
    keys, query = torch.randn(R, T, 5, dtype=torch.float64), torch.randn(N, 5, dtype=torch.float64)
    owner = torch.sort(torch.randint(0, R, (N,))).values
    return unit, keys, query, owner


@needs_cpp
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("hidden, activation", [((80, 40), "sigmoid"), ((7,), "relu"), ((), "sigmoid"), ((6, 4, 3), "relu")])
@pytest.mark.parametrize("R, T, N", SHAPES)
def test_kernel_equals_the_literal_concatenation(R, T, N, hidden, activation, threads):
    unit, keys, query, owner = unit_and_inputs(hidden, activation, R, T, N)
    mask = torch.ones(N, T, dtype=torch.bool)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            got = serving_scores(unit, keys, P.attention_keys(unit, keys), query, owner)
    finally:
        torch.set_num_threads(before)
    want = unit.reference_scores(query, keys.index_select(0, owner), mask).detach()
    assert got.shape == (N, T)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    if T > 1:
        assert want.std() > 1e-2  # the scores differ by step and candidate: equality was not trivial


@needs_cpp
@pytest.mark.parametrize("normalization", ["sigmoid", "softmax"])
def test_candidate_attention_weights_on_every_form_equal_the_unit(normalization):
    """Normalised weights over a mask with padded steps and an empty row, several requests."""
    unit, keys, query, owner = unit_and_inputs((8, 4), "sigmoid", 3, 9, 11, seed=1)
    unit.normalization = normalization
    lengths = torch.tensor([9, 0, 4])
    mask = torch.arange(9)[None, :] < lengths[:, None]
    key_part = P.attention_keys(unit, keys)
    want = unit(query, keys.index_select(0, owner), mask.index_select(0, owner)).detach()
    for implementation in ("cpp", "torch", "reference"):
        with torch.inference_mode():
            got = P.candidate_attention(unit, keys, key_part, query, owner, mask, implementation)
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


@needs_cpp
@pytest.mark.parametrize("name", ["din", "gru-att", "dien-augru", "dien-gru"])
def test_the_plan_decides_which_form_serving_runs(name, monkeypatch):
    """On ``auto`` the serving path calls the kernel (and still equals the batched rows); with Dice
    hidden layers, which the kernel lacks, the plan says torch and the kernel is not called; the
    unrolled loops (what ``torch.export`` traces) never call it."""
    calls = []
    compiled = cpp.kernels()

    class Spy:
        def __getattr__(self, attr):
            if attr == "attention_scores":
                calls.append(attr)
            return getattr(compiled, attr)

    monkeypatch.setattr(cpp, "kernels", lambda: Spy())
    request = shapes()[5]  # T = 6, K = 4
    model = trained_like(name)
    assert model.plan["serving_attention"] == "cpp"
    for loops, want_calls in (("planned", 1), ("unrolled", 0)):
        calls.clear()
        got = ServingModel(model, loops).score_request(request)
        assert len(calls) == want_calls
        torch.testing.assert_close(got, batched(model, request), atol=1e-5, rtol=0)
    dice = trained_like(name, dataclasses.replace(SMALL, attention_activation="dice"))
    assert dice.plan["serving_attention"] == "torch" and "sigmoid or relu" in str(dice.plan)
    calls.clear()
    ServingModel(dice).score_request(request)
    assert calls == []


def test_a_named_backend_does_not_refuse_a_model_for_the_serving_attention():
    """Training never runs the serving attention: where ``cpp`` cannot take it (PReLU or Dice hidden
    layers, bfloat16, autocast) the model still builds, its serving path runs the torch form, and
    the plan's notes say why."""
    for config in (ModelConfig(backend="cpp", attention_activation="prelu"), ModelConfig(backend="cpp", attention_activation="dice")):
        plan = build_model("din", config, VOCAB).plan
        assert plan["serving_attention"] == "torch" and "sigmoid or relu" in str(plan)
    for target in (Target("cpu", torch.bfloat16), Target("cpu", autocast=True)):
        plan = resolve("cpp", ("embedding", "serving_attention"), target)
        assert plan["serving_attention"] == "torch" and "not bfloat16 or under autocast" in str(plan)
    plan = build_model("din", ModelConfig(backend="native"), VOCAB).plan
    assert plan["serving_attention"] == "torch" and "serving_attention has no native form" in str(plan)


@needs_cpp
def test_the_kernel_refuses_what_it_cannot_compute():
    """Called past the plan (a model built for something else), the kernel's wrapper raises instead
    of computing another MLP; an unknown form and a candidate of no request raise too."""
    unit, keys, query, owner = unit_and_inputs((6,), "prelu", 2, 4, 3)
    key_part = P.attention_keys(unit, keys)
    with pytest.raises(ValueError, match="hidden layers of sigmoid or relu"):
        serving_scores(unit, keys, key_part, query, owner)
    unit, keys, query, owner = unit_and_inputs((6,), "sigmoid", 2, 4, 3)
    key_part = P.attention_keys(unit, keys)
    with pytest.raises(ValueError, match="float32 or float64"):
        serving_scores(unit.half(), keys.half(), key_part.half(), query.half(), owner)
    with pytest.raises(ValueError, match="serving attention was planned for the C\\+\\+ kernels \\(CPU\\), got meta"):
        serving_scores(unit, keys.to("meta"), key_part.to("meta"), query.to("meta"), owner)
    mask = torch.ones(2, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="unknown serving attention form 'triton'"):
        P.candidate_attention(unit, keys, key_part, query, owner, mask, "triton")
    with pytest.raises(RuntimeError, match="owner out of 0..R-1"):
        serving_scores(unit.double(), keys, key_part, query, torch.tensor([0, 1, 2]))
