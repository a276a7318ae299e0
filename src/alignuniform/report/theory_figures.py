"""Figures for ``alignuniform.theory``: one PNG per claim.

Each ``*_figure`` function takes the rows that a theory function produced and a path, writes
one figure with the Agg backend and returns the path. The Wang & Isola figures are here,
Arora et al.'s in :mod:`alignuniform.report.arora_figures`; :func:`write_figures` draws every
figure of a :class:`~alignuniform.theory.suite.TheoryRun`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from alignuniform.report._plotting import check_rows, plt, save_figure
from alignuniform.report.arora_figures import (
    arora_link_figure,
    arora_tau_figure,
    arora_training_figure,
)


def theorem1_figure(
    rows: Sequence[Mapping], fit: Mapping[str, float] | None, path: str | Path
) -> Path:
    """Left: ``L_contrastive - log M`` converging to the limit; right: the gap on log-log axes.

    Args:
        rows: output of :func:`alignuniform.theory.theorem1_monte_carlo`.
        fit: ``{"slope", "intercept", ...}`` of the log-log fit of ``gap_cv`` against M, or
            None (no fit line).
        path: PNG path.
    """
    check_rows(rows, {"m", "loss_minus_log_m", "gap_cv", "limit"}, "theorem1_figure")
    m = np.array([r["m"] for r in rows], dtype=float)
    loss = np.array([r["loss_minus_log_m"]["mean"] for r in rows])
    loss_half = np.array([r["loss_minus_log_m"]["high"] - r["loss_minus_log_m"]["mean"]
                          for r in rows])
    gap = np.array([r["gap_cv"]["mean"] for r in rows])
    gap_half = np.array([r["gap_cv"]["high"] - r["gap_cv"]["mean"] for r in rows])
    limit = rows[0]["limit"]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.errorbar(m, loss, yerr=loss_half, fmt="o-", ms=4, capsize=3,
                 label=r"Monte Carlo $\mathcal{L}_{contrastive}(\tau, M) - \log M$ (95% CI)")
    ax1.axhline(limit, ls="--", color="tab:red", label=f"closed-form limit ({limit:.4f})")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("number of negatives M")
    ax1.set_ylabel("nats")
    ax1.set_title("Theorem 1: the loss minus log M tends to the limit", fontsize=10)
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)

    positive = gap > 0
    ax2.errorbar(m[positive], gap[positive], yerr=gap_half[positive], fmt="o", ms=4, capsize=3,
                 label="gap (control-variate MC, 95% CI)")
    if fit is not None:
        line = np.exp(fit["intercept"]) * m ** fit["slope"]
        ax2.plot(m, line, "-", color="tab:green",
                 label=f"fit: slope {fit['slope']:.3f} ± {1.96 * fit.get('slope_se', 0.0):.3f}")
    ref = gap[positive][0] * (m / m[positive][0]) ** -0.5
    ax2.plot(m, ref, ":", color="0.4", label=r"$O(M^{-1/2})$ (paper's bound), for scale")
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xlabel("number of negatives M")
    ax2.set_ylabel(r"$E[\mathcal{L}_M] - \log M - $ limit")
    ax2.set_title("The gap shrinks like 1/M", fontsize=10)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return save_figure(fig, path)


def closed_form_figure(rows: Sequence[Mapping], path: str | Path) -> Path:
    """``L_uniform`` of the uniform distribution against t, one curve per dimension.

    Args:
        rows: dicts with ``dim``, ``t``, ``bound``, ``quadrature``, ``mc`` (``value``/``low``/
            ``high``; ``low`` may be None).
        path: PNG path.
    """
    check_rows(rows, {"dim", "t", "bound", "quadrature", "mc"}, "closed_form_figure")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, dim in enumerate(sorted({r["dim"] for r in rows})):
        sub = sorted((r for r in rows if r["dim"] == dim), key=lambda r: r["t"])
        t = np.array([r["t"] for r in sub])
        color = f"C{i}"
        ax.plot(t, [r["bound"] for r in sub], "-", color=color, label=f"m={dim}: closed form")
        ax.plot(t, [r["quadrature"] for r in sub], "x", color=color, ms=8)
        # an interval unbounded below (low None) is drawn down to its point
        mc = np.array([[r["mc"]["value"], r["mc"]["value"] if r["mc"]["low"] is None
                        else r["mc"]["low"], r["mc"]["high"]] for r in sub])
        ax.errorbar(t, mc[:, 0], yerr=[mc[:, 0] - mc[:, 1], mc[:, 2] - mc[:, 0]], fmt="o",
                    mfc="none", color=color, capsize=3)
    ax.plot([], [], "kx", label="1-D quadrature")
    ax.plot([], [], "ko", mfc="none", label="Monte Carlo (95% CI)")
    ax.set_xlabel("t")
    ax.set_ylabel(r"$\mathcal{L}_{uniform}$ of the uniform distribution")
    ax.set_title(r"$-2t + \log {}_0F_1(; m/2; t^2)$: three ways", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def circle_figure(panels: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Points on S^1, one panel per entry (e.g. initial, after L_uniform, after L_contrastive).

    Args:
        panels: ``{title: (N, 2) array of unit points}``.
        path: PNG path.
    """
    if not panels:
        raise ValueError("circle_figure needs at least one panel")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.4), squeeze=False)
    theta = np.linspace(0, 2 * np.pi, 400)
    for ax, (title, points) in zip(axes[0], panels.items(), strict=True):
        pts = np.asarray(points, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"panel {title!r} must be (N, 2) points, got shape {pts.shape}")
        ax.plot(np.cos(theta), np.sin(theta), color="0.8", lw=1)
        for p in pts:
            ax.plot([0, p[0]], [0, p[1]], color="0.85", lw=0.6)
        ax.scatter(pts[:, 0], pts[:, 1], s=30, color="tab:blue", edgecolors="k", zorder=3)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-1.15, 1.15)
        ax.set_ylim(-1.15, 1.15)
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)


def convergence_figure(rows: Sequence[Mapping], path: str | Path) -> Path:
    """Optimised N-point sets approach the bound: both estimators and the squared MMD against N.

    Args:
        rows: dicts with ``dim``, ``objective``, ``n_points``, ``with_self``, ``without_self``,
            ``bound``, ``mmd``, ``mmd_iid_expected``.
        path: PNG path.
    """
    keys = {"dim", "objective", "n_points", "with_self", "without_self", "bound", "mmd",
            "mmd_iid_expected"}
    check_rows(rows, keys, "convergence_figure")
    dims = sorted({r["dim"] for r in rows})
    fig, axes = plt.subplots(2, len(dims), figsize=(4.6 * len(dims), 7), squeeze=False)
    for j, dim in enumerate(dims):
        top, bottom = axes[0][j], axes[1][j]
        sub = [r for r in rows if r["dim"] == dim]
        for k, objective in enumerate(sorted({r["objective"] for r in sub})):
            cur = sorted((r for r in sub if r["objective"] == objective),
                         key=lambda r: r["n_points"])
            n = np.array([r["n_points"] for r in cur])
            color = f"C{k}"
            top.plot(n, [r["with_self"] for r in cur], "^-", color=color,
                     label=f"{objective}: with self-pairs")
            top.plot(n, [r["without_self"] for r in cur], "v--", color=color,
                     label=f"{objective}: without (uniform_loss)")
            bottom.plot(n, [r["mmd"] for r in cur], "o-", color=color, label=objective)
        n_all = np.array(sorted({r["n_points"] for r in sub}))
        bottom.plot(n_all, [sub[0]["mmd_iid_expected"] * sub[0]["n_points"] / n for n in n_all],
                    ":", color="0.3", label="iid uniform points (expected)")
        top.axhline(sub[0]["bound"], color="tab:red", ls="--", lw=1, label="bound")
        top.set_xscale("log", base=2)
        top.set_title(f"S^{dim - 1}: optimised points, t={sub[0].get('t', 2.0):g}", fontsize=10)
        top.set_xlabel("N points")
        top.set_ylabel(r"$\mathcal{L}_{uniform}$ estimate")
        top.legend(fontsize=7)
        top.grid(alpha=0.3)
        bottom.set_xscale("log", base=2)
        bottom.set_yscale("log")
        bottom.set_xlabel("N points")
        bottom.set_ylabel("squared MMD to uniform")
        bottom.legend(fontsize=7)
        bottom.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return save_figure(fig, path)


def estimator_figure(rows: Sequence[Mapping], path: str | Path) -> Path:
    """Bias of the two batch estimators against B, and the share of batches below the bound.

    Args:
        rows: output of :func:`alignuniform.theory.estimator_bias` (plus ``l2_floor``).
        path: PNG path.
    """
    check_rows(rows, {"batch_size", "with_self", "without_self", "bound", "frac_below_bound"},
                "estimator_figure")
    b = np.array([r["batch_size"] for r in rows], dtype=float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label, marker in (("with_self", "with self-pairs", "^"),
                               ("without_self", "without self-pairs (uniform_loss)", "v")):
        mean = np.array([r[key]["mean"] for r in rows])
        half = np.array([r[key]["high"] - r[key]["mean"] for r in rows])
        ax1.errorbar(b, mean, yerr=half, fmt=marker + "-", capsize=3, ms=5, label=f"{label}: mean")
    if all("l2_floor" in r for r in rows):
        ax1.plot(b, [r["l2_floor"] for r in rows], ":", color="0.3",
                 label="lowest possible value without self-pairs")
    ax1.axhline(rows[0]["bound"], color="tab:red", ls="--", lw=1, label="population bound")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("batch size B")
    ax1.set_ylabel(r"$\mathcal{L}_{uniform}$ of iid uniform batches")
    ax1.set_title("Both estimators are biased by O(1/B), in opposite directions", fontsize=10)
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.plot(b, [r["frac_below_bound"] for r in rows], "o-")
    ax2.set_xscale("log", base=2)
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("batch size B")
    ax2.set_ylabel("share of batches below the bound")
    ax2.set_title("uniform_loss below the bound is common, not a bug", fontsize=10)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def antipodal_figure(rows: Sequence[Mapping], path: str | Path) -> Path:
    """Mean dot product and ``L_uniform`` for the uniform and the antipodal distribution.

    Args:
        rows: dicts with ``dim``, ``distribution``, ``mean_dot``, ``uniform_loss``.
        path: PNG path.
    """
    check_rows(rows, {"dim", "distribution", "mean_dot", "uniform_loss"}, "antipodal_figure")
    labels = [f"m={r['dim']}\n{r['distribution']}" for r in rows]
    x = np.arange(len(rows))
    colors = ["tab:blue" if r["distribution"] == "uniform" else "tab:orange" for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.bar(x, [r["mean_dot"] for r in rows], color=colors)
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_ylim(-0.1, 0.1)
    ax1.set_ylabel("mean pairwise dot product (sample)")
    ax1.set_title("The average dot product cannot tell them apart", fontsize=10)
    ax2.bar(x, [r["uniform_loss"] for r in rows], color=colors)
    ax2.set_ylabel(r"$\mathcal{L}_{uniform}$ (t=2, sample)")
    ax2.set_title("The Gaussian potential can", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_xticks(x, labels, fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save_figure(fig, path)


def limit_terms_figure(rows: Sequence[Mapping], path: str | Path) -> Path:
    """Theorem 1's two terms for several encoders, next to their L_align / L_uniform forms.

    Args:
        rows: dicts from :func:`alignuniform.theory.contrastive_limit_terms` plus ``name``.
        path: PNG path.
    """
    check_rows(rows, {"name", "align_term", "uniform_term", "align_from_l_align",
                       "uniform_jensen_bound"}, "limit_terms_figure")
    x = np.arange(len(rows))
    w = 0.2
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(rows)), 4.4))
    bars = (
        ("align_term", r"$-\frac{1}{\tau}E[f(x)\cdot f(y)]$", "tab:blue", None),
        ("align_from_l_align", r"$-\frac{1}{\tau} + \frac{\mathcal{L}_{align}}{2\tau}$",
         "tab:blue", "//"),
        ("uniform_term", r"$E_x \log E_{x^-} e^{f(x^-)\cdot f(x)/\tau}$", "tab:orange", None),
        ("uniform_jensen_bound", r"$\frac{1}{\tau} + \mathcal{L}_{uniform}(t=\frac{1}{2\tau})$",
         "tab:orange", "//"),
    )
    for k, (key, label, color, hatch) in enumerate(bars):
        ax.bar(x + (k - 1.5) * w, [r[key] for r in rows], w, color=color, hatch=hatch,
               edgecolor="k", alpha=0.85 if hatch is None else 0.45, label=label)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, [r["name"] for r in rows], fontsize=8)
    ax.set_ylabel("nats")
    ax.set_title("Alignment and uniformity inside the contrastive limit", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def write_figures(run, out: str | Path) -> dict[str, Path]:
    """Every figure of a theory run that has the sections it needs, into folder ``out``.

    Args:
        run: a :class:`~alignuniform.theory.suite.TheoryRun`.
        out: folder for the PNGs.

    Returns:
        ``{section: path}``.
    """
    out = Path(out)
    res = run.results
    paths: dict[str, Path] = {}
    if "theorem1" in res:
        paths["theorem1"] = theorem1_figure(res["theorem1"].rows, res["theorem1"].fit_all,
                                            out / "theorem1.png")
    if "closed_form" in res:
        paths["closed_form"] = closed_form_figure(res["closed_form"].rows, out / "closed_form.png")
    if "circle" in res:
        circle = res["circle"]
        panels = {"initial (iid)": circle.initial.numpy()}
        for name, dev in circle.gap_errors().items():
            panels[f"after {name}\nmax gap error {dev:.2g} deg"] = circle.runs[name].points.numpy()
        paths["circle"] = circle_figure(panels, out / "circle.png")
    if "sphere" in res:
        paths["sphere"] = convergence_figure(res["sphere"].rows, out / "sphere.png")
    if "antipodal" in res:
        paths["antipodal"] = antipodal_figure(res["antipodal"].rows, out / "antipodal.png")
    if "estimators" in res:
        paths["estimators"] = estimator_figure(res["estimators"].rows, out / "estimators.png")
    if "limit_terms" in res:
        paths["limit_terms"] = limit_terms_figure(res["limit_terms"].rows, out / "limit_terms.png")
    if "arora" in res:
        arora = res["arora"]
        paths["arora_training"] = arora_training_figure(arora.trajectories,
                                                        out / "arora_training.png")
        paths["arora_tau"] = arora_tau_figure(arora.by_tau, out / "arora_tau.png")
        paths["arora_link"] = arora_link_figure(arora.trajectories, out / "arora_link.png")
    return paths
