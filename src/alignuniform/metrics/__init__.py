"""Evaluation metrics of embeddings: no gradients, exact, streaming over batches.

Alignment and uniformity (Wang & Isola, ICML 2020) and the label-free spectral metrics the
field uses beside them, each a plain function and a ``torchmetrics.Metric``:

- :mod:`~alignuniform.metrics.functional`: :func:`alignment`, :func:`uniformity`
  (exact or sampled with an interval, :class:`UniformityEstimate`), :func:`uniformity_bound`;
- :mod:`~alignuniform.metrics.streaming`: :class:`Alignment` and :class:`Uniformity`, for
  streaming, DDP, Lightning and ``MetricCollection``;
- :mod:`~alignuniform.metrics.spectral`: :func:`rankme`, :func:`effective_rank`,
  :func:`stable_rank`, :func:`alpha_req`, :func:`lidar`, :func:`gaussian_w2_uniformity`, and
  the O(d^2) states they stream from (:class:`SpectralState`, :class:`LidarState`);
- :mod:`~alignuniform.metrics.spectral_streaming`: their Metrics (:class:`RankMe`,
  :class:`EffectiveRank`, :class:`StableRank`, :class:`AlphaReQ`, :class:`GaussianW2`,
  :class:`LiDAR`).

Every name is importable from this package. The Metric classes load ``torchmetrics`` (and
through it, seconds of imports) when first used, so code that needs only the functions
(``alignuniform measure``) starts without it.

All alignment/uniformity functions L2-normalise their inputs by default (``normalize=True``):
the paper's quantities are defined on the unit hypersphere, and raw features give
meaningless values (alignment in the hundreds, uniformity near zero). Pass
``normalize=False`` only for embeddings that are already on the sphere or when you want the
raw-vector quantities.

Examples:
    >>> import torch
    >>> from alignuniform import metrics
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(2_000, 128)
    >>> round(metrics.uniformity(x), 3)   # exact over all 1,999,000 pairs, memory-bounded
    -3.938
    >>> round(metrics.uniformity_bound(128), 4)   # the value of the uniform distribution
    -3.9375
    >>> round(metrics.rankme(x), 1)   # isotropic: close to d
    126.9
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from alignuniform.metrics.functional import (
    UniformityEstimate,
    alignment,
    uniformity,
    uniformity_bound,
)
from alignuniform.metrics.spectral import (
    LidarState,
    SpectralState,
    alpha_req,
    effective_rank,
    gaussian_w2_uniformity,
    lidar,
    rankme,
    stable_rank,
)

if TYPE_CHECKING:
    from alignuniform.metrics.spectral_streaming import (
        AlphaReQ,
        EffectiveRank,
        GaussianW2,
        LiDAR,
        RankMe,
        StableRank,
    )
    from alignuniform.metrics.streaming import Alignment, Uniformity

#: The Metric classes, by the module that defines them (imported on first use).
_METRICS = {
    "Alignment": "streaming", "Uniformity": "streaming",
    "RankMe": "spectral_streaming", "EffectiveRank": "spectral_streaming",
    "StableRank": "spectral_streaming", "AlphaReQ": "spectral_streaming",
    "GaussianW2": "spectral_streaming", "LiDAR": "spectral_streaming",
}

__all__ = [
    "alignment",
    "uniformity",
    "uniformity_bound",
    "UniformityEstimate",
    "rankme",
    "effective_rank",
    "stable_rank",
    "alpha_req",
    "lidar",
    "gaussian_w2_uniformity",
    "SpectralState",
    "LidarState",
    "Alignment",
    "Uniformity",
    "RankMe",
    "EffectiveRank",
    "StableRank",
    "AlphaReQ",
    "GaussianW2",
    "LiDAR",
]


def __getattr__(name: str) -> Any:
    if name in _METRICS:
        value = getattr(importlib.import_module(f"{__name__}.{_METRICS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
