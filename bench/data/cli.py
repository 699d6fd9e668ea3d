"""``python -m bench data``: get data files, e.g. ``python -m bench data fetch movielens-1m``."""

from __future__ import annotations

import argparse
import re

DATA_EXAMPLES = """examples:
  python -m bench data fetch movielens-1m                      # into $DIEN_BENCH_DATA/movielens/ml-1m (default ~/.cache/dien-bench/data)
  python -m bench data fetch movielens-100k --dest ~/dien-data # into ~/dien-data/movielens/ml-100k; then --data-dir ~/dien-data
  python -m bench data fetch movielens-1m --url https://mirror.example/ml-1m.zip   # a mirror of the same file
"""


def add_data_parser(sub) -> None:
    """Add ``data`` (with its ``fetch`` subcommand) to the CLI's subparsers ``sub``."""
    from .fetch import SOURCES, TIMEOUT_SECONDS

    data = sub.add_parser(
        "data", help="get data files (MovieLens from GroupLens)", epilog=DATA_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    actions = data.add_subparsers(dest="data_command", required=True)
    fetch = actions.add_parser(
        "fetch",
        help="download a GroupLens archive, check its sha256 and unpack it",
        description="Download a MovieLens archive from GroupLens, check its pinned sha256 and unpack it into "
        "DEST/movielens/ml-<variant>/, where the MovieLens reader looks by default.",
        epilog=DATA_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fetch.add_argument("name", choices=sorted(SOURCES), help="dataset to download")
    fetch.add_argument("--dest", help="data root to unpack under (default: $DIEN_BENCH_DATA or ~/.cache/dien-bench/data)")
    fetch.add_argument(
        "--url", help="download from this URL instead (a mirror); its file must match the pinned sha256 unless --sha256 is given"
    )
    fetch.add_argument("--sha256", help="with --url: the archive's expected sha256 (64 hex digits)")
    fetch.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS,
                       help=f"seconds to wait on the network before giving up (default {TIMEOUT_SECONDS:g})")  # fmt: skip
    fetch.set_defaults(func=cmd_fetch)


def cmd_fetch(args: argparse.Namespace) -> int:
    """Fetch ``args.name``; failures raise DataError or ValueError (the CLI prints them, exit status 2)."""
    from .fetch import fetch, target_dir

    if args.sha256 is not None:
        if not args.url:
            raise ValueError("--sha256 goes with --url (GroupLens's own archives have pinned checksums)")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256.strip()):
            raise ValueError(f"--sha256 takes 64 hex digits, got {args.sha256!r}")
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be positive, got {args.timeout}")
    target = target_dir(args.name, args.dest)
    existed = target.exists()
    fetch(args.name, args.dest, url=args.url, sha256=args.sha256, timeout=args.timeout)
    state = "already there" if existed else "downloaded and checked"
    hint = "" if args.dest is None else f" (use --data-dir {target.parent.parent})"
    print(f"{args.name}: {state}, in {target}{hint}")
    return 0
