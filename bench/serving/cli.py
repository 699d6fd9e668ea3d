"""``python -m bench latency``: per-request latency of the serving paths, micro-batching, a breakdown."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .. import results_io

LATENCY_EXAMPLES = """examples:
  python -m bench latency --quick                          # smoke run: 2 models, K = 1,10, T = 20, 100 requests (a few minutes)
  python -m bench latency --models din,dien-augru+aux --candidates 1,10,100,500 --seq-lens 50,100,200 --threads 2 --peers
  python -m bench latency --impls batched,shared,exported,onnx --candidates 100 --seq-lens 100   # both export routes
  python -m bench latency --no-latency --microbatch --models dien-augru+aux --at 100,100 --mb-impl shared
  python -m bench latency --no-latency --breakdown --models dien-augru+aux --at 100,100
Writes latency.csv/md/png, metadata.json (and microbatch.csv/md/png, breakdown.md when asked) into <out>/<device>/
(default runs/serving/cpu; the committed reference only with --out results/serving). See docs/serving.md.
"""
QUICK = {"models": "din,dien-augru+aux", "candidates": "1,10", "seq_lens": "20", "requests": 100, "warmup": 10, "peer_requests": 20,
         "mb_requests": 200, "loads": "0.5,1,2", "policies": "0:1,2:8", "at": "10,20"}  # fmt: skip


def listed(values) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def add_latency_parser(sub) -> None:
    from .latency import LatencyConfig
    from .load import MicrobatchConfig

    lat, mb = LatencyConfig(), MicrobatchConfig()  # the flags' defaults are the configs', written once
    p = sub.add_parser("latency", help="per-request serving latency (p50..p99.9): batched, shared history, exported; micro-batching",
                       epilog=LATENCY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--models", default=listed(lat.models), help=f"comma list of model names (default: {listed(lat.models)})")
    p.add_argument("--impls", default=listed(lat.impls),
                   help="comma list of batched, shared, shared-cudagraph (CUDA only), exported (AOTInductor), onnx (ONNX Runtime) "
                        f"(default: {listed(lat.impls)})")  # fmt: skip
    p.add_argument("--candidates", default=listed(lat.candidates),
                   help=f"candidates per request K, comma list (default: {listed(lat.candidates)})")  # fmt: skip
    p.add_argument("--seq-lens", default=listed(lat.seq_lens), help=f"history lengths T, comma list (default: {listed(lat.seq_lens)})")
    p.add_argument("--requests", type=int, default=lat.requests,
                   help=f"timed requests per cell, after the warm-up (default: {lat.requests})")  # fmt: skip
    p.add_argument("--warmup", type=int, default=lat.warmup,
                   help=f"untimed requests per cell and implementation first (default: {lat.warmup})")  # fmt: skip
    p.add_argument("--block", type=int, default=lat.block,
                   help=f"implementations take turns by blocks of this many requests (default: {lat.block})")  # fmt: skip
    p.add_argument("--lengths", default=lat.lengths, choices=("full", "mixed"), help="histories all of T steps, or uniform in 0..T")
    p.add_argument("--threads", type=int, help="CPU threads (torch's and ONNX Runtime's; default: torch's default)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--peers", action="store_true", help="add DeepCTR-Torch's DIEN and DIN on the same requests (needs .[peers])")
    p.add_argument("--peer-requests", type=int, help="timed requests per cell for the peers (default: --requests)")
    p.add_argument("--seed", type=int, default=lat.seed, help=f"seed of the requests (default: {lat.seed})")
    p.add_argument("--export-dir", help="keep the exported packages here and reuse them (default: a temporary folder)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test sizes, unless a flag sets its own: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()),
    )
    p.add_argument("--no-latency", action="store_true", help="skip the latency cells (only --microbatch / --breakdown)")
    g = p.add_argument_group("micro-batching (--microbatch) and breakdown (--breakdown), at one cell")
    g.add_argument("--microbatch", action="store_true", help="simulate open-loop arrivals into a batcher; microbatch.csv/md/png")
    g.add_argument("--breakdown", action="store_true", help="where a request's time goes on the shared path; breakdown.md")
    at = f"{mb.candidates},{mb.seq_len}"
    g.add_argument("--at", default=at, help=f"K,T of the micro-batching sweep and the breakdown (default: {at})")
    g.add_argument("--mb-requests", type=int, default=mb.requests, help=f"requests per load point (default: {mb.requests})")
    g.add_argument("--rates", help="offered loads in requests/s, comma list (default: --loads)")
    g.add_argument("--loads", default=listed(mb.loads),
                   help=f"offered loads as multiples of what the workers hold without batching (default: {listed(mb.loads)})")  # fmt: skip
    policies_text = ",".join(f"{wait:g}:{size}" for wait, size in mb.policies)
    g.add_argument("--policies", default=policies_text,
                   help=f"batching policies max_wait_ms:max_batch (0:1: none; default: {policies_text})")  # fmt: skip
    g.add_argument("--workers", type=int, default=mb.workers,
                   help=f"workers the batches go to, each with --threads threads (default: {mb.workers})")  # fmt: skip
    g.add_argument("--mb-impl", default=mb.impl, choices=("shared", "batched"), help=f"the path a batch runs through (default: {mb.impl})")
    g.add_argument("--p99-budget-ms", default=listed(mb.p99_budgets_ms),
                   help=f"the p99 budgets the capacity table reads, comma list (default: {listed(mb.p99_budgets_ms)})")  # fmt: skip
    p.add_argument("--keep-denormals", action="store_true", help=results_io.KEEP_DENORMALS_HELP)
    p.add_argument("--out", help="output root (default: runs/serving); a folder per device type below it")
    p.set_defaults(func=cmd_latency, defaults={a.dest: a.default for a in p._actions})


def numbers(text: str, flag: str, kind=int) -> tuple:
    try:
        values = tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{flag} takes a comma list of {'whole ' if kind is int else ''}numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{flag} is empty")
    return values


def policies(text: str) -> tuple[tuple[float, int], ...]:
    try:
        return tuple((float(w), int(b)) for w, b in (x.split(":") for x in text.split(",") if x.strip()))
    except ValueError:
        raise ValueError(f"--policies takes max_wait_ms:max_batch pairs, e.g. 0:1,2:16, got {text!r}") from None


def cmd_latency(args: argparse.Namespace) -> int:
    from ..config_io import to_dict
    from ..models import PAPER_SHAPES, plans_of
    from ..results_io import parse_device
    from . import report
    from .export import onnx_available
    from .latency import LatencyConfig, run_latency
    from .load import MicrobatchConfig

    if args.quick:  # the smoke-test sizes, where no flag set its own
        for name, value in QUICK.items():
            if getattr(args, name) == args.defaults[name]:
                setattr(args, name, value)
    names = tuple(x.strip() for x in args.models.split(",") if x.strip())
    impls = tuple(x.strip() for x in args.impls.split(",") if x.strip())
    config = LatencyConfig(
        models=names, impls=impls, candidates=numbers(args.candidates, "--candidates"), seq_lens=numbers(args.seq_lens, "--seq-lens"),
        requests=args.requests, warmup=args.warmup, block=args.block, threads=args.threads, peers=args.peers,
        peer_requests=args.peer_requests, lengths=args.lengths, seed=args.seed,
    )  # fmt: skip
    at = numbers(args.at, "--at")
    if len(at) != 2:
        raise ValueError(f"--at takes K,T, got {args.at!r}")
    microbatch = MicrobatchConfig(
        candidates=at[0], seq_len=at[1], requests=args.mb_requests, rates=numbers(args.rates, "--rates", float) if args.rates else None,
        loads=numbers(args.loads, "--loads", float), policies=policies(args.policies), workers=args.workers, impl=args.mb_impl,
        p99_budgets_ms=numbers(args.p99_budget_ms, "--p99-budget-ms", float), seed=args.seed,
    )  # fmt: skip
    device = parse_device(args.device)
    if config.peers:
        from ..profile import peers

        if not peers.available():
            raise ValueError("--peers needs the package deepctr-torch (pip install -e '.[peers]')")
    if "onnx" in config.impls and not onnx_available():
        raise ValueError('--impls onnx needs onnx, onnxscript and onnxruntime (pip install -e ".[serving]")')
    if config.threads:
        torch.set_num_threads(config.threads)
    results_io.flush_denormals(keep=args.keep_denormals)
    out = (Path(args.out) if args.out else Path("runs") / "serving") / device.type
    meta = results_io.metadata("latency", device, {"latency": to_dict(config), "microbatch": to_dict(microbatch)})
    meta["plans"] = plans_of(config.models, PAPER_SHAPES, device, log=lambda m: print(m, file=sys.stderr))
    written = []
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if not args.no_latency:
        results_io.write_metadata_of_invocations(out, meta, latency=True, microbatch=args.microbatch, breakdown=args.breakdown)
        latency = run_latency(config, device, out, Path(args.export_dir) if args.export_dir else None, log=log)
        report.write_latency_reports(out, latency, meta)
        written += ["latency.csv", "latency.md", "latency.png"]
        print((out / "latency.md").read_text())
    if args.microbatch:
        from .load import run_microbatch

        table = run_microbatch(microbatch, names, device, log=log)
        report.write_microbatch_reports(out, table, microbatch.p99_budgets_ms, meta)
        written += ["microbatch.csv", "microbatch.md", "microbatch.png"]
    if args.breakdown:
        from .breakdown import breakdown_markdown

        results_io.write_text(out / "breakdown.md", breakdown_markdown(names, microbatch.candidates, microbatch.seq_len, device))
        written.append("breakdown.md")
    results_io.write_metadata_of_invocations(out, meta, latency=not args.no_latency, microbatch=args.microbatch, breakdown=args.breakdown)
    print(f"serving results in {out}/ ({', '.join([*written, 'metadata.json'])})", file=sys.stderr)
    return 0
