"""``python -m bench``: run the comparison, tune with Optuna, profile speed."""

from __future__ import annotations

import argparse
import sys

from . import results_io
from .data import DataError

DESIGN = "docs/design.md"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="dien-bench: compare DIEN's variants with DIN and sum pooling, tune them with Optuna, time them.",
        epilog="examples:\n  python -m bench run\n  python -m bench compare runs/quick results/quick\n"
        "  python -m bench tune --model dien-augru+aux --trials 30\n  python -m bench profile --models din,dien-augru+aux\n"
        f"Each command's --help lists its options; the contracts are in {DESIGN}.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    from .data.cli import add_data_parser
    from .profile.breakdown import add_breakdown_parser
    from .profile.cli import add_profile_parser
    from .run.cli import add_run_parser
    from .run.compare import add_compare_parser
    from .serving.cli import add_latency_parser
    from .tune.cli import add_tune_parser

    add_run_parser(sub)
    add_tune_parser(sub)
    add_profile_parser(sub)
    add_breakdown_parser(sub)
    add_compare_parser(sub)
    add_data_parser(sub)
    add_latency_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .results_io import git_commit

    git_commit()  # remember the code this process runs, before anything is edited
    argv = sys.argv[1:] if argv is None else list(argv)
    results_io.set_argv(["python -m bench", *argv])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, DataError) as err:
        print(f"error: {results_io.mask_secrets(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are saved; run the same command again to continue", file=sys.stderr)
        return 130
