"""Spectral metrics against float64 numpy references, closed forms and reptrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alignuniform import metrics

RNG = np.random.default_rng(0)


def _exp_entropy(w: np.ndarray, eps: float) -> float:
    p = w / w.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def _ref_svals(z: np.ndarray, center: bool = False) -> np.ndarray:
    z = z.astype(np.float64)
    if center:
        z = z - z.mean(0)
    s = np.linalg.svd(z, compute_uv=False)
    return s[: min(z.shape[0] - 1, z.shape[1])] if center else s


def _ref_lidar(v: np.ndarray, delta: float, eps: float) -> float:
    v = v.astype(np.float64)
    n, q, _ = v.shape
    m = v.mean(1)
    sb = (m - m.mean(0)).T @ (m - m.mean(0)) / (n - 1)
    c = (v - m[:, None]).reshape(n * q, -1)
    sw = c.T @ c / (n * (q - 1)) + delta * np.eye(v.shape[2])
    w, u = np.linalg.eigh(sw)
    root_inv = u @ np.diag(w**-0.5) @ u.T
    lam = np.clip(np.linalg.eigvalsh(root_inv @ sb @ root_inv), 0, None)
    return _exp_entropy(lam, eps)


def _ref_w2(z: np.ndarray) -> float:
    z = z.astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    mu = z.mean(0)
    cov = (z - mu).T @ (z - mu) / len(z)
    root = np.clip(np.linalg.eigvalsh(cov), 0, None) ** 0.5
    m = z.shape[1]
    return math.sqrt(max(mu @ mu + 1 + np.trace(cov) - 2 / math.sqrt(m) * root.sum(), 0))


def _anisotropic(n: int, d: int, seed: int = 1) -> np.ndarray:
    g = np.random.default_rng(seed)
    return (g.standard_normal((n, d)) * np.linspace(3, 0.1, d) + 0.5).astype(np.float32)


# --- brute-force references -------------------------------------------------------------


@pytest.mark.parametrize("shape", [(300, 20), (15, 40)])  # N > d and d > N
@pytest.mark.parametrize("center,squared,normalize", [
    (False, False, False), (True, False, False), (True, True, False), (False, False, True),
])
def test_rankme_matches_svd(shape, center, squared, normalize):
    z = _anisotropic(*shape)
    ref_z = z / np.linalg.norm(z, axis=1, keepdims=True) if normalize else z
    s = _ref_svals(ref_z, center)
    ref = _exp_entropy(s**2 if squared else s, 1e-7)
    got = metrics.rankme(
        torch.from_numpy(z), center=center, squared=squared, normalize=normalize
    )
    assert got == pytest.approx(ref, rel=1e-6)
    assert got <= min(shape) + 1e-3


def test_ranks_match_eigh():
    z = _anisotropic(400, 24)
    lam = np.linalg.eigvalsh(np.cov(z.astype(np.float64).T))[::-1]
    assert metrics.effective_rank(z) == pytest.approx(_exp_entropy(lam, 0.0), rel=1e-9)
    assert metrics.stable_rank(z) == pytest.approx(lam.sum() / lam[0], rel=1e-9)
    # float16 and float64 inputs: the same values, in float64 arithmetic either way
    zt = torch.from_numpy(z)
    assert metrics.effective_rank(zt.double()) == metrics.effective_rank(zt)
    half = zt.half()
    assert metrics.rankme(half) == pytest.approx(metrics.rankme(half.double()), rel=1e-12)


def test_alpha_matches_least_squares():
    z = _anisotropic(500, 64)
    lam = np.linalg.eigvalsh(np.cov(z.astype(np.float64).T))[::-1]
    k = np.arange(5, 31)
    ref = -np.polyfit(np.log(k), np.log(lam[k - 1]), 1)[0]
    assert metrics.alpha_req(z, fit_range=(5, 30)) == pytest.approx(ref, rel=1e-8)
    default_k = np.arange(2, 33)  # 2 .. K // 2 with K = 64
    ref = -np.polyfit(np.log(default_k), np.log(lam[default_k - 1]), 1)[0]
    assert metrics.alpha_req(z) == pytest.approx(ref, rel=1e-8)


def test_lidar_matches_reference():
    v = RNG.standard_normal((60, 4, 10)) + 3 * RNG.standard_normal((60, 1, 10))
    for delta in (1e-4, 0.5):
        got = metrics.lidar(torch.from_numpy(v.astype(np.float32)), delta=delta)
        assert got == pytest.approx(_ref_lidar(v.astype(np.float32), delta, 1e-8), rel=1e-7)


def test_w2_matches_reference():
    z = _anisotropic(300, 12)
    assert metrics.gaussian_w2_uniformity(z) == pytest.approx(_ref_w2(z), rel=1e-9)


# --- closed forms ------------------------------------------------------------------------


def test_isotropic_gaussian_rankme_close_to_d():
    # N = 50 d: the singular values spread by about +-1/sqrt(50) (Marchenko-Pastur), which
    # costs a few tenths of a percent of the entropy (observed d - 0.09); tolerance 0.2; eps
    # = 1e-7 adds < d * eps * |log eps| ~ 5e-5
    d = 32
    z = torch.randn(50 * d, d, generator=torch.Generator().manual_seed(0))
    assert d - 0.2 < metrics.rankme(z) <= d
    assert d * 0.95 < metrics.effective_rank(z) <= d


def test_rank_k_bounded_by_k():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 3, generator=g) @ torch.randn(3, 20, generator=g)
    # exactly 3 non-zero singular values: eps adds 17 terms of -eps log eps ~ 2.7e-5
    assert 2 < metrics.rankme(z) <= 3 + 20 * 1e-7 * -math.log(1e-7)
    assert metrics.rankme(z, eps=0.0) <= 3 + 1e-9
    assert metrics.rankme(z, eps=1e-3) > metrics.rankme(z, eps=1e-7)  # eps raises it
    assert metrics.effective_rank(z) <= 3 + 1e-9
    assert 1 <= metrics.stable_rank(z) <= 3 + 1e-9
    # and its value: ||Z_c||_F^2 / ||Z_c||_2^2 of the centred rows, in float64 numpy
    zc = z.double().numpy() - z.double().numpy().mean(0)
    s = np.linalg.svd(zc, compute_uv=False)
    assert metrics.stable_rank(z) == pytest.approx((s**2).sum() / s[0] ** 2, rel=1e-5)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_recovers_power_law(alpha):
    # Z = G diag(k^(-alpha/2)) Q: covariance eigenvalues k^-alpha up to sampling noise; with
    # N = 40 d the fitted slope over ranks 2..d/2 is within 0.05 of alpha (observed < 0.006)
    d, n = 128, 40 * 128
    g = np.random.default_rng(3)
    q, _ = np.linalg.qr(g.standard_normal((d, d)))
    scale = np.arange(1, d + 1) ** (-alpha / 2)
    z = (g.standard_normal((n, d)) * scale) @ q
    assert metrics.alpha_req(z.astype(np.float32)) == pytest.approx(alpha, abs=0.05)
    assert metrics.alpha_req(z, weighted=True) == pytest.approx(alpha, abs=0.05)


def test_alpha_req_flat_and_collapsed():
    z = torch.randn(8000, 64, generator=torch.Generator().manual_seed(0))
    assert abs(metrics.alpha_req(z)) < 0.1  # the Marchenko-Pastur tilt: observed 0.064
    collapsed = torch.randn(100, 1) @ torch.randn(1, 64)  # rank 1
    with pytest.raises(ValueError, match="collapsed"):
        metrics.alpha_req(collapsed)
    with pytest.raises(ValueError, match="fit_range"):
        metrics.alpha_req(z, fit_range=(10, 65))


def test_lidar_invariant_to_invertible_map():
    g = np.random.default_rng(4)
    v = g.standard_normal((200, 4, 12)) + 2 * g.standard_normal((200, 1, 12)) * np.linspace(
        1, 0.1, 12
    )
    a = g.standard_normal((12, 12)) + 3 * np.eye(12)
    # delta -> 0: the generalised eigenvalues of (A^T Sb A, A^T Sw A) are those of (Sb, Sw)
    before = metrics.lidar(v, delta=1e-10)
    after = metrics.lidar(v @ a, delta=1e-10)
    assert after == pytest.approx(before, rel=1e-5)
    # a large delta breaks it: the check can fail
    assert metrics.lidar(v @ (10 * a), delta=1.0) != pytest.approx(
        metrics.lidar(v, delta=1.0), rel=1e-3
    )


def test_w2_uniform_sphere_small_and_collapse_sqrt2():
    m = 16
    g = torch.Generator().manual_seed(0)
    w_small = metrics.gaussian_w2_uniformity(torch.randn(2_000, m, generator=g))
    w_large = metrics.gaussian_w2_uniformity(torch.randn(50_000, m, generator=g))
    # the large-N limit is 0; the finite-N bias shrinks like N^(-1/2): 25x the rows, 1/5
    assert w_large < 0.02
    assert 3.5 < w_small / w_large < 7
    collapsed = torch.ones(100, m) + 1e-3 * torch.randn(100, m, generator=g)
    assert metrics.gaussian_w2_uniformity(collapsed) == pytest.approx(math.sqrt(2), abs=1e-2)


# --- reptrix, where the definitions coincide -----------------------------------------------


def test_reptrix_rankme_is_centred_squared():
    rankme_mod = pytest.importorskip("reptrix.rankme")
    z = torch.from_numpy(_anisotropic(400, 32))
    ref = rankme_mod.get_rankme(z)
    assert metrics.rankme(z, center=True, squared=True) == pytest.approx(ref, rel=1e-5)
    assert metrics.rankme(z) != pytest.approx(ref, rel=1e-3)  # the paper's differs


def test_reptrix_alpha_on_its_fit_range():
    alpha_mod = pytest.importorskip("reptrix.alpha")
    z = torch.from_numpy(_anisotropic(2000, 128))
    ref = alpha_mod.get_alpha(z)[0]
    assert metrics.alpha_req(z, fit_range=(11, 100), weighted=True) == pytest.approx(
        ref, rel=1e-4
    )


def test_reptrix_lidar_is_ours_rescaled_then_pca():
    # reptrix: Sigma_b (n-1)x ours, Sigma_w (q-1)x ours, and the PCA explained-variance ratio
    # of the LDA matrix's rows; with delta_ours = delta_reptrix / (q-1) its matrix is ours
    # times (n-1)/(q-1), so its value is that PCA rank of our matrix
    lidar_mod = pytest.importorskip("reptrix.lidar")
    n, q, d, delta = 80, 4, 16, 1e-3
    v = (RNG.standard_normal((n, q, d)) + 2 * RNG.standard_normal((n, 1, d))).astype(np.float32)
    ref = lidar_mod.get_lidar(torch.from_numpy(v), n, q, del_sigma_augs=delta)
    state = metrics.LidarState(d)
    state.update(torch.from_numpy(v))
    mat = state.matrix(delta / (q - 1)).numpy()
    ratio = np.linalg.eigvalsh(np.cov(mat.T))[::-1]
    ratio = ratio[: d] / ratio.sum()
    assert _exp_entropy(np.clip(ratio, 0, None), 1e-7) == pytest.approx(ref, rel=1e-5)
    assert metrics.lidar(v) != pytest.approx(ref, rel=1e-2)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [
    metrics.rankme, metrics.effective_rank, metrics.stable_rank, metrics.alpha_req,
    metrics.gaussian_w2_uniformity,
])
def test_bad_embeddings(fn):
    z = torch.randn(50, 8)
    z[3, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fn(z)
    with pytest.raises(ValueError, match="at least 2 rows"):
        fn(torch.randn(1, 8))
    with pytest.raises(ValueError, match="zero"):
        fn(torch.zeros(50, 8))
    with pytest.raises(ValueError, match="2-D"):
        fn(torch.randn(50))


def test_normalize_refuses_zero_rows():
    z = torch.randn(20, 4)
    z[5] = 0
    assert math.isfinite(metrics.rankme(z))
    with pytest.raises(ValueError, match="row 5 of z is zero"):
        metrics.rankme(z, normalize=True)


def test_d_greater_than_n_is_bounded_by_n():
    z = torch.randn(10, 64, generator=torch.Generator().manual_seed(0))
    assert 9 < metrics.rankme(z) <= 10
    assert metrics.effective_rank(z) <= 9 + 1e-9  # centred: rank N - 1
    assert math.isfinite(metrics.alpha_req(z))  # fits ranks 2..4 of the 9


def test_bad_views():
    with pytest.raises(ValueError, match="q >= 2"):
        metrics.lidar(torch.randn(20, 1, 8))
    with pytest.raises(ValueError, match=r"\(n samples, q views, d\)"):
        metrics.lidar(torch.randn(20, 8))
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.lidar(torch.randn(1, 4, 8))
    v = torch.randn(20, 4, 8)
    v[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        metrics.lidar(v)
    with pytest.raises(ValueError, match="zero"):  # every sample's views the same point
        metrics.lidar(torch.ones(20, 4, 8) + 0.1 * torch.randn(20, 4, 8).mean(0))


# --- streaming Metrics -----------------------------------------------------------------------


_METRICS = [
    (lambda d: metrics.RankMe(d), metrics.rankme),
    (lambda d: metrics.RankMe(d, center=True, squared=True, normalize=True),
     lambda z: metrics.rankme(z, center=True, squared=True, normalize=True)),
    (lambda d: metrics.EffectiveRank(d), metrics.effective_rank),
    (lambda d: metrics.StableRank(d), metrics.stable_rank),
    (lambda d: metrics.AlphaReQ(d, weighted=True), lambda z: metrics.alpha_req(z, weighted=True)),
    (lambda d: metrics.GaussianW2(d), metrics.gaussian_w2_uniformity),
]


@pytest.mark.parametrize("make,fn", _METRICS)
def test_metric_streaming_merge_forward(make, fn):
    d = 24
    z = torch.from_numpy(_anisotropic(900, d))
    batches = z.split(150)
    one_shot = fn(z)
    m = make(d)
    for b in batches:
        m.update(b)
    assert float(m.compute()) == pytest.approx(one_shot, rel=1e-9)
    # two processes' states merged == one
    a, b = make(d), make(d)
    for i, batch in enumerate(batches):
        (a if i % 2 else b).update(batch)
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(one_shot, rel=1e-9)
    # forward returns each batch's value and still accumulates every batch
    f = make(d)
    for batch in batches:
        assert float(f(batch)) == pytest.approx(fn(batch), rel=1e-9)
    assert float(f.compute()) == pytest.approx(one_shot, rel=1e-9)
    f.reset()
    f.update(batches[0])
    assert float(f.compute()) == pytest.approx(fn(batches[0]), rel=1e-9)


def test_lidar_metric_streaming_merge_forward():
    d = 10
    v = torch.from_numpy(
        (RNG.standard_normal((120, 4, d)) + 2 * RNG.standard_normal((120, 1, d))).astype(
            np.float32
        )
    )
    one_shot = metrics.lidar(v)
    batches = v.split(30)
    m = metrics.LiDAR(d)
    for b in batches:
        m.update(b)
    assert float(m.compute()) == pytest.approx(one_shot, rel=1e-9)
    a, b = metrics.LiDAR(d), metrics.LiDAR(d)
    a.update(torch.cat(batches[:1]))
    b.update(torch.cat(batches[1:]))
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(one_shot, rel=1e-9)
    f = metrics.LiDAR(d)
    for batch in batches:
        assert float(f(batch)) == pytest.approx(metrics.lidar(batch), rel=1e-9)
    assert float(f.compute()) == pytest.approx(one_shot, rel=1e-9)


def test_states_merge_equals_one_pass():
    z = torch.from_numpy(_anisotropic(600, 16))
    a, b = metrics.SpectralState(16, normalize=True), metrics.SpectralState(16, normalize=True)
    a.update(z[:250])
    b.update(z[250:])
    a.merge(b)
    whole = metrics.SpectralState.of(z, normalize=True)
    assert a.rankme() == pytest.approx(whole.rankme(), rel=1e-12)
    assert a.gaussian_w2() == pytest.approx(metrics.gaussian_w2_uniformity(z), rel=1e-12)
    v = torch.randn(40, 3, 16) + torch.randn(40, 1, 16)
    la, lb = metrics.LidarState(16), metrics.LidarState(16)
    la.update(v[:10])
    lb.update(v[10:])
    la.merge(lb)
    assert la.lidar() == pytest.approx(metrics.lidar(v), rel=1e-10)
    with pytest.raises(ValueError, match="normalize=True"):
        metrics.SpectralState.of(z).gaussian_w2()
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        a.update(torch.randn(5, 8))


def test_metric_nan_batch_raises_at_compute():
    m = metrics.RankMe(4)
    m.update(torch.randn(10, 4))
    m.update(torch.full((3, 4), float("nan")))
    with pytest.raises(ValueError, match="NaN"):
        m.compute()
