"""Alignment and uniformity of embeddings as plain functions: no gradients, exact, and
memory-bounded (see :mod:`alignuniform.metrics` for the package map)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special

from alignuniform import _checks
from alignuniform._kernel import DEFAULT_BLOCK, pair_logsumexp

__all__ = ["alignment", "uniformity", "uniformity_bound", "UniformityEstimate"]


def _prepare(x: torch.Tensor, name: str, normalize: bool, min_rows: int = 1) -> torch.Tensor:
    x = _checks.embeddings(x, name, min_rows=min_rows).detach()
    if not normalize:
        return x
    _checks.normalisable(x, name, "drop such rows, or pass normalize=False to measure raw vectors")
    return F.normalize(x, dim=1)


@torch.no_grad()
def alignment(
    x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0, normalize: bool = True
) -> float:
    """Mean of ``||x_i - y_i||^alpha`` over positive pairs, as a Python float.

    Args:
        x, y: (N, d) embeddings; row i of ``y`` is the positive of row i of ``x``.
        alpha: exponent, > 0.
        normalize: L2-normalise rows first (default True).
    """
    alpha = _checks.positive(alpha, "alpha")
    x, y = _prepare(x, "x", normalize), _prepare(y, "y", normalize)
    _checks.same_shape(x, y)
    return float(_alignment_terms(x, y, alpha).mean())


def _alignment_terms(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """``||x_i - y_i||^alpha`` per row, in float64."""
    return torch.linalg.vector_norm(x.double() - y.double(), dim=1).pow(alpha)


@dataclass(frozen=True)
class UniformityEstimate:
    """A sampled uniformity estimate with its 95% confidence interval.

    ``float(estimate)`` is the value: the log of the mean of the sampled pair terms
    ``exp(-t d^2)``, computed in log space (the mean is unbiased; its log is not).

    The interval holds whatever the distribution of the pair terms, which matters: at a
    large ``t`` the pair mean is dominated by a few close pairs that a sample usually
    misses, and the normal interval then covers the exact value in as few as 1 case in 5.
    Every term lies in [0, 1], so the empirical Bernstein bound (Maurer & Pontil 2009,
    Thm. 4, each side at level 2.5%) bounds the mean from both sides; the lower end is
    also at least the largest sampled term over the number of pairs (a certain bound:
    that pair is in the population). Both are mapped through ``log``. Where the sample
    cannot pin the value down, the interval says so by being wide (its upper end
    reaches ``log(7 ln(80) / (3 (n_pairs - 1)))`` when the terms are tiny): compute the
    exact value, or sample more pairs, then. Where the normal interval would be right
    (small ``t``) this one is wider: 5 times at 20,000 pairs (t = 2, d = 64), where its
    range term ``7 ln(80) / (3 n)`` dominates, falling towards ``sqrt(2 ln 80) / 1.96 = 1.5``
    times as ``n_pairs`` grows.
    """

    value: float
    low: float
    high: float
    n_pairs: int

    def __float__(self) -> float:
        return self.value


@torch.no_grad()
def uniformity(
    x: torch.Tensor,
    t: float = 2.0,
    normalize: bool = True,
    *,
    n_pairs: int | None = None,
    seed: int = 0,
    block_size: int = DEFAULT_BLOCK,
) -> float | UniformityEstimate:
    """``log mean_{i<j} exp(-t ||x_i - x_j||^2)`` over all pairs of rows.

    Exact by default: every pair is visited block by block (memory O(N * block_size)), with
    float64 accumulation. For very large N pass ``n_pairs`` to estimate it from that many
    uniformly drawn pairs ``i != j`` instead; that returns a :class:`UniformityEstimate`.

    Args:
        x: (N, d) embeddings, N >= 2.
        t: kernel scale, > 0.
        normalize: L2-normalise rows first (default True).
        n_pairs: if given, sample this many pairs rather than computing exactly.
        seed: seed of the pair sampler.
        block_size: rows per block of the exact computation.
    """
    t = _checks.positive(t, "t")
    x = _prepare(x, "x", normalize, min_rows=2)
    n = x.shape[0]
    if n_pairs is None:
        return float(_exact_uniformity(x, t, block_size))
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 2:
        raise ValueError(
            f"n_pairs must be an integer >= 2 (for a confidence interval), got {n_pairs!r}"
        )
    gen = torch.Generator(device="cpu").manual_seed(seed)
    # log space throughout: with a large t or raw features every exp(-t d^2) can underflow,
    # so the sums are of exp(e - shift) with shift the largest exponent seen so far
    shift = torch.tensor(-math.inf, dtype=torch.float64, device=x.device)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    total_sq = torch.zeros((), dtype=torch.float64, device=x.device)
    chunk = 1 << 16
    for start in range(0, n_pairs, chunk):
        k = min(chunk, n_pairs - start)
        i = torch.randint(n, (k,), generator=gen)
        j = torch.randint(n - 1, (k,), generator=gen)
        j += (j >= i).long()  # uniform over j != i
        i, j = i.to(x.device), j.to(x.device)
        e = (x[i] - x[j]).double().pow(2).sum(1).mul_(-t)
        new_shift = torch.maximum(shift, e.max())
        rescale = torch.exp(shift - new_shift)
        v = torch.exp(e - new_shift)
        total = total * rescale + v.sum()
        total_sq = total_sq * rescale * rescale + v.pow(2).sum()
        shift = new_shift
    return _sampled_estimate(float(shift), float(total), float(total_sq), n_pairs, n)


def _exact_uniformity(x: torch.Tensor, t: float, block_size: int) -> torch.Tensor:
    """Exact uniformity of prepared rows as a 0-d float64 tensor on ``x``'s device."""
    n = x.shape[0]
    return pair_logsumexp(x, t, block_size) - math.log(n * (n - 1) / 2)


def _sampled_estimate(
    shift: float, total: float, total_sq: float, n_pairs: int, n: int
) -> UniformityEstimate:
    """The estimate from ``n_pairs`` sampled exponents ``e`` among the pairs of ``n`` rows,
    given ``shift = max e``, ``total = sum exp(e - shift)`` and ``total_sq`` likewise of
    ``exp(2 (e - shift))``; see :class:`UniformityEstimate` for the interval."""
    value = shift + math.log(total / n_pairs)
    # the terms themselves, in [0, 1]: exp(shift) may underflow, and then so do they
    scale = math.exp(shift)
    mean = scale * total / n_pairs
    var = max(scale * scale * total_sq / n_pairs - mean * mean, 0.0) * n_pairs / (n_pairs - 1)
    log_term = math.log(4 / 0.05)  # two sides at 2.5% each
    half = math.sqrt(2 * var * log_term / n_pairs) + 7 * log_term / (3 * (n_pairs - 1))
    # the largest sampled term is one pair's: the pair mean is at least it over all pairs
    low = shift - math.log(n * (n - 1) / 2)
    if mean > half:
        low = max(low, math.log(mean - half))
    high = math.log(min(mean + half, 1.0))
    # with more draws than pairs the certain bound can pass the sample mean
    return UniformityEstimate(value, min(low, value), high, n_pairs)


def uniformity_bound(dim: int, t: float = 2.0) -> float:
    """The minimum of ``L_uniform`` on S^{dim-1}: its value for the uniform distribution.

    ``-2t + log 0F1(; dim/2; t^2)`` (e.g. -3.9375 for dim=128, t=2; -1.5750 for dim=2).
    Where ``0F1`` overflows, the equivalent Bessel form
    ``log Gamma(dim/2) - (dim/2 - 1) log t + log(I_{dim/2-1}(2t) e^{-2t})`` is used.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    t = _checks.positive(t, "t")
    value = special.hyp0f1(dim / 2, t * t)
    if np.isfinite(value) and value > 0:
        return float(-2 * t + math.log(value))
    nu = dim / 2 - 1
    return float(special.gammaln(dim / 2) - nu * math.log(t) + math.log(special.ive(nu, 2 * t)))
