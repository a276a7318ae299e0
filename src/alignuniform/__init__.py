"""alignuniform: learn and measure representations on the unit hypersphere.

Alignment, uniformity and contrastive losses from Wang & Isola (ICML 2020),
"Understanding Contrastive Representation Learning through Alignment and Uniformity on
the Hypersphere", exact and memory-bounded, plus evaluation metrics in ``metrics``.
"""

from alignuniform import metrics
from alignuniform.losses import (
    AlignUniformLoss,
    LossCombination,
    align_loss,
    contrastive_loss,
    nt_xent_loss,
    queue_contrastive_loss,
    queue_uniform_loss,
    triplet_loss,
    uniform_loss,
)

__version__ = "0.1.0"

__all__ = [
    "AlignUniformLoss",
    "LossCombination",
    "align_loss",
    "contrastive_loss",
    "metrics",
    "nt_xent_loss",
    "queue_contrastive_loss",
    "queue_uniform_loss",
    "triplet_loss",
    "uniform_loss",
]
