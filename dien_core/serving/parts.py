"""The serving path's parts: what a request's history gives once, and what each candidate costs.

Every model splits its eval forward in two (``encode_history``, ``score_candidates``) from these:

- ``embed_history``: the user's and the history's lookups, the mask and the pooled sum, once per request;
- ``attention_keys`` / ``candidate_attention``: DIN's unit with its first layer split
  (``AttentionUnit.scores``'s algebra), the key half ``(W_k - W_d) k`` once per request, the query
  half and the ``q * k`` term per candidate; in torch ops, or (the plan's ``serving_attention``)
  fused over tiles of candidates in C++;
- ``history_recurrence``: a recurrence that does not read the candidate (DIEN's extractor, the
  GRU of ``gru-att``, ``dien-gru``'s evolution), once per request;
- ``input_projection`` / ``candidate_recurrence``: AIGRU, AGRU and AUGRU, whose input projection
  ``W_ih x_t`` is the history's and whose gates are the candidate's;
- ``split_head``: the head's first layer split by parts, the request's parts (user, pooled
  history) once, the candidate's per candidate.

``loops`` says how the recurrences run: ``"planned"``, each layer's own implementation as the model's
plan chose it (C++ on CPU, Triton on CUDA, as in training); ``"unrolled"``, torch ops only, one step after another, which
``torch.export`` traces into a graph with the loop unrolled (the exported form).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType

import torch
import torch.nn.functional as F

from ..attention import AttentionUnit
from ..batch import step_mask
from ..embedding import FeatureEmbedding
from ..head import Head
from ..kernels import cpp
from ..kernels.attention import serving_scores
from ..kernels.plan import FORMS, Plan

LOOPS = ("planned", "unrolled")


def check_loops(loops: str) -> str:
    if loops not in LOOPS:
        raise ValueError(f"unknown serving loops {loops!r}; allowed: {', '.join(LOOPS)}")
    return loops


@dataclass(frozen=True)
class History:
    """What a model keeps of R requests' histories: ``user (R, D)``, ``hist (R, T, E)`` the
    behaviour embeddings, ``hist_sum (R, E)``, ``mask (R, T)`` bool, and the model's own tensors in
    ``extra`` (for DIEN: the attention keys, their projection and the evolution's input projection)."""

    user: torch.Tensor
    hist: torch.Tensor
    hist_sum: torch.Tensor
    mask: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def with_extra(self, **extra: torch.Tensor) -> History:
        return History(self.user, self.hist, self.hist_sum, self.mask, {**self.extra, **extra})


def lookup(tables: Sequence[torch.Tensor], ids: Sequence[torch.Tensor], kernels: ModuleType | None = None) -> torch.Tensor:
    """Rows of ``tables`` (each ``(V_k, D_k)``) side by side for ``ids`` of one shape ``S``: ``(*S, sum D_k)``;
    id 0 reads zeros (``TableLookup``'s contract; empty ``S`` allowed). With ``kernels`` (``lookup_kernels``):
    in one call of their C++ gather (``csrc/embedding_cpu.cpp``), else in torch ops (what ``torch.export`` traces)."""
    width = sum(t.shape[1] for t in tables)
    if kernels is not None:
        return kernels.gather_rows(list(tables), [i.reshape(1, -1) for i in ids]).reshape(*ids[0].shape, width)
    rows = [table.index_select(0, i.reshape(-1)) * (i.reshape(-1, 1) != 0) for table, i in zip(tables, ids)]
    return torch.cat(rows, dim=-1).reshape(*ids[0].shape, width)


def lookup_kernels(embedding: FeatureEmbedding, loops: str) -> ModuleType | None:
    """The C++ kernels whose gather the serving lookups run, where the embedding's plan is ``cpp`` and the
    loops are the planned ones (else None: torch ops). A ValueError for tables off the CPU."""
    if loops != "planned" or embedding.implementation != "cpp":
        return None
    return cpp.planned_kernels(embedding.item.weight.device, "embedding")


def embed_history(embedding: FeatureEmbedding, user: torch.Tensor, hist_item: torch.Tensor, hist_cate: torch.Tensor,
                  lengths: torch.Tensor, loops: str = "planned") -> History:  # fmt: skip
    """``user (R,)``, ``hist_item, hist_cate (R, T)``, ``lengths (R,)`` -> ``History``; ids at padded
    steps read as 0 (zeros), as in ``FeatureEmbedding``; the lookups as the plan's embedding (``lookup_kernels``)."""
    R, T = hist_item.shape
    kernels = lookup_kernels(embedding, loops)
    mask = step_mask(lengths, T)
    keep = mask.long()
    hist = lookup([embedding.item.weight, embedding.cate.weight], [hist_item * keep, hist_cate * keep], kernels)  # (R, T, E)
    u = lookup([embedding.user.weight], [user], kernels)
    return History(u, hist, hist.sum(dim=1), mask)


def embed_candidates(embedding: FeatureEmbedding, item: torch.Tensor, cate: torch.Tensor, loops: str = "planned") -> torch.Tensor:
    """``item, cate (N,)`` -> ``e_t (N, E)``."""
    (N,) = item.shape
    return lookup([embedding.item.weight, embedding.cate.weight], [item, cate], lookup_kernels(embedding, loops))


def per_candidate(x: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """Each candidate's row of a request-level ``x (R, ...)``: ``(N, ...)``, a broadcast view for one request."""
    (N,) = owner.shape
    return x.expand(N, *x.shape[1:]) if x.shape[0] == 1 else x.index_select(0, owner)


def attention_keys(attention: AttentionUnit, keys: torch.Tensor) -> torch.Tensor:
    """The key half of the first layer, ``keys (R, T, D)`` -> ``(W_k - W_d) k`` ``(R, T, H1)``."""
    R, T, D = keys.shape
    _, w_k, w_d, _ = attention.mlp.first.weight.split(D, dim=1)
    return keys @ (w_k - w_d).t()


def attention_implementation(plan: Plan, loops: str) -> str:
    """The form ``candidate_attention`` runs: the plan's ``serving_attention`` with the planned loops, the
    torch ops when ``torch.export`` traces (``"unrolled"``)."""
    return plan["serving_attention"] if loops == "planned" else "torch"


def candidate_attention(attention: AttentionUnit, keys: torch.Tensor, key_part: torch.Tensor, query: torch.Tensor, owner: torch.Tensor,
                        mask: torch.Tensor, implementation: str = "torch") -> torch.Tensor:  # fmt: skip
    """Weights ``(N, T)`` of each candidate ``query (N, D)`` over its request's ``keys (R, T, D)``
    (``key_part`` from ``attention_keys``, ``mask (R, T)``, ``owner (N,)``); as ``AttentionUnit``.
    ``implementation``: ``"torch"`` (below), ``"cpp"`` (``kernels/attention.py``: the scores fused
    over tiles of candidates in C++, the normalisation here) or ``"reference"`` (the unit's literal
    concatenation over each candidate's gathered keys).

    The first layer is ``(W_q + W_d) q + b + (W_k - W_d) k + W_p (q * k)``. For one request it is
    one product, ``q @ Z + c``: ``Z[:, t] = diag(k_t) W_p^T + (W_q + W_d)^T`` ``(D, T * H1)`` and
    ``c[t] = (W_k - W_d) k_t + b`` are the request's. For several, each candidate's keys are gathered."""
    N, D = query.shape
    R, T, H1 = key_part.shape
    own_mask = per_candidate(mask, owner)
    if implementation == "cpp":
        return attention.normalize(serving_scores(attention, keys, key_part, query, owner), own_mask)
    if implementation == "reference":
        return attention.normalize(attention.reference_scores(query, keys.index_select(0, owner), own_mask), own_mask)
    if implementation != "torch":
        raise ValueError(f"unknown serving attention form {implementation!r}; allowed: {', '.join(FORMS['serving_attention'])}")
    first = attention.mlp.first
    w_q, _, w_d, w_p = first.weight.split(D, dim=1)
    if R == 1:
        z = keys[0].t().unsqueeze(-1) * w_p.t().unsqueeze(1) + (w_q + w_d).t().unsqueeze(1)  # (D, T, H1)
        hidden = torch.addmm((key_part[0] + first.bias).reshape(1, T * H1), query, z.reshape(D, T * H1)).view(N, T, H1)
    else:
        row = torch.addmm(first.bias, query, (w_q + w_d).t())  # (N, H1), the query half
        product = keys.index_select(0, owner) * query.unsqueeze(1)  # (N, T, D)
        hidden = torch.baddbmm(key_part.index_select(0, owner) + row.unsqueeze(1), product, w_p.t().expand(N, D, H1))
    return attention.normalize(attention.mlp.forward_from_first(hidden, own_mask), own_mask)


def pool(weights: torch.Tensor, values: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """Attention pooling of each candidate's request's ``values (R, T, E)`` by ``weights (N, T)``: ``(N, E)``."""
    N, T = weights.shape
    if values.shape[0] == 1:
        return weights @ values[0]
    return torch.bmm(weights.unsqueeze(1), values.index_select(0, owner)).squeeze(1)


def split_head(head: Head, parts: Sequence[tuple[torch.Tensor, bool]], owner: torch.Tensor) -> torch.Tensor:
    """``head(*parts)`` for N candidates, where each part is ``(tensor, shared)``: ``(R, D_i)`` for a
    request's part (its share of the first layer computed once per request), ``(N, D_i)`` for a
    candidate's, in the head's order. Returns logits ``(N,)``. Each part meets its own column block of
    the first layer's weight (a strided view, nothing concatenated)."""
    (N,) = owner.shape
    first = head.mlp.first
    blocks = first.weight.split([p.shape[-1] for p, _ in parts], dim=1)
    shared = [(p, w) for (p, is_shared), w in zip(parts, blocks) if is_shared]
    own = [(p, w) for (p, is_shared), w in zip(parts, blocks) if not is_shared]
    hidden = first.bias.unsqueeze(0)
    for p, w in shared:
        hidden = torch.addmm(hidden, p, w.t())  # (R, H1)
    hidden = per_candidate(hidden, owner) if shared else hidden.expand(N, -1)  # (N, H1)
    for p, w in own:
        hidden = torch.addmm(hidden, p, w.t())
    return head.mlp.forward_from_first(hidden)


# --- recurrences ---------------------------------------------------------------------------------


def torch_loop(gi: torch.Tensor, c0: torch.Tensor, c1: torch.Tensor | None, w_hh: torch.Tensor, b_ih: torch.Tensor,
               b_hh: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """``FusedRecurrence``'s forward in plain functional torch ops (no ``out=``, nothing saved), what
    ``torch.export`` traces: ``gi (T, B, G*H)`` without ``b_ih``, ``c0, c1 (T, B, 1)`` -> ``hs (T, B, H)``."""
    T, B, GH = gi.shape
    H = w_hh.shape[1]
    split = GH - H
    gi = gi + b_ih
    h = gi.new_zeros(B, H)
    states = []
    for t in range(T):
        gh = torch.addmm(b_hh, h, w_hh.t())
        gate = torch.sigmoid(gi[t, :, :split] + gh[:, :split])
        n = torch.tanh(gi[t, :, split:] + gate[:, :H] * gh[:, split:])
        u = c0[t] + c1[t] * gate[:, H:] if c1 is not None else c0[t]
        h = h + u * (n - h)
        states.append(h)
    return torch.stack(states) if states else gi.new_zeros(0, B, H)


def run_loop(layer: torch.nn.Module, gi: torch.Tensor, c0: torch.Tensor, c1: torch.Tensor | None, loops: str,
             rows: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """The recurrence of ``layer`` (its weights and its plan's loops) on prepared inputs -> ``hs (T, B, H)``:
    ``gi (T, B, G*H)``; or ``gi (T, R, G*H)`` with ``rows (B,)``, row b reading ``gi[:, rows[b]]``."""
    T, _, GH = gi.shape
    w = (layer.weight_hh, layer.bias_ih, layer.bias_hh)
    if loops == "unrolled":
        return torch_loop(gi if rows is None else gi.index_select(1, rows), c0, c1, *w)
    return layer.loops(gi.device).forward_loop(gi, c0, c1, *w, False, rows)[0]


def coefficients(kind: str, convention: str, att: torch.Tensor | None, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``u_t = c0 + c1 z_t`` of ``kernels/fused.py``'s table, ``att, mask (B, T)`` -> ``(T, B, 1)`` each."""
    m = mask.t().unsqueeze(-1).to(att.dtype if att is not None else torch.float32)
    if kind in ("GRU", "AIGRU"):
        return m, -m
    a = att.t().unsqueeze(-1)
    if kind == "AGRU":
        return m * a, None
    if convention == "paper":
        c = m * a
        return c, -c
    return m, m * (a - 1)


def input_projection(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``W_ih x_t`` for every step, without the bias: ``x (R, T, I)`` -> ``(T, R, G*H)``."""
    R, T, I = x.shape
    if R == 1:  # (T, 1, I) as a view of batch-major rows has an odd stride that sends the product
        return F.linear(x, layer.weight_ih).transpose(0, 1)  # down a path 2-3x slower: multiply the rows as they lie
    return F.linear(x.transpose(0, 1), layer.weight_ih)  # time-major and contiguous, as the loops read best


def history_recurrence(layer: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor,
                       loops: str) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """A recurrence without attention over ``x (R, T, I)`` -> ``out (R, T, H)`` (zero at padding),
    ``last (R, H)``. With the planned loops, a layer planned ``cpp`` or ``triton`` runs its loop on the
    input projection directly (no autograd Function: serving needs no backward); one planned ``native``
    or ``reference`` is called itself (torch's GRU kernel, the per-step reference)."""
    R, T, I = x.shape
    if loops == "planned" and layer.implementation not in ("cpp", "triton"):
        return layer(x, None, lengths)
    H = layer.hidden_size
    if T == 0:
        return x.new_zeros(R, 0, H), x.new_zeros(R, H)
    c0, c1 = coefficients("GRU", "paper", None, mask)
    c0, c1 = c0.to(x.dtype), c1.to(x.dtype)
    hs = run_loop(layer, input_projection(layer, x), c0, c1, loops)  # (T, R, H)
    return (hs * c0).transpose(0, 1), hs[-1]


def candidate_recurrence(layer: torch.nn.Module, gi: torch.Tensor, att: torch.Tensor, mask: torch.Tensor, owner: torch.Tensor,
                         loops: str) -> torch.Tensor:  # fmt: skip
    """AIGRU, AGRU or AUGRU per candidate: ``gi (T, R, G*H)`` the requests' input projection
    (``input_projection``), ``att (N, T)`` each candidate's scores, ``mask (R, T)`` -> the final state ``(N, H)``.
    At padded steps ``u = 0`` keeps the state, so the last step's state is the one at ``length - 1``."""
    N, T = att.shape
    if T == 0:
        return att.new_zeros(N, layer.hidden_size)
    rows = None
    if gi.shape[1] > 1 and layer.kind != "AIGRU":
        rows = owner  # stacked requests: the loop reads each candidate's request's row in place
    else:  # (T, N, G*H): a broadcast view for one request, else gathered (AIGRU scales it per candidate)
        gi = per_candidate(gi.transpose(0, 1), owner).transpose(0, 1)
        if layer.kind == "AIGRU":  # W (a x) = a (W x)
            gi = gi * att.t().unsqueeze(-1)
    c0, c1 = coefficients(layer.kind, layer.convention, att, per_candidate(mask, owner))
    return run_loop(layer, gi, c0, c1, loops, rows)[-1]
