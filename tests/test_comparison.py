"""A comparison a reviewer accepts: the target's negatives, non-learned rows, unseen users, stop
reasons, and the statistics of the tables (intervals, Holm, identical rows, best on validation)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sp_stats
from sklearn.metrics import roc_auc_score

from bench import heuristics
from bench.data import DataConfig, SyntheticConfig, load_dataset
from bench.data.dataset import UNKNOWN, Dataset, Split
from bench.data.protocol import Interactions, ProtocolOptions, build_dataset
from bench.models import build_model
from bench.run import report, stats
from bench.suite import Row, load_suite, parse_suite
from bench.train import RunSpec, TrainConfig, train
from dien_core import ModelConfig, VocabSizes

SMALL = SyntheticConfig(users=600, items=300, categories=12, min_len=6, max_len=20)


def skewed_interactions(users: int = 400, items: int = 60, steps: int = 12, seed: int = 0) -> Interactions:
    """Clicks drawn with a steep popularity skew, so negatives' distributions differ visibly."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, items + 1) ** 1.2
    item = rng.choice(items, size=(users, steps), p=p / p.sum()) + 1
    user = np.repeat(np.arange(users), steps) + 1
    time = np.tile(np.arange(steps), users)
    return Interactions(user=user, item=item.reshape(-1), cate=item.reshape(-1) % 5 + 1, time=time)


def test_popularity_negatives_follow_click_counts_and_exclude_only_the_positive():
    opts = ProtocolOptions(maxlen=10, targets_per_user=5, valid_fraction=0.1, test_fraction=0.1, seed=0, target_negatives="popularity")
    ds = build_dataset("skewed", skewed_interactions(), opts)
    neg = ds.train.item[ds.train.label == 0]
    pos = ds.train.item[ds.train.label == 1]
    assert (neg != pos).all() and (neg >= 2).all()
    p = ds.item_count[2:] / ds.item_count[2:].sum()
    q = np.bincount(pos, minlength=ds.vocab.items)[2:] / len(pos)
    expected = p * ((q / (1 - p)).sum() - q / (1 - p))  # drawn by count, redrawn where it hit the row's positive
    observed = np.bincount(neg, minlength=ds.vocab.items)[2:] / len(neg)
    assert np.abs(observed - expected).max() < 0.02 and observed.max() > 0.15  # the top item is ~20% of draws
    # so popularity alone hardly ranks the clicked item above its negative
    assert roc_auc_score(ds.train.label, heuristics.scores("popularity", ds, ds.train)) < 0.6


def test_uniform_negatives_are_items_the_user_never_clicked():
    opts = ProtocolOptions(maxlen=10, targets_per_user=5, valid_fraction=0.1, test_fraction=0.1, seed=0, target_negatives="uniform")
    inter = skewed_interactions()
    ds = build_dataset("skewed", inter, opts)
    neg_rows = ds.train.label == 0
    observed = np.bincount(ds.train.item[neg_rows], minlength=ds.vocab.items)[2:]
    assert observed.std() / observed.mean() < 0.5  # flat, unlike the clicks
    assert roc_auc_score(ds.train.label, heuristics.scores("popularity", ds, ds.train)) > 0.7  # popularity wins here


def test_targets_per_user_all_makes_every_position_a_target():
    base = DataConfig(synthetic=SMALL, maxlen=20, targets_per_user=2)
    two, every = load_dataset(base), load_dataset(replace(base, targets_per_user="all"))
    train_users = len(np.unique(two.train.group))
    assert len(two.train) == 2 * 2 * train_users
    assert len(every.train) > 4 * len(two.train) and (every.train.hist_len >= 1).all()
    assert len(every.test) == len(two.test)  # held-out users still give their last behaviour only
    for split in ("valid", "test"):  # and the same rows, negatives included: the two rows of a table differ in training only
        a, b = getattr(two, split), getattr(every, split)
        for column in ("user", "item", "cate", "label", "hist_start", "hist_len", "group"):
            np.testing.assert_array_equal(getattr(a, column), getattr(b, column), err_msg=f"{split}.{column}")
    with pytest.raises(ValueError, match="targets_per_user"):
        DataConfig(targets_per_user="some")


def test_each_seed_draws_its_own_split_and_data():
    data = DataConfig(synthetic=SMALL, maxlen=20)
    a, b = (load_dataset(data.for_seed(s)) for s in (0, 1))
    assert not np.array_equal(a.test.group, b.test.group) or not np.array_equal(a.flat_item, b.flat_item)
    fixed = replace(data, vary_with_seed=False)
    assert fixed.for_seed(3) == fixed


def hand_made_dataset() -> Dataset:
    # behaviours: items 2..6, categories by item; one history [2, 3, 4] (cates [2, 2, 3])
    flat_item = np.array([2, 3, 4])
    flat_cate = np.array([2, 2, 3])
    item_cate = np.array([0, 1, 2, 2, 3, 3, 4])
    item_count = np.array([0, 0, 10, 1, 5, 0, 2])
    split = Split(
        user=np.full(4, UNKNOWN), item=np.array([4, 3, 5, 6]), cate=np.array([3, 2, 3, 4]), label=np.array([1, 1, 0, 0], np.float32),
        hist_start=np.zeros(4, np.int64), hist_len=np.array([3, 3, 3, 2]), group=np.array([0, 0, 1, 1]),
    )  # fmt: skip
    return Dataset("hand", VocabSizes(2, 7, 5), flat_item, flat_cate, item_cate, item_count, split, split, split)


def test_heuristic_rows_on_a_hand_made_case():
    ds = hand_made_dataset()
    d = heuristics.RECENCY_DECAY
    np.testing.assert_allclose(heuristics.scores("popularity", ds, ds.test), np.log1p([5, 1, 0, 2]))
    # item 4 (cate 3): cate 3 at the latest step (weight 1) and the item itself is in the history
    # item 3 (cate 2): cate 2 at ages 2 and 1, and item 3 is in the history
    # item 5 (cate 3): cate 3 at age 0, item 5 never seen; item 6 (cate 4): nothing, history of 2
    np.testing.assert_allclose(heuristics.scores("recent-category", ds, ds.test), [1 + 1, d**2 + d + 1, 1, 0])
    with pytest.raises(ValueError, match="known: popularity, recent-category"):
        heuristics.scores("oracle", ds, ds.test)


@pytest.mark.parametrize("user_feature", ["off", "dropout"])
def test_held_out_users_read_a_trained_row(user_feature):
    data = DataConfig(synthetic=SMALL, maxlen=20, user_feature=user_feature, user_dropout=0.2)
    ds = load_dataset(data)
    assert (ds.valid.user == UNKNOWN).all() and (ds.test.user == UNKNOWN).all()  # split by user: none is known
    if user_feature == "off":
        assert (ds.train.user == UNKNOWN).all()
    else:
        assert (ds.train.user > UNKNOWN).all()  # ids kept; the loader drops them to unknown
    torch.manual_seed(0)
    model = build_model("din", ModelConfig(embedding_dim=4, attention_hidden=(8,), mlp_hidden=(8,)), ds.vocab)
    before = model.embedding.user.weight[UNKNOWN].detach().clone()
    dropout = data.user_dropout if user_feature == "dropout" else 0.0
    train(model, ds, RunSpec(TrainConfig(epochs=1, batch_size=128), 0, torch.device("cpu"), user_dropout=dropout))
    assert not torch.equal(model.embedding.user.weight[UNKNOWN], before)  # the row held-out users read has trained


def test_user_id_without_dropout_leaves_the_unknown_row_untrained():
    """The old behaviour, kept as `user_feature = "id"` for the measured comparison: the failure mode."""
    ds = load_dataset(DataConfig(synthetic=SMALL, maxlen=20, user_feature="id"))
    torch.manual_seed(0)
    model = build_model("din", ModelConfig(embedding_dim=4, attention_hidden=(8,), mlp_hidden=(8,)), ds.vocab)
    before = model.embedding.user.weight[UNKNOWN].detach().clone()
    train(model, ds, RunSpec(TrainConfig(epochs=1, batch_size=128), 0, torch.device("cpu")))
    assert torch.equal(model.embedding.user.weight[UNKNOWN], before)


def test_stop_reason_is_patience_or_cap():
    ds = load_dataset(DataConfig(synthetic=SMALL, maxlen=20))
    config = ModelConfig(embedding_dim=4, mlp_hidden=(8,))
    torch.manual_seed(0)
    capped = train(build_model("sum-pooling", config, ds.vocab), ds, RunSpec(TrainConfig(epochs=1, batch_size=128), 0, torch.device("cpu")))
    assert capped.stop_reason == "cap" and capped.epochs_run == 1
    # min_delta 1 makes no epoch after the first count as better: patience 1 stops after epoch 2
    stopping = TrainConfig(epochs=5, batch_size=128, patience=1, min_delta=1.0)
    stopped = train(build_model("sum-pooling", config, ds.vocab), ds, RunSpec(stopping, 0, torch.device("cpu")))
    assert stopped.stop_reason == "patience" and stopped.epochs_run == 2 and stopped.best_epoch == 1


def test_holm_on_known_p_values():
    # sorted 0.01, 0.02, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.02), max(0.04, 1 * 0.04)
    assert stats.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert np.isnan(stats.holm([np.nan, 0.01])[0]) and stats.holm([np.nan, 0.01])[1] == pytest.approx(0.01)


def test_bootstrap_ci_matches_a_known_spread():
    """Users with one positive and one negative each: the AUC is the share of users whose positive
    outscores their negative, a binomial proportion with a known standard error."""
    rng = np.random.default_rng(0)
    n_users, p = 2000, 0.7
    right = rng.random(n_users) < p
    score = np.stack([np.where(right, 1.0, 0.0) + rng.random(n_users) * 1e-3, np.full(n_users, 0.5)], axis=1).reshape(-1)
    # scores of different users overlap, so compute the truth the bootstrap estimates directly
    label = np.tile([1.0, 0.0], n_users)
    group = np.repeat(np.arange(n_users), 2)
    auc = roc_auc_score(label, score)
    se = np.sqrt(auc * (1 - auc) / n_users)
    lo, hi = stats.bootstrap_ci([stats.Predictions(label, score, group)], n_resamples=2000)
    assert lo < auc < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.2)


def test_weighted_auc_equals_sklearn_with_weights():
    rng = np.random.default_rng(1)
    label = (rng.random(300) < 0.4).astype(float)
    score = np.round(rng.normal(size=300) + label, 1)  # ties
    weight = rng.integers(0, 4, size=(4, 300)).astype(float)
    expected = [roc_auc_score(label, score, sample_weight=w) for w in weight]
    np.testing.assert_allclose(stats.weighted_auc(label, score, weight), expected, rtol=1e-12)


def test_zero_variance_reads_identical_and_t_interval():
    same = stats.paired(np.array([0.7, 0.71, 0.72]), np.array([0.7, 0.71, 0.72]))
    assert same.verdict == "identical" and stats.verdict(same, same.p, "a", "b") == "identical"
    shifted = stats.paired(np.array([0.71, 0.72, 0.73]), np.array([0.70, 0.71, 0.72]) + 1e-12)
    assert shifted.verdict != "identical"
    d = np.array([0.01, 0.02, 0.015, 0.03])
    r = stats.paired(d + 0.5, np.full(4, 0.5))
    assert r.p == pytest.approx(sp_stats.ttest_1samp(d, 0).pvalue)
    assert (r.lo, r.hi) == pytest.approx(sp_stats.t.interval(0.95, 3, loc=d.mean(), scale=sp_stats.sem(d)))
    assert r.detectable > 0


def runs_frame(val: dict, test: dict, seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = []
    for model in val:
        for i, s in enumerate(seeds):
            rows.append({"dataset": "d", "model": model, "seed": s, "val_auc": val[model][i], "test_auc": test[model][i],
                         "test_gauc": 0.5, "test_logloss": 0.6, "samples_per_second": 1.0, "stopped": "patience",
                         "aux_loss_epoch1": np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def test_best_is_chosen_on_validation_when_test_disagrees():
    runs = runs_frame({"a": [0.80, 0.81, 0.80], "b": [0.70, 0.71, 0.70], "popularity": [0.9] * 3},
                      {"a": [0.60, 0.61, 0.60], "b": [0.75, 0.76, 0.75], "popularity": [0.9] * 3})  # fmt: skip
    table = report.summarize(runs)
    best = table[table["best_on_valid"]]["model"].tolist()
    assert best == ["a"]  # a non-learned row is never "best", and test does not decide
    flags = dict(zip(table["model"], table["flags"]))
    assert "does not beat the non-learned rows" in flags["a"] and "does not beat" in flags["b"]


def test_declared_comparisons_are_holm_corrected_and_identical_rows_say_so():
    runs = runs_frame({"a": [0.8, 0.81, 0.82], "b": [0.7, 0.7, 0.7], "c": [0.8, 0.81, 0.82]},
                      {"a": [0.80, 0.82, 0.81], "b": [0.70, 0.71, 0.705], "c": [0.80, 0.82, 0.81]})  # fmt: skip
    table = report.compare(runs, (("a", "b"), ("a", "c")))
    ab, ac = table.iloc[0], table.iloc[1]
    assert ac["verdict"] == "identical"
    assert ab["p_holm"] == pytest.approx(min(1.0, 1 * ab["p"]))  # the identical pair has no p to count
    assert ab["verdict"] in ("a better", "no difference detected")
    md = report.markdown(report.summarize(runs), table, "b")
    assert "identical" in md and "Holm" in md


def test_capped_and_untrained_flags():
    runs = runs_frame({"m": [0.8] * 3}, {"m": [0.8] * 3}).assign(stopped="cap", aux_loss_epoch1=2 * np.log(2) + 0.001)
    flags = report.summarize(runs)["flags"].iloc[0]
    assert "epoch cap in 3/3" in flags and "auxiliary loss did not train in 3/3" in flags


def test_suite_comparisons_and_data_variants_parse():
    suite = parse_suite({"name": "x", "models": ["din", "sum-pooling"], "variants": [{"model": "din", "targets_per_user": "all"}],
                         "comparisons": [["din", "din/targets-all"], ["din", "popularity"]]}, "x.toml")  # fmt: skip
    row = suite.rows[-1]
    assert row.name == "din/targets-all" and row.data_config(suite.data[0]).targets_per_user == "all"
    assert suite.cell_hash(suite.data[0], row) != suite.cell_hash(suite.data[0], Row("din"))
    with pytest.raises(ValueError, match="no row named dien-augru"):
        parse_suite({"name": "x", "models": ["din"], "comparisons": [["din", "dien-augru"]]}, "x.toml")
    for name in ("quick", "standard"):
        assert load_suite(name).comparisons  # every reference suite declares what it tests


def test_auxiliary_loss_held_at_2ln2_is_reported(tmp_path, monkeypatch, capsys):
    """A DIEN whose auxiliary net always outputs 0.5: the run's log and auc.md say its loss did not train."""
    from bench.cli import main
    from bench.run import runner

    real = runner.build_model

    def frozen_aux(name, config, vocab, device):
        model = real(name, config, vocab, device)
        if config.use_aux_loss:
            out = model.extractor.aux.mlp.out
            torch.nn.init.zeros_(out.weight), torch.nn.init.zeros_(out.bias)
            out.requires_grad_(False)  # logit 0 for every pair: the loss is 2 ln 2 whatever the states
        return model

    monkeypatch.setattr(runner, "build_model", frozen_aux)
    tiny = str(Path(__file__).with_name("tiny_suite.toml"))
    out = tmp_path / "out"
    args = ["--models", "dien-augru+aux", "--seeds", "1", "--epochs", "1", "--out", str(out)]
    assert main(["run", "--suite", tiny, "--device", "cpu", *args]) == 0
    assert "auxiliary loss did not train" in capsys.readouterr().err
    runs = pd.read_csv(out / "runs.csv")
    assert runs.loc[runs["model"] == "dien-augru+aux", "aux_loss_epoch1"].iloc[0] == pytest.approx(2 * np.log(2), abs=1e-6)
    assert "auxiliary loss did not train in 1/1 seeds" in (out / "auc.md").read_text()
    assert not runner.aux_not_trained(1.2) and runner.aux_not_trained(1.39) and not runner.aux_not_trained(float("nan"))


def test_rela_impr_needs_a_baseline_above_chance():
    from bench.metrics import rela_impr

    assert rela_impr(0.8, 0.7) == pytest.approx(50.0)
    assert np.isnan(rela_impr(0.8, 0.5)) and np.isnan(rela_impr(0.8, 0.49))


def test_a_row_may_cap_its_epochs_and_the_cap_is_in_its_hash():
    suite = parse_suite({"name": "x", "models": ["dien-augru+aux"], "train": {"epochs": 9},
                         "variants": [{"model": "dien-augru+aux", "aux_activation": "sigmoid", "epochs": 2}]}, "x.toml")  # fmt: skip
    row = suite.rows[-1]
    assert row.name == "dien-augru+aux/aux-act-sigmoid/epochs-2"
    assert row.train_config(suite.train).epochs == 2 and suite.rows[0].train_config(suite.train).epochs == 9
    assert row.model_config(suite.model).aux_activation == "sigmoid"
    assert suite.cell_config(suite.data[0], row)["train"]["epochs"] == 2
    with pytest.raises(ValueError, match="epochs"):
        parse_suite({"name": "x", "models": ["din"], "variants": [{"model": "din", "epochs": 0}]}, "x.toml")


def test_alpha_sweep_is_found_and_reported(tmp_path):
    from bench.cli import main

    suite = load_suite("alpha-order")
    sweep = suite.sweeps()[("dien-augru+aux", "alpha")]
    assert [v for v, _ in sweep] == [0.0, 0.1, 0.3, 1.0, 3.0, 10.0] and dict(sweep)[1.0] == "dien-augru+aux"
    assert not load_suite("ablation-movielens").sweeps()  # categorical variants are no sweep
    tiny = Path(__file__).with_name("tiny_suite.toml").read_text()
    tiny = tiny.replace('seeds = [0, 1]', 'seeds = [0, 1]\n[[variants]]\nmodel = "dien-augru+aux"\nalpha = 0.0\n'
                        '[[variants]]\nmodel = "dien-augru+aux"\nalpha = 3.0\n')  # fmt: skip
    path = tmp_path / "sweep.toml"
    path.write_text(tiny)
    out = tmp_path / "out"
    assert main(["run", "--suite", str(path), "--device", "cpu", "--epochs", "1", "--out", str(out)]) == 0
    table = pd.read_csv(out / "sweep-alpha.csv")
    assert table["value"].tolist() == [0.0, 1.0, 3.0] and (table["seeds"] == 2).all()
    runs = pd.read_csv(out / "runs.csv")
    for value, name in zip(table["value"], table["row"]):
        assert table.loc[table["value"] == value, "test_auc"].iloc[0] == pytest.approx(runs.loc[runs["model"] == name, "test_auc"].mean())
    assert (out / "sweep-alpha.png").stat().st_size > 0 and "by alpha" in (out / "auc.md").read_text()


def test_markdown_keeps_written_digits_and_never_prints_p_as_zero():
    """tabulate would parse "0.7800" back into 0.78 and "0.000" into 0; the tables keep what was written."""
    from bench.run.report import markdown

    nan = float("nan")
    table = pd.DataFrame([{
        "dataset": "d", "model": "a", "seeds": 5, "val_auc_mean": 0.78, "test_auc_mean": 0.7807, "test_auc_lo": 0.7665,
        "test_auc_hi": 0.7948, "boot_lo": nan, "boot_hi": nan, "test_gauc_mean": nan, "test_logloss_mean": nan, "rela_impr": nan,
        "best_on_valid": True, "samples_per_second": nan, "flags": "",
    }])  # fmt: skip
    comparisons = pd.DataFrame([
        {"dataset": "d", "a": "a", "b": "b", "seeds": 5, "diff": 0.0665, "diff_lo": 0.05, "diff_hi": 0.08, "p": 4e-4, "p_holm": 0.0123,
         "detectable": 0.023, "verdict": "a better"},
    ])  # fmt: skip
    md = markdown(table, comparisons, "sum-pooling")
    assert "| 0.7800 " in md and "| +0.0665 " in md and "| < 0.001 " in md and "| 0.012 " in md
