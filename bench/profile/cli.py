"""``python -m bench profile``: forward and training-step timing across sequence lengths."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .. import results_io

PROFILE_EXAMPLES = """examples:
  python -m bench profile                                   # every model, the devices present, T = 10..200
  python -m bench profile --models din,dien-augru+aux --seq-lens 50,100 --batch-sizes 128 --modes train
  python -m bench profile --devices cuda --batch-sizes 1024,4096 --dtype float32,bfloat16
  python -m bench profile --peers                           # add DeepCTR-Torch's DIEN and DIN (pip install deepctr-torch)
"""


def add_profile_parser(sub) -> None:
    from .timing import DEFAULT_BATCHES, ProfileConfig

    default = ProfileConfig()  # the flags' defaults are the config's, written once

    def listed(values: tuple) -> str:
        return ",".join(map(str, values))

    p = sub.add_parser("profile", help="time forward and training steps across sequence lengths", epilog=PROFILE_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--devices", help="comma list of cpu, cuda (default: the devices present)")
    p.add_argument("--models", help="comma list of model names (default: all)")
    p.add_argument("--seq-lens", help=f"comma list (default: {listed(default.seq_lens)})")
    per_device = "; ".join(f"{listed(b)} on {d.upper()}" for d, b in DEFAULT_BATCHES.items())
    p.add_argument("--batch-sizes", help=f"comma list (default: {per_device})")
    p.add_argument("--modes", help=f"forward, train or both (default: {listed(default.modes)})")
    p.add_argument("--dtype", help=f"float32, bfloat16 or both, under autocast (default: {listed(default.dtypes)})")
    p.add_argument("--lengths", help=f"full (every row at T), mixed (uniform 1..T), or both (default: {listed(default.lengths)})")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's default)")
    p.add_argument("--min-run-time", type=float, help=f"seconds of timing per model and round (default {default.min_run_time})")
    p.add_argument("--rounds", type=int, help=f"interleaved rounds over the models (default {default.rounds})")
    p.add_argument("--peers", action="store_true", help="add DeepCTR-Torch's DIEN (AUGRU, negative sampling) and DIN")
    p.add_argument("--keep-denormals", action="store_true", help=results_io.KEEP_DENORMALS_HELP)
    p.add_argument("--out", help="output root (default: runs/profile; reference timings change only with --out results/profile)"
                   "; a folder per device name below it")  # fmt: skip
    p.set_defaults(func=cmd_profile)


def ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{flag} takes a comma list of whole numbers, got {text!r}") from None


def cmd_profile(args: argparse.Namespace) -> int:
    from ..config_io import to_dict
    from ..models import PAPER_SHAPES, plans_of
    from . import peers
    from . import report as profile_report
    from .timing import DTYPES, MODEL_PRODUCTS, ProfileConfig, bfloat16_note, device_slug, matmul_gflops, profile_device

    def names(text: str | None) -> tuple[str, ...] | None:
        return tuple(x.strip() for x in text.split(",") if x.strip()) if text else None

    given = {
        "models": names(args.models), "seq_lens": args.seq_lens and ints(args.seq_lens, "--seq-lens"),
        "batch_sizes": args.batch_sizes and ints(args.batch_sizes, "--batch-sizes"), "modes": names(args.modes),
        "dtypes": names(args.dtype), "lengths": names(args.lengths), "threads": args.threads, "min_run_time": args.min_run_time,
        "rounds": args.rounds, "peers": args.peers,
    }  # fmt: skip
    config = ProfileConfig(**{k: v for k, v in given.items() if v is not None})  # flags left out keep the config's defaults
    devices = names(args.devices) or (("cpu", "cuda") if torch.cuda.is_available() else ("cpu",))
    for d in devices:
        if d not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {d!r}; allowed: cpu, cuda")
    if config.peers and not peers.available():
        raise ValueError("--peers needs the package deepctr-torch (pip install deepctr-torch==0.3.0)")
    if config.threads:
        torch.set_num_threads(config.threads)
    results_io.flush_denormals(keep=args.keep_denormals)  # for every model in the process, peers included
    root = Path(args.out) if args.out else Path("runs") / "profile"
    ran = False
    for d in devices:
        if d == "cuda" and not torch.cuda.is_available():
            print("skipping cuda: torch sees no CUDA GPU on this machine", file=sys.stderr)
            continue
        device = torch.device(d)
        out = root / device_slug(device)
        meta = results_io.metadata("profile", device, to_dict(config))
        meta["matmul_gflops"] = matmul_gflops(device)
        meta["model_matmul_gflops"] = {
            f"{name} {dtype}": matmul_gflops(device, *shape, dtype=DTYPES[dtype])
            for name, shape in MODEL_PRODUCTS.items()
            for dtype in config.dtypes
        }
        meta["plans"] = plans_of(config.models, PAPER_SHAPES, device, config.dtypes, log=lambda m: print(m, file=sys.stderr))
        if "bfloat16" in config.dtypes and (note := bfloat16_note(device)):
            print(f"warning: {note}", file=sys.stderr)
            meta["bfloat16_note"] = note
        results_io.write_metadata_of_invocations(out, meta)  # timings.csv accumulates over invocations
        timings = profile_device(device, config, out, log=lambda m: print(m, file=sys.stderr))
        profile_report.write_reports(out, timings, meta)
        print(
            f"{d}: {len(timings)} cells in {out}/ (timings.csv, timings.md, throughput.png, step_time.png, metadata.json)", file=sys.stderr
        )
        ran = True
    if not ran:
        print("no device to profile", file=sys.stderr)
    return 0
