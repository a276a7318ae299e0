"""Matplotlib (Agg) figures that take plain arrays and a path and return the path.

Every function here writes one PNG and closes its figure, so callers in any layer (the demo,
the text experiments, user scripts) can reuse them without touching pyplot state. Label
placement lives in :mod:`alignuniform.report.labels`, the kernel density estimates in
:mod:`alignuniform.report.kde`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from alignuniform.report._plotting import finite, plt, save_figure
from alignuniform.report.kde import gaussian_kde_2d, vmf_kde
from alignuniform.report.labels import place_labels

__all__ = ["curves_figure", "gaussian_kde_2d", "place_labels", "plane_figure", "s1_figure",
           "vmf_kde"]


def plane_figure(
    points: list[dict],
    path: str | Path,
    *,
    bound: float | None = None,
    color_key: str | None = "accuracy",
    label_fmt: str = "{name}",
    paths: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    title: str = "Alignment vs uniformity (lower-left is better)",
) -> Path:
    """Draw encoders on the alignment-uniformity plane (Wang & Isola, Figure 5 style).

    Args:
        points: One dict per encoder with keys ``"name"``, ``"align"`` (x axis) and
            ``"uniform"`` (y axis); any other keys may be used for colour and labels.
        path: Where to write the PNG.
        bound: Lower bound of uniformity for this dimension (``metrics.uniformity_bound``),
            drawn as a dashed horizontal line; nothing is drawn when ``None``.
        color_key: Key of ``points`` used to colour the markers (with a colour bar). When
            ``None``, or when some point lacks the key, markers share one colour.
        label_fmt: ``str.format`` template for each point's annotation, filled with the
            point's keys, e.g. ``"{name} ({accuracy:.1%})"``.
        paths: Optional trajectories, ``{name: [(align, uniform), ...]}`` in training order,
            drawn as grey lines from a hollow circle (the start) to an arrow (the end).
        title: Axes title.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: If ``points`` is empty or a coordinate is not finite.
        KeyError: If a point lacks ``"name"``, ``"align"`` or ``"uniform"``, or
            ``label_fmt`` names a key a point lacks.
    """
    if not points:
        raise ValueError("plane_figure needs at least one point")
    for i, p in enumerate(points):
        missing = {"name", "align", "uniform"} - set(p)
        if missing:
            raise KeyError(
                f"point {i} lacks {sorted(missing)}; each point needs name, align and uniform"
            )
    xs = np.array([finite(p["align"], f"align of {p['name']!r}") for p in points])
    ys = np.array([finite(p["uniform"], f"uniform of {p['name']!r}") for p in points])

    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    for traj in (paths or {}).values():
        arr = np.asarray(traj, dtype=float).reshape(-1, 2)
        if len(arr) == 0:
            continue
        ax.plot(arr[:, 0], arr[:, 1], "-", color="0.6", lw=1, zorder=1)
        if len(arr) > 1:
            ax.annotate("", xy=arr[-1], xytext=arr[-2],
                        arrowprops={"arrowstyle": "->", "color": "0.4"}, zorder=1)
        ax.plot(arr[0, 0], arr[0, 1], "o", ms=5, mfc="none", color="0.5", zorder=1)

    colored = color_key is not None and all(color_key in p for p in points)
    if colored:
        cs = np.array([finite(p[color_key], f"{color_key} of {p['name']!r}") for p in points])
        sc = ax.scatter(xs, ys, c=cs, cmap="viridis", s=70, edgecolors="k", zorder=3)
        fig.colorbar(sc, ax=ax, label=color_key)
    else:
        ax.scatter(xs, ys, s=70, color="tab:blue", edgecolors="k", zorder=3)

    if bound is not None:
        b = finite(bound, "bound")
        ax.axhline(b, ls="--", color="tab:red", lw=1, label=f"uniformity bound ({b:.3f})")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(r"$\mathcal{L}_{align}$ (held-out positive pairs)")
    ax.set_ylabel(r"$\mathcal{L}_{uniform}$")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    ax.locator_params(axis="x", nbins=6)  # long tick labels of small alignments collide
    place_labels(ax, xs, ys, [label_fmt.format(**p) for p in points])  # type: ignore[arg-type]
    return save_figure(fig, path)


def _angles(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name}: the S^1 figure needs 2-d embeddings, got shape {points.shape}")
    return np.arctan2(points[:, 1], points[:, 0])


def s1_figure(
    encoders: list[dict],
    path: str | Path,
    *,
    kappa: float = 25.0,
    sigma: float = 0.1,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """The paper's S^1 figure (Wang & Isola, Figure 3): one column per 2-d output encoder.

    Rows: the histogram of positive-pair distances with its mean (alignment); the embeddings on
    the circle under an isotropic Gaussian KDE in R^2 (uniformity); the von Mises-Fisher KDE of
    their angles; and the angle KDEs of a few classes.

    Args:
        encoders: One dict per encoder with ``"name"``, ``"points"`` (``(N, 2)`` embeddings on
            S^1, e.g. of the test set), ``"pos_dist"`` (``||f(x) - f(y)||`` of held-out
            positive pairs) and optional ``"labels"`` (``(N,)``) and ``"subtitle"``.
        path: Where to write the PNG.
        kappa: vMF concentration of the angle KDEs.
        sigma: Bandwidth of the R^2 Gaussian KDE.
        classes: Labels drawn in the last row (default: the first four present).
        class_names: Names for the labels, index = label.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: If ``encoders`` is empty or an encoder's points are not ``(N, 2)``.
        KeyError: If an encoder lacks ``"name"``, ``"points"`` or ``"pos_dist"``.
    """
    if not encoders:
        raise ValueError("s1_figure needs at least one encoder")
    for i, enc in enumerate(encoders):
        missing = {"name", "points", "pos_dist"} - set(enc)
        if missing:
            raise KeyError(f"encoder {i} lacks {sorted(missing)}; see s1_figure's docstring")
    has_labels = all(enc.get("labels") is not None for enc in encoders)
    if has_labels and classes is None:
        present = np.unique(np.concatenate([np.asarray(enc["labels"]) for enc in encoders]))
        classes = present[:4].tolist()
    rows = 4 if has_labels else 3
    ncol = len(encoders)
    fig, axes = plt.subplots(rows, ncol, figsize=(3.0 * ncol, 2.55 * rows), squeeze=False)
    grid = np.linspace(-np.pi, np.pi, 361)
    max_dist = max(float(np.max(enc["pos_dist"], initial=0.0)) for enc in encoders)
    dist_edges = np.linspace(0, max(max_dist, 1e-3) * 1.02, 31)
    cmap = plt.get_cmap("tab10")
    for col, enc in enumerate(encoders):
        name, points = enc["name"], np.asarray(enc["points"], dtype=float)
        theta = _angles(points, name)
        dist = np.asarray(enc["pos_dist"], dtype=float).ravel()

        ax = axes[0, col]
        ax.hist(dist, bins=dist_edges, color="tab:blue", alpha=0.8)
        if dist.size:
            ax.axvline(dist.mean(), color="k", ls="--", lw=1.2, label=f"mean {dist.mean():.3f}")
            ax.legend(fontsize=7, loc="upper right")
        ax.set_title(name + (f"\n{enc['subtitle']}" if enc.get("subtitle") else ""), fontsize=9)
        ax.set_xlabel(r"$\|f(x)-f(y)\|_2$ of positive pairs", fontsize=8)

        ax = axes[1, col]
        extent = 1.3
        density = gaussian_kde_2d(points, sigma=sigma, extent=extent)
        ax.imshow(density, origin="lower", extent=(-extent, extent, -extent, extent),
                  cmap="magma", interpolation="bilinear")
        circle = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(circle), np.sin(circle), color="w", lw=0.4, alpha=0.6)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(rf"Gaussian KDE in $\mathbb{{R}}^2$ ($\sigma$={sigma:g})", fontsize=8)

        ax = axes[2, col]
        ax.fill_between(grid, vmf_kde(theta, grid, kappa), color="tab:purple", alpha=0.5)
        ax.axhline(1 / (2 * np.pi), color="0.5", ls=":", lw=1)
        ax.set_xlim(-np.pi, np.pi)
        ax.set_xlabel(rf"angle, vMF KDE ($\kappa$={kappa:g})", fontsize=8)

        if has_labels:
            ax = axes[3, col]
            labels = np.asarray(enc["labels"])
            for k, c in enumerate(classes):  # type: ignore[arg-type]
                sel = theta[labels == c]
                if sel.size == 0:
                    continue
                label = class_names[c] if class_names is not None else f"class {c}"
                ax.fill_between(grid, vmf_kde(sel, grid, kappa), color=cmap(k % 10), alpha=0.35,
                                label=label)
            ax.set_xlim(-np.pi, np.pi)
            ax.set_xlabel("angle, per-class vMF KDE", fontsize=8)
            if col == 0:
                ax.legend(fontsize=7, loc="upper left")
        for r in range(rows):
            if r != 1:
                axes[r, col].tick_params(labelsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


# epochs.jsonl bookkeeping, not curves worth drawing
_NOT_CURVES = frozenset({"epoch", "step", "wall_s", "images_per_s", "lr"})


def curves_figure(
    runs: Mapping[str, Sequence[Mapping[str, float]]],
    path: str | Path,
    *,
    keys: Sequence[str] | None = None,
    x_key: str = "epoch",
) -> Path:
    """Training curves: one panel per quantity, one line per run.

    Args:
        runs: ``{run name: rows}`` with rows as in a run's ``epochs.jsonl`` (one dict per
            epoch holding ``x_key`` and numbers such as each loss term or a monitor's
            alignment and uniformity).
        path: Where to write the PNG.
        keys: Quantities to draw, in order; by default every numeric key found in the rows
            except bookkeeping (epoch, step, wall time, throughput, learning rate).
        x_key: Key of the x axis.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: If there is nothing to draw.
    """
    if keys is None:
        keys = []
        for rows in runs.values():
            for row in rows:
                for k, v in row.items():
                    if (k not in _NOT_CURVES and k != x_key and k not in keys
                            and isinstance(v, int | float) and not isinstance(v, bool)):
                        keys.append(k)
    keys = list(keys)
    if not keys or not any(runs.values()):
        raise ValueError("curves_figure found no numeric quantity to draw in the runs")
    ncol = min(3, len(keys))
    nrow = -(-len(keys) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.0 * ncol, 2.8 * nrow), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for i, key in enumerate(keys):
        ax = axes[i // ncol, i % ncol]
        for j, (name, rows) in enumerate(runs.items()):
            pts = [(row.get(x_key, n + 1), row[key]) for n, row in enumerate(rows)
                   if isinstance(row.get(key), int | float) and np.isfinite(row[key])]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, "-o", ms=2.5, lw=1.3, color=cmap(j % 10), label=name)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel(x_key, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    legend: dict[str, object] = {}
    for ax in axes.ravel()[:len(keys)]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    if legend:
        labels, handles = list(legend), list(legend.values())
        fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), fontsize=8,  # type: ignore[call-overload]
                   bbox_to_anchor=(0.5, 1.02), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return save_figure(fig, path)
