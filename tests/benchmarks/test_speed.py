"""pytest-benchmark suite (not in the default run):

    python -m pytest tests/benchmarks --benchmark-only --benchmark-json results/benchmarks/cpu.json

Recurrent layers (forward + backward) against torch.nn.GRU of the same shape, full
training steps, and batch assembly against a DIEN training step at batch 1024, length 100.
On a GPU, ``-k cuda`` times the layers against cuDNN's nn.GRU (scripts/device_check.sh).
"""

import numpy as np
import pytest
import torch

from bench import results_io
from bench.data import BatchLoader, DataConfig, SyntheticConfig, load_dataset
from bench.models import PAPER_SHAPES, REALISTIC_VOCAB
from bench.profile.steps import make_step, random_batch
from dien_core.recurrent import AGRU, AUGRU, GRU

B, D = 128, 36


@pytest.fixture(autouse=True)
def _flush_denormals():
    """As `bench profile` does: denormal gradients of long sequences slow x86 CPUs many times over.
    Per test: tests/conftest.py turns the flush off after every test. ``metadata.json`` records it."""
    results_io.flush_denormals()


def layer_step(name: str, T: int, batch: int = B, device: str = "cpu"):
    torch.manual_seed(0)
    x = torch.randn(batch, T, D, device=device, requires_grad=True)
    att, lengths = torch.rand(batch, T, device=device), torch.full((batch,), T, device=device)
    if name == "nn.GRU":
        layer = torch.nn.GRU(D, D, batch_first=True).to(device)
        run = lambda: layer(x)  # noqa: E731
    else:
        kind, backend = name.split("/")
        layer = {"GRU": GRU, "AGRU": AGRU, "AUGRU": AUGRU}[kind](D, D, implementation=backend).to(device)
        run = lambda: layer(x, att, lengths)  # noqa: E731

    def step():
        out, last = run()
        (out.sum() + last.sum()).backward()
        if device == "cuda":
            torch.cuda.synchronize()

    return step


@pytest.mark.parametrize("T", [20, 50, 100])
@pytest.mark.parametrize(
    "name", ["nn.GRU", "GRU/native", "GRU/cpp", "AGRU/torch", "AGRU/cpp", "AUGRU/torch", "AUGRU/cpp", "AUGRU/reference"]
)
def test_recurrent_layer_forward_backward(benchmark, name, T):
    benchmark.group = f"recurrent fwd+bwd (128, {T}, 36)"
    benchmark(layer_step(name, T))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("T", [50, 100])
@pytest.mark.parametrize("batch", [1024, 4096])
@pytest.mark.parametrize("name", ["nn.GRU", "GRU/triton", "AGRU/triton", "AUGRU/triton", "AUGRU/torch"])
def test_recurrent_layer_forward_backward_cuda(benchmark, name, batch, T):
    benchmark.group = f"cuda recurrent fwd+bwd ({batch}, {T}, 36)"
    benchmark(layer_step(name, T, batch, "cuda"))


@pytest.mark.parametrize("T", [50, 100])
@pytest.mark.parametrize("model", ["din", "dien-augru+aux"])
def test_training_step(benchmark, model, T):
    benchmark.group = f"training step, batch 128, length {T}"
    batch = random_batch(128, T, "full", REALISTIC_VOCAB, torch.device("cpu"))
    benchmark(make_step(model, "train", batch, torch.device("cpu"), torch.float32, PAPER_SHAPES))


@pytest.fixture(scope="module")
def long_histories():
    config = DataConfig(maxlen=100, targets_per_user=1, synthetic=SyntheticConfig(users=12_000, min_len=101, max_len=101))
    return load_dataset(config)


def test_batch_assembly_1024x100(benchmark, long_histories):
    benchmark.group = "batch 1024, length 100: assembly vs DIEN training step"
    ds = long_histories
    loader = BatchLoader(ds, ds.train, 1024, shuffle=True)
    rows = np.arange(1024)
    rng = np.random.default_rng(0)
    batch = benchmark(loader.make_batch, rows, rng)
    assert batch.hist_item.shape == (1024, 100)


def test_dien_training_step_1024x100(benchmark):
    benchmark.group = "batch 1024, length 100: assembly vs DIEN training step"
    batch = random_batch(1024, 100, "full", REALISTIC_VOCAB, torch.device("cpu"))
    step = make_step("dien-augru+aux", "train", batch, torch.device("cpu"), torch.float32, PAPER_SHAPES)
    benchmark.pedantic(step, rounds=3, warmup_rounds=1)
