"""Which augmentations make good positive pairs: a sweep over ``data.augment`` as heat maps.

SimCLR's Figure 5 (Chen et al. 2020) puts one transformation on each axis of a grid, a
single transformation on the diagonal and a pair of them off it. Here each cell is an
encoder of the sweep (``sweeps/augment_study.yaml``), and besides its accuracy the grid
shows what Wang & Isola's view explains it with: the held-out alignment of positives drawn
by the encoder's own recipe, the alignment of positives drawn by the full recipe (a common
yardstick: weak augmentations make their own positives trivially close), and uniformity.

A trial's ``data.augment`` override names its cell: ``{base: none, crop: {...}}`` is the
single component "crop", two components make a pair, and colour jitter with colour drop
count as one transformation, SimCLR's "colour distortion". Trials outside the grid (no
augmentation at all, the full recipe, three or more components) are references, shown in
the titles and in the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from alignuniform.report._plotting import save_figure  # noqa: E402
from alignuniform.report.page import Table  # noqa: E402

AUGMENT_KEY = "data.augment"
# the components in execution order (data.augment.COMPONENTS), with the names SimCLR's grid
# uses; colour jitter and colour drop are its one "colour distortion"
_LABELS = {"crop": "crop", "flip": "flip", "color_jitter": "colour", "color_drop": "colour",
           "rotation": "rotate", "gaussian_blur": "blur", "sobel": "sobel",
           "gaussian_noise": "noise", "cutout": "cutout"}
# what each heat map shows and which way is better (the colour map runs bright = better)
PANELS = (("linear_acc", "linear accuracy", ".1%", "viridis"),
          ("alignment", "alignment, own views", ".2f", "viridis_r"),
          ("alignment_full", "alignment, full recipe's views", ".2f", "viridis_r"),
          ("uniformity", "uniformity", ".2f", "viridis_r"))


def augment_parts(augment: Mapping) -> tuple[str, ...] | None:
    """The transformations a ``data.augment`` override turns on, in SimCLR's naming and
    execution order; ``None`` when it starts from the recipe (``base: recipe``, the default),
    so its components are not all named in the override.

    >>> augment_parts({"base": "none", "color_drop": {"p": 0.2}, "crop": {},
    ...                "color_jitter": True, "sobel": False})
    ('crop', 'colour')
    >>> augment_parts({}) is None
    True
    """
    if not isinstance(augment, Mapping):
        raise TypeError(f"{AUGMENT_KEY} must be a mapping, got {type(augment).__name__}")
    if augment.get("base", "recipe") != "none":
        return None
    unknown = sorted(k for k in augment if k != "base" and k not in _LABELS)
    if unknown:
        raise ValueError(f"unknown augmentation component(s) {', '.join(unknown)} in "
                         f"{AUGMENT_KEY}; valid: {', '.join(_LABELS)}")
    on = [_LABELS[k] for k in _LABELS if augment.get(k) not in (None, False) and k in augment]
    return tuple(dict.fromkeys(on))


def augment_label(augment: Mapping) -> str:
    """A short name for a ``data.augment`` override: "none", "full recipe", "crop + colour",
    or "recipe with" the changes it makes.

    >>> augment_label({"base": "none"}), augment_label({})
    ('none', 'full recipe')
    >>> augment_label({"flip": False, "sobel": {"p": 0.5}})
    'recipe with flip off, sobel'
    """
    parts = augment_parts(augment)
    if parts is not None:
        return " + ".join(parts) if parts else "none"
    changes = [f"{k} off" if v in (None, False) else k for k, v in augment.items() if k != "base"]
    return "recipe with " + ", ".join(changes) if changes else "full recipe"


@dataclass
class AugmentGrid:
    """One number of every trial of an augmentation sweep, arranged as SimCLR's grid.

    Attributes:
        labels: The single transformations, in the order the sweep first uses them.
        values: ``len(labels)`` square, symmetric: the single transformation on the
            diagonal, the pair off it; the mean over the cell's finished trials (several
            when a sweep also varies the seed), NaN where it has none.
        counts: How many trials each cell averages.
        references: Trials outside the grid, label -> mean value (e.g. "none",
            "full recipe").
    """

    labels: list[str]
    values: np.ndarray
    counts: np.ndarray
    references: dict[str, float]


def _number(row: Mapping, col: str) -> float:
    value = row.get(col)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else math.nan  # type: ignore[arg-type]


def _augmented(rows: Sequence[Mapping]) -> list[Mapping]:
    return [r for r in rows if r.get("status") == "ok" and isinstance(r.get(AUGMENT_KEY), Mapping)]


def augment_grid(rows: Sequence[Mapping], column: str) -> AugmentGrid:
    """``column`` of the finished trials of a ``data.augment`` sweep as a grid.

    Raises:
        ValueError: No finished trial varies ``data.augment``.
    """
    rows = _augmented(rows)
    if not rows:
        raise ValueError(f"no finished trial has a {AUGMENT_KEY} override: the grid needs a "
                         f"sweep that varies {AUGMENT_KEY} (e.g. sweeps/augment_study.yaml)")
    labels: list[str] = []
    for r in rows:
        parts = augment_parts(r[AUGMENT_KEY])
        if parts is not None and len(parts) in (1, 2):
            labels += [p for p in parts if p not in labels]
    index = {name: i for i, name in enumerate(labels)}
    cells: dict[tuple[int, int], list[float]] = {}
    outside: dict[str, list[float]] = {}
    for r in rows:
        parts, value = augment_parts(r[AUGMENT_KEY]), _number(r, column)
        if parts is None or len(parts) not in (1, 2):
            outside.setdefault(augment_label(r[AUGMENT_KEY]), []).append(value)
            continue
        i, j = sorted((index[parts[0]], index[parts[-1]]))
        cells.setdefault((i, j), []).append(value)
    values = np.full((len(labels), len(labels)), np.nan)
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for (i, j), vals in cells.items():
        finite = [v for v in vals if math.isfinite(v)]
        values[i, j] = values[j, i] = float(np.mean(finite)) if finite else math.nan
        counts[i, j] = counts[j, i] = len(finite)
    references = {k: float(np.mean(f)) if (f := [v for v in vals if math.isfinite(v)])
                  else math.nan for k, vals in outside.items()}
    return AugmentGrid(labels, values, counts, references)


def augment_grid_figure(rows: Sequence[Mapping], path: str | Path, *,
                        layer: str = "embedding") -> Path:
    """Four heat maps of an augmentation sweep: accuracy, alignment under the encoder's own
    views and under the full recipe's, and uniformity, each cell annotated; the lower
    triangle and diagonal only, as the pairs are unordered. Reference trials' values are
    in each panel's title. Bright is better in every panel. Cells of several trials (seeds)
    show their mean, and the figure says how many.

    Raises:
        ValueError: No finished trial trains on one or two components alone
            (``base: none``), so the grid has no cell.
    """
    grids = [augment_grid(rows, f"{layer}.{col}") for col, *_ in PANELS]
    if not grids[0].labels:
        raise ValueError(f"no finished trial trains on one or two components alone "
                         f"({AUGMENT_KEY}: {{base: none, <component>: ...}}): the grid is empty")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.6 * len(PANELS), 4.9),
                             layout="constrained")
    for ax, grid, (_, title, fmt, cmap) in zip(axes, grids, PANELS, strict=True):
        n = len(grid.labels)
        shown = np.where(np.tril(np.ones((n, n), dtype=bool)), grid.values, np.nan)
        image = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap)
        finite = shown[np.isfinite(shown)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for i in range(n):
            for j in range(i + 1):
                v = shown[i, j]
                text = "n/a" if not math.isfinite(v) else format(v, fmt)
                bright = math.isfinite(v) and (v > middle) == (cmap == "viridis")
                ax.text(j, i, text, ha="center", va="center", fontsize=7.5,
                        color="black" if bright else "white")
        ax.set_xticks(range(n), grid.labels, rotation=45, ha="right")
        ax.set_yticks(range(n), grid.labels)
        ax.set_xlabel("transformation 2")
        ax.set_ylabel("transformation 1")
        refs = ", ".join(f"{k} {format(v, fmt) if math.isfinite(v) else 'n/a'}"
                         for k, v in grid.references.items())
        ax.set_title(f"{title} ({layer})" + (f"\n{refs}" if refs else ""), fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.75)
    n_max = int(grids[0].counts.max(initial=0))
    seeds = f"; cells average up to {n_max} trials" if n_max > 1 else ""
    fig.suptitle("Which augmentations make good positives: one transformation on the "
                 f"diagonal, a pair off it (cf. SimCLR Fig. 5); bright is better{seeds}",
                 fontsize=10)
    return save_figure(fig, path)


def _mean_sd(values: list[float], fmt: str) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    scale = 100.0 if fmt.endswith("%") else 1.0  # "± sd" in the mean's own unit
    mean = format(float(np.mean(finite)), fmt)
    if len(finite) < 2:
        return mean
    sd = float(np.std(finite, ddof=1)) * scale
    return f"{mean} ± {sd:.{1 if scale == 100 else 3}f}"


def augment_table(rows: Sequence[Mapping], *, layer: str = "embedding") -> Table:
    """One line per recipe of an augmentation sweep, best mean linear accuracy first: the
    mean over the recipe's finished trials (seeds), ± their standard deviation where there
    are several, and how many collapsed."""
    cols = [("linear_acc", ".1%"), ("knn5_acc", ".1%"), ("mean_acc", ".1%"),
            ("alignment", ".3f"), ("alignment_full", ".3f"), ("uniformity", ".3f")]
    groups: dict[str, list[Mapping]] = {}
    for r in _augmented(rows):
        groups.setdefault(augment_label(r[AUGMENT_KEY]), []).append(r)

    def linear(label: str) -> float:
        values = [v for r in groups[label] if math.isfinite(v := _number(r, f"{layer}.linear_acc"))]
        return float(np.mean(values)) if values else -1.0

    body = [[label, str(len(trials)),
             *[_mean_sd([_number(r, f"{layer}.{c}") for r in trials], fmt) for c, fmt in cols],
             str(sum(bool(r.get("collapsed")) for r in trials))]
            for label, trials in sorted(groups.items(), key=lambda kv: -linear(kv[0]))]
    return Table(["augmentation", "trials", "linear", "5-NN", "mean clf", "align (own)",
                  "align (full)", "uniform", "collapsed"], body)
