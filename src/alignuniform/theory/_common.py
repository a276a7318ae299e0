"""Helpers shared by the theory modules: argument checks, random state, Monte-Carlo means."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: Two-sided 95% normal quantile, used for every confidence interval here.
Z95 = 1.959963984540054

Rng = np.random.Generator | int | None


def _rng(rng: Rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_dim(dim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2 (points on S^(dim-1)), got {dim!r}")
    return int(dim)


def _check_count(n: int, name: str, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return int(n)


def _check_positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _unit_rows(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"{name} must be an (N, dim) array with dim >= 2, got {tuple(x.shape)}")
    norms = x.norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-6):
        raise ValueError(f"{name} rows must be unit vectors; normalise them first")
    return x


@dataclass(frozen=True)
class MeanCI:
    """A Monte-Carlo mean with its standard error and 95% normal interval."""

    mean: float
    se: float

    @property
    def low(self) -> float:
        return self.mean - Z95 * self.se

    @property
    def high(self) -> float:
        return self.mean + Z95 * self.se

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "se": self.se, "low": self.low, "high": self.high}

    def __sub__(self, other: MeanCI) -> MeanCI:
        """The difference of two independent estimates (standard errors add in quadrature)."""
        return MeanCI(self.mean - other.mean, math.hypot(self.se, other.se))

    @classmethod
    def of(cls, samples: np.ndarray) -> MeanCI:
        samples = np.asarray(samples, dtype=np.float64)
        if samples.size < 2:
            raise ValueError("a confidence interval needs at least 2 samples")
        return cls(float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(samples.size)))
