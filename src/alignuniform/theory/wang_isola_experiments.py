"""Wang & Isola's claims as experiments: settings in, typed measurements and checks out.

Each experiment is a settings dataclass, a ``run_*`` function that measures, and a result
dataclass whose ``checks()`` turns the measurements into pass/fail verdicts with the
thresholds stated next to them. :mod:`alignuniform.theory.suite` runs them in order at the
``quick`` or ``full`` size. The maths lives in :mod:`~alignuniform.theory.sphere_sampling`,
:mod:`~alignuniform.theory.closed_forms`, :mod:`~alignuniform.theory.theorem1`,
:mod:`~alignuniform.theory.estimators` and :mod:`~alignuniform.theory.point_optimisation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from alignuniform.losses import uniform_loss
from alignuniform.metrics import uniformity, uniformity_bound
from alignuniform.theory._common import MeanCI
from alignuniform.theory.checks import Check
from alignuniform.theory.closed_forms import (
    antipodal_uniformity,
    uniformity_by_quadrature,
    uniformity_monte_carlo,
    vmf_mean_cosine,
)
from alignuniform.theory.estimators import (
    batch_uniformity_estimators,
    estimator_bias,
    estimator_floor,
    mean_dot_product,
    mmd_to_uniform,
    without_self_pairs,
)
from alignuniform.theory.point_optimisation import (
    PointOptimisation,
    circle_gaps,
    contrastive_objective,
    optimise_points,
    uniform_objective,
)
from alignuniform.theory.sphere_sampling import (
    sample_antipodal,
    sample_positive_pairs,
    sample_uniform,
    sample_uniform_dots,
    sample_vmf,
    sample_vmf_mixture,
)
from alignuniform.theory.theorem1 import (
    contrastive_limit_terms,
    contrastive_per_anchor,
    fit_loglog_slope,
    theorem1_limit,
    theorem1_monte_carlo,
)

__all__ = [
    "SamplingSettings", "SamplingResult", "run_sampling",
    "Theorem1Settings", "Theorem1Result", "run_theorem1",
    "ClosedFormSettings", "ClosedFormResult", "run_closed_form",
    "CircleSettings", "CircleResult", "run_circle",
    "SphereSettings", "SphereResult", "run_sphere",
    "AntipodalSettings", "AntipodalResult", "run_antipodal",
    "EstimatorSettings", "EstimatorResult", "run_estimators",
    "LimitTermsSettings", "LimitTermsResult", "run_limit_terms",
]


# ---------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class SamplingSettings:
    """vMF draws per (dim, kappa) and the u.v law's KS test size."""

    dims: tuple[int, ...] = (2, 3, 16)
    kappas: tuple[float, ...] = (1.0, 10.0, 100.0)
    n: int = 20000
    ks_dim: int = 8


@dataclass(frozen=True)
class SamplingResult:
    """vMF mean cosines by Monte Carlo next to ``I_{m/2}/I_{m/2-1}``; the Beta law of u.v."""

    rows: list[dict]
    ks_pvalue: float
    n: int
    ks_dim: int

    #: largest |z| of a Monte-Carlo mean cosine against the Bessel ratio
    MAX_Z = 4.0
    #: a two-sample KS test below this p-value rejects "same law"
    MIN_P = 1e-3

    def checks(self) -> list[Check]:
        worst = max(abs(r["mc"]["mean"] - r["exact"]) / r["mc"]["se"] for r in self.rows)
        return [
            Check("vMF mean cosine I_{m/2}/I_{m/2-1} matches Monte Carlo (|z| < 4)",
                  worst < self.MAX_Z,
                  f"largest |z| {worst:.2f} over {len(self.rows)} (dim, kappa) settings, "
                  f"{self.n:,} draws each"),
            Check(f"u.v from the Beta law matches u.v from vectors (KS test, m={self.ks_dim})",
                  self.ks_pvalue > self.MIN_P, f"p = {self.ks_pvalue:.3g}"),
        ]


def run_sampling(cfg: SamplingSettings, rng: np.random.Generator) -> SamplingResult:
    rows = []
    for dim in cfg.dims:
        for kappa in cfg.kappas:
            x = sample_vmf(np.eye(dim)[0], kappa, cfg.n, rng)
            ci = MeanCI.of(x[:, 0].numpy())
            rows.append({"dim": dim, "kappa": kappa, "exact": vmf_mean_cosine(dim, kappa),
                         "mc": ci.as_dict()})
    u, v = sample_uniform(cfg.n, cfg.ks_dim, rng), sample_uniform(cfg.n, cfg.ks_dim, rng)
    ks = stats.ks_2samp((u * v).sum(1).numpy(), sample_uniform_dots(cfg.ks_dim, cfg.n, rng))
    return SamplingResult(rows, float(ks.pvalue), cfg.n, cfg.ks_dim)


# ---------------------------------------------------------------------------- Theorem 1


@dataclass(frozen=True)
class Theorem1Settings:
    """The Theorem-1 model (x uniform, y ~ vMF(x, kappa)) and M = 1, 2, ..., 2^max_log2_m."""

    dim: int = 8
    tau: float = 0.5
    kappa: float = 10.0
    max_log2_m: int = 16
    n_samples: int = 10000
    #: fit the gap's tail from this M on, where the O(1/M) term dominates
    tail_from_m: int = 16


@dataclass(frozen=True)
class Theorem1Result:
    """``L_contrastive(tau, M) - log M`` by Monte Carlo against the closed-form limit.

    ``fit_all``/``fit_tail`` are None when a gap estimate is not positive (no log-log fit).
    """

    limit: float
    align_term: float
    uniform_term: float
    rows: list[dict]
    fit_all: dict | None
    fit_tail: dict | None
    tail_from_m: int

    #: share of the per-M 95% intervals of the sampled limit that must contain the limit
    MIN_COVERAGE = 0.8
    #: the paper bounds the gap by O(M^{-1/2}); a fitted slope above this fails
    MAX_SLOPE = -0.4

    def checks(self) -> list[Check]:
        inside = sum(r["limit_mc"]["low"] <= self.limit <= r["limit_mc"]["high"]
                     for r in self.rows) / len(self.rows)
        last = self.rows[-1]["loss_minus_log_m"]
        m_last = self.rows[-1]["m"]
        if self.fit_all is None:
            slope_ok, slope_detail = False, "a gap estimate is not positive: no log-log fit"
        else:
            slope_ok = self.fit_all["slope"] <= self.MAX_SLOPE
            slope_detail = f"slope {_slope(self.fit_all)} (all M)"
            if self.fit_tail is not None:
                slope_detail += f"; {_slope(self.fit_tail)} (M >= {self.tail_from_m})"
        return [
            Check("Monte-Carlo limit contains the closed-form limit",
                  inside >= self.MIN_COVERAGE,
                  f"{inside:.0%} of the {len(self.rows)} 95% CIs contain it (>= 80% required)"),
            Check(f"L_contrastive - log M at M={m_last} contains the limit",
                  last["low"] <= self.limit <= last["high"],
                  f"{last['mean']:.5f} ± {last['high'] - last['mean']:.5f} vs {self.limit:.5f}"),
            Check("gap shrinks at least like M^{-1/2}: fitted log-log slope <= -0.4",
                  slope_ok, slope_detail),
        ]


def _slope(fit: dict) -> str:
    return f"{fit['slope']:.3f} ± {1.96 * fit['slope_se']:.3f}"


def run_theorem1(cfg: Theorem1Settings, rng: np.random.Generator) -> Theorem1Result:
    ms = [2**k for k in range(cfg.max_log2_m + 1)]
    rows = theorem1_monte_carlo(cfg.dim, cfg.tau, cfg.kappa, ms, cfg.n_samples, rng)
    gaps = [r["gap_cv"]["mean"] for r in rows]
    fit_all = fit_tail = None
    if min(gaps) > 0:
        fit_all = fit_loglog_slope(ms, gaps)
        tail = [(m, g) for m, g in zip(ms, gaps, strict=True) if m >= cfg.tail_from_m]
        if len(tail) >= 3:
            fit_tail = fit_loglog_slope(*zip(*tail, strict=True))
    limit = theorem1_limit(cfg.dim, cfg.tau, cfg.kappa)
    return Theorem1Result(limit["limit"], limit["align_term"], limit["uniform_term"], rows,
                          fit_all, fit_tail, cfg.tail_from_m)


# ---------------------------------------------------------------------------- closed form


@dataclass(frozen=True)
class ClosedFormSettings:
    """The (m, t) grid and the pairs per Monte-Carlo estimate."""

    dims: tuple[int, ...] = (2, 3, 8, 32, 128, 512)
    ts: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    n_pairs: int = 200000


@dataclass(frozen=True)
class ClosedFormResult:
    """The uniform optimum ``metrics.uniformity_bound`` against quadrature and Monte Carlo.

    Each row: ``dim``, ``t``, ``bound``, ``quadrature``, ``mc`` (``value``/``low``/``high``;
    ``low`` None when unbounded below).
    """

    rows: list[dict]

    #: largest |closed form - quadrature| allowed
    QUADRATURE_TOL = 1e-6
    #: share of the Monte-Carlo 95% intervals that must contain the closed form
    MIN_COVERAGE = 0.8

    def checks(self) -> list[Check]:
        # np.max propagates NaN, so a failed quadrature fails the check
        worst = float(np.max([abs(r["bound"] - r["quadrature"]) for r in self.rows]))
        share = sum(_inside(r["mc"], r["bound"]) for r in self.rows) / len(self.rows)
        return [
            Check("closed form = 1-D quadrature of the density of u.v (to 1e-6)",
                  worst < self.QUADRATURE_TOL,
                  f"largest |difference| {worst:.2e} over {len(self.rows)} (m, t)"),
            Check("closed form inside the Monte-Carlo 95% CI", share >= self.MIN_COVERAGE,
                  f"{share:.0%} of {len(self.rows)} (m, t) inside (expect ~95%; >= 80% required)"),
        ]


def _inside(mc: dict, value: float) -> bool:
    low = -math.inf if mc["low"] is None else mc["low"]
    return low <= value <= mc["high"]


def run_closed_form(cfg: ClosedFormSettings, rng: np.random.Generator) -> ClosedFormResult:
    rows = []
    for dim in cfg.dims:
        for t in cfg.ts:
            rows.append({"dim": dim, "t": t, "bound": uniformity_bound(dim, t),
                         "quadrature": uniformity_by_quadrature(dim, t),
                         "mc": uniformity_monte_carlo(dim, t, cfg.n_pairs, rng)})
    return ClosedFormResult(rows)


# ---------------------------------------------------------------------------- S^1


@dataclass(frozen=True)
class CircleSettings:
    """N points on S^1 and the descent of each objective."""

    n_points: int = 16
    t: float = 2.0
    tau: float = 0.2
    steps: int = 600
    lr: float = 0.1


def _objectives(t: float, tau: float) -> dict:
    return {"uniform_loss": uniform_objective(t), "contrastive_loss": contrastive_objective(tau)}


@dataclass(frozen=True)
class CircleResult:
    """N free points on S^1 after gradient descent of each objective, from iid points."""

    initial: torch.Tensor
    runs: dict[str, PointOptimisation]

    #: largest deviation (degrees) of a gap from 360/N
    MAX_DEGREES = 0.5

    def gap_errors(self) -> dict[str, float]:
        """Largest |gap - 2 pi / N| in degrees, per objective."""
        return {name: float(np.degrees(np.abs(circle_gaps(r.points)
                                              - 2 * math.pi / len(r.points)).max()))
                for name, r in self.runs.items()}

    def checks(self) -> list[Check]:
        return [
            Check(f"S^1: {name} spaces {len(self.initial)} points equally (within 0.5 degree)",
                  dev < self.MAX_DEGREES, f"largest gap error {dev:.3g} degrees")
            for name, dev in self.gap_errors().items()
        ]


def run_circle(cfg: CircleSettings, seed: int) -> CircleResult:
    gen = torch.Generator().manual_seed(seed)
    # optimise_points starts from the same seeded draw, so this is its starting point
    initial = torch.nn.functional.normalize(
        torch.randn(cfg.n_points, 2, generator=gen, dtype=torch.float64), dim=1
    )
    runs = {name: optimise_points(cfg.n_points, 2, objective, steps=cfg.steps, lr=cfg.lr,
                                  seed=seed)
            for name, objective in _objectives(cfg.t, cfg.tau).items()}
    return CircleResult(initial, runs)


# ---------------------------------------------------------------------------- S^2, S^7


@dataclass(frozen=True)
class SphereSettings:
    """Point counts and dimensions for the descent on S^2, S^7, ..."""

    dims: tuple[int, ...] = (3, 8)
    n_points: tuple[int, ...] = (16, 32, 64, 128, 256)
    t: float = 2.0
    tau: float = 0.2
    steps: int = 300
    lr: float = 0.05


@dataclass(frozen=True)
class SphereResult:
    """Optimised N-point sets: both batch estimators, the squared MMD, the floors.

    Each row: ``dim``, ``n_points``, ``objective``, ``t``, ``bound``, ``with_self``,
    ``without_self``, ``mmd``, ``mmd_iid_expected``, ``floor``.
    """

    rows: list[dict]

    #: the largest N's squared MMD must be below this share of the iid expectation
    MAX_MMD_RATIO = 0.5
    #: on S^2 the largest N must reach the bound (with self-pairs) this closely
    S2_TOL = 0.01

    def checks(self) -> list[Check]:
        biggest = max(r["n_points"] for r in self.rows)
        largest = [r for r in self.rows if r["n_points"] == biggest]
        ratio = max(r["mmd"] / r["mmd_iid_expected"] for r in largest)
        shrinking = True
        for key in {(r["dim"], r["objective"]) for r in self.rows}:
            cur = sorted((r for r in self.rows if (r["dim"], r["objective"]) == key),
                         key=lambda r: r["n_points"])
            dist = [r["with_self"] - r["bound"] for r in cur]
            shrinking &= all(a > b for a, b in zip(dist, dist[1:], strict=False))
        floors = all(r["with_self"] >= r["bound"] - 1e-12 and r["without_self"] >= r["floor"] - 1e-9
                     for r in self.rows)
        out = [
            Check(f"{biggest} optimised points are closer to uniform than iid ones "
                  "(squared MMD < half the iid expectation)", ratio < self.MAX_MMD_RATIO,
                  f"largest ratio {ratio:.3g}"),
            Check("optimised sets approach the bound as N grows (|L1 - bound| shrinks)",
                  shrinking, "with self-pairs, per dimension and objective"),
            Check("no optimised set breaks the estimator floors", floors,
                  "with self-pairs >= bound; without >= its floor"),
        ]
        s2 = [r for r in largest if r["dim"] == 3]
        if s2:
            gap = max(abs(r["with_self"] - r["bound"]) for r in s2)
            out.append(Check(f"S^2: {biggest} optimised points reach the bound (|L1 - b| < 0.01)",
                             gap < self.S2_TOL, f"largest |L1 - bound| {gap:.2e}"))
        return out


def run_sphere(cfg: SphereSettings, seed: int) -> SphereResult:
    rows = []
    for dim in cfg.dims:
        bound = uniformity_bound(dim, cfg.t)
        for n in cfg.n_points:
            for name, objective in _objectives(cfg.t, cfg.tau).items():
                res = optimise_points(n, dim, objective, steps=cfg.steps, lr=cfg.lr, seed=seed)
                l1, l2 = batch_uniformity_estimators(res.points, cfg.t)
                rows.append({
                    "dim": dim, "n_points": n, "objective": name, "t": cfg.t, "bound": bound,
                    "with_self": float(l1), "without_self": float(l2),
                    "mmd": mmd_to_uniform(res.points, cfg.t),
                    "mmd_iid_expected": (1 - math.exp(bound)) / n,
                    "floor": estimator_floor(dim, cfg.t, n)["l2_floor"],
                })
    return SphereResult(rows)


# ---------------------------------------------------------------------------- antipodal


@dataclass(frozen=True)
class AntipodalSettings:
    """Dimensions and sample size for the antipodal counterexample."""

    dims: tuple[int, ...] = (2, 3, 16, 128)
    t: float = 2.0
    n: int = 10000


@dataclass(frozen=True)
class AntipodalResult:
    """Uniform and antipodal samples: mean dot product and sample ``L_uniform`` per dim.

    ``rows`` alternate uniform, antipodal for each dim.
    """

    rows: list[dict]
    n: int

    #: |sample mean dot| below this many 1/n (its sd is below 1/n for zero-mean laws)
    DOT_TOL_TIMES_1_OVER_N = 5.0
    #: L_uniform(antipodal) - L_uniform(uniform) must exceed this (nats)
    MIN_SEPARATION = 0.5

    def checks(self) -> list[Check]:
        tol = self.DOT_TOL_TIMES_1_OVER_N / self.n
        biggest = max(abs(r["mean_dot"]) for r in self.rows)
        sep = min(b["uniform_loss"] - a["uniform_loss"]
                  for a, b in zip(self.rows[::2], self.rows[1::2], strict=True))
        return [
            Check("antipodal and uniform: same mean dot product (|sample| < 5/n)",
                  biggest < tol, f"largest |mean dot| {biggest:.2e} (5/n = {tol:.1e})"),
            Check("L_uniform separates them (antipodal - uniform > 0.5 nats)",
                  sep > self.MIN_SEPARATION, f"smallest separation {sep:.3f} nats"),
        ]


def run_antipodal(cfg: AntipodalSettings, rng: np.random.Generator) -> AntipodalResult:
    rows = []
    for dim in cfg.dims:
        for name, x, population in (
            ("uniform", sample_uniform(cfg.n, dim, rng), uniformity_bound(dim, cfg.t)),
            ("antipodal", sample_antipodal(cfg.n, dim, rng), antipodal_uniformity(cfg.t)),
        ):
            rows.append({"dim": dim, "distribution": name, "mean_dot": mean_dot_product(x),
                         "uniform_loss": uniformity(x, cfg.t), "population_uniform": population,
                         "population_mean_dot": 0.0})
    return AntipodalResult(rows, cfg.n)


# ---------------------------------------------------------------------------- batch estimators


@dataclass(frozen=True)
class EstimatorSettings:
    """Batch sizes and batches per size for the two batch estimators."""

    dim: int = 3
    t: float = 2.0
    batch_sizes: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256, 512)
    n_batches: int = 1000


@dataclass(frozen=True)
class EstimatorResult:
    """The two batch estimators of ``L_uniform``: bias per B, floors, and their exact relation.

    ``rows`` are :func:`~alignuniform.theory.estimators.estimator_bias` rows merged with
    :func:`~alignuniform.theory.estimators.estimator_floor`; ``relation_max_abs_error`` is the
    largest |L2 from L1 - uniform_loss| over vMF-mixture batches of each size.
    """

    rows: list[dict]
    relation_max_abs_error: float

    #: float64 agreement required of the exact relation
    RELATION_TOL = 1e-12

    def checks(self) -> list[Check]:
        small = self.rows[0]
        exact_ok = all(abs(r["with_self_mean_exp"]["mean"] - r["with_self_exact_mean_exp"])
                       <= 4 * r["with_self_mean_exp"]["se"] + 1e-12 for r in self.rows)
        return [
            Check("L2 = log((B e^{L1} - 1)/(B - 1)) against uniform_loss (float64)",
                  self.relation_max_abs_error < self.RELATION_TOL,
                  f"largest |difference| {self.relation_max_abs_error:.2e}"),
            Check(f"without self-pairs, B={small['batch_size']} batches fall below the bound",
                  small["frac_below_bound"] > 0,
                  f"{small['frac_below_bound']:.0%} of iid batches below; floor "
                  f"{small['l2_floor']:.3f} < bound {small['bound']:.3f}"),
            Check("E e^{L1} = 1/B + (1 - 1/B) e^b (within 4 standard errors)", exact_ok,
                  "the self-pair estimator's exact bias"),
        ]


def run_estimators(cfg: EstimatorSettings, rng: np.random.Generator) -> EstimatorResult:
    rows = estimator_bias(cfg.dim, cfg.t, cfg.batch_sizes, cfg.n_batches, rng)
    for r in rows:
        r.update(estimator_floor(cfg.dim, cfg.t, r["batch_size"]))
    # the relation, on arbitrary (not only uniform) batches, against the library's uniform_loss
    worst = 0.0
    for b in cfg.batch_sizes:
        x, _ = sample_vmf_mixture(sample_uniform(3, cfg.dim, rng), 5.0, b, rng=rng)
        l1, _ = batch_uniformity_estimators(x, cfg.t)
        worst = max(worst, abs(float(without_self_pairs(l1, b)) - float(uniform_loss(x, cfg.t))))
    return EstimatorResult(rows, worst)


# ---------------------------------------------------------------------------- limit terms


@dataclass(frozen=True)
class LimitTermsSettings:
    """Sample size and negatives bank for the contrastive limit's terms."""

    dim: int = 16
    tau: float = 0.2
    n: int = 4000
    bank: int = 16384


@dataclass(frozen=True)
class LimitTermsResult:
    """Theorem 1's two terms for four embedding laws, beside ``L_align`` and ``L_uniform``.

    Each row: :func:`~alignuniform.theory.theorem1.contrastive_limit_terms` plus ``name``,
    ``kappa_pairs`` and ``loss_minus_log_m`` (a :class:`MeanCI` dict, ``bank`` negatives).
    """

    rows: list[dict]

    #: float64 agreement required of the exact alignment identity
    IDENTITY_TOL = 1e-12

    def checks(self) -> list[Check]:
        worst = max(abs(r["align_term"] - r["align_from_l_align"]) for r in self.rows)
        jensen = all(r["uniform_term"] <= r["uniform_jensen_bound"] + 1e-12 for r in self.rows)
        return [
            Check("alignment term = -1/tau + L_align/(2 tau) (float64)",
                  worst < self.IDENTITY_TOL, f"largest |difference| {worst:.2e}"),
            Check("uniformity term <= 1/tau + L_uniform(t = 1/(2 tau)) (Jensen)", jensen,
                  "; ".join(f"{' '.join(r['name'].split())}: {r['uniform_term']:.3f} <= "
                            f"{r['uniform_jensen_bound']:.3f}" for r in self.rows)),
        ]


def run_limit_terms(cfg: LimitTermsSettings, rng: np.random.Generator) -> LimitTermsResult:
    dim = cfg.dim
    centres = sample_uniform(10, dim, rng)
    pole = np.eye(dim)[0]
    marginals = {
        "uniform,\ntight pairs": (lambda k: sample_uniform(k, dim, rng), 200.0),
        "uniform,\nloose pairs": (lambda k: sample_uniform(k, dim, rng), 20.0),
        "10 vMF clusters,\ntight pairs": (
            lambda k: sample_vmf_mixture(centres, 20.0, k, rng=rng)[0], 200.0),
        "collapsed\n(vMF, kappa=500)": (lambda k: sample_vmf(pole, 500.0, k, rng), 200.0),
    }
    rows = []
    for name, (marginal, kappa) in marginals.items():
        x = marginal(cfg.n)
        y = sample_positive_pairs(x, kappa, rng)
        row = {"name": name, "kappa_pairs": kappa, **contrastive_limit_terms(x, y, cfg.tau)}
        per_anchor = contrastive_per_anchor(x, y, marginal(cfg.bank), cfg.tau).numpy()
        row["loss_minus_log_m"] = MeanCI.of(per_anchor - math.log(cfg.bank)).as_dict()
        rows.append(row)
    return LimitTermsResult(rows)
