"""The serving path (dien_core.serving): the history's work once per request, equal to the K rows
through the training model in eval mode, for every model, T and K, both loops."""

import dataclasses

import pytest
import torch

from bench.models import MODEL_NAMES, build_model
from bench.serving.workload import random_requests
from dien_core import ModelConfig
from dien_core.serving import Request, ServingModel, stack
from tests.helpers import VOCAB, needs_cpp

SMALL = ModelConfig(embedding_dim=4, attention_hidden=(8, 4), aux_hidden=(8, 4), mlp_hidden=(16, 8))
TOL = 1e-5


def trained_like(name: str, config: ModelConfig = SMALL, seed: int = 0) -> torch.nn.Module:
    """A model in eval mode whose parameters and running statistics are moved off their initial
    values, so that logits differ by candidate and by history (an untrained head barely does)."""
    torch.manual_seed(seed)
    model = build_model(name, config, VOCAB)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
        for key, buffer in model.named_buffers():
            if key.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=g))
            elif key.endswith("running_mean"):
                buffer.copy_(0.2 * torch.randn(buffer.shape, generator=g))
        for table in model.modules():  # padding rows stay zero, as training keeps them
            if isinstance(table, torch.nn.Embedding) and table.padding_idx == 0:
                table.weight[0].zero_()
    return model.eval()


def batched(model: torch.nn.Module, request: Request) -> torch.Tensor:
    with torch.inference_mode():
        return model(request.to_batch()).logits


def shapes() -> list[Request]:
    """Requests of T = 0, 1, 6 with lengths 0, 1, partial and full, and K = 1 and 4."""
    out = []
    for i, (T, K, length) in enumerate([(0, 1, 0), (0, 4, 0), (1, 1, 1), (1, 4, 0), (6, 1, 6), (6, 4, 6), (6, 4, 1), (6, 4, 0), (6, 3, 4)]):
        r = random_requests(1, K, T, seed=100 + i, vocab=VOCAB)[0]
        keep = torch.arange(T) < length
        out.append(dataclasses.replace(r, hist_item=r.hist_item * keep, hist_cate=r.hist_cate * keep, length=torch.tensor(length)))
    return out


@pytest.mark.parametrize("loops", ["planned", "unrolled"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shared_path_equals_the_batched_rows(name, loops):
    model = trained_like(name)
    serving = ServingModel(model, loops)
    spread = []
    for request in shapes():
        want, got = batched(model, request), serving.score_request(request)
        assert got.shape == (request.candidates,)
        torch.testing.assert_close(got, want, atol=TOL, rtol=0)
        spread.append(float(want.std()) if request.candidates > 1 else 0.0)
    assert max(spread) > 1e-2  # the candidates' logits differ: equal outputs were not trivially equal


@pytest.mark.parametrize("name", ["din", "gru-att", "bst", "dien-gru", "dien-aigru", "dien-agru", "dien-augru"])
def test_the_history_changes_the_scores(name):
    """What the shared path takes from the history reaches the logits (so the parity above tests it)."""
    model = trained_like(name)
    a, other = random_requests(2, 4, 6, seed=1, vocab=VOCAB)
    b = dataclasses.replace(a, hist_item=other.hist_item, hist_cate=other.hist_cate)  # the same user and candidates
    serving = ServingModel(model)
    assert (serving.score_request(a) - serving.score_request(b)).abs().max() > 1e-3
    torch.testing.assert_close(serving.score_request(b), batched(model, b), atol=TOL, rtol=0)


VARIANTS = {
    "softmax, augru original, dice": dict(att_normalization="softmax", augru_convention="original", attention_activation="dice",
                                          mlp_activation="dice"),
    "relu head, no hidden attention layer": dict(mlp_activation="relu", attention_hidden=()),
    "two transformer layers": dict(transformer_layers=2, transformer_heads=4),
}  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", ["din", "gru-att", "bst", "dien-aigru", "dien-agru", "dien-augru", "dien-gru"])
def test_configuration_variants(name, variant):
    model = trained_like(name, dataclasses.replace(SMALL, **VARIANTS[variant]))
    for loops in ("planned", "unrolled"):
        serving = ServingModel(model, loops)
        for request in shapes():
            torch.testing.assert_close(serving.score_request(request), batched(model, request), atol=TOL, rtol=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_against_the_literal_reference_recurrences(name):
    """The training model on backend "reference" (the equations one step at a time, the literal
    attention concatenation) as the independent reference for the serving path on "auto", empty
    (B, 0) histories included."""
    fast = trained_like(name)
    reference = build_model(name, dataclasses.replace(SMALL, backend="reference"), VOCAB).eval()
    reference.load_state_dict(fast.state_dict())
    serving = ServingModel(fast)
    requests = shapes()
    assert any(r.seq_len == 0 for r in requests)
    for request in requests:
        torch.testing.assert_close(serving.score_request(request), batched(reference, request), atol=TOL, rtol=0)


@pytest.mark.parametrize("backend", ["torch", "native", pytest.param("cpp", marks=needs_cpp), "reference"])
@pytest.mark.parametrize("name", ["gru-att", "dien-augru+aux", "dien-aigru", "din"])
def test_each_backends_serving_path_equals_its_eval_forward(name, backend):
    """The serving path follows the plan where it has the form (the C++ lookups and loops) and runs
    the layer itself or the torch forms where it has not (native, reference): the same logits."""
    model = trained_like(name, dataclasses.replace(SMALL, backend=backend))
    serving = ServingModel(model)
    for request in shapes():
        torch.testing.assert_close(serving.score_request(request), batched(model, request), atol=TOL, rtol=0)


@pytest.mark.parametrize("name", ["gru-att", "dien-augru+aux"])
def test_the_triton_loops_serve_the_eval_forwards_logits(name):
    """Backend ``triton`` (under Triton's interpreter on CPU, as conftest sets): the history's GRU and the
    candidates' AUGRU run the Triton loops on the serving path."""
    from dien_core.kernels import triton_loops

    if triton_loops.triton is None:
        pytest.skip("triton is not installed (pip install -e '.[dev]' installs it)")
    model = trained_like(name, dataclasses.replace(SMALL, backend="triton"))
    assert {m.implementation for m in model.modules() if isinstance(m, torch.nn.Module) and hasattr(m, "gates")} == {"triton"}
    serving = ServingModel(model)
    for request in shapes():
        torch.testing.assert_close(serving.score_request(request), batched(model, request), atol=TOL, rtol=0)


def test_ids_must_be_int64_on_every_plan():
    request = random_requests(1, 3, 5, seed=1, vocab=VOCAB)[0]
    with pytest.raises(ValueError, match="ids must be int64, got torch.int32"):
        dataclasses.replace(request, item=request.item.int())
    serving = ServingModel(trained_like("din"))
    tensors = list(stack([request]).tensors())
    tensors[0] = tensors[0].int()  # user
    with pytest.raises(ValueError, match="ids must be int64"):
        serving(*tensors)


@needs_cpp
def test_the_c_plus_plus_lookups_refuse_tables_off_the_cpu():
    from dien_core.serving import parts

    model = build_model("din", dataclasses.replace(SMALL, backend="cpp"), VOCAB).eval()
    assert parts.lookup_kernels(model.embedding, "planned") is not None and parts.lookup_kernels(model.embedding, "unrolled") is None
    model.embedding.to("meta")
    with pytest.raises(ValueError, match="embedding was planned for the C\\+\\+ kernels"):
        parts.lookup_kernels(model.embedding, "planned")


@pytest.mark.parametrize("loops", ["planned", "unrolled"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_stacked_requests_equal_one_at_a_time(name, loops):
    """Several requests of different T and K in one call (the micro-batcher's): each candidate reads
    its own request's history."""
    model = trained_like(name)
    serving = ServingModel(model, loops)
    requests = [random_requests(1, k, t, seed=10 + i, vocab=VOCAB)[0] for i, (k, t) in enumerate([(3, 6), (1, 0), (2, 4), (5, 6)])]
    stacked = stack(requests)
    assert stacked.hist_item.shape == (4, 6) and stacked.owner.tolist() == [0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 3]
    parts = stacked.split(serving.score(stacked))
    assert [p.shape[0] for p in parts] == [3, 1, 2, 5]
    for request, got in zip(requests, parts):
        torch.testing.assert_close(got, batched(model, request), atol=TOL, rtol=0)
    with torch.inference_mode():
        torch.testing.assert_close(torch.cat(parts), model(stacked.to_batch()).logits, atol=TOL, rtol=0)


@needs_cpp
@pytest.mark.parametrize("name, reads_in_place", [("dien-augru", True), ("dien-agru", True), ("dien-aigru", False)])
def test_stacked_candidates_read_their_requests_projection_in_place(name, reads_in_place, monkeypatch):
    """With several requests the candidate recurrence hands the C++ loop the requests' (T, R, 3H)
    projection and each candidate's request (``rows``), not a gathered (T, N, 3H) copy; AIGRU, which
    scales the projection per candidate, gathers it. One request's is a broadcast view (AIGRU: scaled)."""
    model = trained_like(name)
    layer = model.evolution.gru
    assert layer.implementation == "cpp"
    real, calls = layer.loops, []

    class Spy:
        def __getattr__(self, attr):
            return getattr(real(torch.device("cpu")), attr)

        def forward_loop(self, gi, c0, c1, w_hh, b_ih, b_hh, save, rows=None):
            calls.append((tuple(gi.shape), gi.stride(1), None if rows is None else rows.tolist()))
            return real(gi.device).forward_loop(gi, c0, c1, w_hh, b_ih, b_hh, save, rows)

    monkeypatch.setattr(layer, "loops", lambda device: Spy())
    serving = ServingModel(model)
    requests = [random_requests(1, k, 5, seed=30 + i, vocab=VOCAB)[0] for i, k in enumerate([2, 3])]
    parts = stack(requests).split(serving.score(stack(requests)))
    (T, R, GH), _, rows = calls[0]
    assert (T, R, rows) == ((5, 2, [0, 0, 1, 1, 1]) if reads_in_place else (5, 5, None))
    calls.clear()
    serving.score(stack(requests[:1]))
    assert calls[0][0][1] == 2 and calls[0][2] is None  # one request: its K = 2 rows,
    assert (calls[0][1] == 0) == reads_in_place  # a broadcast view (stride 0), AIGRU's scaled copy
    for request, got in zip(requests, parts):
        torch.testing.assert_close(got, batched(model, request), atol=TOL, rtol=0)


def test_the_parameters_are_the_models_own():
    model = trained_like("dien-augru")
    serving = ServingModel(model)
    request = random_requests(1, 3, 5, seed=3, vocab=VOCAB)[0]
    before = serving.score_request(request)
    with torch.no_grad():
        model.head.mlp.out.bias.add_(1.0)
    torch.testing.assert_close(serving.score_request(request), before + 1.0)


def test_request_of_and_bad_requests():
    r = Request.of(3, [5, 6, 7], [1, 2, 3], item=[9, 10], cate=[4, 4])
    assert r.length.item() == 3 and r.candidates == 2 and r.seq_len == 3
    batch = r.to_batch()
    assert batch.hist_item.shape == (2, 3) and batch.lengths.tolist() == [3, 3] and batch.user.tolist() == [3, 3]
    empty = Request.of(3, [], [], item=[9], cate=[4])
    assert empty.seq_len == 0 and empty.length.item() == 0
    ids = torch.tensor([1, 2])
    with pytest.raises(ValueError, match="K >= 1 candidates"):
        Request(torch.tensor(1), ids, ids, torch.tensor(2), ids[:0], ids[:0])
    with pytest.raises(ValueError, match="one length"):
        Request(torch.tensor(1), ids, ids[:1], torch.tensor(2), ids, ids)
    with pytest.raises(ValueError, match="scalars"):
        Request(ids, ids, ids, torch.tensor(2), ids, ids)
    with pytest.raises(ValueError, match="at least one request"):
        stack([])


def test_serving_needs_eval_mode_and_a_serving_model():
    model = trained_like("din").train()
    with pytest.raises(ValueError, match=r"model\.eval\(\)"):
        ServingModel(model).score_request(random_requests(1, 2, 3, vocab=VOCAB)[0])
    with pytest.raises(ValueError, match="no serving path"):
        ServingModel(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="unknown serving loops"):
        ServingModel(model, loops="fast")
