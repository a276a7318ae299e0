"""Does a metric predict downstream performance across encoders? Arrays in, numbers out.

One row per encoder (a sweep's trial, a checkpoint): metric columns (alignment, uniformity,
RankMe, ...) and performance columns (linear accuracy, mIoU, ...). Every name below is
importable from ``alignuniform.predictivity``; each lives in the module named for it:

- :mod:`~alignuniform.predictivity.correlations`: Spearman, Kendall and Pearson of
  ``(B, n)`` rows (one call for ``B`` resamples or permutations), :func:`rank_correlations`
  with bootstrap intervals;
- :mod:`~alignuniform.predictivity.fits`: the least-squares fit and its left-out
  predictions (:func:`fit_linear`, :func:`cv_operator`, :func:`fit_combination`), and the
  AU-correlation scalar (:func:`au_correlation`);
- :mod:`~alignuniform.predictivity.association`: rank correlations of a metric with accuracy
  with bootstrap intervals and permutation p-values, across all encoders and within groups
  (:func:`association`); the fitted score cross-validated over encoders with a null that
  redoes the fit (:func:`cv_fit_association`); the AU-correlation's null
  (:func:`au_correlation_null`);
- :mod:`~alignuniform.predictivity.selection`: the accuracy lost by keeping the encoder a
  metric prefers (:func:`selection_regret`);
- :mod:`~alignuniform.predictivity.table`: all of them for every metric and accuracy of a
  study, as strict JSON (:func:`predict_table`).

Examples:
    >>> import numpy as np
    >>> from alignuniform import predictivity
    >>> align = np.array([0.2, 0.5, 0.9, 0.4, 0.7, 0.3])
    >>> unif = np.array([-3.0, -2.1, -1.5, -2.8, -1.9, -2.5])
    >>> acc = 0.9 - 0.3 * align - 0.1 * unif
    >>> round(predictivity.au_correlation(align, unif, acc, n_boot=0).value, 6)
    1.0
    >>> round(predictivity.fit_combination(align, unif, acc)["loo_r2"], 6)
    1.0
"""

from alignuniform.predictivity.association import (
    RANK_STATISTICS,
    association,
    au_correlation_null,
    cv_fit_association,
    permutation_summary,
    permutations,
)
from alignuniform.predictivity.correlations import (
    correlation,
    finite_or_none,
    kendall_rows,
    pearson_rows,
    percentile_interval,
    rank_correlations,
    spearman_rows,
)
from alignuniform.predictivity.fits import (
    AUCorrelation,
    LinearFit,
    au_correlation,
    cv_operator,
    dense_au_correlation,
    fit_combination,
    fit_linear,
)
from alignuniform.predictivity.selection import DIRECTIONS, selection_regret
from alignuniform.predictivity.table import predict_table

__all__ = [
    "pearson_rows",
    "spearman_rows",
    "kendall_rows",
    "correlation",
    "rank_correlations",
    "percentile_interval",
    "finite_or_none",
    "LinearFit",
    "fit_linear",
    "cv_operator",
    "fit_combination",
    "AUCorrelation",
    "au_correlation",
    "dense_au_correlation",
    "RANK_STATISTICS",
    "permutations",
    "permutation_summary",
    "association",
    "cv_fit_association",
    "au_correlation_null",
    "DIRECTIONS",
    "selection_regret",
    "predict_table",
]
