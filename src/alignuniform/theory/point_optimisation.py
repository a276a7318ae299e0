"""Gradient descent of free points on the sphere, and the objectives it minimises.

``optimise_points`` moves N points on S^{dim-1} down ``uniform_objective`` (``L_uniform``) or
``contrastive_objective`` (the contrastive loss with each point its own positive);
``circle_gaps`` measures how evenly points on S^1 end up spread.

    >>> from alignuniform.theory.point_optimisation import (
    ...     circle_gaps, optimise_points, uniform_objective)
    >>> res = optimise_points(6, 2, uniform_objective(2.0), steps=300, lr=0.05)
    >>> bool(abs(circle_gaps(res.points) - 2 * 3.14159265 / 6).max() < 0.05)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from alignuniform.losses import contrastive_loss, uniform_loss
from alignuniform.theory._common import (
    _check_count,
    _check_dim,
    _check_positive,
)

__all__ = [
    "optimise_points",
    "uniform_objective",
    "contrastive_objective",
    "circle_gaps",
    "PointOptimisation",
]


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
