"""Losses against independent references: float64 loops, the paper's one-liners, peers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import alignuniform as au
from tests.helpers import ref_align, ref_uniform, sphere

# ---- brute-force float64 references (loops over pairs, numpy only) ------------------------


def ref_info_nce(anchor, pos, negs, tau):
    """-log softmax of the positive among [positive, negatives] for one anchor."""
    scores = [anchor @ pos / tau] + [anchor @ n / tau for n in negs]
    return -(scores[0] - math.log(sum(math.exp(s) for s in scores)))


def ref_contrastive(x, y, tau, bank=None):
    n, losses = len(x), []
    for i in range(n):
        neg_y = bank if bank is not None else [y[j] for j in range(n) if j != i]
        neg_x = bank if bank is not None else [x[j] for j in range(n) if j != i]
        losses.append(
            (ref_info_nce(x[i], y[i], neg_y, tau) + ref_info_nce(y[i], x[i], neg_x, tau)) / 2
        )
    return np.mean(losses)


def ref_nt_xent(x, y, tau):
    z = [v / np.linalg.norm(v) for v in np.concatenate([x, y])]
    n2 = len(z)
    losses = []
    for i in range(n2):
        p = (i + n2 // 2) % n2
        negs = [z[k] for k in range(n2) if k not in (i, p)]
        losses.append(ref_info_nce(z[i], z[p], negs, tau))
    return np.mean(losses)


def ref_triplet(a, p, n, margin):
    cos = lambda u, v: u @ v / (np.linalg.norm(u) * np.linalg.norm(v))  # noqa: E731
    triplets = zip(a, p, n, strict=True)
    return np.mean([max(0.0, cos(ai, ni) - cos(ai, pi) + margin) for ai, pi, ni in triplets])


# ---- values against the loops ------------------------------------------------------------


@pytest.mark.parametrize("alpha", [2.0, 1.0, 0.5, 3.0])
def test_align_matches_loop(alpha):
    x, y = sphere(13, 5, 0), sphere(13, 5, 1)
    assert au.align_loss(x, y, alpha).item() == pytest.approx(
        ref_align(x.numpy(), y.numpy(), alpha), rel=1e-12
    )


@pytest.mark.parametrize("t", [0.5, 2.0, 8.0])
@pytest.mark.parametrize("block", [1, 3, 4, 1024])
def test_uniform_matches_loop_for_every_block_size(t, block):
    x = sphere(11, 4, 2)
    got = au.uniform_loss(x, t, block_size=block).item()
    assert got == pytest.approx(ref_uniform(x.numpy(), t), rel=1e-12)


def test_uniform_off_sphere_matches_loop():
    x = 3 * torch.randn(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert au.uniform_loss(x, 0.1).item() == pytest.approx(ref_uniform(x.numpy(), 0.1), rel=1e-10)


@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0])
def test_contrastive_in_batch_matches_loop(tau):
    x, y = sphere(10, 6, 3), sphere(10, 6, 4)
    assert au.contrastive_loss(x, y, tau).item() == pytest.approx(
        ref_contrastive(x.numpy(), y.numpy(), tau), rel=1e-10
    )


def test_contrastive_with_negative_bank_matches_loop():
    x, y, bank = sphere(7, 6, 5), sphere(7, 6, 6), sphere(20, 6, 7)
    got = au.contrastive_loss(x, y, 0.3, negatives=bank).item()
    assert got == pytest.approx(ref_contrastive(x.numpy(), y.numpy(), 0.3, bank.numpy()), rel=1e-10)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_loop(tau):
    x, y = 2 * sphere(9, 5, 8), sphere(9, 5, 9)  # unnormalised: cosine similarity inside
    assert au.nt_xent_loss(x, y, tau).item() == pytest.approx(
        ref_nt_xent(x.numpy(), y.numpy(), tau), rel=1e-10
    )


def test_triplet_matches_loop():
    a, p, n = (
        torch.randn(15, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(s))
        for s in range(3)
    )
    assert au.triplet_loss(a, p, n, 0.3).item() == pytest.approx(
        ref_triplet(a.numpy(), p.numpy(), n.numpy(), 0.3), rel=1e-12
    )


# ---- the paper's one-liners: values and gradients -----------------------------------------


def paper_align(x, y, alpha=2):
    return (x - y).norm(p=2, dim=1).pow(alpha).mean()


def paper_uniform(x, t=2):
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


@pytest.mark.parametrize(
    "dtype,rtol,gtol", [(torch.float64, 1e-12, 1e-12), (torch.float32, 1e-5, 1e-5)]
)
def test_uniform_value_and_gradient_match_paper_one_liner(dtype, rtol, gtol):
    x = sphere(600, 32, 10, dtype=dtype)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ref = au.uniform_loss(a, block_size=128), paper_uniform(b)
    ours.backward()
    ref.backward()
    assert ours.item() == pytest.approx(ref.item(), rel=rtol)
    scale = b.grad.abs().max()
    assert torch.allclose(a.grad, b.grad, rtol=0, atol=gtol * scale)


@pytest.mark.parametrize("scale", [1.0, 6.0])  # 6: t max||x||^2 > 40 takes the general path
def test_both_kernel_paths_match_the_one_liner(scale):
    x = scale * sphere(300, 6, 32)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    au.uniform_loss(a, block_size=64).backward()
    paper_uniform(b).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-12 * b.grad.abs().max())
    assert au.uniform_loss(x).item() == pytest.approx(paper_uniform(x).item(), rel=1e-12)


@pytest.mark.parametrize("offset", [0.0, 100.0, 1000.0])
def test_uniform_float32_far_from_the_origin_matches_float64_pdist(offset):
    # a tight float32 cluster far from the origin: ||u||^2 + ||v||^2 - 2u.v in float32 cancels
    # catastrophically there (1000 -> -1.59 instead of -4.18); the loss is translation-invariant
    g = torch.Generator().manual_seed(33)
    x32 = offset + 0.3 * torch.randn(200, 8, generator=g)
    a, b = x32.clone().requires_grad_(), x32.double().requires_grad_()
    ours, ref = au.uniform_loss(a, block_size=64), paper_uniform(b)
    ours.backward()
    ref.backward()
    assert ours.dtype == torch.float32
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(a.grad.double(), b.grad, rtol=0, atol=1e-4 * b.grad.abs().max())


def test_uniform_gradient_keeps_radial_term_like_the_reference():
    # off the sphere, 2 - 2u.v would drop the radial part of the gradient
    x = 1.5 * sphere(50, 8, 11)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    au.uniform_loss(a, block_size=16).backward()
    paper_uniform(b).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-12)


def test_align_gradient_matches_paper_one_liner():
    x, y = sphere(40, 8, 12).requires_grad_(), sphere(40, 8, 13)
    for alpha in (2.0, 1.0):
        g_ours = torch.autograd.grad(au.align_loss(x, y, alpha), x)[0]
        g_ref = torch.autograd.grad(paper_align(x, y, alpha), x)[0]
        assert torch.allclose(g_ours, g_ref, atol=1e-13)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(14)
    x = torch.randn(7, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(7, 3, dtype=torch.float64, generator=g, requires_grad=True)
    bank = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: au.uniform_loss(a, 1.3, block_size=3), (x,))
    assert torch.autograd.gradcheck(lambda a, b: au.align_loss(a, b, 1.5), (x, y))
    assert torch.autograd.gradcheck(lambda a, b, n: au.contrastive_loss(a, b, 0.5, n), (x, y, bank))
    assert torch.autograd.gradcheck(lambda a, b: au.nt_xent_loss(a, b, 0.5), (x, y))


# ---- exact special cases and invariances ---------------------------------------------------


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-13)])
def test_all_points_equal_gives_uniformity_zero(dtype, tol):
    x = F.normalize(torch.ones(6, 4, dtype=dtype), dim=1)
    assert au.uniform_loss(x).item() == pytest.approx(0.0, abs=tol)


@pytest.mark.parametrize("t", [0.5, 2.0, 8.0, 30.0])  # 30: beyond the fast path
def test_two_antipodal_points_give_minus_four_t(t):
    x = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    assert au.uniform_loss(x, t).item() == pytest.approx(-4 * t, rel=1e-6)


@pytest.mark.parametrize("n", [2, 4, 33])  # one pair has no negative: refused (bad input)
def test_nt_xent_of_collinear_views_is_log_2n_minus_1(n):
    x = F.normalize(torch.ones(n, 8), dim=1)
    assert au.nt_xent_loss(x, x.clone(), 0.5).item() == pytest.approx(math.log(2 * n - 1), abs=1e-6)


def test_losses_are_rotation_invariant():
    x, y, q = (
        sphere(30, 6, 15),
        sphere(30, 6, 16),
        torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0],
    )
    assert au.uniform_loss(x @ q).item() == pytest.approx(au.uniform_loss(x).item(), rel=1e-12)
    assert au.align_loss(x @ q, y @ q).item() == pytest.approx(
        au.align_loss(x, y).item(), rel=1e-12
    )
    assert au.contrastive_loss(x @ q, y @ q, 0.2).item() == pytest.approx(
        au.contrastive_loss(x, y, 0.2).item(), rel=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 24),
    d=st.integers(1, 9),
    t=st.floats(0.05, 10.0),
    block=st.integers(1, 30),
    scale=st.floats(0.1, 3.0),
    seed=st.integers(0, 2**16),
)
def test_uniform_property_against_loop(n, d, t, block, scale, seed):
    x = scale * torch.randn(
        n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )
    ref = ref_uniform(x.numpy(), t)
    assert au.uniform_loss(x, t, block_size=block).item() == pytest.approx(ref, rel=1e-9, abs=1e-9)


# ---- precision --------------------------------------------------------------------------------


def test_half_precision_inputs_are_computed_in_float32_without_overflow():
    x, y = sphere(64, 16, 17, torch.float32), sphere(64, 16, 18, torch.float32)
    for dtype in (torch.float16, torch.bfloat16):
        xh, yh = x.to(dtype), y.to(dtype)
        ref_c = au.contrastive_loss(xh.float(), yh.float(), 0.05)
        ref_u = au.uniform_loss(xh.float(), 8.0)
        assert torch.isfinite(au.contrastive_loss(xh, yh, 0.05))
        assert au.contrastive_loss(xh, yh, 0.05).item() == pytest.approx(ref_c.item(), rel=1e-6)
        assert au.uniform_loss(xh, 8.0).item() == pytest.approx(ref_u.item(), rel=1e-6)
        assert au.nt_xent_loss(xh, yh, 0.05).dtype == torch.float32


def test_losses_under_cpu_autocast_match_float32():
    x = sphere(64, 16, 19, torch.float32).requires_grad_()
    y = sphere(64, 16, 20, torch.float32)
    crit = au.LossCombination(w_contrastive=1.0, tau=0.05, w_align=1.0, w_uniform=1.0, t=8.0)
    ref = crit(x, y)["loss"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = crit(x, y)["loss"]
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)


# ---- peers ---------------------------------------------------------------------------------


def test_nt_xent_equals_lightly_and_pytorch_metric_learning():
    lightly_loss = pytest.importorskip("lightly.loss")
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    x, y = sphere(128, 32, 21, torch.float32), sphere(128, 32, 22, torch.float32)
    ours = au.nt_xent_loss(x, y, 0.5).item()
    assert ours == pytest.approx(lightly_loss.NTXentLoss(temperature=0.5)(x, y).item(), rel=1e-6)
    pml_loss = pml.SelfSupervisedLoss(pml.NTXentLoss(temperature=0.5))(x, y).item()
    assert ours == pytest.approx(pml_loss, rel=1e-6)


# ---- the combination -------------------------------------------------------------------------


def test_loss_combination_is_the_weighted_sum_of_its_terms():
    x, y = sphere(20, 8, 23), sphere(20, 8, 24)
    crit = au.LossCombination(
        w_contrastive=0.5, tau=0.2, w_align=2.0, alpha=1.0, w_uniform=3.0, t=1.0
    )
    out = crit(x, y)
    c = au.contrastive_loss(x, y, 0.2)
    a = au.align_loss(x, y, 1.0)
    u = (au.uniform_loss(x, 1.0) + au.uniform_loss(y, 1.0)) / 2
    assert set(out) == {"loss", "contrastive", "align", "uniform"}
    assert out["loss"].item() == pytest.approx((0.5 * c + 2 * a + 3 * u).item(), rel=1e-12)
    assert out["uniform"].item() == pytest.approx(u.item(), rel=1e-12)
    assert not out["align"].requires_grad


def test_align_uniform_loss_is_the_paper_default():
    x, y = sphere(20, 8, 25), sphere(20, 8, 26)
    out = au.AlignUniformLoss()(x, y)
    expected = paper_align(x, y) + (paper_uniform(x) + paper_uniform(y)) / 2
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-12)
    assert set(out) == {"loss", "align", "uniform"}


def test_loss_combination_backward_reaches_inputs():
    x = sphere(16, 4, 27).requires_grad_()
    au.LossCombination(w_nt_xent=1.0, w_uniform=1.0)(x, sphere(16, 4, 28))["loss"].backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ---- edge values that used to pass silently or fail obscurely --------------------------------


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.5, 3.0])
def test_align_gradient_is_zero_at_coinciding_pairs_and_exact_elsewhere(alpha):
    x, y = sphere(6, 4, 34), sphere(6, 4, 35)
    y[2] = x[2]
    a = x.clone().requires_grad_()
    au.align_loss(a, y, alpha).backward()
    assert torch.isfinite(a.grad).all()
    assert torch.equal(a.grad[2], torch.zeros(4, dtype=torch.float64))
    # other rows: d/dx_i (1/N) ||x_i - y_i||^alpha = (alpha/N) ||x_i - y_i||^(alpha-2) (x_i - y_i)
    diff = (x - y).numpy()
    for i in (0, 1, 3, 4, 5):
        dist = np.linalg.norm(diff[i])
        expected = alpha / 6 * dist ** (alpha - 2) * diff[i]
        np.testing.assert_allclose(a.grad[i].numpy(), expected, rtol=1e-12)
    assert au.align_loss(x, y, alpha).item() == pytest.approx(
        ref_align(x.numpy(), y.numpy(), alpha), rel=1e-12
    )


def test_mixed_float32_float64_inputs_are_computed_in_float64():
    x, y, bank = sphere(8, 5, 36), sphere(8, 5, 37), sphere(12, 5, 38)
    x32 = x.float()
    want = au.contrastive_loss(x32.double(), y, 0.3)
    got = au.contrastive_loss(x32, y, 0.3)
    assert got.dtype == torch.float64 and got.item() == pytest.approx(want.item(), rel=1e-12)
    got = au.contrastive_loss(x32, y, 0.3, negatives=bank)
    assert got.item() == pytest.approx(
        au.contrastive_loss(x32.double(), y, 0.3, negatives=bank).item(), rel=1e-12
    )
    for loss in (au.align_loss, au.nt_xent_loss):
        assert loss(x32, y).item() == pytest.approx(loss(x32.double(), y).item(), rel=1e-12)
    assert au.triplet_loss(x32, y, bank[:8]).item() == pytest.approx(
        au.triplet_loss(x32.double(), y, bank[:8]).item(), rel=1e-12
    )


def test_zero_dim_tensor_hyperparameters_read_as_floats():
    x, y = sphere(8, 5, 39), sphere(8, 5, 40)
    assert au.uniform_loss(x, t=torch.tensor(3.0)).item() == au.uniform_loss(x, t=3.0).item()
    assert au.contrastive_loss(x, y, tau=torch.tensor(0.2, dtype=torch.float64)).item() == (
        au.contrastive_loss(x, y, tau=0.2).item()
    )
    assert au.LossCombination(w_uniform=1.0, t=torch.tensor(2.0)).t == 2.0


# ---- bad input -------------------------------------------------------------------------------

X = sphere(4, 3, 29, torch.float32)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: au.uniform_loss(X[:1]), ValueError, "at least 2 rows"),
        (lambda: au.uniform_loss(X[0]), ValueError, "2-D"),
        (lambda: au.uniform_loss(X, t=0), ValueError, "t must be a positive"),
        (lambda: au.uniform_loss(X, t=-1.0), ValueError, "t must be a positive"),
        (lambda: au.uniform_loss(torch.ones(4, 3, dtype=torch.long)), TypeError, "floating-point"),
        (lambda: au.uniform_loss(X.numpy()), TypeError, "torch.Tensor"),
        (lambda: au.align_loss(X, X[:3]), ValueError, "same shape"),
        (lambda: au.align_loss(X, X, alpha=0), ValueError, "alpha"),
        (lambda: au.contrastive_loss(X, X, tau=0), ValueError, "tau"),
        (lambda: au.contrastive_loss(X[:1], X[:1]), ValueError, "at least 2 pairs"),
        (lambda: au.contrastive_loss(X, X, negatives=torch.ones(5, 2)), ValueError, "columns"),
        (lambda: au.nt_xent_loss(X, X * float("nan")), ValueError, "NaN or Inf"),
        (lambda: au.uniform_loss(X.masked_fill(X > 0, float("inf"))), ValueError, "NaN or Inf"),
        (lambda: au.triplet_loss(X, X, X, margin=-1), ValueError, "margin"),
        (lambda: au.LossCombination(), ValueError, "at least one weight"),
        (lambda: au.LossCombination(w_align=-1.0), ValueError, "w_align"),
        (lambda: au.nt_xent_loss(X[:1], X[:1]), ValueError, "at least 2 pairs"),
        (lambda: au.nt_xent_loss(X, X.index_fill(0, torch.tensor([1, 3]), 0.0)), ValueError,
         r"row 1 of y \(and 1 more\) is zero.*cannot be L2-normalised"),
        (lambda: au.triplet_loss(X, X, X.index_fill(0, torch.tensor([2]), 0.0)), ValueError,
         "row 2 of negative is zero"),
        (lambda: au.uniform_loss(X, t=torch.tensor([2.0, 3.0])), ValueError, "0-d"),
        (lambda: au.contrastive_loss(X, X, tau=torch.tensor(0.1, requires_grad=True)),
         ValueError, "requires grad"),
        (lambda: au.uniform_loss(X, t="2"), ValueError, "real number, got str"),
    ],
)
def test_bad_input_raises_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x, y = sphere(3000, 64, 30, torch.float32), sphere(3000, 64, 31, torch.float32)
    crit = au.LossCombination(w_contrastive=1.0, w_align=1.0, w_uniform=1.0)
    cpu = crit(x, y)
    gpu = crit(x.cuda(), y.cuda())
    for k in cpu:
        assert gpu[k].item() == pytest.approx(cpu[k].item(), rel=1e-4)
