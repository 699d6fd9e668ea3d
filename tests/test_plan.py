"""The dispatch plan (dien_core/kernels/plan.py): one table of (device, dtype, backend, piece) to
implementation, its refusals, what models record of it, and DIEN on the reference plan against
DIEN on the fast plans, in outputs and gradients."""

import warnings

import pytest
import torch

from bench.models import MODEL_NAMES, build_model
from dien_core import ModelConfig, total_loss
from dien_core.kernels import cpp, plan, triton_loops
from dien_core.kernels.plan import PIECES, Target, resolve
from tests.helpers import VOCAB, needs_cpp, random_batch

F32, F64, BF16 = torch.float32, torch.float64, torch.bfloat16
# Each row: device, dtype, autocast, backend -> implementations in PIECES order
# (embedding, GRU, AIGRU, AGRU, AUGRU, aux_loss, serving_attention), with the C++ kernels built and triton importable.
TABLE = [
    ("cpu", F32, False, "auto", "cpp cpp cpp cpp cpp cpp cpp"),
    ("cpu", F64, False, "auto", "cpp cpp cpp cpp cpp cpp cpp"),
    ("cpu", BF16, False, "auto", "cpp cpp cpp cpp cpp torch torch"),  # bfloat16 weights: not the C++ auxiliary loss
    ("cpu", F32, True, "auto", "cpp cpp cpp cpp cpp torch torch"),  # the C++ auxiliary loss does not run under autocast
    ("cpu", F32, False, "reference", "reference reference reference reference reference reference reference"),
    ("cpu", F32, False, "torch", "torch torch torch torch torch torch torch"),
    ("cpu", F32, False, "native", "torch native native torch torch torch torch"),
    ("cpu", F32, False, "cpp", "cpp cpp cpp cpp cpp cpp cpp"),
    ("cuda", F32, False, "auto", "torch native native triton triton torch torch"),
    ("cuda", F32, True, "auto", "torch native native triton triton torch torch"),  # the loops run in the weights' float32
    ("cuda", F64, False, "auto", "torch native native torch torch torch torch"),
    ("cuda", F32, False, "triton", "torch triton triton triton triton torch torch"),
    ("cuda", F32, False, "native", "torch native native torch torch torch torch"),
    ("cuda", F32, False, "torch", "torch torch torch torch torch torch torch"),
    ("mps", F32, False, "auto", "torch native native torch torch torch torch"),
]


@pytest.fixture
def everything_available(monkeypatch):
    monkeypatch.setattr(cpp, "available", lambda: True)
    monkeypatch.setattr(triton_loops, "importable", lambda: True)
    monkeypatch.setattr(triton_loops, "interpreted", lambda: False)


@pytest.mark.parametrize("device, dtype, autocast, backend, want", TABLE)
def test_plan_table(everything_available, device, dtype, autocast, backend, want):
    got = resolve(backend, PIECES, Target(device, dtype, autocast))
    assert [implementation for _, implementation in got.choices] == want.split()
    # a note says why for every piece that runs something other than the backend's own name
    if backend != "auto":
        assert len(got.notes) == sum(implementation != backend for implementation in want.split())


@pytest.mark.parametrize(
    "backend, target, match",
    [
        ("cpp", Target("cuda"), "CPU tensors only"),
        ("cpp", Target("cpu", torch.float16), "float32, float64 or bfloat16"),
        ("cpp", Target("cpu", BF16), "auxiliary loss takes float32 or float64"),
        ("cpp", Target("cpu", autocast=True), "not under autocast"),
        ("cpp", Target("cpu", aux_activation="prelu"), "implements hidden layers of sigmoid or relu"),
        ("cpp", Target("cpu", aux_layers=False), "implements hidden layers"),
        ("triton", Target("cpu"), "CUDA tensors"),
        ("triton", Target("cuda", BF16), "float32 weights"),
        ("triton", Target("cuda", hidden_size=80), "up to 64"),
    ],
)
def test_a_named_form_that_cannot_run_is_refused_when_planned(everything_available, backend, target, match):
    with pytest.raises(ValueError, match=match):
        resolve(backend, PIECES, target)


def test_refusals_name_only_the_pieces_a_model_uses(everything_available):
    """DIN has no auxiliary loss, so ``cpp`` with a PReLU auxiliary MLP is a valid plan for it."""
    din = build_model("din", ModelConfig(backend="cpp", aux_activation="prelu"), VOCAB)
    assert din.plan.choices == (("embedding", "cpp"), ("serving_attention", "cpp"))
    with pytest.raises(ValueError, match="auxiliary loss implements"):
        build_model("dien-augru+aux", ModelConfig(backend="cpp", aux_activation="prelu"), VOCAB)


def test_without_the_cpp_build_auto_falls_back_and_says_so(monkeypatch):
    monkeypatch.setattr(cpp, "available", lambda: False)
    with pytest.warns(UserWarning, match="runs its torch form: the C\\+\\+ kernels could not be built"):
        fallback = resolve("auto", ("embedding", "AUGRU"), Target("cpu"))
    assert fallback.choices == (("embedding", "torch"), ("AUGRU", "torch"))
    assert all("could not be built" in note for note in fallback.notes) and len(fallback.notes) == 2
    assert "could not be built" in str(fallback)
    with pytest.raises(ValueError, match="could not be built"):
        resolve("cpp", ("AUGRU",), Target("cpu"))


def test_kernels_turned_off_on_purpose_fall_back_without_a_warning(monkeypatch):
    """``DIEN_CORE_CPP=0`` (the GPU script sets it): the plan's notes say why, and nothing warns."""
    monkeypatch.setenv("DIEN_CORE_CPP", "0")
    for other in ("DIEN_CORE_TRITON", "TRITON_INTERPRET"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setattr(cpp, "available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = resolve("auto", ("embedding", "AUGRU"), Target("cpu"))
    assert plan.choices == (("embedding", "torch"), ("AUGRU", "torch"))
    assert all("DIEN_CORE_CPP=0" in note for note in plan.notes) and len(plan.notes) == 2
    assert plan.switches == (("DIEN_CORE_CPP", "0"),) and plan.as_dict()["switches"] == {"DIEN_CORE_CPP": "0"}
    assert str(plan).endswith("[DIEN_CORE_CPP=0]")


def test_unknown_backends_and_the_old_fused_name():
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        ModelConfig(backend="tensorrt")
    with pytest.raises(ValueError, match="'fused' is now 'native'"):
        resolve("fused", PIECES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_records_its_plan_and_its_layers_follow_it(name):
    model = build_model(name, ModelConfig(backend="torch", use_aux_loss=True), VOCAB)
    pieces = dict(model.plan.choices)
    assert pieces["embedding"] == "torch" and set(pieces) <= set(PIECES)
    as_dict = model.plan.as_dict()
    assert as_dict["device"] == "cpu" and as_dict["dtype"] == "float32" and as_dict["pieces"] == pieces
    implementations = {m.implementation for m in model.modules() if hasattr(m, "implementation")}
    assert implementations == {"torch"}


def dien_loss_and_grads(backend: str, gru_type: str, dtype: torch.dtype):
    torch.manual_seed(0)
    config = ModelConfig(embedding_dim=3, attention_hidden=(6,), aux_hidden=(5,), mlp_hidden=(8,), gru_type=gru_type,
                         use_aux_loss=True, backend=backend)  # fmt: skip
    model = build_model(f"dien-{gru_type.lower()}+aux", config, VOCAB, dtype=dtype).train()
    batch = random_batch(B=7, T=6, lengths=[6, 0, 1, 3, 6, 2, 5], seed=3)
    output = model(batch)
    loss = total_loss(output, batch.label)
    loss.backward()
    return model.plan, output.logits.detach(), loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("gru_type", ["GRU", "AIGRU", "AGRU", "AUGRU"])
@pytest.mark.parametrize("backend", ["torch", "native", pytest.param("cpp", marks=needs_cpp)])
def test_dien_on_a_fast_plan_equals_dien_on_the_reference_plan(backend, gru_type):
    """The whole model in float64: logits, loss (the auxiliary one included) and every parameter's gradient."""
    ref_plan, ref_logits, ref_loss, ref_grads = dien_loss_and_grads("reference", gru_type, F64)
    fast_plan, logits, loss, grads = dien_loss_and_grads(backend, gru_type, F64)
    assert set(dict(ref_plan.choices).values()) == {"reference"} and backend in dict(fast_plan.choices).values()
    assert torch.allclose(logits, ref_logits, atol=1e-10) and torch.allclose(loss, ref_loss, atol=1e-10)
    assert grads.keys() == ref_grads.keys() and len(grads) > 15
    for name, grad in grads.items():
        assert torch.allclose(grad, ref_grads[name], atol=1e-9), name
    assert ref_grads["extractor.aux.mlp.out.weight"].abs().max() > 1e-4  # the auxiliary loss reached its own weights


def test_plan_module_is_the_one_place_that_reads_availability():
    """The layers hold their plan's choice; nothing in dien_core outside kernels/ decides a fallback,
    and only kernels/switches.py reads the environment."""
    import pathlib

    root = pathlib.Path(plan.__file__).parents[1]
    outside = [p for p in root.rglob("*.py") if "kernels" not in p.parts]
    calls = ("available()", "importable()", "interpreted()", "turned_off()")
    offenders = [p.name for p in outside if any(call in p.read_text() for call in calls)]
    assert offenders == []
    readers = sorted(p.name for p in root.rglob("*.py") if "os.environ" in p.read_text())
    assert readers == ["cpp.py", "switches.py"]  # cpp.py: torch's TORCH_EXTENSIONS_DIR, where it builds


def test_a_model_refuses_a_plan_made_for_another_backend_or_other_pieces():
    from dien_core import DIEN
    from dien_core.kernels.plan import plan_for

    config = ModelConfig(backend="torch", use_aux_loss=True)
    with pytest.raises(ValueError, match="made for backend 'reference'"):
        DIEN(config, VOCAB, plan_for(ModelConfig(backend="reference", use_aux_loss=True), DIEN.pieces(config)))
    with pytest.raises(ValueError, match="uses"):
        DIEN(config, VOCAB, plan_for(config, ("embedding", "GRU")))
    given = plan_for(config, DIEN.pieces(config))
    assert DIEN(config, VOCAB, given).plan is given


def test_total_loss_weighs_its_two_terms():
    """A data-parallel rank's shares of the rows and of the auxiliary pairs (bench/distributed/ddp.py)."""
    from dien_core import Output

    logits, label, aux = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([1.0, 0.0, 1.0]), torch.tensor(0.7)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, label)
    output = Output(logits, aux, 0.5)
    assert torch.allclose(total_loss(output, label), bce + 0.5 * aux)
    assert torch.allclose(total_loss(output, label, 0.25, torch.tensor(0.4)), 0.25 * bce + 0.5 * 0.4 * aux)


@needs_cpp
def test_every_cpp_piece_refuses_tensors_off_the_cpu():
    """One check (``cpp.planned_kernels``) for each layer the plan gave the C++ kernels."""
    model = build_model("dien-augru+aux", ModelConfig(backend="cpp", use_aux_loss=True), VOCAB).to("meta")
    with pytest.raises(ValueError, match="embedding was planned for the C\\+\\+ kernels \\(CPU\\), got meta"):
        model(random_batch(B=2, T=3).to("meta"))
    with pytest.raises(ValueError, match="AUGRU was planned for the C\\+\\+ kernels"):
        model.evolution.gru.loops(torch.device("meta"))
    states = torch.zeros(2, 3, 36, device="meta")
    with pytest.raises(ValueError, match="auxiliary loss was planned for the C\\+\\+ kernels"):
        model.extractor.aux(states, states, states, torch.ones(2, 3, dtype=torch.bool, device="meta"))
    assert cpp.planned_kernels(torch.device("cpu"), "GRU") is cpp.kernels()
