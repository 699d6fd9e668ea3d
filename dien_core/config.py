"""Typed, frozen model configuration shared by DIEN and the baselines."""

from __future__ import annotations

from dataclasses import dataclass, fields

from .kernels.plan import check_backend

GRU_TYPES = ("GRU", "AIGRU", "AGRU", "AUGRU")
AUGRU_CONVENTIONS = ("paper", "original")
ATT_NORMALIZATIONS = ("sigmoid", "softmax")
ACTIVATIONS = ("sigmoid", "relu", "prelu", "dice")


@dataclass(frozen=True)
class VocabSizes:
    """Number of rows of each embedding table, padding (0) and the reserved unknown id included."""

    users: int
    items: int
    cates: int

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 2:
                raise ValueError(f"vocabulary size {f.name}={getattr(self, f.name)} must be at least 2 (padding + one id)")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that shapes a model. DIN and sum pooling read the fields they use.

    ``embedding_dim`` is per feature; a behaviour is ``[item; cate]`` so the
    recurrent hidden size is ``2 * embedding_dim`` (as in the paper's code).
    ``alpha`` weighs the auxiliary loss: loss = BCE + alpha * aux_loss.
    ``backend`` names the implementations the model's pieces run: ``auto`` (the fastest here),
    ``reference``, ``torch``, ``native``, ``cpp`` or ``triton``; ``kernels/plan.py`` says what each
    means and resolves it, with the device and dtype, into the model's ``plan``.
    ``transformer_heads`` and ``transformer_layers`` shape BST's encoder, which runs at the
    behaviour width 2 * embedding_dim (no projection), so the heads must divide it;
    ``max_seq_len`` is the longest history BST's position embeddings cover.
    """

    embedding_dim: int = 18
    attention_hidden: tuple[int, ...] = (80, 40)
    attention_activation: str = "sigmoid"
    att_normalization: str = "sigmoid"
    gru_type: str = "AUGRU"
    augru_convention: str = "paper"
    use_aux_loss: bool = False
    alpha: float = 1.0
    aux_hidden: tuple[int, ...] = (100, 50)
    aux_activation: str = "relu"  # hidden layers of the auxiliary MLP; "sigmoid" (the authors') stays at 2 ln 2 on order-only data
    mlp_hidden: tuple[int, ...] = (200, 80)
    mlp_activation: str = "prelu"
    dropout: float = 0.0
    backend: str = "auto"
    transformer_heads: int = 2
    transformer_layers: int = 1
    max_seq_len: int = 256

    def __post_init__(self) -> None:
        # TOML gives lists; keep the dataclass hashable and frozen.
        for name in ("attention_hidden", "aux_hidden", "mlp_hidden"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _choose("gru_type", self.gru_type, GRU_TYPES)
        _choose("augru_convention", self.augru_convention, AUGRU_CONVENTIONS)
        _choose("att_normalization", self.att_normalization, ATT_NORMALIZATIONS)
        _choose("attention_activation", self.attention_activation, ACTIVATIONS)
        _choose("mlp_activation", self.mlp_activation, ACTIVATIONS)
        _choose("aux_activation", self.aux_activation, ACTIVATIONS)
        check_backend(self.backend)
        if self.embedding_dim <= 0:
            raise ValueError(f"embedding_dim must be positive, got {self.embedding_dim}")
        for name in ("attention_hidden", "aux_hidden", "mlp_hidden"):
            sizes = getattr(self, name)
            if any(int(s) != s or s <= 0 for s in sizes):
                raise ValueError(f"{name} must be positive layer widths, got {sizes}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0 (weight of the auxiliary loss), got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("transformer_heads", "transformer_layers", "max_seq_len"):
            value = getattr(self, name)
            if int(value) != value or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if self.behaviour_dim % self.transformer_heads:
            raise ValueError(
                f"transformer_heads={self.transformer_heads} must divide the behaviour width 2 * embedding_dim = {self.behaviour_dim} "
                "(each head reads an equal share of it)"
            )

    @property
    def behaviour_dim(self) -> int:
        return 2 * self.embedding_dim


def _choose(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
