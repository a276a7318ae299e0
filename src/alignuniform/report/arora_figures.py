"""Figures of Arora et al.'s bounds (``alignuniform.theory.arora_experiments``): both sides
of ``L_sup^mu <= L_un^!=`` and Lemma 4.3 along training and against the collision
probability, and Wang & Isola's measures next to the mean classifier's accuracy.

Each function takes the rows of an ``AroraResult``, writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from alignuniform.report._plotting import check_rows, plt, save_figure

__all__ = ["arora_link_figure", "arora_tau_figure", "arora_training_figure"]


_SIDES = (
    ("l_sup_mu", r"$L_{sup}^{\mu}$ (mean classifier)", "tab:blue", "o-"),
    ("l_un_distinct", r"$L_{un}^{\neq}$ (Jensen bound)", "tab:orange", "s-"),
    ("lemma43_bound", r"$(L_{un} - \tau)/(1 - \tau)$ (Lemma 4.3)", "tab:red", "^--"),
)


def _sides(ax, x: np.ndarray, estimates: Sequence[Mapping]) -> None:
    for key, label, color, style in _SIDES:
        mean = np.array([e[key]["mean"] for e in estimates])
        half = np.array([e[key]["high"] - e[key]["mean"] for e in estimates])
        ax.errorbar(x, mean, yerr=half, fmt=style, color=color, ms=4, capsize=2, label=label)


def arora_training_figure(trajectories: Mapping[str, Sequence[Mapping]], path: str | Path) -> Path:
    """Both sides of Arora et al.'s bounds along training, per objective (columns) and loss
    (rows).

    Args:
        trajectories: ``AroraResult.trajectories``: objective -> records with ``step`` and
            ``estimates[loss]``.
        path: PNG path.
    """
    if not trajectories:
        raise ValueError("arora_training_figure needs at least one trajectory")
    for name, recs in trajectories.items():
        check_rows(recs, {"step", "estimates"}, f"arora_training_figure ({name})")
    losses = list(next(iter(trajectories.values()))[0]["estimates"])
    fig, axes = plt.subplots(len(losses), len(trajectories), squeeze=False,
                             figsize=(5.2 * len(trajectories), 3.6 * len(losses)))
    for j, (objective, recs) in enumerate(trajectories.items()):
        steps = np.array([r["step"] for r in recs])
        for i, loss in enumerate(losses):
            ax = axes[i][j]
            _sides(ax, steps, [r["estimates"][loss] for r in recs])
            ax.set_title(f"trained with {objective}; {loss} loss", fontsize=10)
            ax.set_xlabel("training step")
            ax.set_ylabel("loss (95% CI)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def _tau_axis(ax, tau: np.ndarray, labels: list[str]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(tau, labels)
    ax.minorticks_off()
    ax.set_xlabel(r"class collision $\tau$ = 1/K")


def arora_tau_figure(rows: Sequence[Mapping], path: str | Path) -> Path:
    """Both sides of the bounds against the collision probability tau = 1/K, one panel per
    loss, and Lemma 4.3's slack next to its collision part ``tau/(1-tau) (L_un^= - l(0))``.

    Args:
        rows: ``AroraResult.by_tau``: ``n_classes``, ``tau`` and ``estimates[loss]``.
        path: PNG path.
    """
    check_rows(rows, {"n_classes", "tau", "estimates"}, "arora_tau_figure")
    rows = sorted(rows, key=lambda r: r["tau"])
    tau = np.array([r["tau"] for r in rows])
    ticks = [f"1/{r['n_classes']}" for r in rows]
    losses = list(rows[0]["estimates"])
    fig, axes = plt.subplots(1, len(losses) + 1, figsize=(4.8 * (len(losses) + 1), 3.9))
    for ax, loss in zip(axes, losses, strict=False):
        _sides(ax, tau, [r["estimates"][loss] for r in rows])
        ax.set_title(f"{loss} loss, f trained with L_un", fontsize=10)
        _tau_axis(ax, tau, ticks)
        ax.set_ylabel("loss (95% CI)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    ax = axes[-1]
    for k, loss in enumerate(losses):
        est = [r["estimates"][loss] for r in rows]
        slack = np.array([e["lemma43_slack"]["mean"] for e in est])
        collision = np.array([e["tau"] / (1 - e["tau"]) * e["collision_excess"]["mean"]
                              for e in est])
        ax.plot(tau, slack, "o-", color=f"C{k}", label=f"{loss}: Lemma 4.3 slack")
        ax.plot(tau, collision, "x:", color=f"C{k}",
                label=rf"{loss}: collision part $\frac{{\tau}}{{1-\tau}}(L_{{un}}^= - 1)$")
    _tau_axis(ax, tau, ticks)
    ax.set_ylabel("slack")
    ax.set_title("Lemma 4.3's slack and its collision part", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def arora_link_figure(trajectories: Mapping[str, Sequence[Mapping]], path: str | Path) -> Path:
    """Wang & Isola's L_align and L_uniform next to the mean classifier's accuracy, along
    training, one line per objective.

    Args:
        trajectories: objective -> records with ``step``, ``alignment``, ``uniformity``,
            ``accuracy`` (a MeanCI dict).
        path: PNG path.
    """
    if not trajectories:
        raise ValueError("arora_link_figure needs at least one trajectory")
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9))
    for k, (objective, recs) in enumerate(trajectories.items()):
        check_rows(recs, {"step", "alignment", "uniformity", "accuracy"}, "arora_link_figure")
        steps = np.array([r["step"] for r in recs])
        axes[0].plot(steps, [r["alignment"] for r in recs], "o-", color=f"C{k}", label=objective)
        axes[1].plot(steps, [r["uniformity"] for r in recs], "o-", color=f"C{k}", label=objective)
        acc = np.array([r["accuracy"]["mean"] for r in recs])
        half = np.array([r["accuracy"]["high"] - r["accuracy"]["mean"] for r in recs])
        axes[2].errorbar(steps, acc, yerr=half, fmt="o-", color=f"C{k}", capsize=2,
                         label=objective)
    titles = (r"$\mathcal{L}_{align}$ (two draws of a class)", r"$\mathcal{L}_{uniform}$ (t=2)",
              "mean classifier accuracy (95% CI)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
