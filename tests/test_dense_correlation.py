"""The AU-correlation scalar over a set of encoders (alignuniform.dense)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alignuniform import dense


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
    r = dense.au_correlation(a, u, p, n_boot=200)
    assert r.value == pytest.approx(1.0, abs=1e-12) and r.q2 == pytest.approx(1.0, abs=1e-10)
    assert r.low == pytest.approx(1.0, abs=1e-9) and r.n_boot == 200
    np.testing.assert_allclose(r.coef, (0.9, -0.3, -0.1), atol=1e-12)


def test_matches_brute_force_and_interval_behaves():
    a, u, p = encoders(noise=0.05, seed=1)
    r = dense.au_correlation(a, u, p, n_boot=150, seed=4)
    assert r.value == pytest.approx(brute_loo_r(a, u, p), abs=1e-12)
    assert 0.5 < r.value < 1 and r.low <= r.value <= r.high
    assert r.r_in_sample >= r.value  # in-sample fit is never worse than out-of-sample
    assert r == dense.au_correlation(a, u, p, n_boot=150, seed=4)  # seeded
    # performance unrelated to the metrics: near zero, an interval that includes zero
    rng = np.random.default_rng(7)
    null = dense.au_correlation(a, u, rng.normal(size=len(a)), n_boot=150)
    assert null.value < 0.5 and null.low < 0 < null.high and null.q2 < 0.2
    sp = dense.au_correlation(a, u, p, method="spearman", n_boot=0)
    assert 0.5 < sp.value <= 1 and math.isnan(sp.low)


def test_inputs():
    a, u, p = encoders(8)
    t = dense.au_correlation(torch.tensor(a), torch.tensor(u), torch.tensor(p), n_boot=10)
    results = [{"dense_alignment": x, "dense_uniformity": y, "miou": z} for x, y, z in
               zip(a, u, p, strict=True)]
    assert dense.dense_au_correlation(results, n_boot=10) == t
    with pytest.raises(KeyError, match="miou"):
        dense.dense_au_correlation([{"dense_alignment": 1, "dense_uniformity": 1}] * 6)
    with pytest.raises(ValueError, match="at least 5"):
        dense.au_correlation(a[:4], u[:4], p[:4])
    with pytest.raises(ValueError, match="constant"):
        dense.au_correlation(a, u, np.ones(8))
    with pytest.raises(ValueError, match="values"):
        dense.au_correlation(a, u[:7], p)
    with pytest.raises(ValueError, match="NaN"):
        dense.au_correlation(a, u, np.r_[p[:7], np.nan])
