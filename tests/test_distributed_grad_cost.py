"""`python -m bench.distributed.grad_cost`: the bytes and all-reduce times of embedding vs other gradients on gloo."""

import json

import pytest
import torch
from torch import nn

from bench.distributed.grad_cost import main
from bench.models import PAPER_SHAPES, build_model
from dien_core import VocabSizes

VOCAB = (50, 300, 12)


def test_reports_what_ddp_sends_for_the_embeddings_and_the_rest(tmp_path, capfd):
    out = tmp_path / "cost.json"
    argv = ["--model", "din", "--vocab", ",".join(map(str, VOCAB)), "--batch-size", "16", "--seq-len", "6", "--repeats", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    model = build_model("din", PAPER_SHAPES, VocabSizes(*VOCAB))
    tables = {name: m.weight for name, m in model.named_modules() if isinstance(m, nn.Embedding)}
    embedding = sum(w.numel() * 4 for w in tables.values())
    assert result["embedding_bytes"] == embedding
    assert result["other_bytes"] == sum(p.numel() * 4 for p in model.parameters()) - embedding
    assert set(result["tables"]) == set(tables)
    for name, t in result["tables"].items():
        assert t["rows"] == tables[name].shape[0] and 1 <= t["touched_rows"] <= min(t["rows"], 16 * 7)
    rows = sum(t["touched_rows"] for t in result["tables"].values())
    assert result["sparse_bytes"] == rows * (PAPER_SHAPES.embedding_dim * 4 + 8)
    for key in ("step_seconds", "embedding_allreduce_seconds", "other_allreduce_seconds", "sparse_allgather_seconds"):
        assert 0 < result[key] < 10, key
    printed = capfd.readouterr().out  # printed by rank 0, a child process
    assert "embedding tables, dense (what DDP sends)" in printed and "touched rows: embedding.user" in printed


@pytest.mark.parametrize("argv, message", [(["--vocab", "10,20"], "USERS,ITEMS,CATEGORIES"), (["--model", "lstm"], "unknown model")])
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert torch.distributed.is_initialized() is False
