"""Matplotlib (Agg) figures that take plain arrays and a path and return the path.

Every function here writes one PNG and closes its figure, so callers in any layer (the demo,
the text experiments, user scripts) can reuse them without touching pyplot state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from alignuniform.io import atomic_write  # noqa: E402

DPI = 110


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` atomically (the format from the suffix, PNG by default) and close it."""
    path = Path(path)
    try:
        return atomic_write(path, lambda f: fig.savefig(
            f, format=path.suffix[1:] or "png", dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _finite(value: object, what: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} must be a number, got {value!r}") from err
    if not np.isfinite(number):
        raise ValueError(f"{what} must be finite, got {number}")
    return number


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
    xs = np.array([_finite(p["align"], f"align of {p['name']!r}") for p in points])
    ys = np.array([_finite(p["uniform"], f"uniform of {p['name']!r}") for p in points])

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
        cs = np.array([_finite(p[color_key], f"{color_key} of {p['name']!r}") for p in points])
        sc = ax.scatter(xs, ys, c=cs, cmap="viridis", s=70, edgecolors="k", zorder=3)
        fig.colorbar(sc, ax=ax, label=color_key)
    else:
        ax.scatter(xs, ys, s=70, color="tab:blue", edgecolors="k", zorder=3)

    if bound is not None:
        b = _finite(bound, "bound")
        ax.axhline(b, ls="--", color="tab:red", lw=1, label=f"uniformity bound ({b:.3f})")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(r"$\mathcal{L}_{align}$ (held-out positive pairs)")
    ax.set_ylabel(r"$\mathcal{L}_{uniform}$")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    ax.locator_params(axis="x", nbins=6)  # long tick labels of small alignments collide
    place_labels(ax, xs, ys, [label_fmt.format(**p) for p in points])  # type: ignore[arg-type]
    return _save(fig, path)


# Directions (degrees) tried around a point, nearest ring first: up-right as before, then
# the other diagonals, then straight up/down/right/left.
_LABEL_DIRECTIONS = (30, -30, 150, -150, 90, -90, 0, 180)


def place_labels(
    ax: plt.Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    *,
    fontsize: float = 8,
    marker_points: float = 5,
    rings: int = 12,
) -> list[plt.Annotation]:
    """Annotate each point with its label so that no label overlaps another label, a
    marker, a drawn line or the legend.

    Points are labelled in order; each label takes the first position, nearest ring first,
    whose box is clear of the labels already placed, every marker, the legend and the
    axes' lines (the bound, trajectories), and lies inside the axes; failing that, the
    position with the least overlap with labels, markers and legend, then with the least
    area on lines or outside the axes. A label moved off its first ring gets a grey leader
    line to its point, which must not cross other markers or labels either. The legend
    stays where it is now. Call this after everything that changes the axes' limits or size
    (colour bar, margins, legend): positions are measured in display space.

    Args:
        ax: The axes holding the points.
        xs, ys: Data coordinates of the points.
        labels: One label per point.
        fontsize: Label font size.
        marker_points: Half the width of the region around each point kept free, in points.
        rings: How many rings of positions (10 points apart) to try.

    Returns:
        The annotations, in the order of the points.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    ax.autoscale_view()  # fix the limits before measuring in display space
    to_px = fig.dpi / 72.0
    half = marker_points * to_px
    centres = ax.transData.transform(np.column_stack([xs, ys]))
    taken = [np.column_stack([centres - half, centres + half])]
    # lines (the bound, trajectories) as little boxes every few pixels along each segment:
    # a label may cross one, or stick out of the axes, where nothing better exists
    lines = np.concatenate([np.empty((0, 4))] + [
        _line_boxes(line.get_transform().transform(line.get_xydata()), to_px)
        for line in ax.lines])
    legend = ax.get_legend()
    if legend is not None:
        # freeze a loc="best" legend where it is now: placed later, it would dodge the labels
        # (and could land on one); the labels dodge it instead
        box = legend.get_window_extent(renderer)
        legend.set_loc(tuple(ax.transAxes.inverted().transform((box.x0, box.y0))))
        taken.append(np.array([box.extents]))
    obstacles = np.concatenate(taken)
    inside = ax.get_window_extent(renderer).extents[None]  # type: ignore[call-overload]
    offsets = [(radius * np.cos(np.radians(a)), radius * np.sin(np.radians(a)), ring)
               for ring, radius in enumerate(8 + 10 * np.arange(rings))
               for a in _LABEL_DIRECTIONS]
    texts = []
    for i, (x, y, label) in enumerate(zip(xs, ys, labels, strict=True)):
        # what a leader line must not cross: everything but the point's own marker
        others = np.delete(obstacles, i, axis=0)
        best = None
        for dx, dy, ring in offsets:
            text = ax.annotate(
                label, (x, y), xytext=(dx, dy), textcoords="offset points",
                fontsize=fontsize, zorder=4,
                ha="left" if dx > 1 else "right" if dx < -1 else "center",
                va="bottom" if dy > 1 else "top" if dy < -1 else "center",
                arrowprops=({"arrowstyle": "-", "color": "0.5", "lw": 0.6,
                             "shrinkA": 1, "shrinkB": marker_points} if ring else None))
            # the text alone: an annotation's own extent includes its leader line
            text.update_positions(renderer)
            box = np.array([Text.get_window_extent(text, renderer).padded(1.5 * to_px).extents])  # type: ignore[assignment]
            area = float((box[0, 2] - box[0, 0]) * (box[0, 3] - box[0, 1]))  # type: ignore[index]
            overlap = float(_overlaps(box, obstacles).sum())  # type: ignore[arg-type]
            if ring:  # the leader runs from the point to the nearest corner of the label
                corner = np.clip(centres[i], box[0, :2], box[0, 2:])  # type: ignore[index]
                leader = _line_boxes(np.array([centres[i], corner]), to_px)[1:]
                overlap += float(sum(_overlaps(b[None], others).sum() for b in leader))
            cost = (overlap, float(_overlaps(box, lines).sum())  # type: ignore[arg-type]
                    + area - float(_overlaps(box, inside)[0]))  # type: ignore[arg-type]
            if best is None or cost < best[2]:
                if best is not None:
                    best[0].remove()
                best = (text, box, cost)
            else:
                text.remove()
            if best[2] == (0.0, 0.0):
                break
        texts.append(best[0])  # type: ignore[index]
        obstacles = np.concatenate([obstacles, best[1]])  # type: ignore[index]  # after the markers: rows stay i
    return texts


def _line_boxes(points: np.ndarray, to_px: float) -> np.ndarray:
    """Boxes of 3 points' width every 3 points along a polyline given in display units."""
    step, half = 3 * to_px, 1.5 * to_px
    points = points[np.isfinite(points).all(axis=1)]
    samples = [points[:1]]
    for a, b in zip(points[:-1], points[1:], strict=True):
        n = max(int(np.ceil(np.hypot(*(b - a)) / step)), 1)
        samples.append(a + (b - a) * (np.arange(1, n + 1)[:, None] / n))
    centres = np.concatenate(samples)
    return np.column_stack([centres - half, centres + half])


def _overlaps(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Area each of ``others`` (K, 4: x0, y0, x1, y1) shares with ``box`` (1, 4)."""
    width = np.minimum(box[:, 2], others[:, 2]) - np.maximum(box[:, 0], others[:, 0])
    height = np.minimum(box[:, 3], others[:, 3]) - np.maximum(box[:, 1], others[:, 1])
    return np.clip(width, 0, None) * np.clip(height, 0, None)


def vmf_kde(angles: np.ndarray, grid: np.ndarray, kappa: float = 25.0) -> np.ndarray:
    """von Mises-Fisher kernel density of angles on the circle.

    Args:
        angles: Sample angles in radians.
        grid: Angles at which to evaluate the density.
        kappa: Concentration of each kernel (larger is narrower); the paper uses 25.

    Returns:
        Density at ``grid`` (integrates to 1 over one turn).
    """
    kappa = _finite(kappa, "kappa")
    if kappa <= 0:
        raise ValueError(f"kappa must be positive, got {kappa}")
    angles = np.asarray(angles, dtype=float).ravel()
    if angles.size == 0:
        raise ValueError("vmf_kde needs at least one angle")
    from scipy.special import i0e

    # exp(kappa (cos d - 1)) / i0e(kappa) = exp(kappa cos d) / I0(kappa) without overflow
    diff = np.asarray(grid, dtype=float)[:, None] - angles[None, :]
    kernel = np.exp(kappa * (np.cos(diff) - 1.0)) / (2 * np.pi * i0e(kappa))
    return kernel.mean(axis=1)


def gaussian_kde_2d(points: np.ndarray, *, sigma: float = 0.1, extent: float = 1.3,
                    bins: int = 161) -> np.ndarray:
    """Isotropic Gaussian kernel density of 2-d points on a square grid.

    Points are binned on a fine grid and the histogram is smoothed with a Gaussian of
    ``sigma`` (in data units), which equals the exact kernel sum up to binning error and
    costs O(bins^2) rather than O(N bins^2).

    Args:
        points: ``(N, 2)`` array.
        sigma: Kernel standard deviation.
        extent: The grid covers ``[-extent, extent]^2``.
        bins: Grid cells per side.

    Returns:
        ``(bins, bins)`` density, rows indexing y from bottom to top (``imshow`` with
        ``origin="lower"``).
    """
    from scipy.ndimage import gaussian_filter

    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"gaussian_kde_2d expects (N, 2) points, got shape {points.shape}")
    edges = np.linspace(-extent, extent, bins + 1)
    hist, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=(edges, edges))
    cell = edges[1] - edges[0]
    density = gaussian_filter(hist, sigma / cell, mode="constant")
    return density / (density.sum() * cell * cell)


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
    return _save(fig, path)


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
    return _save(fig, path)
