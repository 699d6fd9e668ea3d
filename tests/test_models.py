"""Attention, auxiliary loss, whole models: gradients, padding invariance, empty histories, bad config."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from bench.models import MODEL_NAMES, build_model
from dien_core import AttentionUnit, AuxiliaryLoss, Batch, FeatureEmbedding, ModelConfig, VocabSizes, total_loss, weighted_sum
from dien_core.kernels import cpp
from tests.helpers import VOCAB, needs_cpp, random_batch, recency_problem, repad

SMALL = ModelConfig(embedding_dim=4, attention_hidden=(8, 4), aux_hidden=(8, 4), mlp_hidden=(16, 8))


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "prelu", "dice"])
@pytest.mark.parametrize("normalization", ["sigmoid", "softmax"])
def test_attention_gradcheck_and_split_equals_concat(activation, normalization):
    torch.manual_seed(0)
    unit = AttentionUnit(3, (5, 4), activation, normalization).double().eval()
    q = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(4, 6, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.arange(6).unsqueeze(0) < torch.tensor([[6], [2], [0], [4]])
    assert torch.autograd.gradcheck(lambda q, k: unit(q, k, mask), (q, k))
    split = unit.scores(q, k, mask)
    assert torch.allclose(split, unit.reference_scores(q, k, mask), atol=1e-12)
    w = unit(q, k, mask)
    assert (w[~mask] == 0).all() and (w[2] == 0).all()
    unit.train()  # Dice's batch statistics too, and keys laid out time-major (as the model passes them)
    k_tm = k.detach().transpose(0, 1).contiguous().transpose(0, 1)
    assert torch.allclose(unit.scores(q, k_tm, mask), unit.reference_scores(q, k, mask), atol=1e-12)
    if normalization == "softmax":
        assert torch.allclose(w[[0, 1, 3]].sum(1), torch.ones(3, dtype=torch.float64))
    else:
        assert ((w[mask] > 0) & (w[mask] < 1)).all()


def test_weighted_sum_equals_batched_product():
    weights, values = torch.rand(4, 6, dtype=torch.float64), torch.randn(6, 4, 3, dtype=torch.float64).transpose(0, 1)
    want = torch.bmm(weights.unsqueeze(1), values).squeeze(1)
    assert torch.allclose(weighted_sum(weights, values), want, atol=1e-12)
    assert torch.allclose(weighted_sum(weights.t().contiguous().t(), values.contiguous()), want, atol=1e-12)


@pytest.mark.parametrize("backend", [pytest.param("cpp", marks=needs_cpp), "torch", "reference"])
def test_embedding_is_time_major_pads_with_zeros_and_agrees_across_backends(backend, monkeypatch):
    """Garbage ids at padded steps read as zeros; hist and neg are views of time-major tensors (but for
    the reference's nn.Embedding calls); each implementation's lookup equals ``F.embedding`` of the same
    tables (an independent lookup) in values and in every table's gradient."""
    torch.manual_seed(4)
    emb = FeatureEmbedding(VOCAB, 3, backend)
    batch = repad(random_batch(B=5, T=6, lengths=[6, 2, 0, 3, 1]), 6, fill=-1)
    out = emb(batch, with_negatives=True)
    for x in (out.hist, out.neg):
        assert x.shape == (5, 6, 6) and (x.transpose(0, 1).is_contiguous() or backend == "reference")
        assert (x[~out.mask] == 0).all() and (x[out.mask] != 0).any(dim=-1).all()
    assert torch.allclose(out.hist_sum, out.hist.sum(1))
    scales = [torch.randn_like(x) for x in (out.user, out.target, out.hist, out.neg)]
    loss = sum((x * w).sum() for x, w in zip((out.user, out.target, out.hist, out.neg), scales))
    grads = torch.autograd.grad(loss, [emb.item.weight, emb.cate.weight, emb.user.weight])
    keep = out.mask.unsqueeze(-1)

    def lookup(item, cate, masked=False):  # F.embedding of [item, cate]; padded steps (any id) as zeros
        if masked:
            item, cate = item.where(out.mask, 0), cate.where(out.mask, 0)
        both = torch.cat([F.embedding(item, emb.item.weight), F.embedding(cate, emb.cate.weight)], dim=-1)
        return both * keep if masked else both

    ref = (F.embedding(batch.user, emb.user.weight), lookup(batch.item, batch.cate),
           lookup(batch.hist_item, batch.hist_cate, True), lookup(batch.neg_item, batch.neg_cate, True))  # fmt: skip
    for a, b in zip((out.user, out.target, out.hist, out.neg), ref):
        assert torch.allclose(a, b, atol=1e-7)
    loss = sum((x * w).sum() for x, w in zip(ref, scales))
    for a, b in zip(grads, torch.autograd.grad(loss, [emb.item.weight, emb.cate.weight, emb.user.weight])):
        assert torch.allclose(a, b, atol=1e-6) and a[0].abs().max() == 0
    if backend != "cpp":
        monkeypatch.setattr(cpp, "kernels", lambda: pytest.fail(f"the {backend} form called a C++ kernel"))
        emb(batch, with_negatives=True)


def test_dice_statistics_ignore_padding():
    unit = AttentionUnit(3, (5,), "dice", "sigmoid").train()
    q, k = torch.randn(2, 3), torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, False, False, False]])
    garbage = k.clone()
    garbage[~mask] = 1e3
    assert torch.allclose(unit(q, k, mask), unit(q, garbage, mask))


def test_auxiliary_loss_gradcheck_split_and_padding():
    torch.manual_seed(1)
    aux = AuxiliaryLoss(4, 3, (5, 2)).double()
    states = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(3, 5, 3, dtype=torch.float64, requires_grad=True)
    neg = torch.randn(3, 5, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.arange(5).unsqueeze(0) < torch.tensor([[5], [2], [1]])
    assert torch.autograd.gradcheck(lambda s, p, n: aux(s, p, n, mask), (states, pos, neg))
    assert torch.allclose(aux(states, pos, neg, mask), aux.reference_forward(states, pos, neg, mask))
    # Padded steps carry no weight: garbage there changes nothing.
    noisy = [t.detach().clone() for t in (states, pos, neg)]
    for t in noisy:
        t[~mask] = 50.0
    assert torch.allclose(aux(states, pos, neg, mask), aux(*noisy, mask))
    # 4 + 1 + 0 = 5 valid (t, t+1) pairs: the mean is over them, not over B * (T - 1).
    per_pair = aux.reference_forward(states, pos, neg, mask) * 5
    only_first = aux(states[:1], pos[:1], neg[:1], mask[:1]) * 4 + aux(states[1:2], pos[1:2], neg[1:2], mask[1:2])
    assert torch.allclose(per_pair, only_first)
    empty = torch.zeros_like(mask)
    assert aux(states, pos, neg, empty) == 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_row_independent_of_padding_and_batch(name):
    torch.manual_seed(2)
    model = build_model(name, SMALL, VOCAB).eval()
    batch = random_batch(B=6, T=7, lengths=[7, 3, 0, 1, 5, 7])
    with torch.no_grad():
        base = model(batch)
        padded = model(repad(batch, 12))
        garbage = model(repad(batch, 12, fill=-1))
        alone = model(Batch(**{k: v[1:2] for k, v in batch.__dict__.items()}))
    assert (base.logits - padded.logits).abs().max() <= 1e-6
    assert (base.logits - garbage.logits).abs().max() <= 1e-6
    assert (alone.logits[0] - base.logits[1]).abs() <= 1e-6
    model.train()  # the auxiliary loss is computed in training only; this config is deterministic there
    train_base, train_garbage = model(batch), model(repad(batch, 12, fill=-1))
    assert (train_base.logits - train_garbage.logits).abs().max() <= 1e-6
    assert (train_base.aux_loss - train_garbage.aux_loss).abs() <= 1e-6
    if name.endswith("+aux"):
        assert train_base.aux_loss > 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_empty_histories(name):
    model = build_model(name, SMALL, VOCAB)
    some_empty = random_batch(B=4, T=5, lengths=[0, 5, 0, 2])
    out = model(some_empty)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.aux_loss)
    for T in (5, 0):  # padded to 5, or to its own longest row: 0 steps
        all_empty = random_batch(B=3, T=T, lengths=[0, 0, 0])
        out = model(all_empty)
        assert torch.isfinite(out.logits).all() and out.aux_loss == 0
        total_loss(out, all_empty.label).backward()


@pytest.mark.parametrize(
    "change, allowed",
    [
        ({"gru_type": "LSTM"}, "GRU, AIGRU, AGRU, AUGRU"),
        ({"embedding_dim": 0}, "positive"),
        ({"attention_hidden": (8, -1)}, "positive"),
        ({"alpha": -0.5}, ">= 0"),
        ({"augru_convention": "tf"}, "paper, original"),
        ({"att_normalization": "max"}, "sigmoid, softmax"),
        ({"mlp_activation": "gelu"}, "sigmoid, relu, prelu, dice"),
        ({"dropout": 1.0}, r"\[0, 1\)"),
    ],
)
def test_bad_config_says_what_is_allowed(change, allowed):
    with pytest.raises(ValueError, match=allowed):
        dataclasses.replace(ModelConfig(), **change)


def test_bad_vocab_and_unknown_model():
    with pytest.raises(ValueError, match="at least 2"):
        VocabSizes(users=1, items=5, cates=5)
    with pytest.raises(ValueError, match="known models: sum-pooling, din"):
        build_model("dien-lstm", ModelConfig(), VOCAB)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_learns_a_history_dependent_label(name):
    torch.manual_seed(3)
    vocab = VocabSizes(users=20, items=60, cates=8)
    config = dataclasses.replace(SMALL, embedding_dim=8, attention_hidden=(16, 8), mlp_hidden=(32, 16))
    model = build_model(name, config, vocab)
    train, test = recency_problem(2048, 10, seed=4, vocab=vocab), recency_problem(1024, 10, seed=5, vocab=vocab)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(300):
        rows = torch.randint(0, 2048, (128,), generator=torch.Generator().manual_seed(step))
        batch = Batch(**{k: v[rows] for k, v in train.__dict__.items()})
        optimizer.zero_grad()
        total_loss(model(batch), batch.label).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        auc = roc_auc_score(test.label.numpy(), model(test).logits.numpy())
    # Sum pooling cannot see order, so recency is only partly learnable for it.
    floor = 0.65 if name == "sum-pooling" else 0.75
    assert auc > floor, f"{name}: test AUC {auc:.3f}"


@pytest.mark.parametrize("name", ["sum-pooling", "din", "dien-augru+aux"])
def test_padding_rows_never_receive_gradient(name):
    model = build_model(name, SMALL, VOCAB)
    total_loss(model(random_batch(B=6, T=7, lengths=[7, 3, 0, 1, 5, 2])), torch.ones(6)).backward()
    emb = model.embedding
    assert emb.item.weight.grad[0].abs().max() == 0 and emb.cate.weight.grad[0].abs().max() == 0
    assert emb.item.weight.grad[1:].abs().max() > 0
