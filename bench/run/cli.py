"""``python -m bench run``: train and compare models over seeds (a suite, its rows, tuned rows)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from .. import results_io
from ..data import DATASETS

DESIGN = "docs/design.md"
RUN_EXAMPLES = f"""examples:
  python -m bench run                                   # the quick suite on built-in synthetic data, into runs/quick/
  python -m bench compare runs/quick results/quick      # does it reproduce the committed reference?
  python -m bench run --suite standard --data-dir ~/data/movielens    # synthetic + MovieLens-1M (or $DIEN_BENCH_DATA)
  python -m bench run --suite paper --dataset amazon --data-dir ~/dien-data   # the DIEN Amazon files, the authors' settings
  python -m bench run --models din,dien-augru+aux --seeds 5 --epochs 3 --out runs/try
  python -m bench run --params-from results/tuning/dien-augru+aux/best.json
  python -m bench run --params-from runs/tuning/din/best.json,runs/tuning/dien-augru+aux/best.json --seeds 5   # tuned vs tuned
  python -m bench run --suite standard --dry-run        # list the cells that would run
  python -m bench run --suite standard --ray local      # each cell a Ray task (--ray auto: the cluster this machine is in)
  torchrun --nproc-per-node 2 -m bench run --models dien-augru+aux --seeds 1   # one cell, data-parallel (DDP)
Model names, data formats and the results layout: {DESIGN}.
"""


def add_run_parser(sub) -> None:
    run = sub.add_parser(
        "run", help="train and compare models over seeds", epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    run.add_argument("--suite", default="quick", help="built-in suite (quick, standard, paper) or a .toml path (default: quick)")
    run.add_argument("--dataset", choices=DATASETS, help="replace the suite's data source")
    run.add_argument("--data-dir", help="folder of the data files (MovieLens, Amazon)")
    run.add_argument("--models", help=f"comma list of model or row names (see {DESIGN}), e.g. din,dien-augru+aux")
    run.add_argument("--seeds", help="count (3 = seeds 0,1,2) or comma list of seeds")
    run.add_argument("--epochs", type=int, help="maximum epochs per model")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    run.add_argument("--ray", metavar="ADDRESS", help="each cell a Ray task: local, local:N (N CPUs), auto, HOST:PORT or "
                     "ray://HOST:PORT; needs .[ray] (docs/distributed.md)")  # fmt: skip
    run.add_argument("--out", help="output folder (default: runs/<suite>; reference results change only with --out results/...)")
    run.add_argument("--dry-run", action="store_true", help="resolve the suite and list the cells to run; train nothing")
    run.add_argument("--params-from", action="append", metavar="BEST_JSON",
                     help="best.json of a tuning study: evaluate its configuration; give several (repeated or "
                          "comma-separated) to compare tuned against tuned, one row each")  # fmt: skip
    run.add_argument("--keep-denormals", action="store_true", help=results_io.KEEP_DENORMALS_HELP)
    run.set_defaults(func=cmd_run)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``3`` means seeds 0, 1, 2; ``1,5,7`` lists them."""
    try:
        if "," in text:
            seeds = tuple(int(s) for s in text.split(",") if s.strip())
        else:
            count = int(text)
            if count < 1:
                raise ValueError
            seeds = tuple(range(count))
    except ValueError:
        raise ValueError(f"--seeds takes a count >= 1 (e.g. 3) or a comma list of seeds (e.g. 0,4,7), got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"--seeds must name non-negative seeds, got {text!r}")
    return seeds


def csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_run(args: argparse.Namespace) -> int:
    from ..heuristics import HEURISTICS
    from ..overrides import apply_data_overrides
    from ..suite import Row, load_suite
    from ..tune.params import apply_params
    from .runner import run_suite

    suite = load_suite(args.suite)
    if args.params_from:
        suite = apply_params(suite, [Path(p) for text in args.params_from for p in csv_list(text)])
    suite = apply_data_overrides(suite, args.dataset, args.data_dir)
    if args.models:
        names = csv_list(args.models)
        by_name = {r.name: r for r in suite.rows}
        if args.params_from:  # only the studies' rows; a bare model name means its tuned row
            tuned = {r.model: [x for x in suite.rows if x.model == r.model] for r in suite.rows}
            by_name.update({m: rows[0] for m, rows in tuned.items() if len(rows) == 1})
            if unknown := [n for n in names if n not in by_name]:
                raise ValueError(f"--models {', '.join(unknown)}: not among the tuned rows ({', '.join(r.name for r in suite.rows)})")
        rows = tuple(by_name.get(n) or Row(n) for n in names)
        kept = {r.name for r in rows} | set(HEURISTICS)
        suite = replace(suite, models=(), variants=rows, comparisons=tuple(c for c in suite.comparisons if set(c) <= kept))
    if args.seeds:
        suite = replace(suite, seeds=parse_seeds(args.seeds))
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
        suite = replace(suite, train=replace(suite.train, epochs=args.epochs))
    from ..distributed.launch import execution

    results_io.flush_denormals(keep=args.keep_denormals)
    out = Path(args.out) if args.out else Path("runs") / suite.name
    with execution(args.ray, args.device, suite) as (device, execute):  # this process, Ray tasks, or torchrun's ranks
        writes = getattr(execute, "writes", True)  # under torchrun, rank 0 alone writes and talks
        log = (lambda m: print(m, file=sys.stderr)) if writes else (lambda m: None)
        table = run_suite(suite, out, device, log=log, dry_run=args.dry_run, execute=execute)
    if args.dry_run or not writes:
        return 0
    if not table.empty:
        print((out / "auc.md").read_text())
    print(f"results in {out}/ (runs.csv, auc.md, auc.png, curves.png, metadata.json)", file=sys.stderr)
    return 0
