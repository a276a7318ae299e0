"""Figures of ``alignuniform text zoo``, drawn from its table rows (``results.jsonl``).

- :func:`zoo_plane_figure`: every representation on the alignment-uniformity plane,
  coloured by STS-B Spearman, one marker shape per model, trained weights edged in black,
  random weights faded, and each fine-tuning run drawn as arrows from the trained model's
  own pooled row through its checkpoints (SimCSE's Figure 2);
- :func:`zoo_gap_figure`: uniformity minus its bound against Spearman, the comparison that
  stays fair across models of different widths (the bound depends on the dimension).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alignuniform.report._plotting import check_rows, plt, save_figure

if TYPE_CHECKING:
    from matplotlib.collections import PathCollection

MARKERS = ("o", "s", "^", "D", "v", "P")
WEIGHT_COLORS = {"trained": "tab:blue", "random": "tab:grey", "finetune": "tab:orange"}
LOSS_STYLES = ("-", "--", ":", "-.")
_KEYS = {"model", "weights", "layer", "n_layers", "pooling", "whitened", "alignment",
         "uniformity", "uniformity_bound", "uniformity_gap", "stsb_spearman"}


def _markers(rows: Sequence[Mapping]) -> dict[str, str]:
    models = list(dict.fromkeys(r["model"] for r in rows))
    return {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(models)}


def trajectories(rows: Sequence[Mapping]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """``{(model, loss): [(alignment, uniformity), ...]}``: each fine-tuning run's own pooled,
    unwhitened last-layer row, from the trained model's through the checkpoints in order.

    >>> base = {"layer": 6, "n_layers": 6, "pooling": "model", "whitened": False, "model": "m"}
    >>> rows = [{**base, "weights": "trained", "alignment": 0.2, "uniformity": -3.8},
    ...         {**base, "weights": "finetune", "finetune_loss": "contrastive",
    ...          "finetune_step": 10, "alignment": 0.3, "uniformity": -3.9}]
    >>> trajectories(rows)
    {('m', 'contrastive'): [(0.2, -3.8), (0.3, -3.9)]}
    """
    def own(r: Mapping) -> bool:
        return r["pooling"] == "model" and not r["whitened"] and r["layer"] == r["n_layers"]

    start = {r["model"]: (r["alignment"], r["uniformity"]) for r in rows
             if r["weights"] == "trained" and own(r)}
    runs: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    for r in rows:
        if r["weights"] == "finetune" and own(r):
            runs.setdefault((r["model"], r["finetune_loss"]), []).append(
                (r["finetune_step"], r["alignment"], r["uniformity"]))
    return {key: ([start[key[0]]] if key[0] in start else []) +
            [(a, u) for _, a, u in sorted(points)] for key, points in runs.items()}


def _plane(ax: plt.Axes, rows: Sequence[Mapping], markers: dict[str, str],
           vmin: float, vmax: float) -> PathCollection | None:
    """Draw the rows, the fine-tuning arrows and the bounds on ``ax``; return the mappable
    of the colour bar."""
    mappable = None
    for model, marker in markers.items():
        for weights in ("random", "trained", "finetune"):
            group = [r for r in rows if r["model"] == model and r["weights"] == weights]
            if not group:
                continue
            colors = [100 * r["stsb_spearman"] if r["stsb_spearman"] is not None else vmin
                      for r in group]
            mappable = ax.scatter(
                [r["alignment"] for r in group], [r["uniformity"] for r in group], c=colors,
                cmap="viridis", vmin=vmin, vmax=vmax, marker=marker,
                s=22 if weights == "finetune" else 36, alpha=0.45 if weights == "random" else 0.9,
                edgecolors="black" if weights == "trained" else "none", linewidths=0.6)
    for i, ((model, loss), points) in enumerate(sorted(trajectories(rows).items())):
        style = LOSS_STYLES[i % len(LOSS_STYLES)]
        for (a0, u0), (a1, u1) in zip(points, points[1:], strict=False):
            ax.annotate("", xy=(a1, u1), xytext=(a0, u0),
                        arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 1.2,
                                    "linestyle": style})
        ax.plot([], [], color="tab:red", linestyle=style, label=f"{model}: {loss}")
    for model in markers:
        bound = next(r["uniformity_bound"] for r in rows if r["model"] == model)
        ax.axhline(bound, color="grey", linestyle="--", linewidth=0.8)
    return mappable


def zoo_plane_figure(rows: Sequence[Mapping], path: str | Path, *,
                     title: str = "The text-encoder zoo on STS-B dev") -> Path:
    """Every row on the alignment-uniformity plane (see the module docstring); a second
    panel zooms on the fine-tuning runs when there are any.

    Raises:
        ValueError: No rows. KeyError: a row lacks a column the figure reads.
    """
    from matplotlib.lines import Line2D

    check_rows(rows, _KEYS, "zoo_plane_figure")
    markers = _markers(rows)
    runs = trajectories(rows)
    fig, axes = plt.subplots(1, 2 if runs else 1, figsize=(14 if runs else 8.5, 6.5),
                             squeeze=False)
    scored = [100 * r["stsb_spearman"] for r in rows if r["stsb_spearman"] is not None]
    vmin, vmax = min(scored, default=0.0), max(scored, default=100.0)
    for ax in axes[0]:
        mappable = _plane(ax, rows, markers, vmin, vmax)
        ax.set_xlabel("alignment (pairs with gold score > 4; lower is better)")
        ax.set_ylabel("uniformity (distinct sentences; lower is better)")
    axes[0][0].set_title(title)
    handles = [Line2D([], [], marker=marker, linestyle="", color="white",
                      markerfacecolor="tab:green", markeredgecolor=edge, alpha=alpha,
                      label=f"{model} ({weights})")
               for model, marker in markers.items()
               for weights, edge, alpha in (("trained", "black", 0.9), ("random", "none", 0.45),
                                            ("finetune", "none", 0.9))
               if any(r["model"] == model and r["weights"] == weights for r in rows)]
    handles += axes[0][0].get_legend_handles_labels()[0]
    handles.append(Line2D([], [], color="grey", linestyle="--", label="uniformity bound"))
    axes[0][0].legend(handles=handles, fontsize=7, loc="upper right")
    if runs:
        points = [p for path_ in runs.values() for p in path_]
        a = [p[0] for p in points]
        u = [p[1] for p in points]
        pad_a, pad_u = 0.2 * (max(a) - min(a)) + 1e-3, 0.2 * (max(u) - min(u)) + 1e-3
        zoom = axes[0][1]
        zoom.set_xlim(min(a) - pad_a, max(a) + pad_a)
        zoom.set_ylim(min(u) - pad_u, max(u) + pad_u)
        zoom.set_title("zoom: the fine-tuning runs (every checkpoint)")
    if mappable is not None:
        fig.colorbar(mappable, ax=axes[0].tolist(), label="STS-B Spearman x100")
    return save_figure(fig, path)


def zoo_gap_figure(rows: Sequence[Mapping], path: str | Path, *,
                   title: str = "Uniformity minus its bound against STS-B Spearman") -> Path:
    """``uniformity - uniformity_bound(dim)`` of every row with a Spearman, against it.

    Raises:
        ValueError: No rows. KeyError: a row lacks a column the figure reads.
    """
    check_rows(rows, _KEYS, "zoo_gap_figure")
    markers = _markers(rows)
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for model, marker in markers.items():
        for weights, color in WEIGHT_COLORS.items():
            group = [r for r in rows if r["model"] == model and r["weights"] == weights
                     and r["stsb_spearman"] is not None]
            if group:
                ax.scatter([100 * r["stsb_spearman"] for r in group],
                           [r["uniformity_gap"] for r in group], marker=marker, color=color,
                           alpha=0.75, s=28, label=f"{model} ({weights})")
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("STS-B Spearman x100")
    ax.set_ylabel("uniformity - bound (0: as uniform as the dimension allows)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
