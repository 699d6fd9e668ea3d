"""DeepCTR-Torch's DIEN and DIN scoring a request's K rows, built as ``bench/profile/peers.py`` builds them.

The same feature columns and sizes as the training peers (``run_dien.py`` / ``run_din.py`` in
DeepCTR-Torch's examples), in eval mode, with one change for serving: its DIEN is built without
negative sampling, since with it DeepCTR-Torch computes the auxiliary loss in every forward,
eval included. The auxiliary network only trains; scoring is the same without it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from dien_core.serving import Request

from ..models import PAPER_SHAPES, REALISTIC_VOCAB
from ..profile.peers import PEER_MODELS

# our model name -> DeepCTR-Torch's model of the same kind (bench/profile/peers.py's names)
PEER_OF = {ours: peer for peer, ours in (("deepctr-torch/dien-augru+aux", "dien-augru+aux"), ("deepctr-torch/din", "din"))}
assert set(PEER_OF.values()) == set(PEER_MODELS)


Scorer = tuple[Callable[[Request], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def make_peer(model_name: str, seq_len: int, device: torch.device) -> Scorer:
    """``(prepare, run)`` for the peer of ``model_name`` at history length ``seq_len``: ``prepare``
    turns a request into DeepCTR-Torch's input (K rows of feature columns, as ``BaseModel.fit``
    concatenates them), ``run`` scores it -> ``(K,)`` click probabilities."""
    from deepctr_torch.inputs import SparseFeat, VarLenSparseFeat
    from deepctr_torch.models import DIEN, DIN

    D, v = PAPER_SHAPES.embedding_dim, REALISTIC_VOCAB
    columns = [
        SparseFeat("user", v.users, embedding_dim=D),
        SparseFeat("item_id", v.items, embedding_dim=D),
        SparseFeat("cate_id", v.cates, embedding_dim=D),
    ]
    for feat, shared, size in (("hist_item_id", "item_id", v.items), ("hist_cate_id", "cate_id", v.cates)):
        column = SparseFeat(feat, size, embedding_dim=D, embedding_name=shared)
        columns.append(VarLenSparseFeat(column, maxlen=seq_len, length_name="seq_length"))
    torch.manual_seed(0)
    if PEER_MODELS[PEER_OF[model_name]] == "dien":
        model = DIEN(
            columns, ["item_id", "cate_id"], gru_type="AUGRU", use_negsampling=False, dnn_hidden_units=PAPER_SHAPES.mlp_hidden,
            att_hidden_units=PAPER_SHAPES.attention_hidden, att_activation="sigmoid", device=str(device),
        )  # fmt: skip
    else:
        model = DIN(columns, ["item_id", "cate_id"], dnn_hidden_units=PAPER_SHAPES.mlp_hidden,
                    att_hidden_size=PAPER_SHAPES.attention_hidden, device=str(device))  # fmt: skip
    model.eval()
    order = list(model.feature_index)

    def prepare(request: Request) -> torch.Tensor:
        K = request.candidates
        arrays = {
            "user": request.user.expand(K), "item_id": request.item, "cate_id": request.cate,
            "hist_item_id": request.hist_item.expand(K, -1), "hist_cate_id": request.hist_cate.expand(K, -1),
            "seq_length": request.length.expand(K),
        }  # fmt: skip
        blocks = [arrays[f].cpu().numpy().reshape(K, -1) for f in order]
        return torch.from_numpy(np.concatenate(blocks, axis=-1)).to(device).float()

    def run(x: torch.Tensor) -> torch.Tensor:
        return model(x).squeeze(-1)

    return prepare, run
