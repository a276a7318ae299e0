"""Rank and linear correlations of one-number-per-encoder columns, vectorised over
bootstrap resamples and permutations.

:func:`spearman_rows`, :func:`kendall_rows` and :func:`pearson_rows` take ``(B, n)`` arrays
and give one coefficient per row pair, so ``B`` resamples cost one call (NaN where a row is
constant). :func:`rank_correlations` gives Spearman's rho and Kendall's tau-b of one pair of
columns with 95% percentile bootstrap intervals over resamples the caller draws.
:func:`correlation` is one Pearson or Spearman coefficient of two vectors, ``None`` when
either is constant relative to its scale.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["pearson_rows", "spearman_rows", "kendall_rows", "correlation", "finite_or_none",
           "percentile_interval", "rank_correlations"]

_CHUNK = 64  # rows of kendall_rows' (rows, n, n) sign tensors held at once


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair of ``(B, n)`` arrays (NaN where a row is constant)."""
    x = x - x.mean(-1, keepdims=True)
    y = y - y.mean(-1, keepdims=True)
    den = np.sqrt((x * x).sum(-1) * (y * y).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (x * y).sum(-1) / np.where(den > 0, den, 1), np.nan)


def _ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank), as scipy's."""
    from scipy.stats import rankdata

    return rankdata(a, axis=-1)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of ``(B, n)`` arrays (NaN where a row is constant)."""
    return pearson_rows(_ranks(x), _ranks(y))


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair of ``(B, n)`` arrays (exact, ties handled)."""
    out = []
    for s in range(0, len(x), _CHUNK):
        sx = np.sign(x[s:s + _CHUNK, :, None] - x[s:s + _CHUNK, None, :])
        sy = np.sign(y[s:s + _CHUNK, :, None] - y[s:s + _CHUNK, None, :])
        num = (sx * sy).sum((1, 2))
        den = np.sqrt((sx * sx).sum((1, 2)) * (sy * sy).sum((1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(den > 0, num / np.where(den > 0, den, 1), np.nan))
    return np.concatenate(out) if out else np.empty(0)


def correlation(x: np.ndarray, y: np.ndarray, method: str = "pearson") -> float | None:
    """One Pearson (or Spearman) coefficient of two vectors.

    ``None`` when either vector is constant up to ``1e-12`` of its scale (a stricter test
    than :func:`pearson_rows`' exact one: predictions that differ only by rounding count as
    constant).
    """
    if method == "spearman":
        from scipy.stats import rankdata

        x, y = rankdata(x), rankdata(y)
    sx, sy = x.std(), y.std()
    if sx < 1e-12 * max(1.0, abs(x).max()) or sy < 1e-12 * max(1.0, abs(y).max()):
        return None
    return float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy))


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or ``None`` when it is missing or not finite (how the
    analyses write a number that cannot be computed)."""
    return float(value) if value is not None and math.isfinite(value) else None


def percentile_interval(boot: np.ndarray, n_boot: int) -> dict:
    """``{"low", "high"}``: the 95% percentile interval of the finite values of ``n_boot``
    bootstrap resamples, or ``None`` for both when more than 10% gave no value (constant
    resamples are rare unless there are very few encoders or many ties)."""
    boot = boot[np.isfinite(boot)]
    if n_boot == 0 or len(boot) < 0.9 * n_boot:
        return {"low": None, "high": None}
    low, high = np.quantile(boot, [0.025, 0.975])
    return {"low": float(low), "high": float(high)}


def rank_correlations(x: np.ndarray, y: np.ndarray,
                      resamples: np.ndarray | None = None) -> dict:
    """Spearman's rho and Kendall's tau-b of ``y`` against ``x``, with bootstrap intervals.

    Args:
        x, y: One number per row.
        resamples: ``(B, n)`` row indices, one bootstrap resample per row (``None``: no
            interval).

    Returns:
        ``{"spearman": {"value", "low", "high"}, "kendall": {...}}``; ``None`` for a value
        that is not defined, and no interval when more than 10% of the resamples are
        constant.
    """
    out = {}
    for name, fn in (("spearman", spearman_rows), ("kendall", kendall_rows)):
        value = fn(x[None], y[None])[0]
        entry = {"value": finite_or_none(value), "low": None, "high": None}
        if resamples is not None and math.isfinite(value):
            entry.update(percentile_interval(fn(x[resamples], y[resamples]), len(resamples)))
        out[name] = entry
    return out

