import gzip
import os
from pathlib import Path

import pytest
import torch

# Without a GPU the Triton kernels run under Triton's interpreter (on CPU tensors); it is chosen
# when a kernel is defined, so before dien_core's Triton module is imported by any test.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own dataset cache, so none sees another's files; the CLIs' denormal
    flush (process-wide) does not outlive the test that set it."""
    monkeypatch.setenv("DIEN_BENCH_CACHE", str(tmp_path / "cache"))
    yield
    torch.set_flush_denormal(False)


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    path = Path(os.environ.get("DIEN_BENCH_SHARED_DATA", SHARED_DATA)) / "movielens"
    if not path.is_dir():
        pytest.skip(f"MovieLens copies not found at {path} (set DIEN_BENCH_SHARED_DATA)")
    return path


def write_amazon_fixture(folder: Path, users: int = 30, seed: int = 0, gz: bool = False) -> Path:
    """Small files in the DIEN repository's format: paired clicked/non-clicked lines per user."""
    import random

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cates = [f"C{c}" for c in range(6)]
    items = {f"I{i}": cates[i % 6] for i in range(60)}
    names = list(items)

    def lines(user_range):
        out = []
        for u in user_range:
            hist = rng.sample(names, rng.randint(1, 12))
            target = rng.choice(names)
            other = rng.choice(names)
            h_items, h_cats = "\x02".join(hist), "\x02".join(items[i] for i in hist)
            out.append(f"1\tA{u}\t{target}\t{items[target]}\t{h_items}\t{h_cats}\n")
            out.append(f"0\tA{u}\t{other}\t{items[other]}\t{h_items}\t{h_cats}\n")
        return "".join(out)

    (folder / "local_train_splitByUser").write_text(lines(range(users)))
    (folder / "local_test_splitByUser").write_text(lines(range(users, users + users // 3)))
    (folder / "item-info").write_text("".join(f"{i}\t{c}\n" for i, c in items.items()))
    if gz:
        for name in ("local_train_splitByUser",):
            data = (folder / name).read_bytes()
            (folder / name).write_bytes(gzip.compress(data))
    return folder


def pytest_ignore_collect(collection_path, config):
    """tests/benchmarks runs only when asked: `pytest tests/benchmarks --benchmark-only`."""
    if "benchmarks" in collection_path.parts and not config.getoption("benchmark_only", default=False):
        return True
    return None
