"""Block-wise Gaussian-potential sums: the one hot spot of the library.

``log_mean_pair_potential(x, t)`` computes ``log( mean_{i<j} exp(-t ||x_i - x_j||^2) )``
without ever holding the N x N matrix. Only blocks on or above the diagonal are visited,
the backward pass recomputes the blocks instead of storing them, and memory is
O(N * d + block^2) in both passes.

The full squared norms are kept (``||u - v||^2 = ||u||^2 + ||v||^2 - 2 u.v``, rather than
``2 - 2 u.v``) so that the gradient matches the reference ``torch.pdist`` formula for inputs
off the sphere too: it carries the radial part.

Fast path. ``exp(-t||x_i - x_j||^2) = a_i a_j exp(2t x_i.x_j)`` with ``a_i = exp(-t||x_i||^2)``,
so a block needs one matrix product, one in-place ``exp`` and a matrix-vector product; the
backward needs one product with the (d + 1) columns ``[a, a x]``. This is exact algebra but
needs ``exp(2t x_i.x_j)`` to stay in range, which holds when ``t max_i ||x_i||^2 <= 40``
(always for points on the sphere with t <= 40). Otherwise a general path with a per-block
max-shifted log-sum-exp takes over, so raw features of any scale stay finite.
"""

from __future__ import annotations

import torch

#: Rows per block. 1024^2 float32 values is 4 MiB: large enough for an efficient matmul on
#: CPU and GPU, small enough that memory stays flat in N.
DEFAULT_BLOCK = 1024

#: Largest ``t ||x||^2`` for the fast path: exp(2 * 40) and exp(-2 * 40) fit in float32.
_SAFE_EXPONENT = 40.0


def _pairs(n: int, block: int):
    """Row ranges ``(a, b)`` of the blocks on and above the diagonal that hold a pair."""
    ranges = [(s, min(s + block, n)) for s in range(0, n, block)]
    for i, a in enumerate(ranges):
        for b in ranges[i:]:
            if a != b or a[1] - a[0] > 1:
                yield a, b


def _fast_scales(x: torch.Tensor, t: float) -> torch.Tensor | None:
    """``a = exp(-t ||x_i||^2)`` when the fast path is safe, else None."""
    sq = (x * x).sum(1)
    return torch.exp(-t * sq) if float(sq.max()) * t <= _SAFE_EXPONENT else None


def _block_exponents(
    x: torch.Tensor, sq: torch.Tensor, t: float, a: tuple[int, int], b: tuple[int, int]
) -> torch.Tensor:
    """General path: ``-t ||x_i - x_j||^2`` for a block, -inf outside ``i < j``."""
    xi, xj = x[a[0] : a[1]], x[b[0] : b[1]]
    e = torch.addmm(sq[a[0] : a[1], None] + sq[None, b[0] : b[1]], xi, xj.T, beta=-t, alpha=2.0 * t)
    # rounding can make a squared distance slightly negative; distances are never negative
    e.clamp_(max=0.0)
    if a == b:
        keep = torch.ones(e.shape, dtype=torch.bool, device=e.device).triu_(1)
        e.masked_fill_(~keep, float("-inf"))
    return e


def _lse_general(x: torch.Tensor, t: float, block: int) -> torch.Tensor:
    sq = (x * x).sum(1)
    run_max = torch.tensor(float("-inf"), dtype=torch.float64, device=x.device)
    run_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    for a, b in _pairs(x.shape[0], block):
        e = _block_exponents(x, sq, t, a, b)
        m = e.max().to(torch.float64)
        s = e.sub_(m.to(e.dtype)).exp_().sum(dtype=torch.float64)
        new_max = torch.maximum(run_max, m)
        # tensors throughout: no host synchronisation inside the loop on a GPU
        run_sum = run_sum * torch.exp(run_max - new_max) + s * torch.exp(m - new_max)
        run_max = new_max
    return run_max + torch.log(run_sum)


def _lse_fast(x: torch.Tensor, scales: torch.Tensor, t: float, block: int) -> torch.Tensor:
    x2t = x * (2.0 * t)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for a, b in _pairs(x.shape[0], block):
        ai, aj = scales[a[0] : a[1]], scales[b[0] : b[1]]
        p = torch.mm(x2t[a[0] : a[1]], x[b[0] : b[1]].T).exp_()
        if a == b:
            # zeroed, not subtracted afterwards: the self-terms are the largest of the block
            # and subtracting them would cancel the small ones
            p.fill_diagonal_(0.0)
        s = (ai @ (p @ aj)).double()
        total = total + (s / 2 if a == b else s)
    return torch.log(total)


def pair_logsumexp(x: torch.Tensor, t: float, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """``log sum_{i<j} exp(-t ||x_i - x_j||^2)`` as a 0-d float64 tensor (no autograd)."""
    x = x.detach()
    scales = _fast_scales(x, t)
    return _lse_general(x, t, block) if scales is None else _lse_fast(x, scales, t, block)


def _grad_general(x: torch.Tensor, lse: torch.Tensor, t: float, block: int) -> torch.Tensor:
    sq = (x * x).sum(1)
    acc = torch.zeros_like(x)
    for a, b in _pairs(x.shape[0], block):
        w = _block_exponents(x, sq, t, a, b).sub_(lse).exp_()
        xi, xj = x[a[0] : a[1]], x[b[0] : b[1]]
        acc[a[0] : a[1]] += w.sum(1, keepdim=True) * xi - w @ xj
        acc[b[0] : b[1]] += w.sum(0)[:, None] * xj - w.T @ xi
    return acc


def _grad_fast(
    x: torch.Tensor, scales: torch.Tensor, lse: torch.Tensor, t: float, block: int
) -> torch.Tensor:
    # w_ij = a_i a_j p_ij / S; sum_j w_ij (x_i - x_j) from one product with [a, a x]
    a = scales * torch.exp(-lse / 2)  # splits 1/S over both factors, keeping both in range
    ax = torch.cat([a[:, None], a[:, None] * x], 1)
    x2t = x * (2.0 * t)
    acc = torch.zeros_like(x)
    for i, j in _pairs(x.shape[0], block):
        p = torch.mm(x2t[i[0] : i[1]], x[j[0] : j[1]].T).exp_()
        if i == j:
            p.fill_diagonal_(0.0)
        rows = p @ ax[j[0] : j[1]]
        acc[i[0] : i[1]] += a[i[0] : i[1], None] * (rows[:, :1] * x[i[0] : i[1]] - rows[:, 1:])
        if i != j:  # a diagonal block is already complete: both orders of each pair are in p
            cols = p.T @ ax[i[0] : i[1]]
            acc[j[0] : j[1]] += a[j[0] : j[1], None] * (cols[:, :1] * x[j[0] : j[1]] - cols[:, 1:])
    return acc


class _LogMeanPairPotential(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, t: float, block: int) -> torch.Tensor:
        n = x.shape[0]
        lse = pair_logsumexp(x, t, block)
        ctx.save_for_backward(x, lse)
        ctx.t, ctx.block = t, block
        n_pairs = n * (n - 1) / 2
        return (lse - torch.log(torch.tensor(n_pairs, dtype=torch.float64))).to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, lse = ctx.saved_tensors
        t, block = ctx.t, ctx.block
        scales = _fast_scales(x, t)
        lse = lse.to(x.dtype)
        if scales is None:
            acc = _grad_general(x, lse, t, block)
        else:
            acc = _grad_fast(x, scales, lse, t, block)
        # d/dx_i of log sum_{i<j} exp(E_ij) = -2t sum_j w_ij (x_i - x_j), w = softmax(E)
        return acc * (grad_out.to(x.dtype) * (-2.0 * t)), None, None


def log_mean_pair_potential(x: torch.Tensor, t: float, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """Differentiable ``log mean_{i<j} exp(-t ||x_i - x_j||^2)`` over the rows of ``x``.

    Inputs are assumed validated (2-D, floating, at least two rows); the computation runs
    in ``x``'s dtype, so callers upcast half precision first.
    """
    return _LogMeanPairPotential.apply(x, float(t), int(block))
