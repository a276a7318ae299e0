"""One study's predictivity table: every label-free metric against every accuracy, from the
rows of its results table (one mapping per encoder), as strict JSON.

:func:`predict_table` is the one entry point a study's ``analysis.json`` is made from; each
number in it is one of :func:`~alignuniform.predictivity.association.association`,
:func:`~alignuniform.predictivity.selection.selection_regret`,
:func:`~alignuniform.predictivity.association.cv_fit_association` and
:func:`~alignuniform.predictivity.fits.au_correlation` on the encoders that have both
columns, so an independent recomputation from the table gives the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from alignuniform.predictivity.association import (
    association,
    au_correlation_null,
    cv_fit_association,
)
from alignuniform.predictivity.correlations import finite_or_none
from alignuniform.predictivity.fits import au_correlation
from alignuniform.predictivity.selection import DIRECTIONS, selection_regret

__all__ = ["predict_table"]


def _number(value: object) -> float:
    """A cell as a float; NaN for a missing one (``None``, NaN, absent)."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"expected a number or None, got {value!r}")
    return float(value)


def _column(rows: Sequence[Mapping], key: str) -> np.ndarray:
    return np.array([_number(r.get(key)) for r in rows])


def _strict(value: object) -> object:
    """``value`` with every non-finite float replaced by ``None`` (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return finite_or_none(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def predict_table(
    rows: Sequence[Mapping],
    metrics: Mapping[str, str],
    accuracies: Sequence[str],
    *,
    groups: str | None = None,
    fit: tuple[str, str] | None = ("alignment", "uniformity"),
    n_boot: int = 1000,
    n_perm: int = 999,
    seed: int = 0,
) -> dict:
    """How well each metric predicts each accuracy over the encoders in ``rows``.

    Args:
        rows: One mapping per encoder; a missing, ``None`` or NaN cell leaves that encoder
            out of the pairs that need it.
        metrics: ``{column: "higher" | "lower"}``: which values of the metric are better
            (uniformity ``"lower"``, RankMe ``"higher"``); the direction picks the encoder in
            the selection regret, the correlations keep their sign.
        accuracies: Accuracy columns (higher is better: linear accuracy, mIoU, ...).
        groups: Column whose value labels encoders that differ in one setting: adds the
            within-group correlations (pooled with a within-group null), makes the regret
            per group, and makes the fitted score leave-one-group-out. ``None``: all
            encoders are one group and the fit is leave-one-out.
        fit: The two columns of the fitted ``a·align + b·unif`` score and of the
            AU-correlation (``None``, or either column absent from every row: neither).
        n_boot, n_perm, seed: Bootstrap resamples, permutations and their seed, the same for
            every entry (recorded in the result).

    Returns:
        A strict-JSON-able dict (no NaN: ``None``)::

            {"n_encoders", "groups", "n_boot", "n_perm", "seed", "alternative",
             "accuracies": {acc: {"metrics": {metric: {"direction", "n",
                                                        "spearman", "kendall",
                                                        "within" (with groups), "regret"}},
                                  "fit": {...} | None, "au_correlation": {...} | None}}}

        ``spearman``/``kendall`` are ``{"value", "low", "high", "p_value", "null_q95"}``;
        a metric with fewer than 3 encoders that have both columns gets
        ``{"direction", "n", "error"}``.

    Raises:
        ValueError: An unknown direction, or an encoder without a ``groups`` label.
    """
    for name, direction in metrics.items():
        if direction not in DIRECTIONS:
            raise ValueError(f"metric {name!r}: direction must be 'higher' or 'lower', "
                             f"got {direction!r}")
    labels = None
    if groups is not None:
        missing = [i for i, r in enumerate(rows) if r.get(groups) is None]
        if missing:
            raise ValueError(f"rows {missing[:5]} have no {groups!r} label")
        labels = np.array([str(r[groups]) for r in rows])
    common = {"n_boot": n_boot, "n_perm": n_perm, "seed": seed}
    out: dict = {"n_encoders": len(rows), "groups": groups, **common,
                 "alternative": {"metrics": "two-sided", "fit": "greater"}, "accuracies": {}}
    for acc_name in accuracies:
        acc = _column(rows, acc_name)
        entry: dict = {"metrics": {}, "fit": None, "au_correlation": None}
        for name, direction in metrics.items():
            m = _column(rows, name)
            keep = np.isfinite(m) & np.isfinite(acc)
            cell: dict = {"direction": direction, "n": int(keep.sum())}
            if keep.sum() < 3:
                cell["error"] = f"{int(keep.sum())} encoders have both {name!r} and {acc_name!r}"
            else:
                g = None if labels is None else labels[keep]
                cell.update(association(m[keep], acc[keep], groups=g, **common))
                cell["regret"] = selection_regret(m[keep], acc[keep], direction=direction,
                                                  groups=g)
            entry["metrics"][name] = cell
        if fit is not None and all(any(c in r for r in rows) for c in fit):
            entry["fit"], entry["au_correlation"] = _fitted(rows, fit, acc, labels, common)
        out["accuracies"][acc_name] = entry
    return _strict(out)  # type: ignore[return-value]


def _fitted(rows: Sequence[Mapping], fit: tuple[str, str], acc: np.ndarray,
            labels: np.ndarray | None, common: dict) -> tuple[dict, dict]:
    """The cross-validated fit of ``acc`` on the ``fit`` columns, and the AU-correlation
    (leave-one-out, Pearson) with its bootstrap interval and permutation null."""
    a, u = _column(rows, fit[0]), _column(rows, fit[1])
    keep = np.isfinite(a) & np.isfinite(u) & np.isfinite(acc)
    n = int(keep.sum())
    columns = {"columns": list(fit), "n": n}
    if n < 5:
        error = {"error": f"{n} encoders have {fit[0]!r}, {fit[1]!r} and the accuracy; "
                          "the fit needs at least 5"}
        return {**columns, **error}, {**columns, **error}
    try:
        scored = cv_fit_association(np.column_stack([a[keep], u[keep]]), acc[keep],
                                    groups=None if labels is None else labels[keep], **common)
    except ValueError as err:
        scored = {"error": str(err)}
    try:
        au = au_correlation(a[keep], u[keep], acc[keep], n_boot=common["n_boot"],
                            seed=common["seed"]).to_dict()
        null = au_correlation_null(a[keep], u[keep], acc[keep], n_perm=common["n_perm"],
                                   seed=common["seed"])
        au.update({k: null[k] for k in ("p_value", "null_q95", "null_mean", "alternative")})
    except ValueError as err:
        au = {"error": str(err)}
    return {**columns, **scored}, {**columns, **au}
