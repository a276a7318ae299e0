"""Labels for the points of a scatter plot that overlap nothing: ``place_labels``.

Each label takes the nearest free position around its point (rings of offsets, eight
directions each), clear of the other labels, the markers, the axes' lines and the legend;
a label moved off its first ring gets a leader line. Used by the plane figures.

    >>> from alignuniform.report._plotting import plt
    >>> from alignuniform.report.labels import place_labels
    >>> fig, ax = plt.subplots()
    >>> _ = ax.scatter([0.0, 0.001], [0.0, 0.0])
    >>> a, b = place_labels(ax, [0.0, 0.001], [0.0, 0.0], ["first", "second"])
    >>> a.xyann != b.xyann  # two points on one spot: the labels go different ways
    True
    >>> plt.close(fig)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.text import Annotation, Text

__all__ = ["place_labels"]

# Directions (degrees) tried around a point, nearest ring first: up-right (where a reader
# looks first), then the other diagonals, then straight up/down/right/left.
_LABEL_DIRECTIONS = (30, -30, 150, -150, 90, -90, 0, 180)


def place_labels(
    ax: Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    *,
    fontsize: float = 8,
    marker_points: float = 5,
    rings: int = 12,
) -> list[Annotation]:
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
