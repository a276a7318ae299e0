"""Uniformity of raw rows with far outliers, against float64 brute force.

One far row used to drag the centring mean away from every other row, and the float32
expansion ``||u||^2 + ||v||^2 - 2 u.v`` then cancelled catastrophically (2,000 rows: -3.81
instead of -4.35; at 1e30 the squares overflowed and the value was NaN).
"""

from __future__ import annotations

import math

import pytest
import torch

import alignuniform as au
from alignuniform import metrics


def ref_uniform_and_grad(x: torch.Tensor, t: float = 2.0) -> tuple[float, torch.Tensor]:
    """Float64 value and gradient from every pairwise distance, in log space."""
    x = x.double().clone().requires_grad_()
    e = torch.pdist(x).pow(2).mul(-t)
    value = torch.logsumexp(e, 0) - math.log(e.numel())
    value.backward()
    return value.item(), x.grad


def cloud(n: int, outlier: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(n, 16, generator=g)
    x[7] = outlier
    return x


@pytest.mark.parametrize("outlier", [1e6, 1e10, 1e30])
def test_one_far_row_gives_the_float64_value_and_gradient(outlier):
    x = cloud(300, outlier)
    ref, ref_grad = ref_uniform_and_grad(x)
    assert -4.5 < ref < -4.0  # the cluster's value: the far row adds ~0
    leaf = x.clone().requires_grad_()
    loss = au.uniform_loss(leaf, block_size=64)
    loss.backward()
    assert loss.dtype == torch.float32 and leaf.grad.dtype == torch.float32
    assert loss.item() == pytest.approx(ref, abs=1e-5)
    assert torch.allclose(leaf.grad.double(), ref_grad, rtol=0, atol=1e-5 * ref_grad.abs().max())
    assert metrics.uniformity(x, normalize=False, block_size=64) == pytest.approx(ref, abs=1e-5)
    for max_rows in (None, 300):  # streaming, exact and sampled (every row kept)
        metric = metrics.Uniformity(normalize=False, max_rows=max_rows, block_size=64)
        for b in range(0, 300, 70):
            metric.update(x[b : b + 70])
        assert metric.compute().item() == pytest.approx(ref, abs=1e-5)


def test_the_issue_case_2000_rows():
    x = cloud(2000, 1e6, seed=1)
    ref = ref_uniform_and_grad(x)[0]
    assert metrics.uniformity(x, normalize=False) == pytest.approx(ref, abs=1e-5)


def test_a_minority_of_far_rows_in_one_far_cluster():
    # 10 rows near 1e4 (their own cluster) among 200 near 0: both clusters' pairs count
    x = cloud(210, 0.5, seed=2)
    x[200:] = 1e4 + 0.3 * torch.randn(10, 16, generator=torch.Generator().manual_seed(3))
    ref, ref_grad = ref_uniform_and_grad(x)
    leaf = x.clone().requires_grad_()
    loss = au.uniform_loss(leaf, block_size=64)
    loss.backward()
    assert loss.item() == pytest.approx(ref, abs=1e-5)
    assert torch.allclose(leaf.grad.double(), ref_grad, rtol=0, atol=1e-5 * ref_grad.abs().max())


def test_normalised_metrics_take_large_finite_rows():
    # a norm of 4e18 is in float32 range: the row has a direction like any other
    x = cloud(50, 1e18, seed=4)
    ref = ref_uniform_and_grad(torch.nn.functional.normalize(x.double(), dim=1))[0]
    assert metrics.uniformity(x) == pytest.approx(ref, abs=1e-6)
    metric = metrics.Uniformity()
    metric.update(x)
    assert metric.compute().item() == pytest.approx(ref, abs=1e-6)


def test_rows_out_of_range_are_refused_with_the_reason():
    # a float32 norm whose square passes 3.4e38 cannot be normalised in float32 (F.normalize
    # returns a zero row); a float64 square beyond 1e308 cannot be formed: both are named,
    # never returned as a NaN or a wrong value
    x = cloud(20, 0.5)
    x[3] = 1e30
    with pytest.raises(ValueError, match=r"row 3 of x has a norm beyond the torch.float32 range"):
        metrics.uniformity(x)
    metric = metrics.Uniformity()
    metric.update(x)
    with pytest.raises(ValueError, match="1 rows given to update.*beyond the dtype's range"):
        metric.compute()
    far = cloud(20, 0.5).double()
    far[5] = 1e200
    with pytest.raises(ValueError, match=r"row 5 of x is too far .*overflows float64"):
        metrics.uniformity(far, normalize=False)
    with pytest.raises(ValueError, match=r"row 5 of x is too far"):
        au.uniform_loss(far)
    assert metrics.uniformity(x, normalize=False) == pytest.approx(
        ref_uniform_and_grad(x)[0], abs=1e-5
    )
