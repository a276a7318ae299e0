"""Dense alignment and uniformity as measurements: no gradient, Python numbers, features
L2-normalised over C by default (float64).

:func:`dense_alignment` is the weighted mean over positive pairs of ``||f1_i - f2_j||^alpha``;
:func:`dense_uniformity` is ``log mean exp(-t ||u - v||^2)`` over pairs of locations, exact,
through the core kernel, over all pairs and over pairs from different images only (a
:class:`DenseUniformity`).

Examples:
    >>> import torch
    >>> from alignuniform.dense import dense_uniformity
    >>> f = torch.nn.functional.normalize(torch.randn(2, 8, 3, 3, dtype=torch.float64), dim=1)
    >>> u = dense_uniformity(f)
    >>> (u.n_locations, u.n_images, u.cross_image is not None)
    (18, 2, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from alignuniform import _checks
from alignuniform.dense import _cross_image, _validate
from alignuniform.dense.pairs import LocationPairs, flatten_locations
from alignuniform.metrics import uniformity

__all__ = ["DenseUniformity", "dense_uniformity", "dense_alignment"]

@dataclass(frozen=True)
class DenseUniformity:
    """Dense uniformity, both ways.

    Attributes:
        all_pairs: ``log mean exp(-t||u - v||^2)`` over all pairs of the locations.
        cross_image: the same over pairs from different images only; ``None`` when every
            location comes from one image (no such pair).
        n_locations, n_images: how many locations (and images they came from) were used.
        t: the kernel scale.
    """

    all_pairs: float
    cross_image: float | None
    n_locations: int
    n_images: int
    t: float

    def __float__(self) -> float:
        return self.all_pairs



@torch.no_grad()
def dense_uniformity(
    f: torch.Tensor,
    t: float = 2.0,
    normalize: bool = True,
    *,
    n_locations: int | None = None,
    seed: int = 0,
) -> DenseUniformity:
    """Exact uniformity over the locations of a dense map, all pairs and cross-image pairs.

    The all-pair value goes through the core kernel (``metrics.uniformity``) in float64;
    the cross-image value subtracts the same-image sums (float64) from that total.

    Args:
        f: ``(B, C, H, W)`` features.
        t: kernel scale, > 0.
        normalize: L2-normalise over C first (default True).
        n_locations: use this many locations drawn (seeded) from all ``B H W``; default all.
        seed: seed of that draw.
    """
    t = _checks.positive(t, "t")
    x, image = flatten_locations(f.detach(), n_locations, seed)
    if x.shape[0] < 2:
        raise ValueError(f"dense_uniformity needs at least 2 locations, got {x.shape[0]}")
    x = x.double()
    if normalize:
        x = F.normalize(x, dim=1)
    log_mean = torch.tensor(uniformity(x, t, normalize=False), dtype=torch.float64)
    within, n_within = _cross_image.within_image_sum(x, image, t)
    cross = None
    if n_within < _cross_image.n_pairs(x.shape[0]):
        cross = float(_cross_image.cross_from_total(log_mean, within, x.shape[0], n_within))
    return DenseUniformity(float(log_mean), cross, x.shape[0], int(image.unique().numel()), t)


@torch.no_grad()
def dense_alignment(
    f1: torch.Tensor, f2: torch.Tensor, pairs: LocationPairs, alpha: float = 2.0,
    normalize: bool = True,
) -> float:
    """Weighted mean over positive pairs of ``||f1_i - f2_j||^alpha``, as a float.

    Raises:
        ValueError: ``pairs`` is empty (there is nothing to average), or the maps do not
            match the pairs.
    """
    alpha = _checks.positive(alpha, "alpha")
    f1, f2 = _validate.check_map(f1, "f1").detach(), _validate.check_map(f2, "f2").detach()
    if pairs.is_empty:
        raise ValueError("dense_alignment: no positive location pairs (e.g. crops that do "
                         "not overlap); there is no alignment to measure")
    a, b = pairs.gather(f1, f2)
    a, b = a.double(), b.double()
    if normalize:
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    w = pairs.weight.to(a.device).double()
    return float((w * (a - b).norm(dim=1).pow(alpha)).sum() / w.sum())

