"""Optuna study: seeded TPE, pruning on validation AUC, RDB storage with heartbeat and retry."""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from typing import Any

import optuna
import sqlalchemy.exc
import torch

from ..config_io import to_dict
from ..data import load_dataset
from ..models import build_model, config_for
from ..suite import SuiteConfig
from ..train import RunSpec, train
from .config import TuneConfig
from .space import Param, split_values


def open_storage(url: str, heartbeat_interval: int, max_retry: int) -> optuna.storages.RDBStorage:
    """An RDB storage whose dead workers' trials fail after 2 heartbeats and are queued again."""
    if "://" not in url:
        raise ValueError(f"bad storage URL {url!r}: expected e.g. sqlite:///path/study.db or postgresql://user@host/db")
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)  # Optuna >= 4.9
    kwargs: dict[str, Any] = {"heartbeat_interval": heartbeat_interval, "grace_period": 2 * heartbeat_interval}
    if retry is not None:
        factory, key = retry, "heartbeat_stale_trial_callback"
    else:
        factory, key = optuna.storages.RetryFailedTrialCallback, "failed_trial_callback"
    attempts = 3
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat: stable in use since 2.8
                kwargs[key] = factory(max_retry=max_retry)
                return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as err:  # sqlalchemy / driver errors of every kind: a bad URL is user input
            # Workers started together on a fresh database race to create Optuna's tables; the
            # loser's CREATE fails on a duplicate, and its next try finds the tables there.
            if isinstance(err, sqlalchemy.exc.IntegrityError) and attempt + 1 < attempts:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise ValueError(f"cannot open storage {url!r}: {type(err).__name__}: {err}") from err
    raise AssertionError("unreachable: every attempt returns or raises")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def trial_configs(suite: SuiteConfig, model: str, values: dict[str, Any]):
    model_over, train_over = split_values(values)
    model_config = replace(suite.model, **model_over)
    train_config = replace(suite.train, **train_over)
    return config_for(model, model_config), train_config


def run_study(
    tune: TuneConfig, suite: SuiteConfig, space: dict[str, Param], fixed: dict[str, Any], device: torch.device, log=print
) -> optuna.Study:
    storage = open_storage(tune.storage, tune.heartbeat_interval, tune.max_retry)
    sampler = optuna.samplers.TPESampler(seed=tune.seed)
    study = optuna.create_study(
        study_name=tune.study, storage=storage, direction="maximize", sampler=sampler, pruner=make_pruner(tune.pruner), load_if_exists=True
    )
    study.set_user_attr("model", tune.model)
    data = suite.data[0]
    dataset = load_dataset(data)
    log(dataset.describe())

    def objective(trial: optuna.Trial) -> float:
        values = {**fixed, **{name: p.suggest(trial) for name, p in space.items()}}
        try:
            model_config, train_config = trial_configs(suite, tune.model, values)
        except (ValueError, TypeError) as err:
            raise optuna.TrialPruned(f"invalid configuration: {err}") from err
        seed = tune.seed + trial.number
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("model_config", to_dict(model_config))
        trial.set_user_attr("train_config", to_dict(train_config))
        trial.set_user_attr("data_config", to_dict(data))
        torch.manual_seed(seed)
        model = build_model(tune.model, model_config, dataset.vocab, device)

        def report(epoch: int, val_auc: float) -> None:
            trial.report(val_auc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch} at validation AUC {val_auc:.4f}")

        result = train(model, dataset, RunSpec.for_data(train_config, data, seed, device, f"trial {trial.number}"), on_epoch=report)
        log(f"trial {trial.number}: validation AUC {result.val_auc:.4f}")
        return result.val_auc

    study.optimize(objective, n_trials=tune.trials, timeout=tune.timeout, n_jobs=tune.jobs, gc_after_trial=True)
    return study
