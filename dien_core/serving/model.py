"""The serving entry point: a model's eval forward with the history's work done once per request."""

from __future__ import annotations

import torch
from torch import nn

from .parts import check_loops
from .requests import Request, Requests, check_ids, stack


class ServingModel(nn.Module):
    """Scores requests (one user, one history, K candidates each) with a model's parameters.

    Args: ``model``, any of this repository's models (they have ``encode_history`` and
    ``score_candidates``), in eval mode; ``loops``: ``"planned"`` (each layer's implementation, as the
    model's plan chose it) or ``"unrolled"`` (torch ops only, step by step: what ``torch.export`` traces). The parameters are the model's
    own, not copies. ``forward`` takes R stacked requests, ``user (R,)``, ``hist_item, hist_cate
    (R, T)``, ``lengths (R,)``, ``item, cate (N,)``, ``owner (N,)`` (each candidate's request),
    and returns logits ``(N,)``: those of the candidates' rows through ``model`` in eval mode.
    ``score`` and ``score_request`` run it under ``torch.inference_mode``.
    """

    def __init__(self, model: nn.Module, loops: str = "planned") -> None:
        super().__init__()
        if not (hasattr(model, "encode_history") and hasattr(model, "score_candidates")):
            raise ValueError(f"{type(model).__name__} has no serving path (encode_history / score_candidates)")
        self.model, self.loops = model, check_loops(loops)

    def forward(self, user: torch.Tensor, hist_item: torch.Tensor, hist_cate: torch.Tensor, lengths: torch.Tensor, item: torch.Tensor,
                cate: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:  # fmt: skip
        R, T = hist_item.shape
        if self.model.training:
            raise ValueError("serving scores as in eval mode: call model.eval() first (dropout, Dice's running statistics)")
        check_ids(user, hist_item, hist_cate, item, cate, owner)
        history = self.model.encode_history(user, hist_item, hist_cate, lengths, self.loops)
        return self.model.score_candidates(history, item, cate, owner, self.loops)

    def score(self, requests: Requests) -> torch.Tensor:
        """Logits ``(N,)`` of stacked requests (``requests.split`` gives them per request)."""
        with torch.inference_mode():
            return self(*requests.tensors())

    def score_request(self, request: Request) -> torch.Tensor:
        """Logits ``(K,)`` of one request's candidates."""
        return self.score(stack([request]))

    def extra_repr(self) -> str:
        return f"loops={self.loops!r}"
