"""Names and settings of the text experiments, importable without torch.

The command line builds its options (choices, defaults in ``--help``) from these, and
``alignuniform --help`` must not pay for importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alignuniform import _typed

if TYPE_CHECKING:
    from alignuniform.losses import LossCombination

#: Representations read off one forward pass (see :mod:`alignuniform.text.encoders`).
TOKEN_REPRESENTATIONS = ("pooling", "cls", "mean", "embedding_mean")
#: Every representation ``evaluate_sts`` compares: the token-level ones and the whitened mean.
REPRESENTATIONS = (*TOKEN_REPRESENTATIONS, "whitened")

#: The SimCSE objectives (``SimCSEConfig.loss``).
LOSSES = ("contrastive", "align_uniform")


@dataclass
class SimCSEConfig:
    """Settings of a SimCSE run (SimCSE's unsupervised BERT defaults where they apply).

    Attributes:
        loss: ``"contrastive"`` (InfoNCE at ``tau``) or ``"align_uniform"``
            (``w_align * L_align(alpha) + w_uniform * L_uniform(t)``).
        tau: Temperature of the contrastive loss.
        alpha, t, w_align, w_uniform: Parameters of the align-uniform loss.
        lr: AdamW learning rate (constant).
        batch_size: Sentences per batch (each encoded twice); incomplete last batches are
            dropped and counted.
        steps: Optimisation steps; ``None`` runs ``epochs`` full passes.
        epochs: Passes over the sentences when ``steps`` is ``None``.
        max_seq_length: Tokens kept per sentence (SimCSE: 32).
        eval_every: Measure the eval split every this many steps (and at the start and end).
        seed: Seed of the shuffling and the dropout masks.
    """

    loss: str = "contrastive"
    tau: float = 0.05
    alpha: float = 2.0
    t: float = 2.0
    w_align: float = 1.0
    w_uniform: float = 1.0
    lr: float = 3e-5
    batch_size: int = 64
    steps: int | None = None
    epochs: int = 1
    max_seq_length: int = 32
    eval_every: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        _typed.check_fields(self)  # types, and finite numbers (argparse's float takes "nan")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("batch_size", "epochs", "max_seq_length", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2: in-batch negatives need other sentences")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1 or None, got {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def criterion(self) -> LossCombination:
        """The loss module for this configuration."""
        from alignuniform.losses import LossCombination

        if self.loss == "contrastive":
            return LossCombination(w_contrastive=1.0, tau=self.tau)
        return LossCombination(w_align=self.w_align, alpha=self.alpha,
                               w_uniform=self.w_uniform, t=self.t)
