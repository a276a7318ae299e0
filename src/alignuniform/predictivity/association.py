"""Does a metric rank encoders as their accuracy does? Rank correlations with bootstrap
intervals and permutation p-values: across encoders, within groups, and for a fitted score.

Every statistic comes with a 95% percentile bootstrap interval (encoders resampled with
replacement) and a permutation null: the accuracies are shuffled over the encoders (within
each group for within-group statistics), the statistic recomputed on each shuffle, and

- ``p_value`` = ``(1 + #{null at least as extreme}) / (1 + #null)``, so it is never 0 and
  a valid p-value for any number of permutations;
- ``null_q95`` = the null's 95th percentile: of ``|rho|`` for a two-sided test, of the
  value itself for a one-sided one: what a metric carrying no information reaches with
  this many encoders.

A raw metric is tested two-sided (its sign is fixed by the metric, not by the data). A
fitted, cross-validated score (:func:`cv_fit_association`, :func:`au_correlation_null`) is
tested one-sided, ``alternative="greater"``: only agreement above chance is evidence, and
its no-information values are negative on average (a left-out fit anticorrelates with the
target it did not see), so a large negative value is no sign of information either. Its
null redoes the cross-validated fit on every permutation of the accuracies: the left-out
predictions are linear in the targets (:func:`~alignuniform.predictivity.fits.cv_operator`),
so that costs one matrix product.

Examples:
    >>> import numpy as np
    >>> metric = np.arange(12.0)
    >>> out = association(metric, 2 * metric + 1, n_boot=100, n_perm=199, seed=0)
    >>> out["kendall"]["value"], out["kendall"]["p_value"]
    (1.0, 0.005)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from alignuniform.predictivity.correlations import (
    finite_or_none,
    kendall_rows,
    pearson_rows,
    percentile_interval,
    spearman_rows,
)
from alignuniform.predictivity.fits import as_vector, au_correlation, cv_operator, fit_linear

__all__ = ["RANK_STATISTICS", "permutations", "permutation_summary", "association",
           "cv_fit_association", "au_correlation_null"]

RowStatistic = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: The rank statistics reported for every (metric, accuracy) pair, as ``(B, n)`` row functions.
RANK_STATISTICS: dict[str, RowStatistic] = {"spearman": spearman_rows, "kendall": kendall_rows}
_ROWS: dict[str, RowStatistic] = {**RANK_STATISTICS, "pearson": pearson_rows}


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the bootstrap and the permutations of one seed, so the
    interval does not change with ``n_perm`` nor the p-value with ``n_boot``."""
    boot, perm = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(boot), np.random.default_rng(perm)


def _group_index(groups: np.ndarray | None, n: int) -> list[np.ndarray]:
    if groups is None:
        return [np.arange(n)]
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} labels for {n} encoders")
    return [np.flatnonzero(groups == g) for g in _unique_in_order(groups)]


def _unique_in_order(labels: np.ndarray) -> list:
    _, first = np.unique(labels, return_index=True)
    return [labels[i] for i in np.sort(first)]


def permutations(n: int, n_perm: int, rng: np.random.Generator,
                 groups: np.ndarray | None = None) -> np.ndarray:
    """``(n_perm, n)`` index arrays, each a uniform random permutation of ``range(n)``
    (of each group's positions among themselves when ``groups`` are given)."""
    out = np.tile(np.arange(n), (n_perm, 1))
    for idx in _group_index(groups, n):
        out[:, idx] = idx[rng.permuted(np.tile(np.arange(len(idx)), (n_perm, 1)), axis=1)]
    return out


def _stratified_resamples(n: int, n_boot: int, rng: np.random.Generator,
                          groups: np.ndarray | None = None) -> np.ndarray:
    """``(n_boot, n)`` bootstrap draws of row indices, each group's rows from that group, so
    a resample keeps every group's position and size."""
    out = np.empty((n_boot, n), dtype=np.int64)
    for idx in _group_index(groups, n):
        out[:, idx] = idx[rng.integers(0, len(idx), (n_boot, len(idx)))]
    return out


def permutation_summary(observed: float, null: np.ndarray, *,
                        alternative: str = "two-sided") -> dict:
    """``{"p_value", "null_q95"}`` of ``observed`` against ``null`` values (NaN ones dropped;
    ``None`` entries when ``observed`` or every null value is undefined).

    ``alternative``: ``"two-sided"`` compares ``|null|`` with ``|observed|``; ``"greater"``
    compares ``null`` with ``observed``. Values within ``1e-12`` of ``observed`` count as
    at least as extreme (permutations that give the same ranking give the same value up to
    rounding).

    Examples:
        >>> permutation_summary(0.5, np.array([0.1, -0.6, 0.2, 0.5]))
        {'p_value': 0.6, 'null_q95': 0.585}
        >>> permutation_summary(0.5, np.array([0.1, -0.6, 0.2, 0.5]), alternative="greater")
        {'p_value': 0.4, 'null_q95': 0.455}
    """
    if alternative not in ("two-sided", "greater"):
        raise ValueError(f"alternative must be 'two-sided' or 'greater', got {alternative!r}")
    null = null[np.isfinite(null)]
    if not math.isfinite(observed) or len(null) == 0:
        return {"p_value": None, "null_q95": None}
    if alternative == "two-sided":
        null, observed = np.abs(null), abs(observed)
    extreme = int((null >= observed - 1e-12).sum())
    return {"p_value": (1 + extreme) / (1 + len(null)),
            "null_q95": float(np.quantile(null, 0.95))}


def _entry(value: float, boot: np.ndarray, n_boot: int, null: np.ndarray,
           alternative: str) -> dict:
    interval = (percentile_interval(boot, n_boot) if math.isfinite(value)
                else {"low": None, "high": None})
    return {"value": finite_or_none(value), **interval,
            **permutation_summary(value, null, alternative=alternative)}


def _pooled(fn: RowStatistic, x: np.ndarray, y: np.ndarray,
            index: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-group statistics ``(B, G)`` of ``(B, n)`` rows and their group-size-weighted mean
    ``(B,)`` over the groups where the statistic is defined."""
    per = np.stack([fn(x[:, idx], y[:, idx]) if len(idx) >= 2 else np.full(len(x), np.nan)
                    for idx in index], 1)
    weights = np.array([len(idx) for idx in index], dtype=np.float64) * np.isfinite(per)
    total = weights.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.where(total > 0, np.nansum(per * weights, 1) / np.where(total > 0, total, 1),
                          np.nan)
    return per, pooled


def association(metric: np.ndarray, accuracy: np.ndarray, *, groups: np.ndarray | None = None,
                n_boot: int = 1000, n_perm: int = 999, seed: int = 0) -> dict:
    """Spearman's rho and Kendall's tau-b of ``accuracy`` against ``metric``, across all
    encoders and, with ``groups``, within each group and pooled.

    Args:
        metric, accuracy: One finite number per encoder.
        groups: One label per encoder: encoders that differ in one setting share a label.
        n_boot: Bootstrap resamples (0: no intervals).
        n_perm: Permutations of the null (0: no p-values).
        seed: Seeds the resamples and the permutations (separate streams).

    Returns:
        ``{"n", "n_boot", "n_perm", "seed", "alternative", "spearman": S, "kendall": S}``
        with ``S = {"value", "low", "high", "p_value", "null_q95"}`` (two-sided), and with
        ``groups`` also ``"within": {"groups": [{"group", "n", "spearman", "kendall"}, ...],
        "spearman": S, "kendall": S}``: the
        pooled statistic is the mean of the per-group values weighted by group size (groups
        with fewer than 2 encoders or a constant column left out), its interval from
        resamples drawn within each group, its null from permutations within each group.
    """
    x, y = as_vector(metric, "metric"), as_vector(accuracy, "accuracy")
    if len(x) != len(y):
        raise ValueError(f"metric and accuracy have {len(x)} and {len(y)} values")
    n = len(y)
    boot_rng, perm_rng = _streams(seed)
    resamples = boot_rng.integers(0, n, (n_boot, n))
    perms = permutations(n, n_perm, perm_rng)
    out: dict = {"n": n, "n_boot": n_boot, "n_perm": n_perm, "seed": seed,
                 "alternative": "two-sided"}
    for name, fn in RANK_STATISTICS.items():
        value = fn(x[None], y[None])[0]
        out[name] = _entry(value, fn(x[resamples], y[resamples]), n_boot,
                           fn(np.broadcast_to(x, perms.shape), y[perms]), "two-sided")
    if groups is None:
        return out
    labels = np.asarray(groups)
    index = _group_index(labels, n)
    strat = _stratified_resamples(n, n_boot, boot_rng, labels)
    within_perms = permutations(n, n_perm, perm_rng, labels)
    within: dict = {"groups": [{"group": _label(labels[idx[0]]), "n": len(idx)}
                               for idx in index]}
    for name, fn in RANK_STATISTICS.items():
        per, value = _pooled(fn, x[None], y[None], index)
        for entry, v in zip(within["groups"], per[0], strict=True):
            entry[name] = finite_or_none(v)
        boot = _pooled(fn, x[strat], y[strat], index)[1]
        null = _pooled(fn, np.broadcast_to(x, within_perms.shape), y[within_perms], index)[1]
        within[name] = _entry(value[0], boot, n_boot, null, "two-sided")
    out["within"] = within
    return out


def _label(value: object) -> object:
    """A group label as JSON can hold it (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


def cv_fit_association(features: np.ndarray, accuracy: np.ndarray, *,
                       groups: np.ndarray | None = None, n_boot: int = 1000,
                       n_perm: int = 999, seed: int = 0) -> dict:
    """The least-squares score ``accuracy ≈ features @ w + c`` cross-validated over encoders,
    and how well its out-of-fold predictions rank the encoders.

    Each encoder is predicted by a fit that never saw it: leave-one-out, or with ``groups``
    leave-one-group-out (every encoder of a group predicted by the fit on the other groups).

    Args:
        features: ``(n, k)`` metric columns (e.g. alignment and uniformity).
        accuracy: ``(n,)``.
        groups: One label per encoder for leave-one-group-out (``None``: leave-one-out).
        n_boot, n_perm, seed: As in :func:`association`; a resample repeats the whole
            cross-validation (copies of an encoder left out together), a permutation of the
            accuracies redoes the cross-validated fit on them.

    Returns:
        ``{"n", "n_boot", "n_perm", "seed", "alternative", "cv", "coef", "intercept", "r2",
        "q2", "spearman": S, "kendall": S}``:
        ``coef`` and ``r2`` from the fit on all encoders, ``q2 = 1 - PRESS / TSS`` out of
        fold, ``S`` as in :func:`association` with ``alternative="greater"`` (all ``None``
        when a left-out fit is not defined: too few encoders or groups).
    """
    x = np.asarray(features, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = as_vector(accuracy, "accuracy")
    if len(x) != len(y) or not np.isfinite(x).all():
        raise ValueError(f"features must be finite, one row per accuracy ({len(y)}), "
                         f"got shape {x.shape}")
    n = len(y)
    design = np.column_stack([x, np.ones(n)])
    labels = np.arange(n) if groups is None else np.asarray(groups)
    fit = fit_linear(design, y, loo="refit", groups=labels)
    out: dict = {"n": n, "n_boot": n_boot, "n_perm": n_perm, "seed": seed,
                 "alternative": "greater",
                 "cv": "leave-one-out" if groups is None else "leave-one-group-out",
                 "coef": [finite_or_none(c) for c in fit.coef[:-1]],
                 "intercept": finite_or_none(fit.coef[-1]), "r2": finite_or_none(fit.r2),
                 "q2": finite_or_none(fit.loo_r2)}
    op = cv_operator(design, labels)
    boot_rng, perm_rng = _streams(seed)
    resamples = np.sort(boot_rng.integers(0, n, (n_boot, n)), axis=1)
    boot_pred = np.stack([fit_linear(design[i], y[i], loo="refit", groups=labels[i]).loo_pred
                          for i in resamples]) if n_boot else np.empty((0, n))
    perms = permutations(n, n_perm, perm_rng)
    perm_y = y[perms]
    for name, fn in RANK_STATISTICS.items():
        if op is None:
            out[name] = _entry(math.nan, np.empty(0), 0, np.empty(0), "greater")
            continue
        out[name] = _entry(fn(fit.loo_pred[None], y[None])[0], fn(boot_pred, y[resamples]),
                           n_boot, fn(perm_y @ op.T, perm_y), "greater")
    return out


def au_correlation_null(align: np.ndarray, uniform: np.ndarray, performance: np.ndarray, *,
                        method: str = "pearson", n_perm: int = 999, seed: int = 0) -> dict:
    """The permutation null of :func:`~alignuniform.predictivity.fits.au_correlation`: the
    performances shuffled over the encoders, the leave-one-out fit redone on each shuffle.

    Returns:
        ``{"value", "p_value", "null_q95", "null_mean", "n_perm", "seed", "alternative"}``
        (one-sided, ``"greater"``); ``value`` is ``au_correlation(...).value``, and
        ``null_q95`` what it reaches with no information at this number of encoders (about
        0.2-0.35 for 18-36 encoders, with a null mean near -0.2).
    """
    value = au_correlation(align, uniform, performance, method=method, n_boot=0).value
    a, u = as_vector(align, "align"), as_vector(uniform, "uniform")
    p = as_vector(performance, "performance")
    op = cv_operator(np.stack([np.ones(len(p)), a, u], 1))
    if op is None:  # unreachable after au_correlation's own check of the encoder count
        raise ValueError(f"au_correlation_null needs at least 5 encoders, got {len(p)}")
    perm_p = p[permutations(len(p), n_perm, _streams(seed)[1])]
    null = _ROWS[method](perm_p @ op.T, perm_p)
    finite = null[np.isfinite(null)]
    return {"value": value, **permutation_summary(value, null, alternative="greater"),
            "null_mean": float(finite.mean()) if len(finite) else None, "n_perm": n_perm,
            "seed": seed, "alternative": "greater"}
