"""Sampling on the sphere S^{m-1}: uniform, von Mises-Fisher, vMF mixtures, positive pairs.

Uniform points come from ``scipy.stats.uniform_direction``, vMF draws from
``scipy.stats.vonmises_fisher``; positive pairs draw ``y`` from a vMF centred on ``x``;
``sample_uniform_dots`` draws the dot product of two uniform points from its 1-D law, and
``sample_antipodal`` two antipodal atoms (zero mean, as far from uniform as it gets).
Random state is a ``numpy.random.Generator`` (or a seed); ``dim`` is the ambient dimension m
(points lie on S^{m-1}). Samplers return float64 torch tensors.

    >>> from alignuniform.theory.sphere_sampling import sample_uniform, sample_vmf
    >>> x = sample_uniform(5, 3, rng=0)
    >>> x.shape, x.dtype
    (torch.Size([5, 3]), torch.float64)
    >>> bool(((sample_vmf([0, 0, 1], 50.0, 100, rng=0) @ x.new_tensor([0, 0, 1])) > 0.7).all())
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats

from alignuniform.theory._common import (
    Rng,
    _check_count,
    _check_dim,
    _check_positive,
    _rng,
    _unit_rows,
)

__all__ = [
    "sample_uniform",
    "sample_vmf",
    "sample_vmf_mixture",
    "sample_positive_pairs",
    "sample_uniform_dots",
    "sample_antipodal",
]


def sample_uniform(n: int, dim: int, rng: Rng = None) -> torch.Tensor:
    """``n`` points drawn uniformly from S^{dim-1}, as an (n, dim) float64 tensor."""
    n, dim = _check_count(n, "n"), _check_dim(dim)
    points = stats.uniform_direction(dim).rvs(n, random_state=_rng(rng))
    return torch.from_numpy(np.asarray(points).reshape(n, dim))


def _reflect_from_pole(z: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Move samples drawn around the pole e_1 to be around ``directions`` (row-wise).

    The Householder reflection that swaps e_1 and the direction is orthogonal, so it maps a
    vMF centred on e_1 to the same vMF centred on the direction.
    """
    w = directions.copy()
    w[:, 0] -= 1.0  # direction - e_1
    norm = np.linalg.norm(w, axis=1, keepdims=True)
    at_pole = norm[:, 0] < 1e-12
    w = np.divide(w, norm, out=np.zeros_like(w), where=~at_pole[:, None])
    return z - 2.0 * w * (w * z).sum(1, keepdims=True)


def sample_vmf(
    mu: Sequence[float] | np.ndarray, kappa: float, n: int, rng: Rng = None
) -> torch.Tensor:
    """``n`` draws from the von Mises-Fisher distribution vMF(mu, kappa) on S^{dim-1}.

    Args:
        mu: mean direction (dim,), normalised here.
        kappa: concentration, > 0 (use :func:`sample_uniform` for kappa = 0).
        n: number of points.
        rng: generator or seed.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 1:
        raise ValueError(f"mu must be a 1-D direction, got shape {mu.shape}")
    _check_dim(mu.size)
    if not np.linalg.norm(mu) > 0:
        raise ValueError("mu must be a non-zero vector")
    kappa, n = _check_positive(kappa, "kappa"), _check_count(n, "n")
    points = stats.vonmises_fisher(mu / np.linalg.norm(mu), kappa).rvs(n, random_state=_rng(rng))
    return torch.from_numpy(np.asarray(points).reshape(n, mu.size))


def _vmf_around(directions: np.ndarray, kappa: float, rng: np.random.Generator) -> np.ndarray:
    """One vMF(direction_i, kappa) draw per row of ``directions``."""
    n, dim = directions.shape
    pole = np.zeros(dim)
    pole[0] = 1.0
    z = stats.vonmises_fisher(pole, kappa).rvs(n, random_state=rng).reshape(n, dim)
    return _reflect_from_pole(z, directions)


def sample_vmf_mixture(
    centres: torch.Tensor | np.ndarray,
    kappa: float,
    n: int,
    weights: Sequence[float] | None = None,
    rng: Rng = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` draws from the mixture ``sum_k w_k vMF(centre_k, kappa)``.

    Returns:
        ``(points (n, dim) float64, component labels (n,) int64)``.
    """
    centres = _unit_rows(centres, "centres").numpy()
    kappa, n, rng = _check_positive(kappa, "kappa"), _check_count(n, "n"), _rng(rng)
    k = centres.shape[0]
    if weights is None:
        p = np.full(k, 1.0 / k)
    else:
        p = np.asarray(weights, dtype=np.float64)
        if p.shape != (k,) or (p < 0).any() or not p.sum() > 0:
            raise ValueError(f"weights must be {k} non-negative numbers with a positive sum")
        p = p / p.sum()
    labels = rng.choice(k, size=n, p=p)
    points = _vmf_around(centres[labels], kappa, rng)
    return torch.from_numpy(points), torch.from_numpy(labels.astype(np.int64))


def sample_positive_pairs(
    x: torch.Tensor | np.ndarray, kappa: float, rng: Rng = None
) -> torch.Tensor:
    """Positive partners ``y_i ~ vMF(x_i, kappa)`` for unit rows ``x``.

    ``E[x.y] = vmf_mean_cosine(dim, kappa)``; with a rotation-invariant distribution of ``x``
    the partners have the same marginal as ``x``.
    """
    x = _unit_rows(x, "x").numpy()
    kappa = _check_positive(kappa, "kappa")
    return torch.from_numpy(_vmf_around(x, kappa, _rng(rng)))


def sample_uniform_dots(dim: int, size: int | tuple[int, ...], rng: Rng = None) -> np.ndarray:
    """Samples of ``u.v`` for independent uniform u, v on S^{dim-1}.

    By rotation invariance ``u.v`` has the law of one coordinate of a uniform point:
    ``(1 + u.v) / 2 ~ Beta((m-1)/2, (m-1)/2)``. Drawing it directly costs O(1) per sample
    instead of O(dim), which is what makes Theorem 1 checkable at M = 16,384 on a CPU.
    """
    dim = _check_dim(dim)
    a = (dim - 1) / 2
    return 2.0 * _rng(rng).beta(a, a, size=size) - 1.0


def sample_antipodal(
    n: int, dim: int, rng: Rng = None, direction: np.ndarray | None = None
) -> torch.Tensor:
    """``n`` draws from ``(delta_e + delta_{-e}) / 2``: zero mean, as far from uniform as it gets.

    ``direction`` defaults to e_1.
    """
    n, dim, rng = _check_count(n, "n"), _check_dim(dim), _rng(rng)
    e = np.zeros(dim) if direction is None else np.asarray(direction, dtype=np.float64)
    if direction is None:
        e[0] = 1.0
    elif e.shape != (dim,) or not np.linalg.norm(e) > 0:
        raise ValueError(f"direction must be a non-zero vector of length {dim}")
    signs = rng.choice([-1.0, 1.0], size=(n, 1))
    return torch.from_numpy(signs * (e / np.linalg.norm(e)))
