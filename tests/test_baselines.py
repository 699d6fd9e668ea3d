"""The Table 2 baselines (wide-deep, pnn, gru-att) and BST: their dien_core parts, padding and batch
invariance, the registry and search spaces, and (slow) each one against the popularity score."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from bench.models import MODEL_NAMES, build_model, check_model_name, config_for
from bench.tune.space import load_space
from dien_core import Batch, InnerProduct, ModelConfig, TransformerEncoder, TransformerLayer, distance_positions, total_loss
from tests.helpers import VOCAB, random_batch, repad

NEW_MODELS = ("wide-deep", "pnn", "gru-att", "bst")
SMALL = ModelConfig(embedding_dim=4, attention_hidden=(8, 4), aux_hidden=(8, 4), mlp_hidden=(16, 8))


def rows(batch: Batch, index) -> Batch:
    return Batch(**{k: v[index] for k, v in batch.__dict__.items()})


def with_wild_padding(batch: Batch, T: int) -> Batch:
    """The same rows padded to ``T`` with ids far outside every vocabulary: any lookup of them would fail."""
    padded = repad(batch, T)
    pad = torch.arange(T).unsqueeze(0) >= batch.lengths.unsqueeze(1)
    wild = {k: getattr(padded, k).masked_fill(pad, 10**6) for k in ("hist_item", "hist_cate", "neg_item", "neg_cate")}
    return Batch(**{**padded.__dict__, **wild})


# --- dien_core parts ---------------------------------------------------------------------------


def test_inner_product_gradcheck_and_equals_the_gram_matrix():
    fields = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    product = InnerProduct(4)
    assert torch.autograd.gradcheck(product, (fields,))
    gram = fields @ fields.transpose(1, 2)  # (B, F, F)
    i, j = torch.triu_indices(4, 4, offset=1)
    assert product.pairs == 6 and torch.allclose(product(fields), gram[:, i, j], atol=1e-12)
    assert torch.allclose(product(fields)[:, 0], (fields[:, 0] * fields[:, 1]).sum(-1))  # order: (0, 1) first
    with pytest.raises(ValueError, match="at least 2 fields"):
        InnerProduct(1)
    with pytest.raises(ValueError, match="built for 4 fields, got 3"):
        product(fields[:, :3])


def explicit_attention(layer: TransformerLayer, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The layer's attention written out: softmax of q k^T / sqrt(d) with -inf at padded keys."""
    B, L, E = x.shape
    h, d = layer.heads, E // layer.heads
    q, k, v = (t.reshape(B, L, h, d).transpose(1, 2) for t in layer.qkv(x).split(E, dim=-1))
    scores = (q @ k.transpose(-1, -2) / math.sqrt(d)).masked_fill(~mask.view(B, 1, 1, L), float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    assert (weights.masked_select(~mask.view(B, 1, 1, L).expand_as(weights)) == 0).all()
    return layer.out((weights @ v).transpose(1, 2).reshape(B, L, E))


def test_transformer_attention_gives_padded_keys_zero_weight():
    torch.manual_seed(0)
    layer = TransformerLayer(8, 2, 16).double().eval()
    x = torch.randn(3, 6, 8, dtype=torch.float64)
    mask = torch.arange(6).unsqueeze(0) < torch.tensor([[6], [2], [1]])
    assert torch.allclose(layer.attention(x, mask), explicit_attention(layer, x, mask), atol=1e-12)
    # Whatever the padded tokens hold, the real tokens' outputs stay the same.
    garbage = torch.where(mask.unsqueeze(-1), x, torch.randn_like(x) * 100)
    assert torch.allclose(layer(x, mask)[mask], layer(garbage, mask)[mask], atol=1e-12)
    everything = torch.ones_like(mask)  # unmasked, the same garbage does change them
    assert not torch.allclose(layer(x, everything)[mask], layer(garbage, everything)[mask])
    # The float32 path (a fused kernel where torch has one) agrees with the float64 one.
    fast = TransformerLayer(8, 2, 16).eval()
    fast.load_state_dict({k: v.float() for k, v in layer.state_dict().items()})
    assert (fast(x.float(), mask).double() - layer(x, mask))[mask].abs().max() < 1e-5


def test_transformer_gradcheck_with_padding_mask():
    torch.manual_seed(1)
    layer = TransformerLayer(4, 2, 6).double()
    x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.arange(5).unsqueeze(0) < torch.tensor([[5], [3], [1]])
    assert torch.autograd.gradcheck(lambda x: layer(x, mask), (x,))
    encoder = TransformerEncoder(4, 2, 2, max_position=6).double()
    positions = distance_positions(torch.tensor([4, 2, 0]), 4)
    assert torch.autograd.gradcheck(lambda x: encoder(x, positions, mask), (x,))


def test_distance_positions_ignore_padding():
    lengths = torch.tensor([3, 0, 1])
    assert distance_positions(lengths, 3).tolist() == [[0, 3, 2, 1], [0, 0, 0, 0], [0, 1, 0, 0]]
    assert distance_positions(lengths, 6)[:, :4].tolist() == distance_positions(lengths, 3).tolist()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"transformer_heads": 3}, "must divide the behaviour width 2 \\* embedding_dim = 8"),
        ({"transformer_heads": 0}, "transformer_heads must be a positive integer"),
        ({"transformer_layers": 0}, "transformer_layers must be a positive integer"),
        ({"max_seq_len": -1}, "max_seq_len must be a positive integer"),
    ],
)
def test_bad_transformer_config_says_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SMALL, **change)
    with pytest.raises(ValueError, match="must divide the token width 6"):
        TransformerLayer(6, 4, 8)


# --- the models ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_MODELS)
def test_row_independent_of_padding_and_batch(name):
    torch.manual_seed(2)
    model = build_model(name, SMALL, VOCAB).eval()
    batch = random_batch(B=6, T=7, lengths=[7, 3, 0, 1, 5, 7])
    with torch.no_grad():
        base = model(batch).logits
        padded = model(repad(batch, 12)).logits
        garbage = model(repad(batch, 12, fill=-1)).logits
        wild = model(with_wild_padding(batch, 12)).logits
        alone = torch.cat([model(rows(batch, slice(i, i + 1))).logits for i in range(6)])
        shuffled = model(rows(batch, torch.tensor([5, 4, 3, 2, 1, 0]))).logits.flip(0)
    for other in (padded, garbage, wild, alone, shuffled):
        assert (base - other).abs().max() <= 1e-6
    assert base.std() > 0  # the rows differ, so equal logits above are not trivial
    model.train()  # dropout 0: training mode is deterministic too
    assert (model(batch).logits - model(repad(batch, 12, fill=-1)).logits).abs().max() <= 1e-6


@pytest.mark.parametrize("name", NEW_MODELS)
def test_each_model_is_registered_builds_and_trains(name):
    assert name in MODEL_NAMES and check_model_name(name) == name
    assert not config_for(name, dataclasses.replace(SMALL, use_aux_loss=True)).use_aux_loss
    torch.manual_seed(3)
    model = build_model(name, SMALL, VOCAB)
    batch = random_batch(B=5, T=6, lengths=[6, 0, 2, 4, 1])
    out = model(batch)
    assert out.logits.shape == (5,) and out.aux_loss.shape == () and out.aux_loss == 0
    total_loss(out, batch.label).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"{name}: no or non-finite gradient for {missing}"
    assert model.embedding.item.weight.grad[0].abs().max() == 0  # padding is never trained
    for T in (0, 3):  # all rows empty, padded to 0 steps or to 3
        empty = random_batch(B=3, T=T, lengths=[0, 0, 0])
        assert torch.isfinite(model(empty).logits).all()


def test_wide_part_reads_every_id_and_the_cross():
    torch.manual_seed(4)
    model = build_model("wide-deep", SMALL, VOCAB)
    batch = random_batch(B=4, T=5, lengths=[5, 2, 0, 3])
    total_loss(model(batch), batch.label).backward()
    for name, table in model.wide.items():
        grad = table.weight.grad.squeeze(-1)
        assert grad[0] == 0 and (grad != 0).sum() > 0, name
    # one weight per (target category, history category) pair: row c_t * C + c_h
    touched = set(torch.nonzero(model.wide["cross_cate"].weight.grad.squeeze(-1)).flatten().tolist())
    mask = torch.arange(5).unsqueeze(0) < batch.lengths.unsqueeze(1)
    assert touched == set((batch.cate.unsqueeze(1) * VOCAB.cates + batch.hist_cate)[mask].tolist())


def test_bst_rejects_histories_longer_than_its_positions():
    model = build_model("bst", dataclasses.replace(SMALL, max_seq_len=6), VOCAB).eval()
    model(random_batch(B=2, T=6, lengths=[6, 1]))
    with pytest.raises(ValueError, match="histories of 7 steps, over max_seq_len=6"):
        model(random_batch(B=2, T=7, lengths=[7, 1]))


def test_unknown_model_lists_every_name_on_one_line():
    with pytest.raises(ValueError) as err:
        check_model_name("nope")
    message = str(err.value)
    assert "\n" not in message and message.startswith("unknown model 'nope'; known models: ")
    assert message.removeprefix("unknown model 'nope'; known models: ").split(", ") == list(MODEL_NAMES)
    assert set(NEW_MODELS) <= set(MODEL_NAMES)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_each_model_has_a_search_space(name):
    space = load_space(name)
    assert {"lr", "embedding_dim", "mlp_hidden"} <= set(space)
    if name == "gru-att":
        assert "attention_hidden" in space
    if name == "bst":
        assert {"transformer_heads", "transformer_layers"} <= set(space)
        for dim in space["embedding_dim"].values:  # every pair the sampler may draw is a valid config
            for heads in space["transformer_heads"].values:
                ModelConfig(embedding_dim=dim, transformer_heads=heads)


# --- slow: against the popularity score on the quick suite's data ---------------------------------


@pytest.fixture(scope="module")
def quick_data():
    from bench.data import load_dataset
    from bench.suite import load_suite

    suite = load_suite("quick")
    return suite, load_dataset(suite.data[0], use_cache=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW_MODELS)
def test_each_model_beats_popularity_on_the_quick_suite(name, quick_data):
    """Trained as `bench run` trains the quick suite (its model config, its train config: epochs,
    early stopping, no auxiliary loss), seed 0; test AUC against scoring by training clicks."""
    from bench.train import RunSpec, evaluate, train

    suite, dataset = quick_data
    torch.manual_seed(0)
    model = build_model(name, suite.model, dataset.vocab)
    train(model, dataset, RunSpec(suite.train, 0, torch.device("cpu")))
    auc = evaluate(model, dataset, dataset.test, suite.train.eval_batch_size, torch.device("cpu"))["auc"]
    popularity = roc_auc_score(dataset.test.label, np.log1p(dataset.item_count[dataset.test.item]))
    print(f"{name}: test AUC {auc:.4f}, popularity {popularity:.4f}")
    assert auc > popularity, f"{name}: test AUC {auc:.4f} does not beat popularity {popularity:.4f}"
