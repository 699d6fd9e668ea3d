"""The exported serving path matches the batched rows: the ``torch.export`` graph for every model
(fast), its AOTInductor package and its ONNX Runtime session for some (slow: each compiles)."""

import dataclasses

import pytest
import torch

from bench.models import MODEL_NAMES
from bench.serving import export
from bench.serving.workload import random_requests
from dien_core.serving import Request, stack
from tests.helpers import VOCAB
from tests.test_serving import TOL, batched, trained_like

T = 5


def requests_for_graph(T: int) -> list[Request]:
    """Requests padded to the graph's T: K = 1 and more, lengths 0, 1, partial, full."""
    out = []
    for i, (K, length) in enumerate([(1, T), (4, T), (1, 0), (3, 0), (2, 1), (6, 3)]):
        r = random_requests(1, K, T, seed=50 + i, vocab=VOCAB)[0]
        keep = torch.arange(T) < length
        out.append(dataclasses.replace(r, hist_item=r.hist_item * keep, hist_cate=r.hist_cate * keep, length=torch.tensor(length)))
    return out


def check(run, model) -> None:
    for request in requests_for_graph(T):
        got = torch.as_tensor(run(stack([request]).tensors())).reshape(-1)
        torch.testing.assert_close(got, batched(model, request), atol=TOL, rtol=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_exported_graph_equals_the_batched_rows(name):
    model = trained_like(name)
    program = export.export_program(model, T, torch.device("cpu"))
    graph = program.module()
    check(lambda t: graph(*t), model)


def test_export_refuses_what_it_cannot_serve():
    model = trained_like("din")
    with pytest.raises(ValueError, match="fixed history length"):
        export.export_program(model, 0, torch.device("cpu"))
    with pytest.raises(ValueError, match="eval mode"):
        export.export_program(model.train(), 3, torch.device("cpu"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dien-augru+aux", "din", "bst"])
def test_aoti_package_equals_the_batched_rows(name, tmp_path):
    model = trained_like(name)
    path = export.export_aoti(model, T, tmp_path / f"{name}.pt2", torch.device("cpu"))
    runner = export.load_aoti(path)
    check(lambda t: runner(*t), model)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dien-augru+aux", "din"])
def test_onnx_runtime_equals_the_batched_rows(name, tmp_path):
    pytest.importorskip("onnxruntime", reason='the onnx route needs pip install -e ".[serving]"')
    pytest.importorskip("onnxscript", reason='the onnx route needs pip install -e ".[serving]"')
    model = trained_like(name)
    scorer = export.OnnxScorer(export.export_onnx(model, T, tmp_path / f"{name}.onnx"), threads=1)
    check(lambda t: scorer(scorer.feeds(t)), model)


def test_an_exported_package_is_named_by_the_code_it_was_traced_from(tmp_path, monkeypatch):
    """A package from other model code is never reused by its file name (``impls.code_stamp``)."""
    import dien_core
    from bench.serving import impls

    stamp = impls.code_stamp()
    assert len(stamp) == 10 and stamp == impls.code_stamp()
    fake = tmp_path / "dien_core"
    (fake / "serving").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "serving" / "parts.py").write_text("x = 1\n")
    try:
        impls.code_stamp.cache_clear()
        monkeypatch.setattr(dien_core, "__file__", str(fake / "__init__.py"))
        other = impls.code_stamp()
        (fake / "serving" / "parts.py").write_text("x = 2\n")  # one line of model code changed
        impls.code_stamp.cache_clear()
        assert len({stamp, other, impls.code_stamp()}) == 3
    finally:
        impls.code_stamp.cache_clear()
