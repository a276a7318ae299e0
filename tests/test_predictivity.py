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


# ------------------------------------------------- intervals and permutation nulls (issue 22)


def boot_stream(seed):
    """The bootstrap generator the analysis draws from (the permutations have their own)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])


def test_association_against_scipy():
    rng = np.random.default_rng(10)
    x = rng.normal(size=20)
    y = 0.5 * x + rng.normal(size=20)
    out = predictivity.association(x, y, n_boot=300, n_perm=99, seed=3)
    assert out["n"] == 20 and out["spearman"]["value"] == pytest.approx(
        stats.spearmanr(x, y)[0], abs=1e-12)
    assert out["kendall"]["value"] == pytest.approx(stats.kendalltau(x, y)[0], abs=1e-12)
    resamples = boot_stream(3).integers(0, 20, (300, 20))
    boot = [stats.kendalltau(x[i], y[i])[0] for i in resamples]
    assert (out["kendall"]["low"], out["kendall"]["high"]) == pytest.approx(
        tuple(np.quantile(boot, [0.025, 0.975])), abs=1e-12)
    assert (out["n_perm"], out["seed"], out["alternative"]) == (99, 3, "two-sided")
    assert out == predictivity.association(x, y, n_boot=300, n_perm=99, seed=3)  # seeded
    # more permutations leave the interval alone (separate streams)
    assert predictivity.association(x, y, n_boot=300, n_perm=5, seed=3)["kendall"]["low"] == \
        out["kendall"]["low"]


def test_two_sided_p_value_matches_scipy_exact_permutation_test():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=6), rng.normal(size=6)
    y[3] = y[1]  # a tie
    for name, fn in (("kendall", stats.kendalltau), ("spearman", stats.spearmanr)):
        exact = stats.permutation_test((y,), lambda v, fn=fn: abs(fn(x, v)[0]),
                                       permutation_type="pairings", alternative="greater",
                                       n_resamples=np.inf).pvalue
        ours = predictivity.association(x, y, n_boot=0, n_perm=6000, seed=1)[name]
        assert ours["p_value"] == pytest.approx(exact, abs=0.03)  # 4 Monte Carlo SEs
        assert ours["low"] is None


def test_permutation_summary_by_hand():
    null = np.array([0.1, -0.6, 0.2, 0.5, np.nan])
    assert predictivity.permutation_summary(0.5, null) == {
        "p_value": (1 + 2) / 5, "null_q95": pytest.approx(np.quantile([0.1, 0.6, 0.2, 0.5],
                                                                      0.95))}
    assert predictivity.permutation_summary(-0.55, null)["p_value"] == (1 + 1) / 5
    assert predictivity.permutation_summary(-0.55, null, alternative="greater")[
        "p_value"] == (1 + 3) / 5
    assert predictivity.permutation_summary(math.nan, null) == {"p_value": None,
                                                               "null_q95": None}
    with pytest.raises(ValueError, match="alternative"):
        predictivity.permutation_summary(0.5, null, alternative="less")


def test_permutations_stay_within_groups_and_are_uniform():
    groups = np.array(["a", "b", "a", "b", "a", "c"])
    perms = predictivity.permutations(6, 3000, np.random.default_rng(0), groups)
    for p in perms[:50]:
        assert sorted(p) == list(range(6)) and (groups[p] == groups).all()
    assert (perms[:, 5] == 5).all()
    # each of group a's positions receives each of its members a third of the time
    counts = np.array([[(perms[:, i] == j).mean() for j in (0, 2, 4)] for i in (0, 2, 4)])
    np.testing.assert_allclose(counts, 1 / 3, atol=0.04)


def pooled_tau(x, y, groups):
    taus, weights = [], []
    for g in dict.fromkeys(groups):
        idx = [i for i, h in enumerate(groups) if h == g]
        tau = stats.kendalltau(x[idx], y[idx])[0] if len(idx) > 1 else math.nan
        if math.isfinite(tau):
            taus.append(tau)
            weights.append(len(idx))
    return np.average(taus, weights=weights)


def test_within_groups_against_brute_force_and_scipy():
    rng = np.random.default_rng(12)
    groups = np.repeat(["lr=0.1", "lr=0.3", "lr=1"], [4, 3, 3])  # unequal weights
    x = rng.normal(size=10)
    y = x + 3 * (groups == "lr=1") + rng.normal(size=10)  # a group offset: across != within
    y = np.r_[y, 0.0]
    x, groups = np.r_[x, 0.0], np.append(groups, "alone")  # one group of a single encoder
    out = predictivity.association(x, y, groups=groups, n_boot=200, n_perm=5000, seed=2)
    within = out["within"]
    assert [g["group"] for g in within["groups"]] == ["lr=0.1", "lr=0.3", "lr=1", "alone"]
    for g in within["groups"][:3]:
        idx = groups == g["group"]
        assert g["kendall"] == pytest.approx(stats.kendalltau(x[idx], y[idx])[0], abs=1e-12)
        assert g["spearman"] == pytest.approx(stats.spearmanr(x[idx], y[idx])[0], abs=1e-12)
    assert within["groups"][3] == {"group": "alone", "n": 1, "spearman": None, "kendall": None}
    assert within["kendall"]["value"] == pytest.approx(pooled_tau(x, y, list(groups)), abs=1e-12)
    assert within["kendall"]["low"] <= within["kendall"]["value"] <= within["kendall"]["high"]
    # the null permutes within groups: every one of the 4! 3! 3! within-group permutations
    import itertools

    parts = [np.flatnonzero(groups == g) for g in ("lr=0.1", "lr=0.3", "lr=1")]
    observed, extreme, total = abs(pooled_tau(x, y, list(groups))), 0, 0
    for orders in itertools.product(*(itertools.permutations(i) for i in parts)):
        yy = y.copy()
        for idx, order in zip(parts, orders, strict=True):
            yy[idx] = y[list(order)]
        extreme += abs(pooled_tau(x, yy, list(groups))) >= observed - 1e-12
        total += 1
    assert within["kendall"]["p_value"] == pytest.approx(extreme / total, abs=0.03)


def brute_regret(m, acc, groups, direction):
    out = []
    for g in dict.fromkeys(groups):
        idx = [i for i in range(len(m)) if groups[i] == g]
        if len(idx) < 2:
            continue
        best_m = max(m[i] for i in idx) if direction == "higher" else min(m[i] for i in idx)
        picked = np.mean([acc[i] for i in idx if m[i] == best_m])
        out.append((max(acc[i] for i in idx) - picked,
                    max(acc[i] for i in idx) - np.mean([acc[i] for i in idx])))
    return out


def test_selection_regret_against_a_loop():
    rng = np.random.default_rng(13)
    groups = list(rng.integers(0, 5, 30))
    m = rng.integers(0, 4, 30).astype(float)  # ties on the metric
    acc = rng.uniform(0.5, 0.9, 30)
    for direction in ("higher", "lower"):
        out = predictivity.selection_regret(m, acc, direction=direction, groups=groups)
        expected = brute_regret(m, acc, groups, direction)
        got = [(g["regret"], g["random_regret"]) for g in out["groups"]]
        np.testing.assert_allclose(got, expected, atol=1e-12)
        assert out["mean"] == pytest.approx(np.mean([e[0] for e in expected]))
        assert out["max"] == pytest.approx(max(e[0] for e in expected))
        assert out["random_mean"] == pytest.approx(np.mean([e[1] for e in expected]))
    whole = predictivity.selection_regret(m, acc, direction="lower")
    assert whole["n_groups"] == 1 and whole["groups"][0]["best"] == acc.max()
    one_each = predictivity.selection_regret(m[:3], acc[:3], direction="lower", groups=[1, 2, 3])
    assert one_each["n_groups"] == 0 and one_each["mean"] is None
    with pytest.raises(ValueError, match="direction"):
        predictivity.selection_regret(m, acc, direction="up")


def brute_logo(features, acc, groups):
    x = np.column_stack([features, np.ones(len(acc))])
    pred = np.empty(len(acc))
    for g in set(groups):
        out = np.array([h == g for h in groups])
        coef = np.linalg.lstsq(x[~out], acc[~out], rcond=None)[0]
        pred[out] = x[out] @ coef
    return pred


def test_cv_fit_leave_one_group_out_by_hand():
    rng = np.random.default_rng(14)
    groups = list(np.repeat(np.arange(6), 3))
    a, u = rng.uniform(0, 1, 18), rng.uniform(-3, -1, 18)
    acc = 0.9 - 0.3 * a - 0.1 * u + 0.05 * rng.normal(size=18)
    feats = np.column_stack([a, u])
    out = predictivity.cv_fit_association(feats, acc, groups=groups, n_boot=50, n_perm=99)
    pred = brute_logo(feats, acc, groups)
    assert out["cv"] == "leave-one-group-out"
    assert out["kendall"]["value"] == pytest.approx(stats.kendalltau(pred, acc)[0], abs=1e-12)
    assert out["q2"] == pytest.approx(1 - ((acc - pred) ** 2).sum()
                                      / ((acc - acc.mean()) ** 2).sum(), abs=1e-12)
    np.testing.assert_allclose(out["coef"], np.linalg.lstsq(
        np.column_stack([feats, np.ones(18)]), acc, rcond=None)[0][:2], atol=1e-12)
    loo = predictivity.cv_fit_association(feats, acc, n_boot=0, n_perm=0)
    assert loo["cv"] == "leave-one-out" and loo["spearman"]["value"] == pytest.approx(
        stats.spearmanr(brute_logo(feats, acc, list(range(18))), acc)[0], abs=1e-12)
    # the operator gives the left-out predictions of any targets
    op = predictivity.cv_operator(np.column_stack([feats, np.ones(18)]), np.array(groups))
    other = rng.normal(size=18)
    np.testing.assert_allclose(op @ other, brute_logo(feats, other, groups), atol=1e-12)
    assert predictivity.cv_operator(np.ones((4, 3)), np.array([0, 0, 1, 2])) is None


def test_cv_fit_null_redoes_the_fit():
    """The fitted score's p-value against scipy's exact test of a loop that refits by hand."""
    rng = np.random.default_rng(15)
    a, u, acc = rng.normal(size=6), rng.normal(size=6), rng.normal(size=6)
    feats = np.column_stack([a, u])
    exact = stats.permutation_test(
        (acc,), lambda v: stats.kendalltau(brute_logo(feats, v, list(range(6))), v)[0],
        permutation_type="pairings", alternative="greater", n_resamples=np.inf).pvalue
    out = predictivity.cv_fit_association(feats, acc, n_boot=0, n_perm=6000, seed=4)
    assert out["kendall"]["p_value"] == pytest.approx(exact, abs=0.03)


def test_au_correlation_null():
    a, u, p = encoders(6, noise=0.3, seed=16)
    exact = stats.permutation_test((p,), lambda v: brute_loo_r(a, u, v),
                                   permutation_type="pairings", alternative="greater",
                                   n_resamples=np.inf).pvalue
    out = predictivity.au_correlation_null(a, u, p, n_perm=6000, seed=1)
    assert out["value"] == pytest.approx(brute_loo_r(a, u, p), abs=1e-12)
    assert out["p_value"] == pytest.approx(exact, abs=0.03)
    assert out["n_perm"] == 6000 and out["alternative"] == "greater"
    # pure noise over 24 encoders: the null sits below 0 and its 95th percentile well above
    rng = np.random.default_rng(17)
    noise = predictivity.au_correlation_null(rng.normal(size=24), rng.normal(size=24),
                                             rng.normal(size=24), n_perm=2000)
    assert -0.4 < noise["null_mean"] < -0.05 and 0.1 < noise["null_q95"] < 0.5


def test_planted_perfect_predictor():
    rng = np.random.default_rng(18)
    acc = rng.uniform(0.3, 0.9, 24)
    rows = [{"rankme": 10 * v, "uniformity": -3 * v, "alignment": 1 - v,
             "noise": float(rng.normal()), "acc": v, "seed": i % 6} for i, v in enumerate(acc)]
    table = predictivity.predict_table(
        rows, {"rankme": "higher", "uniformity": "lower", "noise": "higher"}, ["acc"],
        groups="seed", fit=("alignment", "uniformity"), n_boot=100, n_perm=199, seed=0)
    cells = table["accuracies"]["acc"]["metrics"]
    for name, sign in (("rankme", 1), ("uniformity", -1)):
        assert cells[name]["kendall"]["value"] == pytest.approx(sign)
        assert cells[name]["kendall"]["p_value"] == 1 / 200
        assert cells[name]["within"]["kendall"]["value"] == pytest.approx(sign)
        assert cells[name]["within"]["kendall"]["p_value"] == 1 / 200
        assert cells[name]["regret"]["max"] == 0 and cells[name]["regret"]["n_groups"] == 6
        assert cells[name]["regret"]["random_mean"] > 0
    assert cells["noise"]["regret"]["mean"] > 0
    fit = table["accuracies"]["acc"]["fit"]
    assert fit["cv"] == "leave-one-group-out" and fit["kendall"]["value"] == pytest.approx(1)
    assert fit["kendall"]["p_value"] == 1 / 200 and fit["q2"] == pytest.approx(1)
    au = table["accuracies"]["acc"]["au_correlation"]
    assert au["value"] == pytest.approx(1) and au["p_value"] == 1 / 200


def test_pure_noise_p_values_are_uniform():
    """Over 200 noise data sets, each null rejects at 0.05 as often as a binomial allows."""
    low, high = stats.binom.interval(0.999, 200, 0.05)
    rejections = {"across": 0, "within": 0, "fit": 0}
    for seed in range(200):
        rng = np.random.default_rng(seed)
        x, y, z = rng.normal(size=(3, 12))
        groups = np.repeat([0, 1, 2], 4)
        out = predictivity.association(x, y, groups=groups, n_boot=0, n_perm=99, seed=seed)
        fit = predictivity.cv_fit_association(np.column_stack([x, z]), y, n_boot=0,
                                              n_perm=99, seed=seed)
        rejections["across"] += out["kendall"]["p_value"] <= 0.05
        rejections["within"] += out["within"]["kendall"]["p_value"] <= 0.05
        rejections["fit"] += fit["kendall"]["p_value"] <= 0.05
    for name, count in rejections.items():
        assert low <= count <= high, (name, count)


def test_predict_table_is_strict_json_and_skips_missing_cells():
    import json

    rng = np.random.default_rng(19)
    rows = [{"alignment": float(a), "uniformity": float(u), "acc": float(v), "const": 1.0,
             "rankme": None if i == 0 else float(rng.normal()), "group": "g" + str(i % 2)}
            for i, (a, u, v) in enumerate(rng.normal(size=(10, 3)))]
    rows[1]["rankme"] = math.nan
    rows[2].pop("acc")
    table = predictivity.predict_table(
        rows, {"rankme": "higher", "const": "lower", "few": "lower"}, ["acc", "miou"],
        groups="group", n_boot=20, n_perm=19)
    json.dumps(table, allow_nan=False)
    cells = table["accuracies"]["acc"]["metrics"]
    assert cells["rankme"]["n"] == 7 and cells["const"]["n"] == 9
    ok = [i for i in range(10) if i not in (0, 1, 2)]
    assert cells["rankme"]["kendall"]["value"] == pytest.approx(stats.kendalltau(
        [rows[i]["rankme"] for i in ok], [rows[i]["acc"] for i in ok])[0], abs=1e-12)
    assert cells["const"]["kendall"] == {"value": None, "low": None, "high": None,
                                         "p_value": None, "null_q95": None}
    assert cells["few"] == {"direction": "lower", "n": 0,
                            "error": "0 encoders have both 'few' and 'acc'"}
    assert table["accuracies"]["acc"]["fit"]["n"] == 9
    assert "error" in table["accuracies"]["miou"]["au_correlation"]
    assert table["n_perm"] == 19 and table["seed"] == 0 and table["groups"] == "group"
    with pytest.raises(ValueError, match="direction"):
        predictivity.predict_table(rows, {"rankme": "best"}, ["acc"])
    with pytest.raises(ValueError, match="label"):
        predictivity.predict_table(rows, {"rankme": "higher"}, ["acc"], groups="missing")


def test_kendall_heatmap(tmp_path, monkeypatch):
    from matplotlib.image import imread

    from alignuniform.report import predictivity_figures as pf

    rng = np.random.default_rng(20)
    acc = rng.uniform(0.3, 0.9, 12)
    rows = [{"rankme": float(v), "uniformity": float(rng.normal()), "acc": float(v), "g": i % 3}
            for i, v in enumerate(acc)]
    tables = {
        "planted": predictivity.predict_table(rows, {"rankme": "higher", "uniformity": "lower"},
                                              ["acc"], groups="g", fit=None, n_boot=0,
                                              n_perm=99),
        "rankme only": predictivity.predict_table(rows, {"rankme": "higher"}, ["acc"],
                                                  fit=None, n_boot=0, n_perm=99),
    }
    grid = pf.kendall_grid(tables, "acc")
    assert grid.metrics == ["rankme", "uniformity"] and grid.studies == list(tables)
    unif = tables["planted"]["accuracies"]["acc"]["metrics"]["uniformity"]["kendall"]
    np.testing.assert_allclose(grid.tau, [[1, 1], [unif["value"], np.nan]])
    np.testing.assert_allclose(grid.p_value, [[0.01, 0.01], [unif["p_value"], np.nan]])
    within = pf.kendall_grid(tables, "acc", within=True)
    assert within.tau[0, 0] == 1 and np.isnan(within.tau[0, 1])  # no groups in study 2
    drawn = {}
    monkeypatch.setattr(pf, "save_figure", lambda fig, path: drawn.setdefault("fig", fig))
    pf.kendall_heatmap(tables, tmp_path / "unused.png", accuracy="acc")
    ax = drawn["fig"].axes[0]
    texts = sorted(t.get_text() for t in ax.texts)
    star = "*" if unif["p_value"] < 0.05 else ""
    assert texts == sorted(["+1.00*", "+1.00*", f"{unif['value']:+.2f}{star}", "n/a"])
    image = ax.images[0]
    assert image.norm.vmin == -1 and image.norm.vmax == 1  # centred at 0
    assert image.cmap.name.startswith("RdBu")
    monkeypatch.undo()
    out = pf.kendall_heatmap(tables, tmp_path / "heat.png", accuracy="acc")
    assert out == tmp_path / "heat.png" and imread(out).std() > 0.01
    with pytest.raises(ValueError, match="at least one"):
        pf.kendall_heatmap(tables, tmp_path / "none.png", accuracy="miou")
