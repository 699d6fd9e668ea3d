"""DeepCTR-Torch's DIEN and DIN under the same shapes, fed as its own examples feed them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from dien_core import Batch

from ..models import PAPER_SHAPES, REALISTIC_VOCAB
from .steps import autocast

PEER_MODELS = {"deepctr-torch/dien-augru+aux": "dien", "deepctr-torch/din": "din"}


def available() -> bool:
    try:
        import deepctr_torch  # noqa: F401
    except ImportError:
        return False
    return True


def make_peer_step(name: str, mode: str, batch: Batch, device: torch.device, dtype: torch.dtype = torch.float32) -> Callable[[], None]:
    """Build the peer model with feature columns as in DeepCTR-Torch's run_dien.py / run_din.py;
    ``dtype`` bfloat16 runs its step under autocast, as ours."""
    from deepctr_torch.inputs import SparseFeat, VarLenSparseFeat
    from deepctr_torch.models import DIEN, DIN

    D, T = PAPER_SHAPES.embedding_dim, batch.hist_item.shape[1]
    v = REALISTIC_VOCAB
    columns = [
        SparseFeat("user", v.users, embedding_dim=D),
        SparseFeat("item_id", v.items, embedding_dim=D),
        SparseFeat("cate_id", v.cates, embedding_dim=D),
    ]
    history = {"hist_item_id": ("item_id", v.items), "hist_cate_id": ("cate_id", v.cates)}
    negatives = PEER_MODELS[name] == "dien"
    if negatives:
        history |= {"neg_hist_item_id": ("item_id", v.items), "neg_hist_cate_id": ("cate_id", v.cates)}
    for feat, (shared, size) in history.items():
        columns.append(VarLenSparseFeat(SparseFeat(feat, size, embedding_dim=D, embedding_name=shared), maxlen=T, length_name="seq_length"))
    torch.manual_seed(0)
    if negatives:
        model = DIEN(
            columns, ["item_id", "cate_id"], gru_type="AUGRU", use_negsampling=True, alpha=1.0, dnn_hidden_units=PAPER_SHAPES.mlp_hidden,
            att_hidden_units=PAPER_SHAPES.attention_hidden, att_activation="sigmoid", device=str(device),
        )  # fmt: skip
    else:
        model = DIN(
            columns,
            ["item_id", "cate_id"],
            dnn_hidden_units=PAPER_SHAPES.mlp_hidden,
            att_hidden_size=PAPER_SHAPES.attention_hidden,
            device=str(device),
        )
    model.compile("adam", "binary_crossentropy")
    arrays = {
        "user": batch.user, "item_id": batch.item, "cate_id": batch.cate, "hist_item_id": batch.hist_item, "hist_cate_id": batch.hist_cate,
        "neg_hist_item_id": batch.neg_item, "neg_hist_cate_id": batch.neg_cate, "seq_length": batch.lengths,
    }  # fmt: skip
    # BaseModel.fit: one column block per feature in feature_index order, concatenated, as float.
    x_np = [arrays[f].cpu().numpy().reshape(batch.size, -1) for f in model.feature_index]
    x = torch.from_numpy(np.concatenate(x_np, axis=-1)).to(device).float()
    y = batch.label.to(device)
    if mode == "forward":
        model.eval()

        def forward() -> None:
            with torch.inference_mode(), autocast(device, dtype):
                model(x)

        return forward
    model.train()

    def train_step() -> None:  # BaseModel.fit's inner loop, without its .item() logging
        with autocast(device, dtype):
            y_pred = model(x).squeeze(-1)
        model.optim.zero_grad()
        loss = F.binary_cross_entropy(y_pred.float(), y, reduction="sum")
        total = loss + model.get_regularization_loss() + model.aux_loss
        total.backward()
        model.optim.step()

    return train_step
