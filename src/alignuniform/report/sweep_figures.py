"""The figures of a sweep (Wang & Isola, Figures 5, 6 and 7), from its table's rows.

Every function takes the rows of ``results.jsonl`` (trials that finished ``ok``; others are
ignored), writes one PNG and closes its figure. No point is labelled, so 100+ encoders stay
readable: colour carries accuracy, marker shape the setting, and collapsed encoders are
drawn hollow with a red cross.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from alignuniform.report._plotting import save_figure  # noqa: E402

_DIM_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")
_ACC_NAMES = {"linear_acc": "linear probe accuracy", "knn5_acc": "5-NN accuracy"}


def _ok(rows: list[dict], *cols: str) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok"
            and all(isinstance(r.get(c), (int, float)) and math.isfinite(r[c]) for c in cols)]


def _dims(rows: list[dict], layer: str) -> list[int]:
    return sorted({int(r.get(f"{layer}.dim") or 0) for r in rows})


def plane_figure(rows: list[dict], path: str | Path, *, layer: str = "embedding",
                 accuracy: str = "linear_acc") -> Path:
    """Figure 5: each encoder on the alignment-uniformity plane, coloured by accuracy, one
    panel per output dimension with its uniformity bound; the best encoder ringed."""
    a_col, u_col, acc_col = f"{layer}.alignment", f"{layer}.uniformity", f"{layer}.{accuracy}"
    rows = _ok(rows, a_col, u_col, acc_col)
    if not rows:
        raise ValueError("no evaluated trials to plot")
    dims = _dims(rows, layer)
    accs = np.array([r[acc_col] for r in rows])
    norm = matplotlib.colors.Normalize(vmin=float(accs.min()), vmax=float(accs.max()))
    fig, axes = plt.subplots(1, len(dims), figsize=(5.2 * len(dims) + 0.8, 4.4), squeeze=False,
                             layout="constrained")
    scatter = None
    for ax, dim in zip(axes[0], dims, strict=True):
        sub = [r for r in rows if int(r.get(f"{layer}.dim") or 0) == dim]
        x = np.array([r[a_col] for r in sub])
        y = np.array([r[u_col] for r in sub])
        c = np.array([r[acc_col] for r in sub])
        collapsed = np.array([bool(r.get("collapsed")) for r in sub])
        order = np.argsort(c)  # best drawn last, on top
        x, y, c, collapsed = x[order], y[order], c[order], collapsed[order]
        scatter = ax.scatter(x[~collapsed], y[~collapsed], c=c[~collapsed], cmap="viridis",
                             norm=norm, s=30, edgecolors="k", linewidths=0.3, alpha=0.9,
                             zorder=3)
        if collapsed.any():
            ax.scatter(x[collapsed], y[collapsed], c=c[collapsed], cmap="viridis", norm=norm,
                       s=30, marker="X", edgecolors="tab:red", linewidths=0.6, zorder=3)
        ax.scatter(x[-1:], y[-1:], s=160, facecolors="none", edgecolors="tab:red",
                   linewidths=1.2, zorder=4)
        bound = next((r.get(f"{layer}.uniformity_bound") for r in sub), None)
        if bound is not None:
            ax.axhline(bound, ls="--", color="tab:red", lw=1)
        ax.set_title(f"{dim}-d {layer} ({len(sub)} encoders)", fontsize=10)
        ax.set_xlabel(r"$\mathcal{L}_{align}$ (held-out, $\alpha$=2)")
        ax.set_ylabel(r"$\mathcal{L}_{uniform}$ (held-out, t=2)")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], ls="--", color="tab:red", label="uniformity bound"),
               Line2D([], [], marker="o", ls="", mfc="none", mec="tab:red", ms=10,
                      label="best encoder"),
               Line2D([], [], marker="X", ls="", color="0.5", mec="tab:red", label="collapsed")]
    axes[0][-1].legend(handles=handles, loc="upper right", fontsize=8)
    if scatter is not None:  # None when every encoder collapsed: nothing to colour
        fig.colorbar(scatter, ax=axes[0].tolist(), label=_ACC_NAMES.get(accuracy, accuracy))
    fig.suptitle("Alignment and uniformity of every encoder: lower-left is better "
                 "(cf. Wang & Isola, Fig. 5)", fontsize=10)
    return save_figure(fig, path)


def metric_figure(rows: list[dict], path: str | Path, *, layer: str = "embedding",
                  accuracy: str = "linear_acc") -> Path:
    """Figure 6: accuracy against alignment and against uniformity, coloured by output
    dimension, collapsed encoders hollow."""
    a_col, u_col, acc_col = f"{layer}.alignment", f"{layer}.uniformity", f"{layer}.{accuracy}"
    rows = _ok(rows, a_col, u_col, acc_col)
    if not rows:
        raise ValueError("no evaluated trials to plot")
    dims = _dims(rows, layer)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), sharey=True, layout="constrained")
    for ax, col, label in ((axes[0], a_col, r"$\mathcal{L}_{align}$"),
                           (axes[1], u_col, r"$\mathcal{L}_{uniform}$")):
        for colour, dim in zip(_DIM_COLOURS, dims, strict=False):
            sub = [r for r in rows if int(r.get(f"{layer}.dim") or 0) == dim]
            for collapsed in (False, True):
                pts = [r for r in sub if bool(r.get("collapsed")) == collapsed]
                if not pts:
                    continue
                ax.scatter([r[col] for r in pts], [r[acc_col] for r in pts], s=26,
                           facecolors="none" if collapsed else colour, edgecolors=colour,
                           linewidths=0.8, alpha=0.85,
                           label=f"{dim}-d" + (" collapsed" if collapsed else ""))
        ax.set_xlabel(f"{label} ({layer}, held-out)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{_ACC_NAMES.get(accuracy, accuracy)} ({layer})")
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle("Accuracy against each metric (cf. Wang & Isola, Fig. 6)", fontsize=10)
    return save_figure(fig, path)


def ratio_figure(rows: list[dict], path: str | Path, *, layer: str = "embedding",
                 accuracy: str = "linear_acc") -> Path:
    """Figure 7: accuracy against ``w_align / w_uniform`` (log axis) for encoders trained
    with both terms; circles without and triangles with L_contrastive, collapsed crossed."""
    acc_col = f"{layer}.{accuracy}"
    rows = [r for r in _ok(rows, acc_col, "loss.w_align", "loss.w_uniform")
            if r["loss.w_align"] > 0 and r["loss.w_uniform"] > 0]
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    if not rows:
        ax.text(0.5, 0.5, "no encoder trained with both L_align and L_uniform",
                ha="center", va="center", transform=ax.transAxes)
    dims = _dims(rows, layer)
    for colour, dim in zip(_DIM_COLOURS, dims, strict=False):
        for contrastive, marker in ((False, "o"), (True, "^")):
            pts = [r for r in rows if int(r.get(f"{layer}.dim") or 0) == dim
                   and (float(r.get("loss.w_contrastive") or 0) > 0) == contrastive]
            if not pts:
                continue
            ratio = [r["loss.w_align"] / r["loss.w_uniform"] for r in pts]
            ax.scatter(ratio, [r[acc_col] for r in pts], s=28, marker=marker, color=colour,
                       edgecolors="k", linewidths=0.3, alpha=0.85,
                       label=f"{dim}-d" + (", + L_contrastive" if contrastive else ""))
    bad = [r for r in rows if r.get("collapsed")]
    if bad:
        ax.scatter([r["loss.w_align"] / r["loss.w_uniform"] for r in bad],
                   [r[acc_col] for r in bad], s=70, marker="x", color="tab:red",
                   linewidths=1.2, label="collapsed", zorder=4)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(r"$w_{align} / w_{uniform}$ (log scale)")
    ax.set_ylabel(f"{_ACC_NAMES.get(accuracy, accuracy)} ({layer})")
    ax.grid(alpha=0.3)
    if rows:
        ax.legend(fontsize=8, loc="best")
    ax.set_title("Accuracy against the loss weights' ratio (cf. Wang & Isola, Fig. 7)",
                 fontsize=10)
    return save_figure(fig, path)
