"""Metrics against brute-force loops, closed forms and numerical integrals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate, special

from alignuniform import metrics

from .test_losses import ref_align, ref_uniform, sphere


def test_alignment_normalises_by_default_and_matches_loop():
    g = torch.Generator().manual_seed(0)
    x, y = (
        5 * torch.randn(20, 6, generator=g, dtype=torch.float64),
        torch.randn(20, 6, generator=g, dtype=torch.float64),
    )
    xn, yn = F.normalize(x, dim=1).numpy(), F.normalize(y, dim=1).numpy()
    assert metrics.alignment(x, y) == pytest.approx(ref_align(xn, yn, 2), rel=1e-12)
    assert metrics.alignment(x, y, alpha=1) == pytest.approx(ref_align(xn, yn, 1), rel=1e-12)
    assert metrics.alignment(x, y, normalize=False) == pytest.approx(
        ref_align(x.numpy(), y.numpy(), 2), rel=1e-12
    )
    assert isinstance(metrics.alignment(x, y), float)


def test_uniformity_exact_matches_loop_and_normalises():
    x = 3 * sphere(40, 5, 1)
    assert metrics.uniformity(x, t=1.5, block_size=7) == pytest.approx(
        ref_uniform(F.normalize(x, dim=1).numpy(), 1.5), rel=1e-12
    )
    assert metrics.uniformity(x, t=0.1, normalize=False) == pytest.approx(
        ref_uniform(x.numpy(), 0.1), rel=1e-10
    )


def test_uniformity_float32_is_accumulated_precisely():
    x64 = sphere(5000, 16, 2)
    exact = metrics.uniformity(x64)
    assert metrics.uniformity(x64.float(), block_size=512) == pytest.approx(exact, rel=1e-6)


def test_streaming_equals_one_shot_and_merges():
    x, y = sphere(300, 8, 3), sphere(300, 8, 4)
    u_a, u_b = metrics.Uniformity(t=2), metrics.Uniformity(t=2)
    a_a, a_b = metrics.Alignment(), metrics.Alignment()
    for lo in range(0, 150, 37):
        u_a.update(x[lo : min(lo + 37, 150)])
        a_a.update(x[lo : min(lo + 37, 150)], y[lo : min(lo + 37, 150)])
    u_b.update(x[150:])
    a_b.update(x[150:], y[150:])
    assert u_a.merge(u_b).compute() == pytest.approx(metrics.uniformity(x), rel=1e-12)
    assert a_a.merge(a_b).compute() == pytest.approx(metrics.alignment(x, y), rel=1e-12)


def test_sampled_uniformity_interval_covers_exact_value():
    x = sphere(3000, 8, 5)
    exact = metrics.uniformity(x)
    est = metrics.uniformity(x, n_pairs=200_000, seed=1)
    assert isinstance(est, metrics.UniformityEstimate)
    assert est.low < exact < est.high
    assert est.low < float(est) < est.high
    assert abs(float(est) - exact) < 0.01
    # a seeded estimate is reproducible
    assert metrics.uniformity(x, n_pairs=200_000, seed=1) == est


@pytest.fixture(scope="module")
def cloud_2000x64() -> torch.Tensor:
    return sphere(2000, 64, 41, torch.float32)


@pytest.mark.parametrize("t,max_width", [(2.0, 0.1), (30.0, math.inf), (50.0, math.inf)])
def test_sampled_interval_covers_the_exact_value_at_large_t(cloud_2000x64, t, max_width):
    # at t = 30 and 50 the pair mean is dominated by a few close pairs that a sample of
    # 20,000 of the 2 million usually misses: the normal interval covered 12/40 and 2/40
    exact = metrics.uniformity(cloud_2000x64, t=t)
    estimates = [metrics.uniformity(cloud_2000x64, t=t, n_pairs=20_000, seed=s) for s in range(40)]
    coverage = sum(e.low <= exact <= e.high for e in estimates) / len(estimates)
    assert coverage >= 0.9 * 0.95
    assert all(e.low <= e.value <= e.high for e in estimates)
    # and it is not trivially wide where the sample does pin the value down (normal: 0.015)
    assert np.mean([e.high - e.low for e in estimates]) < max_width


@pytest.mark.parametrize("dim,t,value", [(128, 2.0, -3.9375), (2, 2.0, -1.5750)])
def test_uniformity_bound_published_values(dim, t, value):
    assert metrics.uniformity_bound(dim, t) == pytest.approx(value, abs=5e-5)


def bound_by_integral(dim: int, t: float) -> float:
    """-log of nothing fancy: E exp(-t(2 - 2s)) with s = u.v, density prop. to (1-s^2)^((m-3)/2)."""
    k = (dim - 3) / 2
    dens = lambda s: (1 - s * s) ** k  # noqa: E731
    num = integrate.quad(
        lambda s: math.exp(-t * (2 - 2 * s)) * dens(s), -1, 1, epsabs=0, epsrel=1e-13
    )[0]
    den = integrate.quad(dens, -1, 1, epsabs=0, epsrel=1e-13)[0]
    return math.log(num / den)


@pytest.mark.parametrize("dim", [3, 4, 8, 32, 128])
@pytest.mark.parametrize("t", [0.5, 2.0, 5.0])
def test_uniformity_bound_matches_numerical_integral(dim, t):
    assert metrics.uniformity_bound(dim, t) == pytest.approx(bound_by_integral(dim, t), abs=1e-6)


def test_uniformity_bound_bessel_branch_agrees_and_extends():
    # where 0F1 is finite both forms must agree; the Bessel form is used where it overflows
    for dim, t in [(16, 3.0), (64, 10.0)]:
        nu = dim / 2 - 1
        bessel = special.gammaln(dim / 2) - nu * math.log(t) + math.log(special.ive(nu, 2 * t))
        assert metrics.uniformity_bound(dim, t) == pytest.approx(bessel, abs=1e-9)
    big = metrics.uniformity_bound(3, 400.0)
    assert math.isfinite(big) and big == pytest.approx(
        -math.log(4 * 400.0), abs=1e-3
    )  # -log(4t) as t grows on S^2


def test_uniform_samples_approach_the_bound():
    bound = metrics.uniformity_bound(16)
    gaps = [
        abs(metrics.uniformity(sphere(n, 16, 7, torch.float32)) - bound) for n in (100, 1000, 8000)
    ]
    assert gaps[-1] < 0.01
    assert gaps[-1] < gaps[0]


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: metrics.uniformity(torch.ones(1, 3)), ValueError, "at least 2 rows"),
        (lambda: metrics.uniformity(torch.ones(3, 3), t=0), ValueError, "t must be"),
        (lambda: metrics.uniformity(torch.ones(3, 3), n_pairs=1), ValueError, "n_pairs"),
        (lambda: metrics.alignment(torch.ones(3, 3), torch.ones(2, 3)), ValueError, "same shape"),
        (lambda: metrics.uniformity_bound(0), ValueError, "dim"),
        (lambda: metrics.uniformity_bound(2.5), ValueError, "dim"),
        (lambda: metrics.Uniformity().compute(), ValueError, "before any update"),
        (lambda: metrics.Alignment().compute(), ValueError, "before any update"),
        (lambda: metrics.uniformity(torch.eye(3).index_fill(0, torch.tensor([1]), 0.0)),
         ValueError, "row 1 of x is zero .*normalize=False"),
        (lambda: metrics.alignment(torch.eye(3), torch.zeros(3, 3)), ValueError,
         r"row 0 of y \(and 2 more\) is zero"),
        (lambda: metrics.uniformity(torch.eye(3), t=torch.tensor([2.0])), ValueError, "0-d"),
    ],
)
def test_bad_input_raises_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_zero_rows_are_measured_as_given_without_normalisation():
    x = torch.eye(4, dtype=torch.float64).index_fill(0, torch.tensor([0]), 0.0)
    assert metrics.uniformity(x, normalize=False) == pytest.approx(ref_uniform(x.numpy(), 2))
    assert metrics.uniformity(torch.eye(4), t=torch.tensor(2.0)) == pytest.approx(-4.0)


def _sync_worker(rank: int, world: int, port: int, x: torch.Tensor, y: torch.Tensor, out):
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        rows = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
        u, a = metrics.Uniformity(), metrics.Alignment()
        u.update(x[rows])
        a.update(x[rows], y[rows])
        out[rank] = (u.sync().compute(), a.sync().compute())
    finally:
        dist.destroy_process_group()


def test_sync_across_two_processes_equals_one_process():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    x, y = sphere(101, 6, 8), sphere(101, 6, 9)
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_sync_worker, args=(2, port, x, y, out), nprocs=2)
        results = dict(out)
    for rank in range(2):
        assert results[rank][0] == pytest.approx(metrics.uniformity(x), rel=1e-12)
        assert results[rank][1] == pytest.approx(metrics.alignment(x, y), rel=1e-12)


def test_numpy_reference_helpers_are_sane():
    # guards the references themselves: two orthogonal unit vectors
    e = np.eye(2)
    assert ref_align(e, e[::-1], 2) == pytest.approx(2.0)
    assert ref_uniform(e, 1.0) == pytest.approx(-2.0)



def ref_log_uniform(x: np.ndarray, t: float) -> float:
    """Float64 loop over pairs in log space: no term underflows, however far apart."""
    exps = [-t * np.sum((x[i] - x[j]) ** 2) for i in range(len(x)) for j in range(i + 1, len(x))]
    return float(special.logsumexp(exps) - math.log(len(exps)))


@pytest.mark.parametrize("normalize", [True, False])
def test_sampled_uniformity_works_in_log_space_where_every_term_underflows(normalize):
    # t = 30 on the sphere, or on raw features of norm 10-100 (no normalisation): exp(-t d^2)
    # underflows to 0 for most or all pairs, and the log of the pair mean must still be right
    t, g = 30.0, torch.Generator().manual_seed(40)
    x = sphere(100, 8, 40, torch.float32)
    if not normalize:
        x = x * torch.empty(100, 1).uniform_(10, 100, generator=g)
    ref = ref_log_uniform(F.normalize(x, dim=1).double().numpy() if normalize
                          else x.double().numpy(), t)
    exact = metrics.uniformity(x, t=t, normalize=normalize)
    assert exact == pytest.approx(ref, rel=1e-5)
    # 4950 pairs drawn 400,000 times: every pair is seen about 80 times
    est = metrics.uniformity(x, t=t, normalize=normalize, n_pairs=400_000, seed=2)
    assert math.isfinite(est.value) and est.low <= est.value <= est.high
    assert est.low <= exact <= est.high
    assert est.value == pytest.approx(exact, abs=0.3)
