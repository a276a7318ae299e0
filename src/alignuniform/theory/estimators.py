"""The two batch estimators of ``L_uniform``: their exact relation, floor and bias.

With self-pairs (``L1``) and without (``L2``, the paper's code and
:func:`alignuniform.uniform_loss`): one maps to the other exactly, ``L1`` never goes below
the population bound while ``L2`` can, and both are biased by O(1/B). Also the batch
statistics of the antipodal check (mean dot product) and of point optimisation (squared
MMD to the uniform distribution).
Random state is a ``numpy.random.Generator`` (or a seed); ``dim`` is the ambient dimension m
(points lie on S^{m-1}).

    >>> import torch
    >>> from alignuniform.theory.estimators import batch_uniformity_estimators, with_self_pairs
    >>> x = torch.nn.functional.normalize(torch.randn(16, 3, dtype=torch.float64), dim=1)
    >>> l1, l2 = batch_uniformity_estimators(x, 2.0)
    >>> bool(torch.isclose(with_self_pairs(l2, 16), l1))
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

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
from alignuniform.theory.sphere_sampling import sample_uniform

__all__ = [
    "batch_uniformity_estimators",
    "without_self_pairs",
    "with_self_pairs",
    "estimator_floor",
    "estimator_bias",
    "mean_dot_product",
    "mmd_to_uniform",
]


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
