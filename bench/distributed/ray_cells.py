"""Suite cells as Ray tasks: ``python -m bench run ... --ray ADDRESS``.

The driver (the ``bench run`` process) plans the cells, builds each data set once and puts it in Ray's
object store, then submits one task per cell with the CPUs and GPUs of the suite's ``[resources]``. Tasks
write nothing: each returns its ``CellResult``, and the driver writes runs.csv, the predictions, the curves,
the reports and metadata.json as results arrive, through the same atomic writes as a run in one process,
so a stopped run resumes the same way. A task whose worker process dies is run again by Ray
(``max_retries``); the driver receives one result per cell, so a cell is never counted twice.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterator

import torch

from .. import results_io
from ..data import load_dataset
from ..resources import CellResources
from ..run.runner import CellResult, cell_data, cell_name, run_cell

DEVICES = ("auto", "cpu", "cuda")


def import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError('--ray needs Ray, an optional extra: pip install -e ".[ray]"') from None
    return ray


def parse_address(text: str) -> tuple[str, int | None]:
    """``local`` (a new Ray on this machine, all its CPUs), ``local:N`` (with N CPUs), or a cluster's address
    as ``ray.init`` takes it: ``auto``, ``HOST:6379``, ``ray://HOST:10001``. Returns (address, CPUs)."""
    text = text.strip()
    if not text:
        raise ValueError("--ray takes an address: local, local:N (N CPUs), auto, HOST:PORT or ray://HOST:PORT")
    if text == "local" or text.startswith("local:"):
        cpus = text.removeprefix("local").removeprefix(":")
        if cpus and (not cpus.isdigit() or int(cpus) < 1):
            raise ValueError(f"--ray local:N takes a CPU count N >= 1, got {text!r}")
        return "local", int(cpus) if cpus else None
    return text, None


def cell_device(text: str, resources: CellResources) -> str:
    """The device of each cell's task: a GPU exactly when the suite's [resources] reserves one."""
    if text not in DEVICES:
        hint = "; Ray chooses each cell's GPU: use cuda" if text.startswith("cuda:") else ""
        raise ValueError(f"with --ray, --device takes {', '.join(DEVICES)}, got {text!r}{hint}")
    if text == "cpu" and resources.gpus_per_cell > 0:
        raise ValueError(f"--device cpu, but the suite's [resources] reserves gpus_per_cell = {resources.gpus_per_cell}; set it to 0")
    if text == "cuda" and resources.gpus_per_cell == 0:
        raise ValueError("--device cuda with --ray needs gpus_per_cell > 0 in the suite's [resources], so that Ray gives each cell a GPU")
    return resources.device


def cell_task(suite, data, row, seed, dataset, device: str, threads: int, flush_denormal: bool, desc: str, on_epoch):
    """One cell inside a Ray worker (``dataset`` arrives from the object store); returns what the driver writes."""
    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush_denormal)
    hook = functools.partial(on_epoch, {"dataset": data.dataset, "model": cell_name(row), "seed": seed}) if on_epoch else None
    log = functools.partial(print, file=sys.stderr, flush=True)
    cell = run_cell(suite, data, row, seed, dataset, torch.device(device), desc, log, on_epoch=hook)
    return cell, results_io.git_commit()


class RayCells:
    """``bench.run.runner.run_suite``'s ``execute``: each cell a Ray task, results yielded as they finish.

    ``on_epoch(cell_key, epoch, val_auc)`` runs inside the task after each epoch (a progress hook; the tests
    kill a worker there). ``window`` bounds the tasks in flight (default: twice the cells the cluster fits at
    once), and with it how many data sets sit in the object store.
    """

    writes = True

    def __init__(
        self, address: str, resources: CellResources, device: str = "auto", max_retries: int = 3,
        on_epoch: Callable | None = None, window: int | None = None,
    ) -> None:  # fmt: skip
        self.address, self.local_cpus = parse_address(address)
        self.resources, self.device = resources, cell_device(device, resources)
        if max_retries < 0 or (window is not None and window < 1):
            raise ValueError("max_retries must be >= 0 and window >= 1")
        self.max_retries, self.on_epoch, self.window = max_retries, on_epoch, window
        self.started = False
        self.metadata = {"execution": {
            "engine": "ray", "address": results_io.mask_secrets(address), "cell_device": self.device, "max_retries": max_retries,
            "cpus_per_cell": resources.cpus_per_cell, "gpus_per_cell": resources.gpus_per_cell,
        }}  # fmt: skip

    def connect(self, log):
        """Ray as this process has it (a test's, a notebook's), else a new local one, else the cluster at the address."""
        ray = import_ray()
        if ray.is_initialized():
            log("using the Ray this process is already connected to")
            return ray
        kwargs = {"num_cpus": self.local_cpus, "include_dashboard": False} if self.address == "local" else {}
        try:
            ray.init(address=self.address, log_to_driver=True, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ValueError(f"cannot connect to Ray at {self.address!r}: {err}") from err
        self.started = True
        return ray

    def close(self) -> None:
        if self.started:
            import_ray().shutdown()
            self.started = False

    def slots(self, ray) -> int:
        """How many cells the cluster runs at once; refuses a cell no node can hold."""
        need = {"CPU": self.resources.cpus_per_cell, "GPU": self.resources.gpus_per_cell}
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        if not any(all(res.get(k, 0) >= v for k, v in need.items() if v) for res in nodes):
            have = "; ".join(f"{res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs" for res in nodes) or "no live node"
            raise ValueError(
                f"no node of the Ray cluster at {self.address!r} fits one cell ({need['CPU']:g} CPUs, {need['GPU']:g} GPUs; "
                f"nodes: {have}); change the suite's [resources]"
            )
        total = ray.cluster_resources()
        fits = [total.get(k, 0) // v for k, v in need.items() if v]
        return max(1, int(min(fits)))

    def __call__(self, suite, todo: list, device: torch.device, log) -> Iterator[tuple[CellResult, object]]:
        if not todo:
            return  # nothing to run: no Ray to start
        ray = self.connect(log)
        slots = self.slots(ray)  # also refuses a cell that no node can hold, whatever the window
        window = self.window or 2 * slots
        r = self.resources
        log(f"Ray at {self.address}: each cell a task with {r.cpus_per_cell:g} CPUs, {r.gpus_per_cell:g} GPUs, on {self.device}")
        task = ray.remote(cell_task).options(num_cpus=r.cpus_per_cell, num_gpus=r.gpus_per_cell, max_retries=self.max_retries)
        flush = results_io._denormals_flushed  # what `bench run` set here, the same in every worker
        needs = Counter(cell_data(d, row, s) for d, row, s in todo)
        shared: dict = {}  # data config -> (object ref, test split): built once, dropped after its last cell
        queue, pending, failure = deque(enumerate(todo, 1)), {}, None
        try:
            while pending or (queue and failure is None):
                while queue and failure is None and len(pending) < window:
                    i, (data, row, seed) = queue.popleft()
                    config = cell_data(data, row, seed)
                    if config not in shared:
                        dataset = load_dataset(config)
                        log(f"{dataset.describe()} (seed {seed})")
                        shared[config] = (ray.put(dataset), dataset.test)  # the driver keeps only what it writes
                        del dataset
                    desc = f"[{i}/{len(todo)}] {cell_name(row)} seed {seed}"
                    ref = task.remote(suite, data, row, seed, shared[config][0], self.device, r.threads, flush, desc, self.on_epoch)
                    pending[ref] = (config, desc)
                ready, _ = ray.wait(list(pending), num_returns=1)
                config, desc = pending.pop(ready[0])
                needs[config] -= 1
                test = shared[config][1]
                if not needs[config]:
                    del shared[config]
                try:
                    cell, commit = ray.get(ready[0])
                except Exception as err:  # the cell's own error, or its worker died more than max_retries times
                    failure = failure or self.explain(desc, err, ray)
                    continue
                try:
                    check_commit(commit, desc, log)
                except ValueError as err:  # as a failed cell: the cells in flight still finish and are written
                    failure = failure or err
                    continue
                yield cell, test
        finally:
            for ref in pending:
                ray.cancel(ref)
        if failure is not None:
            raise failure

    def explain(self, desc: str, err: Exception, ray) -> Exception:
        if isinstance(err, ray.exceptions.RayTaskError):
            return err.as_instanceof_cause()  # a ValueError in the cell stays a ValueError (exit 2 with its message)
        return RuntimeError(f"{desc}: {type(err).__name__} after {self.max_retries} retries: {err}; finished cells are saved, "
                            "run the same command again to continue")  # fmt: skip


def check_commit(commit: str, desc: str, log) -> None:
    """Rows carry the driver's commit: a worker that runs other code must not hide behind it."""
    mine = results_io.git_commit()
    if commit != mine and "unknown" not in (commit, mine):
        raise ValueError(f"{desc}: the Ray worker runs commit {commit}, this driver {mine}; install the same code on every node")
    if commit == "unknown" != mine:
        log(f"{desc}: the Ray worker could not tell its commit; its row carries this driver's ({mine})")
