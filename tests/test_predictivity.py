"""alignuniform.predictivity: rank correlations, the least-squares fit and its leave-one-out
predictions, and the AU-correlation scalar over a set of encoders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from alignuniform import predictivity
from alignuniform.predictivity import fit_combination, fit_linear, kendall_rows, spearman_rows


def test_rank_correlations_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, (5, 30)).astype(float)  # ties
    y = x + rng.normal(size=(5, 30))
    for a, b, rho, tau in zip(x, y, spearman_rows(x, y), kendall_rows(x, y), strict=True):
        assert rho == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
        assert tau == pytest.approx(stats.kendalltau(a, b)[0], abs=1e-12)
    assert np.isnan(spearman_rows(np.ones((1, 5)), y[:1, :5])[0])


def test_fit_and_leave_one_out_against_brute_force():
    rng = np.random.default_rng(1)
    align, unif = rng.uniform(0, 1, 40), rng.uniform(-3, -1, 40)
    acc = 0.9 - 0.3 * align + 0.1 * unif + 0.02 * rng.normal(size=40)
    fit = fit_combination(align, unif, acc)
    assert fit["a"] == pytest.approx(-0.3, abs=0.03) and fit["b"] == pytest.approx(0.1, abs=0.02)
    x = np.column_stack([align, unif, np.ones(40)])
    loo = []
    for i in range(40):
        keep = np.arange(40) != i
        coef = np.linalg.lstsq(x[keep], acc[keep], rcond=None)[0]
        loo.append(x[i] @ coef)
    np.testing.assert_allclose(fit["loo_pred"], loo, atol=1e-12)
    press = 1 - ((acc - np.array(loo)) ** 2).sum() / ((acc - acc.mean()) ** 2).sum()
    assert fit["loo_r2"] == pytest.approx(press) and fit["loo_r2"] < fit["r2"]


def test_pearson_rows_match_numpy():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(4, 12)), rng.normal(size=(4, 12))
    expected = [np.corrcoef(a, b)[0, 1] for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(predictivity.pearson_rows(x, y), expected, atol=1e-14)
    assert np.isnan(predictivity.pearson_rows(np.ones((1, 12)), y[:1])[0])


def test_rank_correlations_and_their_bootstrap_interval():
    rng = np.random.default_rng(3)
    x = rng.normal(size=25)
    y = x + rng.normal(size=25)
    resamples = rng.integers(0, 25, size=(400, 25))
    out = predictivity.rank_correlations(x, y, resamples)
    assert out["spearman"]["value"] == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert out["kendall"]["value"] == pytest.approx(stats.kendalltau(x, y)[0], abs=1e-12)
    boot = [stats.spearmanr(x[i], y[i])[0] for i in resamples]
    assert (out["spearman"]["low"], out["spearman"]["high"]) == pytest.approx(
        tuple(np.quantile(boot, [0.025, 0.975])), abs=1e-12)
    assert predictivity.rank_correlations(x, y)["kendall"]["low"] is None  # no resamples
    # most resamples of 4 rows with 3 equal values are constant: no interval, value kept
    few = predictivity.rank_correlations(np.array([1.0, 1, 1, 2]), np.array([1.0, 2, 3, 4]),
                                         rng.integers(0, 4, size=(200, 4)))
    assert few["spearman"]["value"] == pytest.approx(stats.spearmanr([1, 1, 1, 2],
                                                                     [1, 2, 3, 4])[0])
    assert few["spearman"]["low"] is None
    constant = predictivity.rank_correlations(np.ones(6), y[:6], resamples[:, :6] % 6)
    assert constant["spearman"] == {"value": None, "low": None, "high": None}


def test_hat_and_refit_leave_one_out_agree_with_brute_force():
    rng = np.random.default_rng(4)
    x = np.column_stack([np.ones(15), rng.normal(size=(15, 2))])
    y = x @ [0.5, 1.0, -2.0] + 0.3 * rng.normal(size=15)
    brute = [x[i] @ np.linalg.lstsq(np.delete(x, i, 0), np.delete(y, i), rcond=None)[0]
             for i in range(15)]
    hat, refit = fit_linear(x, y), fit_linear(x, y, loo="refit")
    np.testing.assert_allclose(hat.loo_pred, brute, atol=1e-12)
    np.testing.assert_allclose(refit.loo_pred, brute, atol=1e-12)
    np.testing.assert_allclose(refit.loo_residuals, y - np.array(brute), atol=1e-12)
    rss, tss = ((y - hat.fitted) ** 2).sum(), ((y - y.mean()) ** 2).sum()
    assert hat.r2 == pytest.approx(1 - rss / tss) and refit.r2 == hat.r2
    assert refit.loo_r2 == pytest.approx(hat.loo_r2, abs=1e-12) and hat.loo_r2 < hat.r2
    np.testing.assert_allclose(hat.coef, np.linalg.lstsq(x, y, rcond=None)[0], atol=1e-14)


def test_refit_leaves_out_a_whole_group():
    rng = np.random.default_rng(5)
    x = np.column_stack([np.ones(8), rng.normal(size=8)])
    y = 2 * x[:, 1] + rng.normal(size=8)
    rows = np.array([0, 0, 0, 1, 2, 3, 4, 5])  # row 0 three times, as in a bootstrap draw
    fit = fit_linear(x[rows], y[rows], loo="refit", groups=rows)
    without_0 = np.linalg.lstsq(x[1:6], y[1:6], rcond=None)[0]
    np.testing.assert_allclose(fit.loo_pred[:3], x[0] @ without_0, atol=1e-12)
    ungrouped = fit_linear(x[rows], y[rows], loo="refit")  # the other two copies stay in
    assert abs(ungrouped.loo_pred[0] - fit.loo_pred[0]) > 1e-6
    # 4 groups and 3 columns: a left-out fit keeps 3 groups, too few to leave any residual
    tight = fit_linear(np.column_stack([np.ones(4), rng.normal(size=(4, 2))]), np.arange(4.0),
                       loo="refit")
    assert np.isnan(tight.loo_pred).all() and math.isnan(tight.loo_r2)
    with pytest.raises(ValueError, match="groups need loo='refit'"):
        fit_linear(x, y, groups=np.arange(8))
    with pytest.raises(ValueError, match="loo must be"):
        fit_linear(x, y, loo="kfold")


def encoders(n=20, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.2, 1.2, n)
    u = rng.uniform(-3.9, -2.0, n)
    return a, u, 0.9 - 0.3 * a - 0.1 * u + noise * rng.normal(size=n)


def brute_loo_r(a, u, p):
    preds = []
    for k in range(len(p)):
        keep = np.arange(len(p)) != k
        x = np.stack([np.ones(keep.sum()), a[keep], u[keep]], 1)
        coef = np.linalg.lstsq(x, p[keep], rcond=None)[0]
        preds.append(coef @ [1, a[k], u[k]])
    return np.corrcoef(preds, p)[0, 1]


def test_exact_linear_performance_gives_one():
    a, u, p = encoders()
    r = predictivity.au_correlation(a, u, p, n_boot=200)
    assert r.value == pytest.approx(1.0, abs=1e-12) and r.q2 == pytest.approx(1.0, abs=1e-10)
    assert r.low == pytest.approx(1.0, abs=1e-9) and r.n_boot == 200
    np.testing.assert_allclose(r.coef, (0.9, -0.3, -0.1), atol=1e-12)


def test_matches_brute_force_and_interval_behaves():
    a, u, p = encoders(noise=0.05, seed=1)
    r = predictivity.au_correlation(a, u, p, n_boot=150, seed=4)
    assert r.value == pytest.approx(brute_loo_r(a, u, p), abs=1e-12)
    assert 0.5 < r.value < 1 and r.low <= r.value <= r.high
    assert r.r_in_sample >= r.value  # in-sample fit is never worse than out-of-sample
    assert r == predictivity.au_correlation(a, u, p, n_boot=150, seed=4)  # seeded
    # performance unrelated to the metrics: near zero, an interval that includes zero
    rng = np.random.default_rng(7)
    null = predictivity.au_correlation(a, u, rng.normal(size=len(a)), n_boot=150)
    assert null.value < 0.5 and null.low < 0 < null.high and null.q2 < 0.2
    sp = predictivity.au_correlation(a, u, p, method="spearman", n_boot=0)
    assert 0.5 < sp.value <= 1 and math.isnan(sp.low)


def test_inputs():
    a, u, p = encoders(8)
    t = predictivity.au_correlation(torch.tensor(a), torch.tensor(u), torch.tensor(p), n_boot=10)
    results = [{"dense_alignment": x, "dense_uniformity": y, "miou": z} for x, y, z in
               zip(a, u, p, strict=True)]
    assert predictivity.dense_au_correlation(results, n_boot=10) == t
    with pytest.raises(KeyError, match="miou"):
        predictivity.dense_au_correlation([{"dense_alignment": 1, "dense_uniformity": 1}] * 6)
    with pytest.raises(ValueError, match="at least 5"):
        predictivity.au_correlation(a[:4], u[:4], p[:4])
    with pytest.raises(ValueError, match="constant"):
        predictivity.au_correlation(a, u, np.ones(8))
    with pytest.raises(ValueError, match="values"):
        predictivity.au_correlation(a, u[:7], p)
    with pytest.raises(ValueError, match="NaN"):
        predictivity.au_correlation(a, u, np.r_[p[:7], np.nan])
