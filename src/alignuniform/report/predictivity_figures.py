"""Which metric predicts accuracy in which study: a metric × study heat map of Kendall's tau,
read from the studies' :func:`~alignuniform.predictivity.predict_table` results.

Each cell is coloured on a diverging scale centred at 0 (red: the metric ranks encoders as
their accuracy does, blue: in reverse), holds the value, and a star where the permutation
p-value is below 0.05; a pair a study did not measure is grey and marked "n/a".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignuniform.report._plotting import plt, save_figure

__all__ = ["KendallGrid", "kendall_grid", "kendall_heatmap"]

ALPHA = 0.05  # the p-value below which a cell is starred


@dataclass(frozen=True)
class KendallGrid:
    """Kendall's tau and its permutation p-value, one row per metric and one column per
    study (NaN where a study lacks the metric or the value is not defined)."""

    metrics: list[str]
    studies: list[str]
    tau: np.ndarray
    p_value: np.ndarray


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else np.nan  # None: not defined


def kendall_grid(tables: Mapping[str, Mapping], accuracy: str, *, within: bool = False,
                 metrics: Sequence[str] | None = None) -> KendallGrid:
    """The numbers :func:`kendall_heatmap` draws.

    Args:
        tables: ``{study: predict_table(...)}``.
        accuracy: The accuracy column whose correlations are drawn.
        within: Draw the pooled within-group tau (the studies' ``groups``) instead of the
            tau across all encoders.
        metrics: Row order (default: every metric of any study, in order of first
            appearance).

    Examples:
        >>> table = {"accuracies": {"acc": {"metrics": {
        ...     "rankme": {"kendall": {"value": 0.6, "p_value": 0.01}}}}}}
        >>> grid = kendall_grid({"mnist1d": table}, "acc")
        >>> grid.metrics, grid.tau.tolist(), grid.p_value.tolist()
        (['rankme'], [[0.6]], [[0.01]])
    """
    studies = list(tables)
    cells = {s: t.get("accuracies", {}).get(accuracy, {}).get("metrics", {})
             for s, t in tables.items()}
    if metrics is None:
        metrics = list(dict.fromkeys(m for s in studies for m in cells[s]))
    tau = np.full((len(metrics), len(studies)), np.nan)
    p = np.full_like(tau, np.nan)
    for j, s in enumerate(studies):
        for i, m in enumerate(metrics):
            cell = cells[s].get(m, {})
            entry = (cell.get("within") or {}).get("kendall") if within else cell.get("kendall")
            if entry:
                tau[i, j], p[i, j] = _number(entry.get("value")), _number(entry.get("p_value"))
    return KendallGrid(list(metrics), studies, tau, p)


def kendall_heatmap(tables: Mapping[str, Mapping], path: str | Path, *, accuracy: str,
                    within: bool = False, metrics: Sequence[str] | None = None,
                    title: str | None = None) -> Path:
    """Draw the metric × study heat map of Kendall's tau (see the module docstring).

    Args:
        tables, accuracy, within, metrics: As in :func:`kendall_grid`.
        path: Where to write the figure.
        title: Axes title (default names the accuracy and across/within).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: No study or no metric to draw.
    """
    grid = kendall_grid(tables, accuracy, within=within, metrics=metrics)
    if not grid.studies or not grid.metrics:
        raise ValueError("kendall_heatmap needs at least one study and one metric")
    n_rows, n_cols = grid.tau.shape
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * n_cols, 1.0 + 0.45 * n_rows))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(grid.tau), cmap=cmap, vmin=-1, vmax=1,
                      aspect="auto")
    for i in range(n_rows):
        for j in range(n_cols):
            t, p = grid.tau[i, j], grid.p_value[i, j]
            text = "n/a" if np.isnan(t) else f"{t:+.2f}" + ("*" if p < ALPHA else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if abs(t) > 0.6 else "black")
    ax.set_xticks(range(n_cols), grid.studies, rotation=30, ha="right")
    ax.set_yticks(range(n_rows), grid.metrics)
    fig.colorbar(image, ax=ax, label="Kendall's τ", shrink=0.8)
    scope = "within groups (pooled)" if within else "across encoders"
    ax.set_title(title or f"Kendall's τ with {accuracy}, {scope}; * permutation p < {ALPHA}",
                 fontsize=9)
    return save_figure(fig, path)
