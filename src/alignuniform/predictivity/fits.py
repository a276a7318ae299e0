"""Least-squares fits judged out of sample, and the AU-correlation scalar built on them.

:func:`fit_linear` is the one least-squares fit: coefficients, in-sample ``R^2``, and each
row predicted by a fit that did not see it (``loo="hat"``: exact leave-one-out from one fit
through the hat matrix; ``loo="refit"``: one fit per left-out group of rows, which leaves out
every copy of a bootstrap-duplicated encoder, or a whole fold when the groups are folds),
with ``Q^2 = 1 - PRESS / TSS``. :func:`cv_operator` is the matrix that maps targets to those
left-out predictions (they are linear in the targets), so a permutation null over many
permuted targets costs one matrix product. Two uses:

- :func:`fit_combination`: ``acc ≈ a·align + b·unif + c`` (the sweep analysis);
- :func:`au_correlation` (and :func:`dense_au_correlation` over per-encoder dicts).

The AU-correlation scalar (ours; the BMVC 2022 paper's own is not public)
    Over a set of encoders with alignment ``a_k``, uniformity ``u_k`` and downstream
    performance ``p_k`` (e.g. dense mIoU): fit ``p = b0 + b1 a + b2 u`` by least squares
    leaving each encoder out in turn and predict it; the scalar is the Pearson (or Spearman)
    correlation between these leave-one-out predictions and ``p``. It is 1 when the two
    metrics predict performance perfectly; with no information it is not 0 but negative on
    average (about -0.2 for 18-36 encoders of pure noise, a leave-one-out fit anticorrelates
    with its left-out target), so judge it by its permutation null
    (:func:`alignuniform.predictivity.nulls.au_correlation_null`), not by an interval that
    excludes 0. With only 3 fitted numbers it does not reward overfitting the way the
    in-sample multiple R does (reported too, with the cross-validated
    ``Q^2 = 1 - PRESS / TSS``). A 95% percentile bootstrap interval resamples encoders with
    replacement and repeats the whole leave-one-out fit on each resample (leaving out every
    copy of an encoder).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from alignuniform.predictivity.correlations import correlation

__all__ = ["LinearFit", "fit_linear", "cv_operator", "fit_combination", "AUCorrelation",
           "au_correlation", "dense_au_correlation", "as_vector"]

# ---------------------------------------------------------------------------- linear fits


@dataclass(frozen=True)
class LinearFit:
    """A least-squares fit ``y ≈ design @ coef`` and its out-of-sample predictions.

    Attributes:
        coef: One coefficient per design column.
        fitted: ``design @ coef``, in sample.
        loo_pred: Each row predicted by a fit without it (without its group); all NaN when
            a left-out fit is not defined (``loo="refit"``: fewer distinct groups left than
            columns + 1); ``loo="hat"`` gives inf or NaN where a row has leverage 1.
        loo_residuals: ``y - loo_pred``.
        r2: In-sample ``1 - RSS / TSS`` (NaN when ``y`` is constant).
        loo_r2: ``Q^2 = 1 - PRESS / TSS``, PRESS the sum of squared ``loo_residuals``.
    """

    coef: np.ndarray
    fitted: np.ndarray
    loo_pred: np.ndarray
    loo_residuals: np.ndarray
    r2: float
    loo_r2: float


def _refit_predictions(design: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    pred = np.empty_like(y)
    for g in np.unique(groups):
        out = groups == g
        train = ~out
        if len(np.unique(groups[train])) < design.shape[1] + 1:
            return np.full_like(y, np.nan)
        coef, *_ = np.linalg.lstsq(design[train], y[train], rcond=None)
        pred[out] = design[out] @ coef
    return pred


def fit_linear(design: np.ndarray, y: np.ndarray, *, loo: str = "hat",
               groups: np.ndarray | None = None) -> LinearFit:
    """Least squares of ``y`` on the columns of ``design``, with leave-one-out predictions.

    Args:
        design: ``(n, k)``; include a column of ones for an intercept (its position only
            changes rounding).
        y: ``(n,)`` targets.
        loo: ``"hat"``: every leave-one-out residual from the one fit, ``e_i / (1 - h_ii)``
            with ``h`` the diagonal of ``X X^+`` (exact for a full-rank design; no
            ``groups``). ``"refit"``: one least-squares fit per left-out group (equal to
            ``"hat"`` up to rounding when each row is its own group).
        groups: ``(n,)`` labels for ``"refit"``: the rows of a group are left out together
            (copies of one encoder in a bootstrap resample; folds for k-fold
            cross-validation). Default: each row its own group.

    Examples:
        >>> import numpy as np
        >>> x = np.column_stack([np.arange(6.0), np.ones(6)])
        >>> fit = fit_linear(x, 2 * np.arange(6.0) + 1)
        >>> [round(float(c), 6) for c in fit.coef], round(fit.loo_r2, 6)
        ([2.0, 1.0], 1.0)
    """
    if loo not in ("hat", "refit"):
        raise ValueError(f"loo must be 'hat' or 'refit', got {loo!r}")
    if loo == "hat" and groups is not None:
        raise ValueError("groups need loo='refit' (the hat matrix leaves out one row)")
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    fitted = design @ coef
    resid = y - fitted
    if loo == "hat":
        hat = np.einsum("ij,ji->i", design, np.linalg.pinv(design))  # diagonal of X X^+
        with np.errstate(divide="ignore", invalid="ignore"):
            loo_resid = resid / (1.0 - hat)
        loo_pred = y - loo_resid
    else:
        loo_pred = _refit_predictions(design, y, np.arange(len(y)) if groups is None
                                      else np.asarray(groups))
        loo_resid = y - loo_pred
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else math.nan
    loo_r2 = 1.0 - float((loo_resid ** 2).sum()) / ss_tot if ss_tot > 0 else math.nan
    return LinearFit(coef, fitted, loo_pred, loo_resid, r2, loo_r2)


def cv_operator(design: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray | None:
    """The ``(n, n)`` matrix ``M`` with ``M @ y`` = each row of ``y`` predicted by the
    least-squares fit on the other groups (``fit_linear(design, y, loo="refit",
    groups=groups).loo_pred`` up to rounding, for every ``y`` at once).

    Left-out predictions are linear in the targets: the rows of group ``g`` get
    ``X_g X_{-g}^+ y_{-g}``. ``None`` when a left-out fit is not defined (fewer distinct
    groups left than columns + 1). Default groups: each row its own (leave-one-out).

    Examples:
        >>> import numpy as np
        >>> x = np.column_stack([np.arange(5.0), np.ones(5)])
        >>> y = np.array([0.0, 1.0, 3.0, 2.0, 5.0])
        >>> m = cv_operator(x)
        >>> bool(np.allclose(m @ y, fit_linear(x, y, loo="refit").loo_pred))
        True
    """
    n = len(design)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    op = np.zeros((n, n))
    for g in np.unique(groups):
        out = groups == g
        train = ~out
        if len(np.unique(groups[train])) < design.shape[1] + 1:
            return None
        op[np.ix_(out, train)] = design[out] @ np.linalg.pinv(design[train])
    return op


def fit_combination(align: np.ndarray, unif: np.ndarray, acc: np.ndarray) -> dict:
    """Least squares ``acc ≈ a·align + b·unif + c``, with leave-one-out predictions (hat
    matrix).

    Returns:
        ``{"a", "b", "intercept", "r2", "loo_r2", "loo_pred"}`` (``loo_pred`` an array).
    """
    fit = fit_linear(np.column_stack([align, unif, np.ones_like(align)]), acc)
    return {"a": float(fit.coef[0]), "b": float(fit.coef[1]),
            "intercept": float(fit.coef[2]), "r2": fit.r2, "loo_r2": fit.loo_r2,
            "loo_pred": fit.loo_pred}


# ---------------------------------------------------------------------------- AU-correlation


@dataclass(frozen=True)
class AUCorrelation:
    """The AU-correlation of a set of encoders (see the module docstring).

    Attributes:
        value: correlation between leave-one-out predictions and performance.
        low, high: 95% percentile bootstrap interval of ``value``.
        q2: cross-validated ``1 - PRESS / TSS``.
        r_in_sample: multiple correlation of the fit on all encoders.
        coef: ``(b0, b_align, b_uniform)`` of the fit on all encoders.
        n_encoders: how many encoders.
        n_boot: bootstrap resamples that gave a value (degenerate ones are skipped).
        method: "pearson" or "spearman".
    """

    value: float
    low: float
    high: float
    q2: float
    r_in_sample: float
    coef: tuple[float, float, float]
    n_encoders: int
    n_boot: int
    method: str

    def __float__(self) -> float:
        return self.value

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def as_vector(v: object, name: str) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one number per encoder, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def au_correlation(
    align: Sequence[float] | np.ndarray | torch.Tensor,
    uniform: Sequence[float] | np.ndarray | torch.Tensor,
    performance: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    method: str = "pearson",
    n_boot: int = 1000,
    seed: int = 0,
) -> AUCorrelation:
    """How well (alignment, uniformity) predict performance across encoders: the
    leave-one-out correlation of a linear model, with a bootstrap interval.

    Args:
        align, uniform, performance: one number per encoder (at least 5 encoders).
        method: correlation of predictions with performance, "pearson" or "spearman".
        n_boot: bootstrap resamples (0 for none: the interval is then ``(nan, nan)``).
        seed: seed of the resampling.

    Raises:
        ValueError: fewer than 5 encoders, lengths that differ, constant performance or
            constant leave-one-out predictions (no correlation is defined).
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    a, u = as_vector(align, "align"), as_vector(uniform, "uniform")
    p = as_vector(performance, "performance")
    if not len(a) == len(u) == len(p):
        raise ValueError(f"align, uniform, performance have {len(a)}, {len(u)}, {len(p)} values")
    n = len(p)
    if n < 5:
        raise ValueError(f"au_correlation needs at least 5 encoders (3 coefficients), got {n}")
    design = np.stack([np.ones(n), a, u], 1)

    def stat(idx: np.ndarray) -> tuple[float | None, LinearFit]:
        fit = fit_linear(design[idx], p[idx], loo="refit", groups=idx)
        if not np.isfinite(fit.loo_pred).all():
            return None, fit
        return correlation(fit.loo_pred, p[idx], method), fit

    value, fit = stat(np.arange(n))
    if value is None:
        raise ValueError("performance (or its leave-one-out prediction) is constant across "
                         "encoders: no correlation is defined")
    r_in = correlation(fit.fitted, p, "pearson")
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(int(n_boot)):
        v, _ = stat(np.sort(rng.integers(0, n, n)))
        if v is not None:
            boots.append(v)
    low, high = (np.percentile(boots, [2.5, 97.5]) if boots else (math.nan, math.nan))
    return AUCorrelation(value, float(low), float(high), fit.loo_r2,
                         math.nan if r_in is None else r_in,
                         tuple(float(c) for c in fit.coef), n, len(boots), method)  # type: ignore[arg-type]


def dense_au_correlation(
    results: Sequence[Mapping[str, float]],
    performance: str = "miou",
    align: str = "dense_alignment",
    uniform: str = "dense_uniformity",
    **kwargs,
) -> AUCorrelation:
    """:func:`au_correlation` over a list of encoder results (one mapping per encoder),
    by default their dense alignment, dense uniformity and mIoU.

    Examples:
        >>> results = [{"dense_alignment": a, "dense_uniformity": u, "miou": 0.5 - 0.2 * a}
        ...            for a, u in [(0.2, -3.0), (0.5, -2.1), (0.9, -1.5), (0.4, -2.8),
        ...                         (0.7, -1.9), (0.3, -2.5)]]
        >>> round(dense_au_correlation(results, n_boot=0).value, 6)
        1.0
    """
    for k, r in enumerate(results):
        missing = [key for key in (performance, align, uniform) if key not in r]
        if missing:
            raise KeyError(f"result {k} has no {missing}; it has {sorted(r)}")
    return au_correlation([r[align] for r in results], [r[uniform] for r in results],
                          [r[performance] for r in results], **kwargs)
