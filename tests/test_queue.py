"""Tests for negatives beyond the batch: the queue losses and their rectangular kernel."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import alignuniform as au
from alignuniform import _kernel


def _sphere(n: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1).to(dtype)


def _fork_uniform(q: torch.Tensor, queue: torch.Tensor, t: float, intra_batch: bool = True):
    """Wang & Isola's MoCo fork, transcribed (its queue is (d, K); ours is (K, d)):
    sq_dists = (2 - 2 q @ queue).flatten(), then cat the pdist(q)^2 of the batch, then
    sq_dists.mul(-t).exp().mean().log(). Computed in float64, one dense (B, K) matrix."""
    sq_dists = (2 - 2 * q @ queue.T).flatten()
    if intra_batch:
        sq_dists = torch.cat([sq_dists, torch.pdist(q, p=2).pow(2)])
    return sq_dists.mul(-t).exp().mean().log()


def _fork_contrastive(q, k, queue, tau):
    """MoCo's InfoNCE as the fork writes it: positive logit in column 0."""
    l_pos = (q * k).sum(dim=1).unsqueeze(-1)
    l_neg = q @ queue.T
    logits = torch.cat([l_pos, l_neg], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))


def _value_and_grad(fn, q, *rest):
    q = q.detach().clone().requires_grad_()
    value = fn(q, *rest)
    value.backward()
    return value.detach(), q.grad


@pytest.mark.parametrize("intra_batch", [True, False])
@pytest.mark.parametrize(("b", "k", "block"), [(5, 37, 8), (16, 64, 1024), (9, 40, 3)])
@pytest.mark.parametrize("t", [0.5, 3.0])
def test_queue_uniform_is_the_forks_formula_in_value_and_gradient(b, k, block, t, intra_batch):
    q, queue = _sphere(b, 6, 0), _sphere(k, 6, 1)
    want, want_grad = _value_and_grad(lambda x: _fork_uniform(x, queue, t, intra_batch), q)
    got, got_grad = _value_and_grad(
        lambda x: au.queue_uniform_loss(x, queue, t, intra_batch=intra_batch, block_size=block), q
    )
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=1e-12)
    # float32 inputs: the same up to float32 rounding
    got32, grad32 = _value_and_grad(
        lambda x: au.queue_uniform_loss(x, queue.float(), t, intra_batch=intra_batch,
                                        block_size=block), q.float()
    )
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), want, rtol=0, atol=2e-5)
    torch.testing.assert_close(grad32.double(), want_grad, rtol=0, atol=2e-5)


def test_queue_uniform_needs_no_gradient_into_the_queue_and_handles_large_exponents():
    q, queue = _sphere(7, 4, 2), _sphere(50, 4, 3).requires_grad_()
    loss = au.queue_uniform_loss(q.requires_grad_(), queue, t=2.0, block_size=16)
    loss.backward()
    assert queue.grad is None and q.grad is not None
    # rows far off the sphere: exp overflows even in float64 in the fork's dense form (so the
    # reference is its log-sum-exp), and the kernel's exact-max shift keeps it finite
    big_q, big_queue = 30 * _sphere(6, 4, 4), 30 * _sphere(40, 4, 5)
    assert not torch.isfinite(_fork_uniform(big_q, big_queue, 2.0))

    def stable_fork(x, queue, t):
        sq_dists = torch.cat([(2 - 2 * x @ queue.T).flatten(), torch.pdist(x, p=2).pow(2)])
        return torch.logsumexp(-t * sq_dists, 0) - torch.log(torch.tensor(sq_dists.numel()))

    want, want_grad = _value_and_grad(lambda x: stable_fork(x, big_queue, 2.0), big_q)
    got, got_grad = _value_and_grad(
        lambda x: au.queue_uniform_loss(x, big_queue, 2.0, block_size=8), big_q)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-8, atol=1e-10)
    # one query: only its queue pairs
    one = _sphere(1, 4, 6)
    torch.testing.assert_close(au.queue_uniform_loss(one, queue.detach(), 2.0),
                               _fork_uniform(one, queue.detach(), 2.0, intra_batch=False))


def test_kernel_holds_no_block_larger_than_block_squared(monkeypatch):
    q, queue = _sphere(12, 4, 0), _sphere(100, 4, 1)
    seen = []
    real_mm = torch.mm

    def spy(a, b):
        seen.append(a.shape[0] * b.shape[1])
        return real_mm(a, b)

    monkeypatch.setattr(_kernel.torch, "mm", spy)
    _kernel.log_sum_bank_potential(q.requires_grad_(), queue, 3.0, 8)
    assert seen and max(seen) <= 8 * 8


def test_queue_uniform_checks_its_inputs():
    q = _sphere(4, 3, 0)
    with pytest.raises(ValueError, match=r"queue must have d=3 columns like q, got \(5, 2\)"):
        au.queue_uniform_loss(q, _sphere(5, 2, 1))
    with pytest.raises(ValueError, match="t must be a positive finite number"):
        au.queue_uniform_loss(q, _sphere(5, 3, 1), t=0)
    with pytest.raises(ValueError, match="queue contains NaN"):
        au.queue_uniform_loss(q, torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        au.queue_uniform_loss(q, _sphere(5, 3, 1), block_size=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_queue_contrastive_is_mocos_infonce_with_the_positive_in_column_0(dtype):
    q, k, queue = _sphere(8, 5, 0, dtype), _sphere(8, 5, 1, dtype), _sphere(32, 5, 2, dtype)
    want, want_grad = _value_and_grad(lambda x: _fork_contrastive(x, k, queue, 0.07), q)
    got, got_grad = _value_and_grad(lambda x: au.queue_contrastive_loss(x, k, queue, 0.07), q)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, want, rtol=0, atol=tol)
    torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=tol)


def test_contrastive_loss_with_a_bank_is_the_symmetrised_moco_loss():
    """``contrastive_loss(q, k, negatives=queue)`` averages MoCo's loss with q as the anchor
    and with k as the anchor: it is *not* MoCo's loss, whose anchor is q only."""
    q, k, queue = _sphere(8, 5, 0), _sphere(8, 5, 1), _sphere(32, 5, 2)
    sym = au.contrastive_loss(q, k, tau=0.2, negatives=queue)
    moco = au.queue_contrastive_loss(q, k, queue, 0.2)
    torch.testing.assert_close(sym, (moco + au.queue_contrastive_loss(k, q, queue, 0.2)) / 2)
    assert (sym - moco).abs() > 1e-3


# ---------------------------------------------------------------------------------------------
# the momentum key encoder and the queue


def test_momentum_queue_updates_and_enqueues_as_moco():
    from torch import nn

    from alignuniform.train import MomentumQueue

    torch.manual_seed(0)
    encoder = nn.Linear(3, 4)
    mq = MomentumQueue(encoder, size=6, dim=4, momentum=0.9, seed=1)
    torch.testing.assert_close(mq.queue.norm(dim=1), torch.ones(6))  # random unit keys
    assert all(torch.equal(a, b) for a, b in zip(mq.key_encoder.parameters(),
                                                 encoder.parameters(), strict=True))
    assert not any(p.requires_grad for p in mq.key_encoder.parameters())
    old = [p.clone() for p in mq.key_encoder.parameters()]
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(1.0)
    mq.update_key_encoder(encoder)
    for k_old, k_new, q in zip(old, mq.key_encoder.parameters(), encoder.parameters(),
                               strict=True):
        torch.testing.assert_close(k_new, 0.9 * k_old + 0.1 * q)  # MoCo: k m + q (1 - m)
    # the pointer advances by the batch and wraps: the oldest keys are overwritten
    initial = mq.queue.clone()
    batches = [torch.full((2, 4), float(i)) for i in range(4)]
    for b in batches:
        mq.enqueue(b)
    assert int(mq.ptr) == 2
    torch.testing.assert_close(mq.queue, torch.cat([batches[3], batches[1], batches[2]]))
    assert not torch.equal(mq.queue, initial)
    with pytest.raises(ValueError, match="not a multiple of the global batch 4"):
        mq.enqueue(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        MomentumQueue(encoder, size=6, dim=4, momentum=1.0)


def test_queue_loss_is_the_weighted_sum_of_its_terms():
    from alignuniform.train import QueueLoss

    q, k, queue = _sphere(6, 5, 0), _sphere(6, 5, 1), _sphere(12, 5, 2)
    crit = QueueLoss(w_contrastive=0.5, tau=0.2, w_align=3.0, w_uniform=1.0, t=3.0)
    out = crit(q, k, queue)
    want = (0.5 * au.queue_contrastive_loss(q, k, queue, 0.2) + 3.0 * au.align_loss(q, k)
            + au.queue_uniform_loss(q, queue, 3.0))
    torch.testing.assert_close(out["loss"], want)
    assert set(out) == {"loss", "contrastive", "align", "uniform"}
    with pytest.raises(ValueError, match="loss.w_contrastive .*; loss.w_uniform"):
        QueueLoss(w_align=1.0)


def test_the_dense_queue_is_written_with_the_global_one_and_wraps_with_it():
    from torch import nn

    from alignuniform.train import MomentumQueue

    mq = MomentumQueue(nn.Linear(3, 4), size=6, dim=4, seed=1, dense_dim=5)
    plain = MomentumQueue(nn.Linear(3, 4), size=6, dim=4, seed=1)
    torch.testing.assert_close(mq.queue, plain.queue)  # drawn after the global queue
    torch.testing.assert_close(mq.dense_queue.norm(dim=1), torch.ones(6))  # as DenseCL's
    batches = [(torch.full((2, 4), float(i)), torch.full((2, 5), -float(i))) for i in range(4)]
    for keys, dense_keys in batches:
        mq.enqueue(keys, dense_keys)
    assert int(mq.ptr) == 2
    torch.testing.assert_close(mq.queue, torch.cat([batches[i][0] for i in (3, 1, 2)]))
    torch.testing.assert_close(mq.dense_queue, torch.cat([batches[i][1] for i in (3, 1, 2)]))
    assert "dense_queue" in mq.state_dict()  # checkpointed with the key encoder and queue
    with pytest.raises(ValueError, match="dense_keys must be given exactly"):
        mq.enqueue(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="dense_keys must be given exactly"):
        plain.enqueue(torch.zeros(2, 4), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="3 dense keys for a batch of 2"):
        mq.enqueue(torch.zeros(2, 4), torch.zeros(3, 5))


def test_a_dense_key_is_the_renormalised_spatial_mean_of_the_dense_map():
    from alignuniform.train.queue import dense_queue_keys

    maps = F.normalize(torch.randn(3, 4, 2, 5, generator=torch.Generator().manual_seed(2),
                                   dtype=torch.float64), dim=1)
    for b in range(3):
        mean = sum(maps[b, :, r, c] for r in range(2) for c in range(5)) / 10
        torch.testing.assert_close(dense_queue_keys(maps)[b], mean / mean.norm())
