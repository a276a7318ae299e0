"""The same-image part of the Gaussian-potential sum over locations, which the dense
uniformity metric and loss subtract from the all-pair sum to keep pairs of different images
only (float64, differentiable)."""

from __future__ import annotations

import math

import torch


def within_image_sum(x: torch.Tensor, image: torch.Tensor, t: float) -> tuple[torch.Tensor, int]:
    """``sum exp(-t ||x_i - x_j||^2)`` over pairs ``i < j`` of the same image (float64,
    differentiable) and the number of such pairs."""
    counts = torch.bincount(image)
    counts = counts[counts > 0]
    n_within = int((counts * (counts - 1) // 2).sum())
    if n_within == 0:
        return x.new_zeros((), dtype=torch.float64), 0
    order = torch.argsort(image, stable=True)
    xs = x[order].double()
    g, m = counts.shape[0], int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(x.shape[0], device=x.device) - starts.repeat_interleave(counts)
    group = torch.arange(g, device=x.device).repeat_interleave(counts)
    padded = xs.new_zeros(g, m, x.shape[1]).index_put((group, rank), xs)
    valid = torch.zeros(g, m, dtype=torch.bool, device=x.device)
    valid[group, rank] = True
    sq = (padded * padded).sum(2)
    d2 = (sq[:, :, None] + sq[:, None, :] - 2 * padded @ padded.transpose(1, 2)).clamp(min=0)
    keep = valid[:, :, None] & valid[:, None, :]
    keep &= torch.ones(m, m, dtype=torch.bool, device=x.device).triu(1)[None]
    return torch.exp(-t * d2)[keep].sum(), n_within


def n_pairs(n: int) -> int:
    """How many unordered pairs ``n`` locations make."""
    return n * (n - 1) // 2


def cross_from_total(
    log_mean_all: torch.Tensor, within: torch.Tensor, n: int, n_within: int
) -> torch.Tensor:
    """``log mean`` of the potential over cross-image pairs, from the all-pair ``log mean``
    of ``n`` locations and the same-image sum ``within`` over ``n_within`` pairs."""
    n_all = n_pairs(n)
    total = torch.exp(log_mean_all.double() + math.log(n_all))
    cross = total - within
    if not bool(cross > 0):
        raise ArithmeticError(
            "the cross-image potential sum rounded to <= 0 (same-image pairs dominate the "
            "all-pair sum so far that float rounding ate the rest); use float64 features"
        )
    return torch.log(cross) - math.log(n_all - n_within)

