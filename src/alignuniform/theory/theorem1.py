"""Theorem 1 of Wang & Isola: ``L_contrastive(tau, M) - log M`` and its M -> infinity limit.

The limit in closed form on a model where it is known (uniform ``x``, positives
``y ~ vMF(x, kappa)``), the Monte-Carlo loss at finite M with confidence intervals (and a
control variate that resolves the O(1/M) gap), the log-log slope that measures that rate,
the per-anchor contrastive loss with a negatives bank, and the two terms of the limit for
paired embeddings next to ``L_align`` and ``L_uniform(t = 1/(2 tau))``.
Random state is a ``numpy.random.Generator`` (or a seed); ``dim`` is the ambient dimension m
(points lie on S^{m-1}).

    >>> from alignuniform.theory.theorem1 import theorem1_limit
    >>> terms = theorem1_limit(dim=4, tau=0.5, kappa=10.0)
    >>> abs(terms["limit"] - (terms["align_term"] + terms["uniform_term"])) < 1e-15
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import special, stats

from alignuniform.losses import align_loss, uniform_loss
from alignuniform.theory._common import (
    MeanCI,
    Rng,
    _check_count,
    _check_dim,
    _check_positive,
    _rng,
    _unit_rows,
)
from alignuniform.theory.closed_forms import log_mean_exp_uniform_dot, vmf_mean_cosine
from alignuniform.theory.sphere_sampling import (
    sample_positive_pairs,
    sample_uniform,
    sample_uniform_dots,
)

__all__ = [
    "theorem1_limit",
    "theorem1_monte_carlo",
    "fit_loglog_slope",
    "contrastive_per_anchor",
    "contrastive_limit_terms",
]


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
