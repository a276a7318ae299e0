"""The figure of ``alignuniform measure``: positive-pair distances and projected angles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alignuniform.report._plotting import plt, save_figure
from alignuniform.report.kde import vmf_kde

__all__ = ["measure_figure"]


def measure_figure(
    path: str | Path,
    *,
    angles: np.ndarray,
    pos_dist: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    title: str = "",
    n_rows: int | None = None,
    kappa: float = 25.0,
    max_classes: int = 4,
) -> Path:
    """One row of panels, in the style of the paper's S^1 figure (Wang & Isola, Figure 3).

    - the histogram of ``||x - y||`` over positive pairs with its mean (alignment), when
      there are positives;
    - the von Mises-Fisher KDE of the angles of a seeded random 2-D projection of the rows:
      for rows uniform on the sphere the projection is isotropic, so the density is flat
      at ``1 / 2 pi`` (the dotted line);
    - with labels, the same KDE for each of the first ``max_classes`` classes.

    Args:
        path: where to write the PNG.
        angles: projected angles in radians (see ``Measurement.angles``).
        pos_dist: distances of positive pairs, or None.
        labels: one label per angle, or None.
        title: figure title.
        n_rows: rows in the whole set, when ``angles`` are of a sample of them.
        kappa: vMF concentration of the angle KDEs (the paper's 25).
        max_classes: classes drawn in the per-class panel.

    Returns:
        ``path`` as a Path.
    """
    angles = np.asarray(angles, dtype=float).ravel()
    panels = 1 + (pos_dist is not None) + (labels is not None)
    fig, grid_axes = plt.subplots(1, panels, figsize=(3.6 * panels, 2.9), squeeze=False)
    axes = list(grid_axes[0])
    grid = np.linspace(-np.pi, np.pi, 361)

    if pos_dist is not None:
        ax = axes.pop(0)
        dist = np.asarray(pos_dist, dtype=float).ravel()
        ax.hist(dist, bins=40, color="tab:blue", alpha=0.8)
        ax.axvline(dist.mean(), color="k", ls="--", lw=1.2, label=f"mean {dist.mean():.3f}")
        ax.legend(fontsize=7, loc="upper right")
        ax.set_xlabel(r"$\|f(x)-f(y)\|_2$ of positive pairs", fontsize=8)
        ax.set_title(f"alignment: {dist.size:,} pairs", fontsize=9)

    ax = axes.pop(0)
    ax.fill_between(grid, vmf_kde(angles, grid, kappa), color="tab:purple", alpha=0.5)
    ax.axhline(1 / (2 * np.pi), color="0.5", ls=":", lw=1, label="uniform")
    ax.set_xlim(-np.pi, np.pi)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel(rf"angle of a random 2-D projection, vMF KDE ($\kappa$={kappa:g})", fontsize=8)
    of = f" of {n_rows:,}" if n_rows is not None and n_rows != angles.size else ""
    ax.set_title(f"uniformity: {angles.size:,}{of} rows", fontsize=9)

    if labels is not None:
        ax = axes.pop(0)
        labels = np.asarray(labels).ravel()
        cmap = plt.get_cmap("tab10")
        for k, c in enumerate(np.unique(labels)[:max_classes]):
            ax.fill_between(grid, vmf_kde(angles[labels == c], grid, kappa), color=cmap(k % 10),
                            alpha=0.35, label=f"class {c}")
        ax.set_xlim(-np.pi, np.pi)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="upper right")
        ax.set_xlabel("angle, per-class vMF KDE", fontsize=8)
        ax.set_title("classes", fontsize=9)

    for a in fig.axes:
        a.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
