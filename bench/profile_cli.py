"""``python -m bench profile``: forward and training-step timing across sequence lengths."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import results_io

PROFILE_EXAMPLES = """examples:
  python -m bench profile                                   # every model, the devices present, T = 10..200
  python -m bench profile --models din,dien-augru+aux --seq-lens 50,100 --batch-sizes 128 --modes train
  python -m bench profile --devices cuda --batch-sizes 1024,4096 --dtype float32,bfloat16
  python -m bench profile --peers                           # add DeepCTR-Torch's DIEN and DIN (pip install deepctr-torch)
"""


def add_profile_parser(sub) -> None:
    p = sub.add_parser("profile", help="time forward and training steps across sequence lengths", epilog=PROFILE_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--devices", help="comma list of cpu, cuda (default: the devices present)")
    p.add_argument("--models", help="comma list of model names (default: all)")
    p.add_argument("--seq-lens", default="10,20,50,100,200", help="comma list (default: 10,20,50,100,200)")
    p.add_argument("--batch-sizes", help="comma list (default: 128,1024 on CPU; 1024,4096 on CUDA)")
    p.add_argument("--modes", default="forward,train", help="forward, train or both (default: both)")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16 or both (autocast)")
    p.add_argument("--lengths", default="full,mixed", help="full (every row at T), mixed (uniform 1..T), or both")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's default)")
    p.add_argument("--min-run-time", type=float, default=0.5, help="seconds of timing per model and round (default 0.5)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the models (default 2)")
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
    from . import peers, profile_report
    from .config_io import to_dict
    from .profile import DTYPES, MODEL_PRODUCTS, ProfileConfig, device_slug, matmul_gflops, profile_device

    def names(text: str | None) -> tuple[str, ...] | None:
        return tuple(x.strip() for x in text.split(",") if x.strip()) if text else None

    kwargs = {
        "seq_lens": ints(args.seq_lens, "--seq-lens"), "modes": names(args.modes), "dtypes": names(args.dtype),
        "lengths": names(args.lengths), "threads": args.threads, "min_run_time": args.min_run_time, "rounds": args.rounds,
        "peers": args.peers,
    }  # fmt: skip
    if args.models:
        kwargs["models"] = names(args.models)
    if args.batch_sizes:
        kwargs["batch_sizes"] = ints(args.batch_sizes, "--batch-sizes")
    config = ProfileConfig(**kwargs)
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
