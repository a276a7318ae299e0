"""``alignuniform theory``: check the paper's mathematical claims numerically.

Runs each claim of :mod:`alignuniform.theory` at a fixed size, writes ``theory.json`` (every
number, the settings and a ``checks`` table of pass/fail with tolerances) and one PNG per
claim to the run directory. ``--quick`` uses smaller Monte-Carlo and optimisation sizes
(under a minute on two CPU cores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

#: Sizes of each experiment; ``quick`` is for CI, ``full`` for the report.
SETTINGS = {
    "quick": {
        "theorem1": {"dim": 8, "tau": 0.5, "kappa": 10.0, "max_log2_m": 14, "n_samples": 1000},
        "closed_form": {"dims": [2, 3, 8, 32, 128], "ts": [0.5, 1.0, 2.0, 4.0], "n_pairs": 20000},
        "circle": {"n_points": 16, "t": 2.0, "tau": 0.2, "steps": 200, "lr": 0.1},
        "sphere": {"dims": [3, 8], "n_points": [16, 64], "t": 2.0, "tau": 0.2,
                   "steps": 150, "lr": 0.05},
        "antipodal": {"dims": [2, 3, 16], "t": 2.0, "n": 2000},
        "estimators": {"dim": 3, "t": 2.0, "batch_sizes": [2, 4, 8, 16, 32, 64, 128, 256],
                       "n_batches": 300},
        "limit_terms": {"dim": 16, "tau": 0.2, "n": 2000, "bank": 4096},
    },
    "full": {
        "theorem1": {"dim": 8, "tau": 0.5, "kappa": 10.0, "max_log2_m": 16, "n_samples": 10000},
        "closed_form": {"dims": [2, 3, 8, 32, 128, 512], "ts": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
                        "n_pairs": 200000},
        "circle": {"n_points": 16, "t": 2.0, "tau": 0.2, "steps": 600, "lr": 0.1},
        "sphere": {"dims": [3, 8], "n_points": [16, 32, 64, 128, 256], "t": 2.0, "tau": 0.2,
                   "steps": 300, "lr": 0.05},
        "antipodal": {"dims": [2, 3, 16, 128], "t": 2.0, "n": 10000},
        "estimators": {"dim": 3, "t": 2.0,
                       "batch_sizes": [2, 4, 8, 16, 32, 64, 128, 256, 512],
                       "n_batches": 1000},
        "limit_terms": {"dim": 16, "tau": 0.2, "n": 4000, "bank": 16384},
    },
}

#: Fit the Theorem-1 gap from this M on, where the O(1/M) term dominates.
TAIL_FROM_M = 16


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "theory",
        help="check the paper's theory numerically (Theorem 1, the uniformity bound, ...)",
        description=(
            "Monte-Carlo and optimisation checks of Theorem 1's limit, the optimum of "
            "L_uniform, the antipodal counterexample, the batch estimators and the terms of "
            "the contrastive limit. Writes theory.json and PNG figures to --out."
        ),
    )
    p.add_argument("--quick", action="store_true", help="small sizes (under a minute on CPU)")
    p.add_argument("--out", default="runs/theory", help="run directory (default: runs/theory)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=run)


def _check(name: str, passed: bool, detail: str) -> dict:
    return {"name": name, "passed": bool(passed), "detail": detail}


def _sampling(cfg: dict, rng) -> tuple[dict, list[dict]]:
    import numpy as np
    from scipy import stats

    from alignuniform import theory as T

    rows = []
    for dim in (2, 3, 16):
        for kappa in (1.0, 10.0, 100.0):
            x = T.sample_vmf(np.eye(dim)[0], kappa, 20000, rng)
            ci, exact = T.MeanCI.of(x[:, 0].numpy()), T.vmf_mean_cosine(dim, kappa)
            rows.append({"dim": dim, "kappa": kappa, "exact": exact, "mc": ci.as_dict(),
                         "z": (ci.mean - exact) / ci.se})
    u, v = T.sample_uniform(20000, 8, rng), T.sample_uniform(20000, 8, rng)
    ks = stats.ks_2samp((u * v).sum(1).numpy(), T.sample_uniform_dots(8, 20000, rng))
    worst = max(abs(r["z"]) for r in rows)
    checks = [
        _check("vMF mean cosine I_{m/2}/I_{m/2-1} matches Monte Carlo (|z| < 4)", worst < 4,
               f"largest |z| {worst:.2f} over 9 (dim, kappa) settings, 20,000 draws each"),
        _check("u.v from the Beta law matches u.v from vectors (KS test, m=8)", ks.pvalue > 0.001,
               f"p = {ks.pvalue:.3g}"),
    ]
    return {"vmf_mean_cosine": rows, "uniform_dots_ks_pvalue": float(ks.pvalue)}, checks


def _theorem1(cfg: dict, rng) -> tuple[dict, list[dict]]:
    from alignuniform import theory as T

    ms = [2**k for k in range(cfg["max_log2_m"] + 1)]
    rows = T.theorem1_monte_carlo(cfg["dim"], cfg["tau"], cfg["kappa"], ms, cfg["n_samples"], rng)
    gaps = [r["gap_cv"]["mean"] for r in rows]
    if min(gaps) <= 0:
        raise ValueError("a Theorem-1 gap estimate is not positive; increase n_samples")
    fit_all = T.fit_loglog_slope(ms, gaps)
    tail = [(m, g) for m, g in zip(ms, gaps, strict=True) if m >= TAIL_FROM_M]
    fit_tail = T.fit_loglog_slope(*zip(*tail, strict=True))
    last = rows[-1]
    limit_inside = sum(
        r["limit_mc"]["low"] <= r["limit"] <= r["limit_mc"]["high"] for r in rows
    ) / len(rows)
    checks = [
        _check("Monte-Carlo limit contains the closed-form limit", limit_inside >= 0.8,
               f"{limit_inside:.0%} of the {len(rows)} 95% CIs contain it (>= 80% required)"),
        _check(f"L_contrastive - log M at M={last['m']} contains the limit",
               last["loss_minus_log_m"]["low"] <= last["limit"] <= last["loss_minus_log_m"]["high"],
               f"{last['loss_minus_log_m']['mean']:.5f} ± "
               f"{last['loss_minus_log_m']['high'] - last['loss_minus_log_m']['mean']:.5f} "
               f"vs {last['limit']:.5f}"),
        _check("gap shrinks at least like M^{-1/2}: fitted log-log slope <= -0.4",
               fit_all["slope"] <= -0.4,
               f"slope {fit_all['slope']:.3f} ± {1.96 * fit_all['slope_se']:.3f} (all M); "
               f"{fit_tail['slope']:.3f} ± {1.96 * fit_tail['slope_se']:.3f} (M >= {TAIL_FROM_M})"),
    ]
    out = {"settings": cfg, **T.theorem1_limit(cfg["dim"], cfg["tau"], cfg["kappa"]),
           "rows": rows, "fit_all": fit_all, "fit_tail": {**fit_tail, "from_m": TAIL_FROM_M}}
    return out, checks


def _closed_form(cfg: dict, rng) -> tuple[list[dict], list[dict]]:
    import numpy as np

    from alignuniform import theory as T
    from alignuniform.metrics import uniformity_bound

    rows = []
    for dim in cfg["dims"]:
        for t in cfg["ts"]:
            bound = uniformity_bound(dim, t)
            mc = T.uniformity_monte_carlo(dim, t, cfg["n_pairs"], rng)
            rows.append({"dim": dim, "t": t, "bound": bound,
                         "quadrature": T.uniformity_by_quadrature(dim, t),
                         "mc": mc, "within_ci": mc["low"] <= bound <= mc["high"]})
    # np.max propagates NaN, so a failed quadrature fails the check
    worst = float(np.max([abs(r["bound"] - r["quadrature"]) for r in rows]))
    share = sum(r["within_ci"] for r in rows) / len(rows)
    checks = [
        _check("closed form = 1-D quadrature of the density of u.v (to 1e-6)", worst < 1e-6,
               f"largest |difference| {worst:.2e} over {len(rows)} (m, t)"),
        _check("closed form inside the Monte-Carlo 95% CI", share >= 0.8,
               f"{share:.0%} of {len(rows)} (m, t) inside (expect ~95%; >= 80% required)"),
    ]
    return rows, checks


def _circle(cfg: dict, seed: int) -> tuple[dict, list[dict], dict]:
    import numpy as np
    import torch

    from alignuniform import theory as T

    n = cfg["n_points"]
    objectives = {"uniform_loss": T.uniform_objective(cfg["t"]),
                  "contrastive_loss": T.contrastive_objective(cfg["tau"])}
    out, checks = {}, []
    init = torch.nn.functional.normalize(
        torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=1
    )
    panels = {"initial (iid)": init.numpy()}
    for name, objective in objectives.items():
        res = T.optimise_points(n, 2, objective, steps=cfg["steps"], lr=cfg["lr"], seed=seed)
        dev = float(np.degrees(np.abs(T.circle_gaps(res.points) - 2 * math.pi / n).max()))
        out[name] = {"max_gap_deviation_deg": dev, "final_loss": res.losses[-1],
                     "points": res.points.tolist(),
                     "trajectory": list(zip(res.steps, res.losses, strict=True))}
        panels[f"after {name}\nmax gap error {dev:.2g} deg"] = res.points.numpy()
        checks.append(_check(f"S^1: {name} spaces {n} points equally (within 0.5 degree)",
                             dev < 0.5, f"largest gap error {dev:.3g} degrees"))
    return {"settings": cfg, **out}, checks, panels


def _sphere(cfg: dict, seed: int) -> tuple[list[dict], list[dict]]:
    from alignuniform import theory as T
    from alignuniform.metrics import uniformity_bound

    t = cfg["t"]
    objectives = {"uniform_loss": T.uniform_objective(t),
                  "contrastive_loss": T.contrastive_objective(cfg["tau"])}
    rows = []
    for dim in cfg["dims"]:
        bound = uniformity_bound(dim, t)
        for n in cfg["n_points"]:
            for name, objective in objectives.items():
                res = T.optimise_points(n, dim, objective, steps=cfg["steps"], lr=cfg["lr"],
                                        seed=seed)
                l1, l2 = T.batch_uniformity_estimators(res.points, t)
                rows.append({
                    "dim": dim, "n_points": n, "objective": name, "t": t, "bound": bound,
                    "with_self": float(l1), "without_self": float(l2),
                    "mmd": T.mmd_to_uniform(res.points, t),
                    "mmd_iid_expected": (1 - math.exp(bound)) / n,
                    "floor": T.estimator_floor(dim, t, n)["l2_floor"],
                })
    biggest = max(cfg["n_points"])
    largest = [r for r in rows if r["n_points"] == biggest]
    ratio = max(r["mmd"] / r["mmd_iid_expected"] for r in largest)
    shrinking = True
    for key in {(r["dim"], r["objective"]) for r in rows}:
        cur = sorted((r for r in rows if (r["dim"], r["objective"]) == key),
                     key=lambda r: r["n_points"])
        dist = [r["with_self"] - r["bound"] for r in cur]
        shrinking &= all(a > b for a, b in zip(dist, dist[1:], strict=False))
    s2 = [r for r in largest if r["dim"] == 3]
    checks = [
        _check(f"{biggest} optimised points are closer to uniform than iid ones "
               "(squared MMD < half the iid expectation)", ratio < 0.5,
               f"largest ratio {ratio:.3g}"),
        _check("optimised sets approach the bound as N grows (|L1 - bound| shrinks)", shrinking,
               "with self-pairs, per dimension and objective"),
        _check("no optimised set breaks the estimator floors",
               all(r["with_self"] >= r["bound"] - 1e-12 and r["without_self"] >= r["floor"] - 1e-9
                   for r in rows), "with self-pairs >= bound; without >= its floor"),
    ]
    if s2:
        gap = max(abs(r["with_self"] - r["bound"]) for r in s2)
        checks.append(_check(f"S^2: {biggest} optimised points reach the bound (|L1 - b| < 0.01)",
                             gap < 0.01, f"largest |L1 - bound| {gap:.2e}"))
    return rows, checks


def _antipodal(cfg: dict, rng) -> tuple[list[dict], list[dict]]:
    from alignuniform import metrics
    from alignuniform import theory as T

    t, n, rows = cfg["t"], cfg["n"], []
    for dim in cfg["dims"]:
        for name, x in (("uniform", T.sample_uniform(n, dim, rng)),
                        ("antipodal", T.sample_antipodal(n, dim, rng))):
            population = metrics.uniformity_bound(dim, t) if name == "uniform" else \
                T.antipodal_uniformity(t)
            rows.append({"dim": dim, "distribution": name, "mean_dot": T.mean_dot_product(x),
                         "uniform_loss": metrics.uniformity(x, t), "population_uniform": population,
                         "population_mean_dot": 0.0})
    # sd of the pair-mean dot product for n iid zero-mean points is about sqrt(2/(n^2 m)) <= 1/n
    dots_ok = all(abs(r["mean_dot"]) < 5 / n for r in rows)
    sep = min(b["uniform_loss"] - a["uniform_loss"]
              for a, b in zip(rows[::2], rows[1::2], strict=True))
    checks = [
        _check("antipodal and uniform: same mean dot product (|sample| < 5/n)", dots_ok,
               f"largest |mean dot| {max(abs(r['mean_dot']) for r in rows):.2e} "
               f"(5/n = {5 / n:.1e})"),
        _check("L_uniform separates them (antipodal - uniform > 0.5 nats)", sep > 0.5,
               f"smallest separation {sep:.3f} nats"),
    ]
    return rows, checks


def _estimators(cfg: dict, rng) -> tuple[dict, list[dict]]:
    from alignuniform import theory as T
    from alignuniform import uniform_loss

    dim, t = cfg["dim"], cfg["t"]
    rows = T.estimator_bias(dim, t, cfg["batch_sizes"], cfg["n_batches"], rng)
    for r in rows:
        r.update(T.estimator_floor(dim, t, r["batch_size"]))
    # the relation, on arbitrary (not only uniform) batches, against the library's uniform_loss
    worst = 0.0
    for b in cfg["batch_sizes"]:
        x, _ = T.sample_vmf_mixture(T.sample_uniform(3, dim, rng), 5.0, b, rng=rng)
        l1, _ = T.batch_uniformity_estimators(x, t)
        worst = max(worst, abs(float(T.without_self_pairs(l1, b)) - float(uniform_loss(x, t))))
    small = rows[0]
    exact_ok = all(abs(r["with_self_mean_exp"]["mean"] - r["with_self_exact_mean_exp"])
                   <= 4 * r["with_self_mean_exp"]["se"] + 1e-12 for r in rows)
    checks = [
        _check("L2 = log((B e^{L1} - 1)/(B - 1)) against uniform_loss (float64)", worst < 1e-12,
               f"largest |difference| {worst:.2e}"),
        _check(f"without self-pairs, B={small['batch_size']} batches fall below the bound",
               small["frac_below_bound"] > 0,
               f"{small['frac_below_bound']:.0%} of iid batches below; floor "
               f"{small['l2_floor']:.3f} < bound {small['bound']:.3f}"),
        _check("E e^{L1} = 1/B + (1 - 1/B) e^b (within 4 standard errors)", exact_ok,
               "the self-pair estimator's exact bias"),
    ]
    return {"settings": cfg, "rows": rows, "relation_max_abs_error": worst}, checks


def _limit_terms(cfg: dict, rng) -> tuple[list[dict], list[dict]]:
    import numpy as np

    from alignuniform import theory as T

    dim, tau, n = cfg["dim"], cfg["tau"], cfg["n"]
    centres = T.sample_uniform(10, dim, rng)
    pole = np.eye(dim)[0]
    marginals = {
        "uniform,\ntight pairs": (lambda k: T.sample_uniform(k, dim, rng), 200.0),
        "uniform,\nloose pairs": (lambda k: T.sample_uniform(k, dim, rng), 20.0),
        "10 vMF clusters,\ntight pairs": (
            lambda k: T.sample_vmf_mixture(centres, 20.0, k, rng=rng)[0], 200.0),
        "collapsed\n(vMF, kappa=500)": (lambda k: T.sample_vmf(pole, 500.0, k, rng), 200.0),
    }
    rows = []
    for name, (marginal, kappa) in marginals.items():
        x = marginal(n)
        y = T.sample_positive_pairs(x, kappa, rng)
        row = {"name": name, "kappa_pairs": kappa, **T.contrastive_limit_terms(x, y, tau)}
        per_anchor = T.contrastive_per_anchor(x, y, marginal(cfg["bank"]), tau).numpy()
        row["loss_minus_log_m"] = T.MeanCI.of(per_anchor - math.log(cfg["bank"])).as_dict()
        rows.append(row)
    worst_align = max(abs(r["align_term"] - r["align_from_l_align"]) for r in rows)
    jensen = all(r["uniform_term"] <= r["uniform_jensen_bound"] + 1e-12 for r in rows)
    checks = [
        _check("alignment term = -1/tau + L_align/(2 tau) (float64)", worst_align < 1e-12,
               f"largest |difference| {worst_align:.2e}"),
        _check("uniformity term <= 1/tau + L_uniform(t = 1/(2 tau)) (Jensen)", jensen,
               "; ".join(f"{' '.join(r['name'].split())}: {r['uniform_term']:.3f} <= "
                         f"{r['uniform_jensen_bound']:.3f}" for r in rows)),
    ]
    return rows, checks


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from alignuniform.report import theory_figures as F

    mode = "quick" if args.quick else "full"
    cfg = SETTINGS[mode]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    results: dict = {"mode": mode, "seed": args.seed, "settings": cfg, "wall_s": {}}
    checks: list[dict] = []
    figures: dict[str, str] = {}

    sections = ["sampling", "theorem1", "closed_form", "circle", "sphere", "antipodal",
                "estimators", "limit_terms"]
    with tqdm(sections, desc="theory", unit="claim") as bar:
        for section in bar:
            bar.set_postfix_str(section)
            start = time.perf_counter()
            if section == "sampling":
                results[section], new = _sampling(cfg, rng)
            elif section == "theorem1":
                results[section], new = _theorem1(cfg[section], rng)
                figures[section] = F.theorem1_figure(
                    results[section]["rows"], results[section]["fit_all"], out / "theorem1.png")
            elif section == "closed_form":
                results[section], new = _closed_form(cfg[section], rng)
                figures[section] = F.closed_form_figure(results[section], out / "closed_form.png")
            elif section == "circle":
                results[section], new, panels = _circle(cfg[section], args.seed)
                figures[section] = F.circle_figure(panels, out / "circle.png")
            elif section == "sphere":
                results[section], new = _sphere(cfg[section], args.seed)
                figures[section] = F.convergence_figure(results[section], out / "sphere.png")
            elif section == "antipodal":
                results[section], new = _antipodal(cfg[section], rng)
                figures[section] = F.antipodal_figure(results[section], out / "antipodal.png")
            elif section == "estimators":
                results[section], new = _estimators(cfg[section], rng)
                figures[section] = F.estimator_figure(results[section]["rows"],
                                                      out / "estimators.png")
            else:
                results[section], new = _limit_terms(cfg[section], rng)
                figures[section] = F.limit_terms_figure(results[section], out / "limit_terms.png")
            for c in new:
                c["section"] = section
            checks.extend(new)
            results["wall_s"][section] = round(time.perf_counter() - start, 2)

    results["checks"] = checks
    results["figures"] = {k: Path(v).name for k, v in figures.items()}
    tmp = out / "theory.json.tmp"
    tmp.write_text(json.dumps(results, indent=1, default=float))
    os.replace(tmp, out / "theory.json")

    for c in checks:
        print(f"[{'PASS' if c['passed'] else 'FAIL'}] {c['section']}: {c['name']} -- {c['detail']}")
    failed = sum(not c["passed"] for c in checks)
    print(f"{len(checks) - failed}/{len(checks)} checks passed; results in {out / 'theory.json'}")
    return 1 if failed else 0
