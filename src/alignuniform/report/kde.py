"""Kernel density estimates of embeddings for the figures: angles on S^1 and points in R^2.

    >>> import numpy as np
    >>> from alignuniform.report.kde import vmf_kde
    >>> grid = np.linspace(-np.pi, np.pi, 2001)[:-1]
    >>> density = vmf_kde(np.array([0.0, 1.0]), grid, kappa=10.0)
    >>> round(float(density.sum() * (grid[1] - grid[0])), 6)  # one turn integrates to 1
    1.0
"""

from __future__ import annotations

import numpy as np

from alignuniform.report._plotting import finite

__all__ = ["gaussian_kde_2d", "vmf_kde"]


def vmf_kde(angles: np.ndarray, grid: np.ndarray, kappa: float = 25.0) -> np.ndarray:
    """von Mises-Fisher kernel density of angles on the circle.

    Args:
        angles: Sample angles in radians.
        grid: Angles at which to evaluate the density.
        kappa: Concentration of each kernel (larger is narrower); the paper uses 25.

    Returns:
        Density at ``grid`` (integrates to 1 over one turn).
    """
    kappa = finite(kappa, "kappa")
    if kappa <= 0:
        raise ValueError(f"kappa must be positive, got {kappa}")
    angles = np.asarray(angles, dtype=float).ravel()
    if angles.size == 0:
        raise ValueError("vmf_kde needs at least one angle")
    from scipy.special import i0e

    # exp(kappa (cos d - 1)) / i0e(kappa) = exp(kappa cos d) / I0(kappa) without overflow
    diff = np.asarray(grid, dtype=float)[:, None] - angles[None, :]
    kernel = np.exp(kappa * (np.cos(diff) - 1.0)) / (2 * np.pi * i0e(kappa))
    return kernel.mean(axis=1)


def gaussian_kde_2d(points: np.ndarray, *, sigma: float = 0.1, extent: float = 1.3,
                    bins: int = 161) -> np.ndarray:
    """Isotropic Gaussian kernel density of 2-d points on a square grid.

    Points are binned on a fine grid and the histogram is smoothed with a Gaussian of
    ``sigma`` (in data units), which equals the exact kernel sum up to binning error and
    costs O(bins^2) rather than O(N bins^2).

    Args:
        points: ``(N, 2)`` array.
        sigma: Kernel standard deviation.
        extent: The grid covers ``[-extent, extent]^2``.
        bins: Grid cells per side.

    Returns:
        ``(bins, bins)`` density, rows indexing y from bottom to top (``imshow`` with
        ``origin="lower"``).
    """
    from scipy.ndimage import gaussian_filter

    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"gaussian_kde_2d expects (N, 2) points, got shape {points.shape}")
    edges = np.linspace(-extent, extent, bins + 1)
    hist, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=(edges, edges))
    cell = edges[1] - edges[0]
    density = gaussian_filter(hist, sigma / cell, mode="constant")
    return density / (density.sum() * cell * cell)
