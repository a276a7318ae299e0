"""The paper's mathematical claims as functions that compute both sides.

Every claim of Wang & Isola (ICML 2020) that is about distributions rather than about trained
networks is turned into something you can evaluate:

* sampling on S^{m-1}: uniform (``scipy.stats.uniform_direction``), von Mises-Fisher
  (``scipy.stats.vonmises_fisher``), vMF mixtures and a positive-pair model where ``y`` is
  drawn from a vMF centred on ``x``;
* Theorem 1: ``L_contrastive(tau, M) - log M`` against its M -> infinity limit, by Monte Carlo
  with confidence intervals, on a model whose limit is known in closed form;
* the optimum of ``L_uniform``: ``metrics.uniformity_bound`` against a 1-D quadrature of the
  density of ``u.v`` and against Monte Carlo; gradient descent of free points on the sphere;
* why a Gaussian kernel: two antipodal atoms have the same mean dot product as the uniform
  distribution but a very different ``L_uniform``;
* the two batch estimators of ``L_uniform`` (with and without self-pairs), their exact
  relation, their bias and the floor below the population bound;
* the two terms of the contrastive limit next to ``L_align`` and ``L_uniform(t = 1/(2 tau))``.

Notation: ``dim`` is the ambient dimension m (points lie on S^{m-1}); ``u.v`` is the dot
product of two independent uniform points, whose density is
``(1 - s^2)^{(m-3)/2} / B(1/2, (m-1)/2)`` on [-1, 1]. Random state is a
``numpy.random.Generator`` (or a seed); samplers return float64 torch tensors.

This module is pure computation: no files, no printing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import integrate, special, stats

from alignuniform.losses import align_loss, contrastive_loss, uniform_loss
from alignuniform.metrics import uniformity_bound
from alignuniform.theory._common import (
    MeanCI,
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
    "uniform_dot_density",
    "vmf_mean_cosine",
    "log_mean_exp_uniform_dot",
    "uniformity_by_quadrature",
    "uniformity_monte_carlo",
    "theorem1_limit",
    "theorem1_monte_carlo",
    "fit_loglog_slope",
    "contrastive_per_anchor",
    "contrastive_limit_terms",
    "batch_uniformity_estimators",
    "without_self_pairs",
    "with_self_pairs",
    "estimator_floor",
    "estimator_bias",
    "antipodal_uniformity",
    "mean_dot_product",
    "mmd_to_uniform",
    "optimise_points",
    "uniform_objective",
    "contrastive_objective",
    "circle_gaps",
    "PointOptimisation",
]

# ---------------------------------------------------------------------------- sampling


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


# ---------------------------------------------------------------------------- closed forms


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


# ---------------------------------------------------------------------------- Theorem 1


def theorem1_limit(dim: int, tau: float, kappa: float) -> dict[str, float]:
    """Closed-form limit of Theorem 1 for uniform ``x`` and positives ``y ~ vMF(x, kappa)``.

    ``lim_M L_contrastive(tau, M) - log M = -(1/tau) E[x.y] + E_x log E_{x-} exp(x-.x / tau)``
    with ``E[x.y] = vmf_mean_cosine(dim, kappa)`` and, since the marginal is uniform, the
    inner expectation equal to ``0F1(; m/2; 1/(4 tau^2))`` for every x.

    Returns:
        ``{"align_term", "uniform_term", "limit"}``.
    """
    tau = _check_positive(tau, "tau")
    align_term = -vmf_mean_cosine(dim, kappa) / tau
    uniform_term = log_mean_exp_uniform_dot(dim, 1.0 / tau)
    return {
        "align_term": align_term,
        "uniform_term": uniform_term,
        "limit": align_term + uniform_term,
    }


def theorem1_monte_carlo(
    dim: int,
    tau: float,
    kappa: float,
    ms: Sequence[int],
    n_samples: int,
    rng: Rng = None,
    *,
    max_chunk: int = 1 << 22,
    callback: Callable[[int], None] | None = None,
) -> list[dict]:
    """Monte-Carlo ``L_contrastive(tau, M) - log M`` for each M, with the gap to the limit.

    Model: x uniform on S^{dim-1}, positive ``y ~ vMF(x, kappa)``, M independent uniform
    negatives per anchor (their similarities are drawn with :func:`sample_uniform_dots`).
    Per anchor, with ``s+ = x.y / tau``, ``s_i = x_i-.x / tau`` and ``Z = E exp(s_i)``::

        loss - log M = -s+ + log(e^{s+}/M + mean_i e^{s_i})
        limit sample = -s+ + log Z
        gap          = log(e^{s+}/M + mean_i e^{s_i}) - log Z

    The gap's expectation is the bias ``E[L_M] - log M - limit``. It is estimated twice: plainly
    (``gap``) and with the control variate ``D = mean_i e^{s_i} / Z - 1`` whose expectation is
    exactly 0 (``gap_cv = gap - D``). The plain estimator's spread is O(M^{-1/2}) and swamps an
    O(1/M) bias at large M; the control variate removes the first-order term, leaving a spread
    of O(1/M), so the bias is resolved at every M with a fixed number of anchors.

    Args:
        dim: ambient dimension m.
        tau: temperature.
        kappa: concentration of the positive pairs.
        ms: numbers of negatives M (each >= 1).
        n_samples: anchors per M (>= 2).
        rng: generator or seed.
        max_chunk: most negative similarities held in memory at once.
        callback: called with each M once it is done (e.g. a progress bar's update).

    Returns:
        One dict per M: ``m``, ``loss_minus_log_m``, ``limit_mc`` (the sampled limit, sharing
        the anchors), ``gap`` and ``gap_cv`` (each a :class:`MeanCI` as a dict), ``limit``
        (closed form).
    """
    dim, tau, kappa = _check_dim(dim), _check_positive(tau, "tau"), _check_positive(kappa, "kappa")
    n_samples, rng = _check_count(n_samples, "n_samples", 2), _rng(rng)
    ms = [_check_count(m, "each M", 1) for m in ms]
    if not ms:
        raise ValueError("ms must list at least one number of negatives")
    limit = theorem1_limit(dim, tau, kappa)["limit"]
    log_z = log_mean_exp_uniform_dot(dim, 1.0 / tau)
    rows = []
    for m in ms:
        x = sample_uniform(n_samples, dim, rng)
        s_pos = (x * sample_positive_pairs(x, kappa, rng)).sum(1).numpy() / tau
        log_mean_neg = np.empty(n_samples)
        step = max(1, max_chunk // m)
        for a in range(0, n_samples, step):
            s = sample_uniform_dots(dim, (min(step, n_samples - a), m), rng) / tau
            log_mean_neg[a : a + step] = special.logsumexp(s, axis=1) - math.log(m)
        log_total = np.logaddexp(s_pos - math.log(m), log_mean_neg)  # log(e^{s+}/M + mean)
        gap = log_total - log_z
        control = np.expm1(log_mean_neg - log_z)
        rows.append(
            {
                "m": m,
                "loss_minus_log_m": MeanCI.of(log_total - s_pos).as_dict(),
                "limit_mc": MeanCI.of(log_z - s_pos).as_dict(),
                "gap": MeanCI.of(gap).as_dict(),
                "gap_cv": MeanCI.of(gap - control).as_dict(),
                "limit": limit,
                "n_samples": n_samples,
            }
        )
        if callback is not None:
            callback(m)
    return rows


def fit_loglog_slope(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Least-squares slope of ``log y`` against ``log x`` with its standard error.

    Raises:
        ValueError: fewer than 3 points, or a non-positive value.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1 or xs.size < 3:
        raise ValueError("need at least 3 (x, y) points of equal length for a slope")
    if (xs <= 0).any() or (ys <= 0).any():
        raise ValueError("a log-log fit needs positive x and y; drop or take |.| of the others")
    lx, ly = np.log(xs), np.log(ys)
    fit = stats.linregress(lx, ly)
    return {
        "slope": float(fit.slope),
        "slope_se": float(fit.stderr),
        "intercept": float(fit.intercept),
    }


def contrastive_per_anchor(
    anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, tau: float
) -> torch.Tensor:
    """Per-anchor ``-log(e^{a.p/tau} / (e^{a.p/tau} + sum_n e^{a.n/tau}))`` (N,), float64.

    The one-directional summand of :func:`alignuniform.contrastive_loss` with a negatives
    bank, kept per anchor so Monte-Carlo intervals can be formed.
    """
    tau = _check_positive(tau, "tau")
    a, p, n = (torch.as_tensor(v, dtype=torch.float64) for v in (anchor, positive, negatives))
    pos = (a * p).sum(1, keepdim=True) / tau
    return torch.logsumexp(torch.cat([pos, a @ n.T / tau], 1), 1) - pos[:, 0]


def contrastive_limit_terms(x: torch.Tensor, y: torch.Tensor, tau: float) -> dict[str, float]:
    """The two terms of Theorem 1's limit for paired embeddings, next to L_align and L_uniform.

    With ``t = 1/(2 tau)`` and unit vectors, ``exp(u.v / tau) = e^{1/tau} exp(-t ||u - v||^2)``,
    which ties the terms to the paper's losses:

    * ``align_term = -(1/tau) mean_i x_i.y_i = -1/tau + L_align(alpha=2) / (2 tau)`` exactly;
    * ``uniform_term = mean_i log mean_{j != i} exp(x_j.x_i / tau)`` (x- from the sample's own
      marginal) ``<= 1/tau + L_uniform(x; t)`` by Jensen, with equality when every point sees
      the same average potential (as under the uniform distribution).

    Returns:
        ``align_term``, ``uniform_term``, ``limit`` (their sum), ``align_loss``,
        ``uniform_loss`` (at ``t``), ``t``, and the two right-hand sides
        ``align_from_l_align`` and ``uniform_jensen_bound``.
    """
    tau = _check_positive(tau, "tau")
    x, y = _unit_rows(x, "x"), _unit_rows(y, "y")
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] < 3:
        raise ValueError("need at least 3 pairs so that every anchor has 2 or more negatives")
    t = 1.0 / (2.0 * tau)
    n = x.shape[0]
    logits = (x @ x.T / tau).fill_diagonal_(-math.inf)
    uniform_term = float((torch.logsumexp(logits, 1) - math.log(n - 1)).mean())
    align_term = float(-(x * y).sum(1).mean() / tau)
    l_align, l_uniform = float(align_loss(x, y, 2.0)), float(uniform_loss(x, t))
    return {
        "align_term": align_term,
        "uniform_term": uniform_term,
        "limit": align_term + uniform_term,
        "align_loss": l_align,
        "uniform_loss": l_uniform,
        "t": t,
        "align_from_l_align": -1.0 / tau + l_align / (2.0 * tau),
        "uniform_jensen_bound": 1.0 / tau + l_uniform,
    }


# ---------------------------------------------------------------------------- batch estimators


def batch_uniformity_estimators(x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Both batch estimators of ``L_uniform`` for one batch (B, d) or many (..., B, d).

    * with self-pairs: ``L1 = log (1/B^2) sum_{i,j} exp(-t ||x_i - x_j||^2)``;
    * without (the paper's code, :func:`alignuniform.uniform_loss`):
      ``L2 = log (1/(B(B-1))) sum_{i != j} exp(-t ||x_i - x_j||^2)``.

    A brute-force reference over the full B x B matrix (memory O(B^2) per batch).

    Returns:
        ``(L1, L2)``, each of shape ``x.shape[:-2]``.
    """
    t = _check_positive(t, "t")
    if x.ndim < 2 or x.shape[-2] < 2:
        raise ValueError(f"x must be (..., B, d) with B >= 2, got shape {tuple(x.shape)}")
    b = x.shape[-2]
    sq = (x * x).sum(-1)
    d2 = (sq[..., :, None] + sq[..., None, :] - 2 * x @ x.transpose(-1, -2)).clamp(min=0)
    d2 = d2 + torch.diag_embed(torch.full_like(sq, math.inf))  # drop self-pairs for L2
    lse_off = torch.logsumexp((-t * d2).flatten(-2), -1)
    l2 = lse_off - math.log(b * (b - 1))
    l1 = torch.logaddexp(lse_off, torch.full_like(lse_off, math.log(b))) - 2 * math.log(b)
    return l1, l2


def without_self_pairs(l1: float | torch.Tensor, batch_size: int):
    """``L2 = log((B e^{L1} - 1) / (B - 1))``, evaluated as ``log(expm1(L1 + log B))`` to keep
    precision when ``B e^{L1}`` is close to 1."""
    b = _check_count(batch_size, "batch_size", 2)
    l1 = torch.as_tensor(l1, dtype=torch.float64)
    return torch.log(torch.expm1(l1 + math.log(b))) - math.log(b - 1)


def with_self_pairs(l2: float | torch.Tensor, batch_size: int):
    """Inverse of :func:`without_self_pairs`: ``L1 = log((1 + (B - 1) e^{L2}) / B)``."""
    b = _check_count(batch_size, "batch_size", 2)
    l2 = torch.as_tensor(l2, dtype=torch.float64)
    return torch.log1p((b - 1) * torch.exp(l2)) - math.log(b)


def estimator_floor(dim: int, t: float, batch_size: int) -> dict[str, float | bool | None]:
    """How low each batch estimator can go for B points on S^{dim-1}, against the bound b.

    * ``L1 >= b`` for every batch: ``e^{L1} - e^b`` is the squared MMD between the batch and
      the uniform distribution under the (positive-definite) Gaussian kernel.
    * hence ``L2 >= log((B e^b - 1) / (B - 1))`` (no floor when ``B e^b <= 1``), which is
      below b; and by Jensen
      ``L2 >= -2t B / (B - 1)`` (``sum_{i != j} ||x_i - x_j||^2 <= 2 B^2``), attained by the
      regular simplex when ``B <= dim + 1``, where it is below ``-2t <= b``.

    Returns:
        ``bound``, ``l2_floor_mmd`` (None where there is none), ``l2_floor_jensen``,
        ``l2_floor`` (the larger of the two),
        ``simplex_attains`` (B <= dim + 1).
    """
    dim, t, b = _check_dim(dim), _check_positive(t, "t"), _check_count(batch_size, "batch_size", 2)
    bound = uniformity_bound(dim, t)
    # when B e^b <= 1 the MMD argument puts no floor under L2: None (JSON null), not -inf
    mmd = float(without_self_pairs(bound, b)) if b * math.exp(bound) > 1 else None
    jensen = -2 * t * b / (b - 1)
    return {
        "bound": bound,
        "l2_floor_mmd": mmd,
        "l2_floor_jensen": jensen,
        "l2_floor": jensen if mmd is None else max(mmd, jensen),
        "simplex_attains": b <= dim + 1,
    }


def estimator_bias(
    dim: int,
    t: float,
    batch_sizes: Sequence[int],
    n_batches: int,
    rng: Rng = None,
    *,
    max_chunk: int = 1 << 22,
) -> list[dict]:
    """Mean of both batch estimators over ``n_batches`` iid uniform batches, per batch size.

    ``e^{L2}`` is unbiased for ``e^b``, so ``L2`` is biased low (Jensen) by O(1/B);
    ``E e^{L1} = 1/B + (1 - 1/B) e^b`` exactly, so ``L1`` is biased high by O(1/B).
    ``max_chunk`` caps the pair-matrix entries held at once.

    Returns:
        One dict per B: ``batch_size``, ``with_self`` and ``without_self`` (:class:`MeanCI`
        dicts), ``frac_below_bound`` (share of batches with ``L2 < b``), ``bound``,
        ``with_self_exact_mean_exp`` (the exact ``E e^{L1}``).
    """
    dim, t, rng = _check_dim(dim), _check_positive(t, "t"), _rng(rng)
    n_batches = _check_count(n_batches, "n_batches", 2)
    bound = uniformity_bound(dim, t)
    rows = []
    for b in batch_sizes:
        b = _check_count(b, "each batch size", 2)
        step = max(1, max_chunk // (b * b))  # batches per chunk: B x B matrices are held
        l1, l2 = np.empty(n_batches), np.empty(n_batches)
        for a in range(0, n_batches, step):
            k = min(step, n_batches - a)
            x = sample_uniform(k * b, dim, rng).reshape(k, b, dim)
            l1[a : a + k], l2[a : a + k] = (v.numpy() for v in batch_uniformity_estimators(x, t))
        rows.append(
            {
                "batch_size": b,
                "with_self": MeanCI.of(l1).as_dict(),
                "without_self": MeanCI.of(l2).as_dict(),
                "with_self_mean_exp": MeanCI.of(np.exp(l1)).as_dict(),
                "with_self_exact_mean_exp": 1 / b + (1 - 1 / b) * math.exp(bound),
                "frac_below_bound": float((l2 < bound).mean()),
                "bound": bound,
            }
        )
    return rows


def mean_dot_product(x: torch.Tensor) -> float:
    """``mean_{i != j} x_i.x_j = (||sum_i x_i||^2 - sum_i ||x_i||^2) / (N (N - 1))``."""
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be (N, d) with N >= 2, got shape {tuple(x.shape)}")
    n = x.shape[0]
    return float((x.sum(0).pow(2).sum() - x.pow(2).sum()) / (n * (n - 1)))


def mmd_to_uniform(x: torch.Tensor, t: float) -> float:
    """Squared MMD between the points and the uniform distribution, Gaussian kernel ``e^{-t d^2}``.

    ``e^{L1} - e^b`` (>= 0). For N iid uniform points its expectation is ``(1 - e^b) / N``;
    well-spread points get far less.
    """
    x = _unit_rows(x, "x")
    l1, _ = batch_uniformity_estimators(x, t)
    return float(torch.exp(l1)) - math.exp(uniformity_bound(x.shape[1], t))


# ---------------------------------------------------------------------------- point optimisation


@dataclass
class PointOptimisation:
    """Result of :func:`optimise_points`: final unit points and the loss trajectory."""

    points: torch.Tensor
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def uniform_objective(t: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """``points -> uniform_loss(points, t)``."""
    t = _check_positive(t, "t")
    return lambda x: uniform_loss(x, t)


def contrastive_objective(tau: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """``points -> contrastive_loss(points, points, tau)``: each point is its own positive and
    the other N - 1 points are its negatives, so only the uniformity term can move."""
    tau = _check_positive(tau, "tau")
    return lambda x: contrastive_loss(x, x, tau)


def optimise_points(
    n_points: int,
    dim: int,
    objective: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int = 1000,
    lr: float = 0.05,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    record_every: int = 10,
) -> PointOptimisation:
    """Gradient descent (Adam, cosine-decayed step) of N free points on S^{dim-1}.

    The points are unconstrained parameters normalised inside the objective, so the descent
    moves along the sphere. Initialisation is iid uniform (normalised Gaussians) from ``seed``.

    Args:
        n_points: N >= 2.
        dim: ambient dimension.
        objective: maps (N, dim) unit points to a 0-d loss (e.g. :func:`uniform_objective`).
        steps, lr: optimiser settings.
        seed: initialisation seed.
        device, dtype: where and in what precision to optimise.
        record_every: record the loss every this many steps (and at the end).
    """
    n_points, dim = _check_count(n_points, "n_points", 2), _check_dim(dim)
    steps, lr = _check_count(steps, "steps"), _check_positive(lr, "lr")
    gen = torch.Generator().manual_seed(seed)
    raw = torch.randn(n_points, dim, generator=gen, dtype=dtype).to(device).requires_grad_(True)
    opt = torch.optim.Adam([raw], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    result = PointOptimisation(points=raw.detach())
    for step in range(steps + 1):
        loss = objective(torch.nn.functional.normalize(raw, dim=1))
        if step % record_every == 0 or step == steps:
            result.steps.append(step)
            result.losses.append(float(loss.detach()))
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    result.points = torch.nn.functional.normalize(raw.detach(), dim=1)
    return result


def circle_gaps(points: torch.Tensor) -> np.ndarray:
    """Angular gaps (radians, summing to 2 pi) between consecutive points on S^1."""
    x = torch.as_tensor(points, dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] < 2:
        raise ValueError(f"points must be (N, 2) with N >= 2, got shape {tuple(x.shape)}")
    angles = np.sort(np.arctan2(x[:, 1].cpu().numpy(), x[:, 0].cpu().numpy()))
    return np.diff(np.append(angles, angles[0] + 2 * math.pi))
