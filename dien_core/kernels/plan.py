"""The one place that decides how each piece of a model runs: ``resolve`` turns a backend name, a
device and a dtype into a ``Plan``, once, when the model is built.

A piece is one of the layers with more than one implementation: the embedding lookup, each kind of
recurrence (GRU, AIGRU, AGRU, AUGRU), the auxiliary loss, and the serving path's attention scores
(``serving_attention``: ``dien_core.serving``'s candidates against a request's history, forward only;
training and the eval forward run ``AttentionUnit``'s torch ops). An implementation name means one thing
in every piece that has it:

- ``reference`` (all pieces): the literal form, written to be read and to check the others: per-step
  loops, concatenations, one ``nn.Embedding`` call per table;
- ``torch`` (all): the fast forms in torch ops: hoisted projections and hand-written backwards
  (``fused.py``), the split auxiliary MLP, one gather per table; what torch's FLOP counter sees;
- ``native`` (GRU, AIGRU): torch's own fused GRU kernel (cuDNN on CUDA, oneDNN/MKL on CPU);
- ``cpp`` (all): this package's C++ kernels (``csrc/``): CPU tensors, float32, float64 or bfloat16 (the
  auxiliary loss and the serving attention float32 or float64, not under autocast, with sigmoid or ReLU hidden layers);
- ``triton`` (the recurrences): this package's Triton loops: CUDA float32 weights, hidden size up to 64.

A backend is either one of these names, which every piece that has that form runs (the others run
their ``torch`` form, and the plan says so), or ``auto``: per piece the fastest form available here
(``AUTO``'s rules). A named form that cannot run here (``cpp`` on CUDA or without a compiler, ``triton``
without the package, in bfloat16 weights or above 64 hidden units, the C++ auxiliary loss for an
activation it does not implement or under autocast) raises a ValueError when the plan is made, never
later; except for ``serving_attention``, which training never runs: where ``cpp`` cannot take it
(bfloat16, autocast, Dice or PReLU hidden layers) it runs its torch form, and the notes say why.
Where ``auto``'s first choice is missing, ``cpp.kernels()`` warns once, and the plan records what ran
instead (no warning where ``DIEN_CORE_CPP=0`` turned the C++ kernels off: the notes say so). The
environment switches that steer this (``switches.py``) are read only there, and every plan records
those that were set.

The serving path (``dien_core/serving``, ``loops="planned"``) runs the plan's ``cpp`` and ``triton``
recurrence loops, its ``serving_attention`` and its ``cpp`` lookups (one C++ gather); a history
recurrence planned ``native`` or ``reference`` is the layer itself, but a candidate recurrence so
planned runs the ``torch`` loops (neither form has a loop over prepared inputs), and other
embedding forms look up in torch gathers (``serving/parts.py``). Its results are held to the eval
forward's, not to the plan's form.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from . import cpp, triton_loops
from .switches import current as switches_set

if TYPE_CHECKING:
    from ..config import ModelConfig

IMPLEMENTATIONS = ("reference", "torch", "native", "cpp", "triton")
BACKENDS = ("auto", *IMPLEMENTATIONS)
RECURRENCES = ("GRU", "AIGRU", "AGRU", "AUGRU")
PIECES = ("embedding", *RECURRENCES, "aux_loss", "serving_attention")
FORMS: dict[str, tuple[str, ...]] = {
    "embedding": ("reference", "torch", "cpp"),
    "GRU": IMPLEMENTATIONS,
    "AIGRU": IMPLEMENTATIONS,
    "AGRU": ("reference", "torch", "cpp", "triton"),
    "AUGRU": ("reference", "torch", "cpp", "triton"),
    "aux_loss": ("reference", "torch", "cpp"),
    "serving_attention": ("reference", "torch", "cpp"),
}
SERVING_ONLY = ("serving_attention",)  # pieces only dien_core.serving runs: a named form they cannot take falls back, never refuses
KERNEL_ACTIVATIONS = ("sigmoid", "relu")  # the hidden activations the C++ auxiliary loss and serving attention implement


@dataclass(frozen=True)
class Target:
    """What a plan is made for: ``device`` type ("cpu", "cuda", ...), the parameters' ``dtype``, whether the
    model runs under ``autocast`` (bfloat16), the recurrences' ``hidden_size`` and the auxiliary MLP's
    hidden ``aux_activation`` and whether it has hidden layers (``aux_layers``), and the attention MLP's
    hidden ``att_activation``."""

    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    autocast: bool = False
    hidden_size: int = 36
    aux_activation: str = "relu"
    aux_layers: bool = True
    att_activation: str = "sigmoid"


@dataclass(frozen=True)
class Plan:
    """Which implementation runs each piece a model uses: ``choices`` ((piece, implementation), ...) in
    ``PIECES`` order, resolved from ``backend`` for ``target``; ``notes`` say why any piece runs
    something other than the backend's name; ``switches`` the environment switches (``switches.py``)
    set when it was made, ``(name, value)`` pairs."""

    backend: str
    target: Target
    choices: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = ()
    switches: tuple[tuple[str, str], ...] = ()

    def __getitem__(self, piece: str) -> str:
        for name, implementation in self.choices:
            if name == piece:
                return implementation
        raise KeyError(f"the plan covers {', '.join(name for name, _ in self.choices)}, not {piece!r}")

    def as_dict(self) -> dict:
        """For ``metadata.json``: the backend, the target and each piece's implementation."""
        t = self.target
        target = {"device": t.device, "dtype": str(t.dtype).removeprefix("torch."), "autocast": t.autocast}
        return {"backend": self.backend, **target, "pieces": dict(self.choices), "notes": list(self.notes), "switches": dict(self.switches)}

    def __str__(self) -> str:
        t = self.target
        dtype = str(t.dtype).removeprefix("torch.") + (" under autocast" if t.autocast else "")
        pieces = ", ".join(f"{piece} {implementation}" for piece, implementation in self.choices)
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        switches = f" [{' '.join(f'{k}={v}' for k, v in self.switches)}]" if self.switches else ""
        return f"backend {self.backend} on {t.device} {dtype}: {pieces}{notes}{switches}"


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        hint = " ('fused' is now 'native': torch's GRU kernel for GRU and AIGRU, the torch forms elsewhere)" if backend == "fused" else ""
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}{hint}")
    return backend


def resolve(backend: str, pieces: tuple[str, ...], target: Target = Target()) -> Plan:
    """The plan for the ``pieces`` a model uses (names of ``PIECES``), on ``target``."""
    check_backend(backend)
    unknown = [p for p in pieces if p not in PIECES]
    assert not unknown, f"unknown pieces {unknown}"
    choices, notes = [], []
    for piece in PIECES:
        if piece not in pieces:
            continue
        if backend == "auto":
            implementation, why, missing = _auto(piece, target)
            if missing:  # the first choice is missing from this install, not ruled out by the device or dtype: say so once
                warnings.warn(f"dien_core: the {piece} runs its torch form: {why}", stacklevel=3)
        elif backend in FORMS[piece]:
            why = _missing(backend, piece, target)
            if why and piece not in SERVING_ONLY:  # a piece training never runs does not refuse the model: its torch form serves
                raise ValueError(f"backend {backend!r} cannot run the {piece} here: {why}; use 'auto' or 'torch'")
            implementation = "torch" if why else backend
        else:
            implementation, why = "torch", f"{piece} has no {backend} form"
        choices.append((piece, implementation))
        if why:
            notes.append(f"{piece} {implementation}: {why}")
    return Plan(backend, target, tuple(choices), tuple(notes), switches_set())


def plan_for(config: ModelConfig, pieces: tuple[str, ...], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
               autocast: bool = False) -> Plan:  # fmt: skip
    """The plan of a model built from ``config`` (its ``backend``, hidden size and auxiliary MLP) that uses
    ``pieces``, for ``device`` and ``dtype`` (``autocast``: run under bfloat16 autocast)."""
    target = Target(torch.device(device).type, dtype, autocast, config.behaviour_dim, config.aux_activation, bool(config.aux_hidden),
                    config.attention_activation)
    return resolve(config.backend, pieces, target)


def model_plan(config: ModelConfig, pieces: tuple[str, ...], plan: Plan | None = None) -> Plan:
    """The plan a model built from ``config`` runs: ``plan`` where one is given (a ValueError unless it
    was made from ``config.backend`` and covers ``pieces``), else ``plan_for(config, pieces)`` (float32, CPU)."""
    if plan is None:
        return plan_for(config, pieces)
    planned = [name for name, _ in plan.choices]
    if plan.backend != config.backend or planned != [p for p in PIECES if p in pieces]:
        raise ValueError(f"this plan was made for backend {plan.backend!r} and pieces {planned}; the model's config "
                         f"has backend {config.backend!r} and uses {list(pieces)} (plan_for(config, Model.pieces(config)))")  # fmt: skip
    return plan


def activation_missing(what: str, activation: str, has_layers: bool = True) -> str:
    """Why the C++ ``what`` (the auxiliary loss, the serving attention) cannot run an MLP with hidden
    ``activation`` ("" where it can; ``has_layers``: whether the MLP has hidden layers at all)."""
    if activation not in KERNEL_ACTIVATIONS or not has_layers:
        return f"the C++ {what} implements hidden layers of {' or '.join(KERNEL_ACTIVATIONS)} only, not {activation!r}" + (
            "" if has_layers else " without hidden layers")
    return ""


def _cpp_missing(piece: str, target: Target) -> str:
    """Why the C++ form of ``piece`` cannot run on ``target`` ("" where it can)."""
    if target.device != "cpu":
        return f"the C++ kernels run on CPU tensors only, not {target.device}"
    if target.dtype not in (torch.float32, torch.float64, torch.bfloat16):
        return f"the C++ kernels take float32, float64 or bfloat16, not {target.dtype}"
    if piece == "aux_loss":
        if target.dtype == torch.bfloat16:
            return "the C++ auxiliary loss takes float32 or float64, not bfloat16"
        if target.autocast:
            return "the C++ auxiliary loss computes in the weights' dtype, not under autocast"
        if why := activation_missing("auxiliary loss", target.aux_activation, target.aux_layers):
            return why
    if piece == "serving_attention":
        if target.dtype == torch.bfloat16 or target.autocast:
            return "the C++ serving attention computes in float32 or float64 weights, not bfloat16 or under autocast"
        if why := activation_missing("serving attention", target.att_activation):
            return why
    if not cpp.available():
        return cpp.unavailable_reason()
    return ""


def _triton_missing(target: Target) -> str:
    if not triton_loops.importable():
        return triton_loops.import_failure()
    if target.device != "cuda" and not triton_loops.interpreted():
        return f"the Triton loops run on CUDA tensors (on CPU only under TRITON_INTERPRET=1, for tests), not {target.device}"
    if target.dtype != torch.float32:
        return f"the Triton loops compute in float32 weights, not {target.dtype}"
    if target.hidden_size > triton_loops.MAX_HIDDEN:
        return f"the Triton loops take hidden sizes up to {triton_loops.MAX_HIDDEN}, not {target.hidden_size}"
    return ""


def _missing(implementation: str, piece: str, target: Target) -> str:
    """Why ``implementation`` cannot run ``piece`` on ``target`` ("" where it can)."""
    return _cpp_missing(piece, target) if implementation == "cpp" else _triton_missing(target) if implementation == "triton" else ""


def _auto(piece: str, target: Target) -> tuple[str, str, bool]:
    """``auto``'s rule for one piece: (implementation, why it is not the first choice or "", whether
    the first choice is missing from this install).

    CPU: the C++ kernels for every piece (for a plain GRU too: faster than torch's CPU kernel at batch
    128-512, even at 1024). CUDA: cuDNN for GRU and AIGRU, the Triton loops for AGRU and AUGRU. Else,
    and where the first choice cannot run, the torch forms."""
    if target.device == "cpu":
        why = _cpp_missing(piece, target)
        # the build is missing, not turned off on purpose (DIEN_CORE_CPP=0: the notes say so, no warning)
        missing = why == cpp.unavailable_reason() and not cpp.turned_off()
        return ("cpp", "", False) if not why else ("torch", why, missing)
    if piece in ("GRU", "AIGRU"):
        return "native", "", False
    if piece in ("AGRU", "AUGRU") and target.device == "cuda":
        why = _triton_missing(target)
        return ("triton", "", False) if not why else ("torch", why, why == triton_loops.import_failure())
    return "torch", "", False
