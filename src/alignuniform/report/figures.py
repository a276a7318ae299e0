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

DPI = 110


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


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
            drawn as lines ending in an arrow.
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
    for name, traj in (paths or {}).items():
        arr = np.asarray(traj, dtype=float).reshape(-1, 2)
        if len(arr) == 0:
            continue
        ax.plot(arr[:, 0], arr[:, 1], "-", color="0.6", lw=1, zorder=1)
        if len(arr) > 1:
            ax.annotate("", xy=arr[-1], xytext=arr[-2],
                        arrowprops={"arrowstyle": "->", "color": "0.4"}, zorder=1)
        ax.plot(arr[0, 0], arr[0, 1], "o", ms=3, color="0.6", zorder=1)
        ax.text(arr[0, 0], arr[0, 1], f" {name} start", fontsize=7, color="0.4")

    colored = color_key is not None and all(color_key in p for p in points)
    if colored:
        cs = np.array([_finite(p[color_key], f"{color_key} of {p['name']!r}") for p in points])
        sc = ax.scatter(xs, ys, c=cs, cmap="viridis", s=70, edgecolors="k", zorder=3)
        fig.colorbar(sc, ax=ax, label=color_key)
    else:
        ax.scatter(xs, ys, s=70, color="tab:blue", edgecolors="k", zorder=3)
    for p, x, y in zip(points, xs, ys, strict=True):
        ax.annotate(label_fmt.format(**p), (x, y), xytext=(6, 4), textcoords="offset points",
                    fontsize=8)

    if bound is not None:
        b = _finite(bound, "bound")
        ax.axhline(b, ls="--", color="tab:red", lw=1, label=f"uniformity bound ({b:.3f})")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(r"$\mathcal{L}_{align}$ (held-out positive pairs)")
    ax.set_ylabel(r"$\mathcal{L}_{uniform}$")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    return _save(fig, path)
