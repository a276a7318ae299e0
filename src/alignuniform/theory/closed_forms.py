"""Closed forms on the sphere, and the optimum of ``L_uniform`` computed three ways.

The density of ``u.v`` for independent uniform u, v on S^{m-1},
``(1 - s^2)^{(m-3)/2} / B(1/2, (m-1)/2)`` on [-1, 1]; the mean cosine of a vMF;
``log E exp(kappa u.v) = log 0F1(; m/2; kappa^2/4)``; ``L_uniform`` of the uniform
distribution (the optimum, ``metrics.uniformity_bound``) by a 1-D quadrature of that density
and by Monte Carlo; and ``L_uniform`` of two antipodal atoms, which have the uniform
distribution's mean dot product but a very different ``L_uniform`` (why a Gaussian kernel).
Random state is a ``numpy.random.Generator`` (or a seed); ``dim`` is the ambient dimension m
(points lie on S^{m-1}).

    >>> from alignuniform.metrics import uniformity_bound
    >>> from alignuniform.theory.closed_forms import uniformity_by_quadrature
    >>> bool(abs(uniformity_by_quadrature(8, 2.0) - uniformity_bound(8, 2.0)) < 1e-10)
    True
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import integrate, special

from alignuniform.metrics import uniformity_bound
from alignuniform.theory._common import (
    MeanCI,
    Rng,
    _check_count,
    _check_dim,
    _check_positive,
    _rng,
)
from alignuniform.theory.sphere_sampling import sample_uniform

__all__ = [
    "uniform_dot_density",
    "vmf_mean_cosine",
    "log_mean_exp_uniform_dot",
    "uniformity_by_quadrature",
    "uniformity_monte_carlo",
    "antipodal_uniformity",
]


def uniform_dot_density(s: np.ndarray | float, dim: int) -> np.ndarray:
    """Density of ``u.v`` at ``s`` for independent uniform u, v on S^{dim-1}."""
    dim = _check_dim(dim)
    s = np.asarray(s, dtype=np.float64)
    a = (dim - 3) / 2
    with np.errstate(divide="ignore"):
        log_p = a * np.log1p(-s * s) - special.betaln(0.5, (dim - 1) / 2)
    return np.where(np.abs(s) < 1, np.exp(log_p), 0.0)


def vmf_mean_cosine(dim: int, kappa: float) -> float:
    """``E[mu.x]`` for ``x ~ vMF(mu, kappa)`` on S^{dim-1}: ``I_{m/2}(k) / I_{m/2-1}(k)``."""
    dim, kappa = _check_dim(dim), _check_positive(kappa, "kappa")
    # exponentially scaled Bessel functions: the ratio is unchanged and nothing overflows
    return float(special.ive(dim / 2, kappa) / special.ive(dim / 2 - 1, kappa))


def log_mean_exp_uniform_dot(dim: int, kappa: float) -> float:
    """``log E_v exp(kappa u.v)`` for v uniform on S^{dim-1}: ``log 0F1(; m/2; kappa^2/4)``.

    Since ``exp(kappa u.v) = e^kappa exp(-(kappa/2) ||u - v||^2)`` on the sphere this is
    ``kappa + uniformity_bound(dim, kappa/2)``; the core's stable evaluation is reused.
    """
    dim, kappa = _check_dim(dim), _check_positive(kappa, "kappa")
    return kappa + uniformity_bound(dim, kappa / 2)


def uniformity_by_quadrature(dim: int, t: float) -> float:
    """``log E exp(-t ||u - v||^2)`` for the uniform distribution, by 1-D adaptive quadrature.

    Integrates ``exp(-2t (1 - s))`` against the density of ``s = u.v``. The log-integrand
    ``g(s) = a log(1 - s^2) + 2t (s - 1)`` (``a = (m-3)/2``) peaks at
    ``s* = (sqrt(a^2 + 4t^2) - a) / (2t)``; the integral is taken of ``exp(g - g(s*))`` on both
    sides of the peak, so large dimensions (a very narrow peak) are handled as well as small.
    For dim = 2 and 3 the end-point factor (singular for dim = 2) is handed to QUADPACK's QAWS
    rule, which integrates it exactly. An independent check of
    :func:`alignuniform.metrics.uniformity_bound`.
    """
    dim, t = _check_dim(dim), _check_positive(t, "t")
    a = (dim - 3) / 2
    log_norm = special.betaln(0.5, (dim - 1) / 2)
    options = {"epsabs": 0.0, "epsrel": 1e-13, "limit": 200}
    if a <= 0:  # dim 2 or 3: the peak is at s = 1, where QAWS handles the end-point factor
        value, _ = integrate.quad(
            lambda s: math.exp(2 * t * (s - 1)), -1.0, 1.0, weight="alg", wvar=(a, a), **options
        )
        return math.log(value) - log_norm
    peak = (math.sqrt(a * a + 4 * t * t) - a) / (2 * t)

    def log_integrand(s: float) -> float:
        return a * math.log1p(-s * s) + 2 * t * (s - 1) if abs(s) < 1 else -math.inf

    top = log_integrand(peak)
    parts = [
        integrate.quad(lambda s: math.exp(log_integrand(s) - top), lo, hi, **options)[0]
        for lo, hi in ((-1.0, peak), (peak, 1.0))
    ]
    return top + math.log(sum(parts)) - log_norm


def uniformity_monte_carlo(
    dim: int, t: float, n_pairs: int, rng: Rng = None
) -> dict[str, float | None]:
    """Monte-Carlo ``L_uniform`` of the uniform distribution from ``n_pairs`` independent pairs.

    Points are drawn as vectors (not via the 1-D law), so this checks the closed form and the
    quadrature independently. The interval is the normal interval of the (unbiased) kernel mean
    mapped through ``log``; ``low`` is None when that interval reaches 0.
    """
    dim, t = _check_dim(dim), _check_positive(t, "t")
    n_pairs, rng = _check_count(n_pairs, "n_pairs", 2), _rng(rng)
    u, v = sample_uniform(n_pairs, dim, rng), sample_uniform(n_pairs, dim, rng)
    k = torch.exp(-t * (u - v).pow(2).sum(1)).numpy()
    ci = MeanCI.of(k)
    # an interval reaching 0 has no lower end in log space: None (JSON null), not -inf
    low = math.log(ci.low) if ci.low > 0 else None
    return {"value": math.log(ci.mean), "low": low, "high": math.log(ci.high), "n_pairs": n_pairs}


def antipodal_uniformity(t: float) -> float:
    """Population ``L_uniform`` of two antipodal atoms: ``log((1 + e^{-4t}) / 2)``."""
    t = _check_positive(t, "t")
    return math.log1p(math.exp(-4 * t)) - math.log(2.0)
