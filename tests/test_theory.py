"""Each numerical claim of ``alignuniform.theory`` as a test with a stated tolerance.

Monte-Carlo checks are seeded, so they are deterministic; their tolerances are still set in
standard errors (4 SE, a two-sided 6e-5 false-alarm rate) so that a change of seed or of
sampling order does not turn them into flaky tests.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from alignuniform import contrastive_loss, theory, uniform_loss
from alignuniform.metrics import uniformity, uniformity_bound
from alignuniform.theory import arora, arora_experiments

Z_TOL = 4.0  # standard errors allowed between a Monte-Carlo mean and its exact value


# ---------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("dim", [2, 3, 17])
def test_samplers_return_unit_float64_rows_and_are_seeded(dim):
    mu = np.arange(1, dim + 1, dtype=float)
    centres = theory.sample_uniform(4, dim, 0)
    samples = [
        theory.sample_uniform(50, dim, 1),
        theory.sample_vmf(mu, 5.0, 50, 1),
        theory.sample_vmf_mixture(centres, 5.0, 50, rng=1)[0],
        theory.sample_positive_pairs(centres, 5.0, 1),
        theory.sample_antipodal(50, dim, 1),
    ]
    for x in samples:
        assert x.dtype == torch.float64 and x.shape[1] == dim
        torch.testing.assert_close(x.norm(dim=1), torch.ones(x.shape[0], dtype=torch.float64))
    torch.testing.assert_close(theory.sample_vmf(mu, 5.0, 50, 1), samples[1], rtol=0, atol=0)


@pytest.mark.parametrize(("dim", "kappa"), [(2, 1.0), (3, 10.0), (16, 4.0), (64, 100.0)])
def test_vmf_mean_cosine_matches_monte_carlo(dim, kappa):
    x = theory.sample_vmf(np.eye(dim)[0], kappa, 20000, rng=dim)
    ci = theory.MeanCI.of(x[:, 0].numpy())
    assert abs(ci.mean - theory.vmf_mean_cosine(dim, kappa)) < Z_TOL * ci.se


def test_vmf_mean_cosine_closed_form_on_s2():
    # on S^2 the mean resultant length is coth(kappa) - 1/kappa (Langevin function)
    for kappa in (0.5, 3.0, 40.0, 700.0):
        langevin = 1 / math.tanh(kappa) - 1 / kappa
        assert theory.vmf_mean_cosine(3, kappa) == pytest.approx(langevin, rel=1e-12)


def test_positive_pairs_are_vmf_around_each_anchor():
    # the reflection must centre each partner on its own anchor: E[x.y] and E[y | x] ~ x
    rng = np.random.default_rng(0)
    x = theory.sample_uniform(20000, 5, rng)
    y = theory.sample_positive_pairs(x, 8.0, rng)
    ci = theory.MeanCI.of((x * y).sum(1).numpy())
    assert abs(ci.mean - theory.vmf_mean_cosine(5, 8.0)) < Z_TOL * ci.se
    # the component of y orthogonal to x has mean zero in every coordinate
    orth = y - (x * y).sum(1, keepdim=True) * x
    se = orth.std(0) / math.sqrt(len(orth))
    assert (orth.mean(0).abs() < Z_TOL * se).all()
    # an anchor exactly at the pole is left where the vMF around the pole put it
    pole = torch.zeros(3, 5, dtype=torch.float64)
    pole[:, 0] = 1
    assert (theory.sample_positive_pairs(pole, 1e4, 0)[:, 0] > 0.99).all()


def test_vmf_mixture_weights_and_labels():
    centres = torch.eye(3, dtype=torch.float64)
    x, labels = theory.sample_vmf_mixture(centres, 200.0, 6000, weights=[1, 2, 3], rng=0)
    counts = np.bincount(labels.numpy(), minlength=3) / 6000
    np.testing.assert_allclose(counts, [1 / 6, 2 / 6, 3 / 6], atol=0.03)
    # each point is near its own centre (kappa = 200: cosine ~ 0.995)
    assert ((x * centres[labels]).sum(1) > 0.9).all()


def test_uniform_dots_follow_the_law_of_u_dot_v():
    rng = np.random.default_rng(3)
    u, v = theory.sample_uniform(20000, 6, rng), theory.sample_uniform(20000, 6, rng)
    test = stats.ks_2samp((u * v).sum(1).numpy(), theory.sample_uniform_dots(6, 20000, rng))
    assert test.pvalue > 1e-3


@pytest.mark.parametrize("dim", [2, 3, 10, 300])
def test_uniform_dot_density_is_normalised(dim):
    # s = cos(theta) removes the dim=2 end-point singularity
    total, _ = integrate.quad(
        lambda th: theory.uniform_dot_density(math.cos(th), dim) * math.sin(th), 0, math.pi,
        epsabs=1e-13,
    )
    assert total == pytest.approx(1.0, abs=1e-9)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="dim must be an integer >= 2"):
        theory.sample_uniform(5, 1)
    with pytest.raises(ValueError, match="kappa must be a positive"):
        theory.sample_vmf([1.0, 0.0], 0.0, 5)
    with pytest.raises(ValueError, match="unit vectors"):
        theory.sample_positive_pairs(torch.ones(3, 2), 1.0)
    with pytest.raises(ValueError, match="weights"):
        theory.sample_vmf_mixture(torch.eye(2), 1.0, 5, weights=[1.0])
    with pytest.raises(ValueError, match="positive x and y"):
        theory.fit_loglog_slope([1, 2, 3], [1.0, -1.0, 0.5])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        theory.circle_gaps(torch.ones(4, 3))
    with pytest.raises(ValueError, match="at least 3 pairs"):
        theory.contrastive_limit_terms(torch.eye(2), torch.eye(2), 0.5)


# ---------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("dim", [2, 3, 4, 8, 32, 128, 512])
@pytest.mark.parametrize("t", [0.1, 1.0, 2.0, 5.0, 10.0])
def test_closed_form_matches_quadrature_of_the_dot_density(dim, t):
    # the tolerance is 1e-6; the quadrature actually agrees to ~1e-12
    assert theory.uniformity_by_quadrature(dim, t) == pytest.approx(
        uniformity_bound(dim, t), abs=1e-6
    )


def test_closed_form_matches_arbitrary_precision():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    for dim, t in [(2, 2.0), (3, 0.5), (128, 10.0), (512, 1.0)]:
        exact = float(-2 * t + mpmath.log(mpmath.hyp0f1(mpmath.mpf(dim) / 2, t * t)))
        assert theory.uniformity_by_quadrature(dim, t) == pytest.approx(exact, abs=1e-10)


@pytest.mark.parametrize(("dim", "t"), [(2, 2.0), (3, 1.0), (16, 2.0), (64, 0.5)])
def test_closed_form_inside_monte_carlo_interval(dim, t):
    mc = theory.uniformity_monte_carlo(dim, t, 40000, rng=dim)
    half = (mc["high"] - mc["low"]) / 2
    # the interval is 1.96 SE wide on each side; allow Z_TOL SE
    assert abs(mc["value"] - uniformity_bound(dim, t)) < half * Z_TOL / theory.Z95


def _log_sphere_average(dim: int, log_g) -> float:
    """``log E g(u.v)`` for uniform u, v on S^{dim-1}, by quadrature over the angle.

    The reference for the closed forms: with ``s = cos(theta)`` the law of the angle is
    proportional to ``sin(theta)^(dim-2)``, so no Beta function, hypergeometric function or
    density from the library enters. Both integrals are taken after dividing by their peak
    (large ``dim`` concentrates them sharply), and the peak is handed to QUADPACK.
    """

    def log_w(th):
        return (dim - 2) * math.log(math.sin(th)) if 0 < th < math.pi else -math.inf

    def log_integral(log_f):
        grid = np.linspace(1e-9, math.pi - 1e-9, 20001)
        values = np.array([log_f(th) for th in grid])
        top, peak = values.max(), float(grid[values.argmax()])
        total, _ = integrate.quad(lambda th: math.exp(log_f(th) - top), 0.0, math.pi,
                                  points=[peak], epsabs=0.0, epsrel=1e-12, limit=400)
        return top + math.log(total)

    return log_integral(lambda th: log_w(th) + log_g(math.cos(th))) - log_integral(log_w)


@pytest.mark.parametrize("dim", [2, 3, 8, 32, 512])
@pytest.mark.parametrize("t", [0.25, 2.0, 8.0])
def test_closed_form_matches_an_independent_quadrature_over_the_angle(dim, t):
    reference = _log_sphere_average(dim, lambda s: -2 * t * (1 - s))
    assert uniformity_bound(dim, t) == pytest.approx(reference, abs=1e-9)
    assert theory.uniformity_by_quadrature(dim, t) == pytest.approx(reference, abs=1e-9)


@pytest.mark.parametrize("t", [0.01, 0.5, 2.0, 30.0])
def test_closed_form_on_s2_is_the_sinh_formula(t):
    # on S^2 u.v is uniform on [-1, 1]: E e^{-2t(1-s)} = e^{-2t} sinh(2t) / (2t)
    sinh_form = -2 * t + math.log(math.sinh(2 * t) / (2 * t))
    assert uniformity_bound(3, t) == pytest.approx(sinh_form, abs=1e-12)
    assert theory.uniformity_by_quadrature(3, t) == pytest.approx(sinh_form, abs=1e-12)
    # and log E e^{kappa u.v} = log(sinh(kappa) / kappa)
    kappa = 2 * t
    assert theory.log_mean_exp_uniform_dot(3, kappa) == pytest.approx(
        math.log(math.sinh(kappa) / kappa), abs=1e-12)


@pytest.mark.parametrize(("dim", "kappa"), [(2, 1.0), (8, 2.0), (8, 10.0), (128, 14.0)])
def test_log_mean_exp_uniform_dot_against_quadrature(dim, kappa):
    reference = _log_sphere_average(dim, lambda s: kappa * s)
    assert theory.log_mean_exp_uniform_dot(dim, kappa) == pytest.approx(reference, abs=1e-9)


# ---------------------------------------------------------------------------- Theorem 1

MS = [1, 4, 16, 64, 256, 1024, 4096, 16384]


@pytest.fixture(scope="module")
def theorem1_rows():
    return theory.theorem1_monte_carlo(8, 0.5, 10.0, MS, n_samples=500, rng=0)


def _theorem1_limit_reference(dim: int, tau: float, kappa: float) -> float:
    """Theorem 1's limit ``-(1/tau) E[x.y] + log E e^{u.v/tau}``, by quadrature only.

    The vMF mean cosine is ``E[s e^{kappa s}] / E[e^{kappa s}]`` under the uniform law of
    ``s = u.v``, taken as ``E[(1+s) e^{kappa s}] / E[e^{kappa s}] - 1`` so the log stays real.
    """
    log_norm = _log_sphere_average(dim, lambda s: kappa * s)
    lifted = _log_sphere_average(dim, lambda s: math.log1p(s) + kappa * s if s > -1 else -math.inf)
    mean_cosine = math.exp(lifted - log_norm) - 1
    return -mean_cosine / tau + _log_sphere_average(dim, lambda s: s / tau)


def test_theorem1_limit_against_quadrature_and_the_s2_closed_form():
    for dim, tau, kappa in [(8, 0.5, 10.0), (5, 0.2, 3.0), (64, 1.0, 50.0)]:
        assert theory.theorem1_limit(dim, tau, kappa)["limit"] == pytest.approx(
            _theorem1_limit_reference(dim, tau, kappa), abs=1e-8)
    # S^2: E[x.y] = coth(kappa) - 1/kappa and E e^{u.v/tau} = tau sinh(1/tau)
    for tau, kappa in [(0.5, 10.0), (0.1, 2.0), (2.0, 0.3)]:
        closed = -(1 / math.tanh(kappa) - 1 / kappa) / tau + math.log(tau * math.sinh(1 / tau))
        assert theory.theorem1_limit(3, tau, kappa)["limit"] == pytest.approx(closed, abs=1e-12)


def test_theorem1_limit_is_inside_the_monte_carlo_interval(theorem1_rows):
    # the target is the quadrature, so the sampled limit is not compared through its own log Z
    limit = _theorem1_limit_reference(8, 0.5, 10.0)
    for row in theorem1_rows:
        assert abs(row["limit_mc"]["mean"] - limit) < Z_TOL * row["limit_mc"]["se"]
    last = theorem1_rows[-1]
    assert last["m"] >= 16384
    # the loss itself never uses log Z: L_M - log M at large M is an independent estimate
    assert abs(last["loss_minus_log_m"]["mean"] - limit) < Z_TOL * last["loss_minus_log_m"]["se"]


def test_theorem1_gap_shrinks_at_least_like_inverse_sqrt_m(theorem1_rows):
    gaps = [r["gap_cv"]["mean"] for r in theorem1_rows]
    assert min(gaps) > 0
    fit = theory.fit_loglog_slope(MS, gaps)
    assert fit["slope"] <= -0.4  # the requirement; the measured slope is close to -1
    # the plain and control-variate estimators estimate the same gap
    for row in theorem1_rows:
        diff = row["gap"]["mean"] - row["gap_cv"]["mean"]
        assert abs(diff) < Z_TOL * math.hypot(row["gap"]["se"], row["gap_cv"]["se"])


def test_theorem1_per_anchor_loss_is_the_library_contrastive_loss():
    rng = np.random.default_rng(1)
    x = theory.sample_uniform(64, 5, rng)
    y = theory.sample_positive_pairs(x, 4.0, rng)
    bank = theory.sample_uniform(300, 5, rng)
    ours = (theory.contrastive_per_anchor(x, y, bank, 0.3)
            + theory.contrastive_per_anchor(y, x, bank, 0.3)).mean() / 2
    torch.testing.assert_close(ours, contrastive_loss(x, y, 0.3, negatives=bank),
                               rtol=1e-12, atol=1e-12)


def test_fit_loglog_slope_recovers_a_power_law():
    x = np.array([1.0, 2.0, 8.0, 100.0])
    fit = theory.fit_loglog_slope(x, 3.0 * x**-0.75)
    assert fit["slope"] == pytest.approx(-0.75, abs=1e-12)
    assert fit["intercept"] == pytest.approx(math.log(3.0), abs=1e-12)


# ------------------------------------------------------------------- contrastive limit terms


def test_limit_terms_identities_and_jensen():
    rng = np.random.default_rng(2)
    cases = {
        "uniform": theory.sample_uniform(600, 8, rng),
        "clusters": theory.sample_vmf_mixture(theory.sample_uniform(4, 8, rng), 15.0, 600,
                                              rng=rng)[0],
    }
    for name, x in cases.items():
        y = theory.sample_positive_pairs(x, 50.0, rng)
        terms = theory.contrastive_limit_terms(x, y, tau=0.25)
        assert terms["t"] == 2.0
        assert terms["align_term"] == pytest.approx(terms["align_from_l_align"], abs=1e-12)
        assert terms["uniform_term"] <= terms["uniform_jensen_bound"] + 1e-12
        if name == "uniform":  # every point sees nearly the same potential: Jensen is tight
            assert terms["uniform_jensen_bound"] - terms["uniform_term"] < 0.01
        else:
            assert terms["uniform_jensen_bound"] - terms["uniform_term"] > 0.01


def test_limit_terms_match_the_loss_with_many_negatives():
    rng = np.random.default_rng(4)
    x = theory.sample_uniform(1000, 6, rng)
    y = theory.sample_positive_pairs(x, 30.0, rng)
    terms = theory.contrastive_limit_terms(x, y, tau=0.5)
    m = 8192
    per_anchor = theory.contrastive_per_anchor(x, y, theory.sample_uniform(m, 6, rng), 0.5)
    ci = theory.MeanCI.of(per_anchor.numpy() - math.log(m))
    # uniformity term from the sample's own 999 negatives has its own O(1/N) bias: 0.01 slack
    assert abs(ci.mean - terms["limit"]) < Z_TOL * ci.se + 0.01


# ---------------------------------------------------------------------------- batch estimators


def _brute_force_estimators(x: torch.Tensor, t: float) -> tuple[float, float]:
    b = len(x)
    k = [[math.exp(-t * float((x[i] - x[j]).pow(2).sum())) for j in range(b)] for i in range(b)]
    total = sum(map(sum, k))
    off = total - sum(k[i][i] for i in range(b))
    return math.log(total / b**2), math.log(off / (b * (b - 1)))


def test_batch_estimators_against_brute_force_loops():
    x = theory.sample_uniform(9, 4, 0)
    l1, l2 = theory.batch_uniformity_estimators(x, 1.5)
    ref1, ref2 = _brute_force_estimators(x, 1.5)
    assert float(l1) == pytest.approx(ref1, abs=1e-13)
    assert float(l2) == pytest.approx(ref2, abs=1e-13)
    batched = theory.batch_uniformity_estimators(torch.stack([x, x.flip(1)]), 1.5)
    assert batched[0].shape == (2,)


@pytest.mark.parametrize("b", [2, 3, 16, 200])
def test_estimator_relation_is_exact_in_float64(b):
    rng = np.random.default_rng(b)
    x, _ = theory.sample_vmf_mixture(theory.sample_uniform(3, 5, rng), 4.0, b, rng=rng)
    l1, l2 = theory.batch_uniformity_estimators(x, 2.0)
    assert float(theory.without_self_pairs(l1, b)) == pytest.approx(float(l2), abs=1e-12)
    assert float(theory.with_self_pairs(l2, b)) == pytest.approx(float(l1), abs=1e-12)
    # and against the library's uniform_loss (an independent implementation)
    assert float(theory.without_self_pairs(l1, b)) == pytest.approx(
        float(uniform_loss(x, 2.0)), abs=1e-12
    )


def test_self_pair_estimator_never_below_bound_and_floors_hold():
    t = 2.0
    rng = np.random.default_rng(5)
    for dim in (2, 3, 7):
        bound = uniformity_bound(dim, t)
        for b in (2, 3, 5, 12, 40):
            floor = theory.estimator_floor(dim, t, b)
            for kappa in (0.5, 5.0, 50.0):
                x, _ = theory.sample_vmf_mixture(theory.sample_uniform(2, dim, rng), kappa, b,
                                                 rng=rng)
                l1, l2 = theory.batch_uniformity_estimators(x, t)
                assert float(l1) >= bound - 1e-12
                assert float(l2) >= floor["l2_floor"] - 1e-12


def test_simplex_attains_the_floor_below_the_bound():
    t, dim = 2.0, 5
    for b in (2, 4, 6):  # B <= dim + 1: the regular simplex fits
        # regular simplex: centred standard basis of R^B, embedded in R^dim
        e = torch.eye(b, dtype=torch.float64) - 1.0 / b
        simplex = torch.nn.functional.normalize(e, dim=1)
        basis = torch.linalg.svd(simplex, full_matrices=False).Vh[: b - 1]
        x = torch.nn.functional.pad(simplex @ basis.T, (0, dim - (b - 1)))
        floor = theory.estimator_floor(dim, t, b)
        assert floor["simplex_attains"]
        assert float(uniform_loss(x, t)) == pytest.approx(floor["l2_floor_jensen"], abs=1e-12)
        assert floor["l2_floor"] < floor["bound"]
    antipodal = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    assert float(uniform_loss(antipodal, t)) == pytest.approx(-4 * t)
    assert theory.estimator_floor(2, t, 2)["l2_floor_mmd"] is None  # 2 e^b <= 1: no floor


def test_estimator_bias_directions_and_exact_self_pair_mean():
    rows = theory.estimator_bias(3, 2.0, [2, 8, 64], n_batches=400, rng=0)
    for row in rows:
        exact, mc = row["with_self_exact_mean_exp"], row["with_self_mean_exp"]
        assert abs(mc["mean"] - exact) < Z_TOL * mc["se"]
        # with self-pairs the O(1/B) bias is upward and resolved at every B
        assert row["with_self"]["low"] > row["bound"]
    # without self-pairs it is downward (Jensen), resolved at small B
    assert all(r["without_self"]["high"] < r["bound"] for r in rows[:2])
    assert rows[0]["frac_below_bound"] > 0.5
    excess = [r["with_self"]["mean"] - r["bound"] for r in rows]
    assert excess == sorted(excess, reverse=True)


# ---------------------------------------------------------------------------- antipodal


@pytest.mark.parametrize("dim", [2, 3, 16])
def test_antipodal_has_zero_mean_dot_but_a_far_worse_uniformity(dim):
    n, t = 2000, 2.0
    rng = np.random.default_rng(dim)
    unif, anti = theory.sample_uniform(n, dim, rng), theory.sample_antipodal(n, dim, rng)
    for x in (unif, anti):
        assert abs(theory.mean_dot_product(x)) < 5 / n  # sd of the pair mean is below 1/n
    gap = uniformity(anti, 2.0) - uniformity(unif, 2.0)
    assert gap > 0.5
    assert theory.antipodal_uniformity(t) - uniformity_bound(dim, t) > 0.5
    assert uniformity(anti, t) == pytest.approx(theory.antipodal_uniformity(t), abs=0.01)


def test_mean_dot_product_against_a_loop():
    x = theory.sample_uniform(7, 3, 0)
    loop = [float(x[i] @ x[j]) for i in range(7) for j in range(7) if i != j]
    assert theory.mean_dot_product(x) == pytest.approx(sum(loop) / len(loop), abs=1e-14)


# ---------------------------------------------------------------------------- optimisation


@pytest.mark.parametrize(
    "objective", [theory.uniform_objective(2.0), theory.contrastive_objective(0.2)],
    ids=["uniform_loss", "contrastive_loss"],
)
def test_gradient_descent_spaces_points_equally_on_the_circle(objective):
    n = 12
    res = theory.optimise_points(n, 2, objective, steps=200, lr=0.1, seed=0)
    gaps = theory.circle_gaps(res.points)
    assert gaps.sum() == pytest.approx(2 * math.pi)
    assert np.degrees(np.abs(gaps - 2 * math.pi / n)).max() < 0.5  # degrees
    assert res.losses[-1] < res.losses[0]


def test_gradient_descent_on_s2_reaches_the_bound():
    t, n = 2.0, 48
    res = theory.optimise_points(n, 3, theory.uniform_objective(t), steps=150, lr=0.05, seed=1)
    bound = uniformity_bound(3, t)
    l1, l2 = theory.batch_uniformity_estimators(res.points, t)
    assert bound <= float(l1) < bound + 0.01
    assert float(l2) < bound  # the paper's estimator sits below the bound, as it may
    iid_expected = (1 - math.exp(bound)) / n
    assert theory.mmd_to_uniform(res.points, t) < 0.05 * iid_expected


def test_optimise_points_is_deterministic():
    a = theory.optimise_points(6, 4, theory.uniform_objective(1.0), steps=20, seed=3)
    b = theory.optimise_points(6, 4, theory.uniform_objective(1.0), steps=20, seed=3)
    torch.testing.assert_close(a.points, b.points, rtol=0, atol=0)
    assert a.steps[-1] == 20 and len(a.steps) == len(a.losses)


# ---------------------------------------------------------------------------- the checks


@pytest.fixture(scope="module")
def quick_run():
    return theory.run_suite("quick", seed=0)


def test_every_check_passes_at_the_quick_size(quick_run):
    assert list(quick_run.checks) == list(theory.SECTIONS)
    failed = [f"{s}: {c.name} -- {c.detail}" for s, c in quick_run.failed]
    assert not failed
    assert sum(len(c) for c in quick_run.checks.values()) >= 20


def test_quick_shrinks_every_experiment():
    """Every section has settings, and at ``quick`` each runs the same experiment smaller: no
    count grows, a tuple keeps a subset of its values, every float (a problem's parameter,
    not a size) is unchanged, and at least one count or tuple shrinks."""
    from dataclasses import fields

    assert [f.name for f in fields(theory.TheorySettings)] == list(theory.SECTIONS)
    for name in theory.SECTIONS:
        quick, full = getattr(theory.QUICK, name), getattr(theory.FULL, name)
        shrunk = False
        for f in fields(full):
            q, v = getattr(quick, f.name), getattr(full, f.name)
            where = f"{name}.{f.name}: quick {q}, full {v}"
            if isinstance(v, tuple):
                assert set(q) <= set(v), where
                shrunk |= len(q) < len(v)
            elif isinstance(v, int) and not isinstance(v, bool):
                assert q <= v, where
                shrunk |= q < v
            else:
                assert q == v, where
        assert shrunk, f"--quick runs {name} at the full size"


def _failed(result) -> set[str]:
    return {c.name for c in result.checks() if not c.passed}


def _only_failed(result, fragment: str) -> None:
    failed = _failed(result)
    assert failed and all(fragment in name for name in failed), failed


def test_sampling_check_fails_for_a_wrong_bessel_ratio_or_a_wrong_dot_law(quick_run, monkeypatch):
    from alignuniform.theory import wang_isola_experiments as experiments

    result = quick_run.results["sampling"]
    rows = [{**r, "exact": r["exact"] + 0.01} for r in result.rows]
    _only_failed(replace(result, rows=rows), "vMF mean cosine")
    # u.v drawn with the law of a sphere of another dimension: the KS test must notice
    monkeypatch.setattr(experiments, "sample_uniform_dots",
                        lambda dim, size, rng: theory.sample_uniform_dots(dim + 4, size, rng))
    _only_failed(experiments.run_sampling(theory.QUICK.sampling, np.random.default_rng(0)), "KS")


def test_theorem1_checks_fail_for_a_wrong_limit_or_a_slow_gap(quick_run):
    result = quick_run.results["theorem1"]
    assert _failed(replace(result, limit=result.limit + 0.05)) == {
        "Monte-Carlo limit contains the closed-form limit",
        f"L_contrastive - log M at M={result.rows[-1]['m']} contains the limit",
    }
    slow = {**result.fit_all, "slope": -0.3}
    _only_failed(replace(result, fit_all=slow), "gap shrinks")
    _only_failed(replace(result, fit_all=None), "gap shrinks")


def test_closed_form_checks_fail_for_a_wrong_bound(monkeypatch):
    from alignuniform.theory import wang_isola_experiments as experiments

    monkeypatch.setattr(experiments, "uniformity_bound", lambda dim, t: uniformity_bound(dim, t)
                        + 0.02)
    cfg = experiments.ClosedFormSettings(dims=(3, 16), ts=(1.0, 2.0), n_pairs=20000)
    assert _failed(experiments.run_closed_form(cfg, np.random.default_rng(0))) == {
        "closed form = 1-D quadrature of the density of u.v (to 1e-6)",
        "closed form inside the Monte-Carlo 95% CI",
    }


def test_circle_check_fails_for_unoptimised_points(quick_run):
    result = quick_run.results["circle"]
    runs = {name: replace(r, points=result.initial) for name, r in result.runs.items()}
    assert len(_failed(replace(result, runs=runs))) == 2


def test_sphere_checks_fail_below_the_floor_or_far_from_uniform(quick_run):
    result = quick_run.results["sphere"]
    below = [{**r, "with_self": r["bound"] - 1e-3} for r in result.rows]
    assert "no optimised set breaks the estimator floors" in _failed(replace(result, rows=below))
    iid = [{**r, "mmd": r["mmd_iid_expected"]} for r in result.rows]
    _only_failed(replace(result, rows=iid), "closer to uniform than iid")


def test_antipodal_checks_fail_when_the_two_laws_are_not_told_apart(quick_run):
    result = quick_run.results["antipodal"]
    same = [{**r, "uniform_loss": result.rows[2 * (i // 2)]["uniform_loss"]}
            for i, r in enumerate(result.rows)]
    _only_failed(replace(result, rows=same), "separates them")
    biased = [{**r, "mean_dot": 0.01} for r in result.rows]
    _only_failed(replace(result, rows=biased), "same mean dot product")


def test_estimator_checks_fail_for_a_perturbed_estimator(monkeypatch):
    from alignuniform.theory import wang_isola_experiments as experiments

    monkeypatch.setattr(experiments, "without_self_pairs",
                        lambda l1, b: theory.without_self_pairs(l1, b) + 1e-9)
    cfg = experiments.EstimatorSettings(batch_sizes=(2, 16), n_batches=50)
    _only_failed(experiments.run_estimators(cfg, np.random.default_rng(0)), "L2 = log")


def test_estimator_checks_fail_for_a_wrong_self_pair_mean(quick_run):
    result = quick_run.results["estimators"]
    rows = [{**r, "with_self_exact_mean_exp": r["with_self_exact_mean_exp"] * 1.05}
            for r in result.rows]
    _only_failed(replace(result, rows=rows), "E e^{L1}")


def test_limit_terms_checks_fail_when_the_identities_break(quick_run):
    result = quick_run.results["limit_terms"]
    shifted = [{**r, "align_from_l_align": r["align_from_l_align"] + 1e-9} for r in result.rows]
    _only_failed(replace(result, rows=shifted), "alignment term")
    above = [{**r, "uniform_term": r["uniform_jensen_bound"] + 1e-6} for r in result.rows]
    _only_failed(replace(result, rows=above), "Jensen")


# ---------------------------------------------------------------------------- command line


def test_theorem1_monte_carlo_is_seeded():
    a = theory.theorem1_monte_carlo(4, 0.5, 5.0, [1, 8], n_samples=50, rng=7)
    b = theory.theorem1_monte_carlo(4, 0.5, 5.0, [1, 8], n_samples=50, rng=7)
    assert a == b


def _strict_json(path):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.slow
def test_cli_writes_strict_json_figures_and_exit_status(tmp_path, monkeypatch, capsys):
    from alignuniform.cli import main
    from alignuniform.theory import suite
    from alignuniform.theory import wang_isola_experiments as E

    tiny = replace(
        theory.QUICK,
        theorem1=E.Theorem1Settings(dim=4, max_log2_m=6, n_samples=200),
        closed_form=E.ClosedFormSettings(dims=(2, 3), ts=(1.0, 2.0), n_pairs=2000),
        circle=E.CircleSettings(n_points=6, steps=30),
        sphere=E.SphereSettings(dims=(3,), n_points=(8, 16), steps=20),
        antipodal=E.AntipodalSettings(dims=(3,), n=200),
        estimators=E.EstimatorSettings(batch_sizes=(2, 8), n_batches=20),
        limit_terms=E.LimitTermsSettings(dim=4, tau=0.5, n=100, bank=200),
        arora=replace(arora_experiments.QUICK, steps=10, record_every=5, n_eval=300, n_mean=50,
                      tau_classes=(2, 4), tau_steps=5, ks=(2,)),
    )
    monkeypatch.setitem(suite.SETTINGS, "quick", tiny)
    rc = main(["theory", "--quick", "--out", str(tmp_path), "--seed", "3", "--no-progress"])
    data = _strict_json(tmp_path / "theory.json")
    failed = [c for c in data["checks"] if not c["passed"]]
    assert rc == (1 if failed else 0)
    assert f"{len(data['checks']) - len(failed)}/{len(data['checks'])} checks passed" in (
        capsys.readouterr().out)
    assert data["mode"] == "quick" and data["seed"] == 3
    assert data["settings"]["theorem1"]["max_log2_m"] == 6
    assert len(data["figures"]) == 10
    for figure in data["figures"].values():
        assert (tmp_path / figure).stat().st_size > 1000
    assert {c["section"] for c in data["checks"]} == set(theory.SECTIONS)
    assert all(isinstance(c["passed"], bool) and c["detail"] for c in data["checks"])
    assert data["theorem1"]["rows"][-1]["m"] == 64
    # B = 2 at t = 2 has no MMD floor: written as null, never as -Infinity
    assert data["estimators"]["rows"][0]["l2_floor_mmd"] is None


# ---------------------------------------------------------------------------- Arora et al.


def test_losses_against_their_formulas():
    v = torch.tensor([[0.3, -1.2, 2.0], [5.0, 4.0, 3.0]], dtype=torch.float64)
    for row, out in zip(v, arora.hinge_loss(v), strict=True):
        assert float(out) == pytest.approx(max(0.0, 1 + max(-float(x) for x in row)))
    for row, out in zip(v, arora.logistic_loss(v), strict=True):
        assert float(out) == pytest.approx(math.log2(1 + sum(math.exp(-float(x)) for x in row)))
    # k = 1: the paper's max(0, 1 - v) and log2(1 + e^{-v}); l(0) = 1 for both
    assert arora.loss_at_zero("hinge", 1) == arora.loss_at_zero("logistic", 1) == 1.0
    assert arora.loss_at_zero("logistic", 4) == pytest.approx(math.log2(5))
    big = torch.tensor([[-800.0]], dtype=torch.float64)  # stable far from 0
    assert float(arora.logistic_loss(big)) == pytest.approx(800 / math.log(2))


def test_tau_k_by_enumerating_class_tuples():
    rho = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    classes = arora.GaussianClasses.random(3, 2, 1.0, seed=0, rho=rho)
    for k in (1, 2, 3):
        total = 0.0
        for pos in range(3):
            for neg in np.ndindex(*(3,) * k):
                p = float(rho[pos]) * math.prod(float(rho[c]) for c in neg)
                total += p * (pos in neg)
        assert classes.tau(k) == pytest.approx(total, abs=1e-15)
    assert classes.tau() == pytest.approx(0.25 + 0.09 + 0.04)


def test_conditioned_class_tuples_follow_the_conditional_law():
    rho = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    classes = arora.GaussianClasses.random(3, 2, 1.0, seed=0, rho=rho)
    gen = torch.Generator().manual_seed(0)
    n, k = 40000, 2
    pos, neg = arora.sample_class_tuples(classes, n, k, "distinct", gen)
    assert not (neg == pos[:, None]).any()
    # P(c+ = c | no collision) is proportional to rho_c (1 - rho_c)^k
    expected = rho * (1 - rho) ** k
    expected = (expected / expected.sum()).numpy()
    observed = np.bincount(pos.numpy(), minlength=3) / n
    se = np.sqrt(expected * (1 - expected) / n)
    assert (np.abs(observed - expected) < Z_TOL * se).all()
    pos, neg = arora.sample_class_tuples(classes, 500, k, "collide", gen)
    assert (neg == pos[:, None]).any(1).all() and pos.shape == (500,)


def _point_mass_reference(classes, f, loss):
    """Exact L_un, L_un^!= and L_sup^mu when every class is one point (k = 1): enumerate."""
    z = f(classes.means).detach()
    ell, rho = arora.LOSSES[loss], classes.rho
    total = distinct = 0.0
    for a in range(classes.n_classes):
        for b in range(classes.n_classes):
            value = float(ell((z[a] @ (z[a] - z[b])).reshape(1, 1)))
            total += float(rho[a] * rho[b]) * value
            distinct += float(rho[a] * rho[b]) * value * (a != b)
    return total, distinct / (1 - classes.tau())


@pytest.mark.parametrize("loss", ["hinge", "logistic"])
def test_estimates_match_enumeration_for_point_mass_classes(loss):
    # sigma ~ 0: each D_c is a point, so Jensen is an equality and L_un^= = l(0) exactly
    classes = arora.GaussianClasses.random(5, 6, 1e-12, seed=1)
    f = arora.SphereEncoder(6, 3, seed=2)
    gen = torch.Generator().manual_seed(3)
    means = arora.class_means(f, classes, 10, gen)
    est = arora.contrastive_estimate(f, classes, means, loss, 1, 20000, gen)
    l_un, l_distinct = _point_mass_reference(classes, f, loss)
    assert abs(est.l_un.mean - l_un) < Z_TOL * est.l_un.se
    assert abs(est.l_un_distinct.mean - l_distinct) < Z_TOL * est.l_un_distinct.se
    assert est.l_sup_mu.mean == pytest.approx(est.l_un_distinct.mean, abs=1e-9)
    assert est.jensen_slack.mean == pytest.approx(0.0, abs=1e-9)
    assert est.l_un_collide.mean == pytest.approx(1.0, abs=1e-9)


def test_decomposition_and_bounds_can_fail():
    classes = arora.GaussianClasses.random(2, 8, 1.0, seed=0)  # tau = 1/2
    f = arora.SphereEncoder(8, 4, 16, seed=0)
    gen = torch.Generator().manual_seed(0)
    means = arora.class_means(f, classes, 2000, gen)
    est = arora.contrastive_estimate(f, classes, means, "logistic", 1, 5000, gen)
    assert abs(est.decomposition_error.mean) < Z_TOL * est.decomposition_error.se
    assert est.jensen_slack.mean > -Z_TOL * est.jensen_slack.se
    # a wrong tau breaks the decomposition; swapped class means break the Jensen bound
    wrong = replace(est, tau=0.1).decomposition_error
    assert abs(wrong.mean) > Z_TOL * wrong.se
    swapped = arora.contrastive_estimate(f, classes, means.flip(0), "logistic", 1, 5000, gen)
    assert swapped.jensen_slack.mean < -Z_TOL * swapped.jensen_slack.se
    assert swapped.lemma43_slack.mean < -Z_TOL * swapped.lemma43_slack.se


def test_mean_classifier_accuracy_and_alignment_uniformity():
    classes = arora.GaussianClasses.random(4, 10, 1e-6, seed=5)  # far apart, tiny spread
    f = arora.SphereEncoder(10, 10, seed=0)
    gen = torch.Generator().manual_seed(0)
    means = arora.class_means(f, classes, 10, gen)
    assert arora.mean_classifier_accuracy(f, classes, means, 500, gen).mean == 1.0
    alignment, uniformity_ = arora.alignment_uniformity(f, classes, 500, gen)
    assert alignment == pytest.approx(0.0, abs=1e-8)
    # four atoms with weights 1/4: L_uniform of the atoms' own pair law (self-pairs excluded)
    z = f(classes.means).detach()
    d2 = torch.cdist(z, z).pow(2)
    assert uniformity_ > float(torch.log(torch.exp(-2 * d2).mean())) - 0.2


def test_train_encoder_lowers_its_loss_and_records():
    classes = arora.GaussianClasses.random(4, 8, 1.0, seed=0)
    gen = torch.Generator().manual_seed(0)
    for objective in ("hinge", "logistic", "align_uniform"):
        f = arora.SphereEncoder(8, 4, 16, seed=0)
        recs = arora.train_encoder(
            f, classes, objective, steps=60, gen=gen, record_every=30,
            record=lambda step, f=f: {"l_un": arora.contrastive_estimate(
                f, classes, arora.class_means(f, classes, 500, gen), "logistic", 1, 2000,
                gen).l_un.mean})
        assert [r["step"] for r in recs] == [0, 30, 60]
        assert recs[-1]["l_un"] < recs[0]["l_un"]
    with pytest.raises(ValueError, match="objective"):
        arora.train_encoder(f, classes, "nce", steps=1, gen=gen, record_every=1,
                            record=dict)


def test_arora_checks_fail_on_broken_inputs(quick_run):
    result = quick_run.results["arora"]

    def perturb(key, shift, where=lambda e: True):
        def fix(rec):
            est = {loss: ({**e, key: {**e[key], "mean": e[key]["mean"] + shift}} if where(e)
                          else e) for loss, e in rec["estimates"].items()}
            return {**rec, "estimates": est}

        return replace(result, trajectories={k: [fix(r) for r in v]
                                             for k, v in result.trajectories.items()},
                       by_tau=[fix(r) for r in result.by_tau],
                       k_negative=[fix(r) for r in result.k_negative])

    assert {"random f: L_sup^mu <= L_un^!= (Jensen; not below by 4 SE)",
            "f trained with L_un: L_sup^mu <= L_un^!= (Jensen; not below by 4 SE)"} <= _failed(
        perturb("jensen_slack", -0.2))
    assert _failed(perturb("decomposition_error", 0.2)) == {
        "L_un = (1 - tau) L_un^!= + tau L_un^= (independent batches, within 4 SE)",
        "k negatives: L_un = (1 - tau_k) L_un^!= + tau_k L_un^= (within 4 SE)"}
    _only_failed(perturb("lemma43_slack", -0.3), "Lemma 4.3")
    # a wrong l(0) (as if L_un^= were compared with 1.1): the collision check fails
    assert "L_un^= >= l(0) = 1 (Jensen within a class; not below by 4 SE)" in _failed(
        perturb("collision_excess", -0.1))
    # a collision part that shrinks as tau grows
    flat = perturb("collision_excess", 0.0)
    flat.by_tau[-1]["estimates"]["logistic"]["collision_excess"]["mean"] = 1.0  # smallest tau
    _only_failed(flat, "grows with tau")
    # training that does not help the mean classifier
    frozen = {k: [{**v[0], "step": r["step"]} for r in v] for k, v in result.trajectories.items()}
    assert sum("raises the mean classifier" in n for n in _failed(replace(
        result, trajectories=frozen))) == 2


def test_arora_run_is_seeded_and_shrinks():
    tiny = replace(arora_experiments.QUICK, steps=10, record_every=5, n_eval=300, n_mean=50,
                   tau_classes=(2, 4), tau_steps=5, ks=(2,))
    a, b = (arora_experiments.run_arora(tiny, 7) for _ in range(2))
    assert a == b
    assert [r["step"] for r in a.trajectories["logistic"]] == [0, 5, 10]
    assert [r["n_classes"] for r in a.by_tau] == [2, 4]


def test_run_suite_refuses_unknown_modes_and_sections():
    with pytest.raises(ValueError, match="settings must be one of"):
        theory.run_suite("medium")
    with pytest.raises(ValueError, match="unknown sections"):
        theory.run_suite("quick", sections=["theorem2"])
    run = theory.run_suite("quick", 0, sections=["antipodal"])
    assert run.mode == "quick" and list(run.results) == ["antipodal"]
