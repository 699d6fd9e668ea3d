"""``python -m bench tune``: Optuna studies over a model family's search space."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

from .. import results_io
from .config import DEFAULTS, TuneConfig

STORAGE_ENV = "DIEN_BENCH_STORAGE"

TUNE_EXAMPLES = """examples:
  python -m bench tune --model dien-augru+aux --trials 30          # SQLite study under runs/tuning/dien-augru+aux/
  python -m bench tune --model dien-augru+aux --trials 30          # again: 30 more trials in the same study
  python -m bench tune --model din --timeout 600 --fix lr=0.001 --space my_space.toml
  # several machines on one study (Optuna's distributed optimisation), one command per worker:
  python -m bench tune --model dien-augru+aux --storage postgresql://user@db-host/optuna --study augru --seed 1
  DIEN_BENCH_STORAGE=postgresql://user:secret@db-host/optuna python -m bench tune --model din --study din   # URL kept out of argv
  python -m bench run --params-from results/tuning/dien-augru+aux/best.json   # tuned config, over seeds, on test
"""


def add_tune_parser(sub) -> None:
    p = sub.add_parser(
        "tune",
        help="tune a model's hyper-parameters with Optuna (validation AUC)",
        epilog=TUNE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model name, e.g. dien-augru+aux")
    p.add_argument("--suite", default="quick", help="suite whose data and base settings are tuned (default: quick)")
    p.add_argument("--dataset", help="replace the suite's data source")
    p.add_argument("--data-dir", help="folder of the data files")
    p.add_argument("--trials", type=int, default=DEFAULTS["trials"], help=f"trials for this worker (default {DEFAULTS['trials']})")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--study", help="study name (default: the model name)")
    p.add_argument("--storage", help="Optuna RDB URL (default: $DIEN_BENCH_STORAGE, else sqlite:///<out>/study.db); "
                   "passwords in it are masked in every file and message")  # fmt: skip
    p.add_argument("--jobs", type=int, default=DEFAULTS["jobs"], help="parallel trials in this process (threads)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="TPE sampler seed; give each worker its own")
    p.add_argument("--pruner", default=DEFAULTS["pruner"], help=f"median, hyperband or none (default {DEFAULTS['pruner']})")
    p.add_argument("--space", help="TOML whose tables replace the default space's (see bench/spaces/)")
    p.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE", help="pin a parameter, e.g. --fix alpha=1.0")
    p.add_argument("--epochs", type=int, help="maximum epochs per trial")
    p.add_argument("--heartbeat-interval", type=int, default=DEFAULTS["heartbeat_interval"],
                   help=f"seconds between worker heartbeats (default {DEFAULTS['heartbeat_interval']})")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    p.add_argument("--out", help="output folder (default: runs/tuning/<study>)")
    p.add_argument("--keep-denormals", action="store_true", help=results_io.KEEP_DENORMALS_HELP)
    p.set_defaults(func=cmd_tune)


def parse_fixed(items: list[str]) -> dict:
    fixed = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--fix takes NAME=VALUE, got {item!r}")
        try:
            fixed[name.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            fixed[name.strip()] = value
        if isinstance(fixed[name.strip()], list):
            fixed[name.strip()] = tuple(fixed[name.strip()])
    return fixed


def cmd_tune(args: argparse.Namespace) -> int:
    from ..models import check_model_name, plans_of
    from ..overrides import apply_data_overrides
    from ..results_io import parse_device
    from ..suite import load_suite
    from .outputs import write_outputs
    from .space import load_space
    from .study import run_study

    model = check_model_name(args.model)
    suite = apply_data_overrides(load_suite(args.suite), args.dataset, args.data_dir)
    if len(suite.data) > 1:
        names = ", ".join(d.dataset for d in suite.data)
        raise ValueError(f"suite {suite.name!r} has several data sources ({names}); tune one: add --dataset")
    if args.epochs is not None:
        suite = replace(suite, train=replace(suite.train, epochs=args.epochs))
    fixed = parse_fixed(args.fix)
    space = load_space(model, Path(args.space) if args.space else None, fixed)
    study_name = args.study or model
    out = Path(args.out) if args.out else Path("runs") / "tuning" / study_name.replace("/", "_")
    given = args.storage or os.environ.get(STORAGE_ENV)
    storage = given or f"sqlite:///{(out / 'study.db').resolve()}"
    if storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    tune = TuneConfig(
        model=model,
        study=study_name,
        storage=storage,
        trials=args.trials,
        timeout=args.timeout,
        jobs=args.jobs,
        seed=args.seed,
        pruner=args.pruner,
        heartbeat_interval=args.heartbeat_interval,
    )
    device = parse_device(args.device)
    results_io.flush_denormals(keep=args.keep_denormals)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    study = run_study(tune, suite, space, fixed, device, log=log)
    config = {
        "tune": {k: v for k, v in tune.__dict__.items() if k != "storage"},
        "suite": suite.to_dict(),
        "space": {n: {k: v for k, v in p.__dict__.items() if v not in (None, (), False)} for n, p in space.items()},
        "fixed": fixed,
    }
    meta = results_io.metadata("tune", device, config, [tune.seed])
    meta["plans"] = plans_of((tune.model,), suite.model, device)  # the base config's; a trial's sizes do not change it
    meta["storage"] = "sqlite (study.db in this folder)" if given is None else results_io.mask_secrets(storage)
    best = write_outputs(study, out, meta)
    if best is None:
        print(f"no trial has completed yet in study {study_name}; outputs so far in {out}/", file=sys.stderr)
    else:
        print(
            f"best of {len(study.trials)} trials: validation AUC {best['value']:.4f} (trial {best['trial']}); outputs in {out}/",
            file=sys.stderr,
        )
        print((out / "best.md").read_text())
    return 0
