"""alignuniform: learn and measure representations on the unit hypersphere.

Alignment, uniformity and contrastive losses from Wang & Isola (ICML 2020),
"Understanding Contrastive Representation Learning through Alignment and Uniformity on
the Hypersphere", exact and memory-bounded, plus evaluation metrics in ``metrics``.

The names below are imported on first use, so ``import alignuniform.cli`` (and
``alignuniform --help``) does not import torch.
"""

from typing import TYPE_CHECKING

from alignuniform._registry import lazy_exports

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

__getattr__ = lazy_exports(__name__, {
    name: "alignuniform.metrics" if name == "metrics" else f"alignuniform.losses:{name}"
    for name in __all__
})

if TYPE_CHECKING:
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
