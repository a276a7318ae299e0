"""Block-wise Gaussian-potential sums: the one hot spot of the library.

``log_mean_pair_potential(x, t)`` computes ``log( mean_{i<j} exp(-t ||x_i - x_j||^2) )``
without ever holding the N x N matrix. Each block of pairs is one matrix product
(``||u - v||^2 = ||u||^2 + ||v||^2 - 2 u.v``, fused into ``addmm``), only blocks on or above
the diagonal are visited, the sum is a running log-sum-exp, and the backward pass recomputes
the blocks instead of storing them. Memory is O(N * d + block^2) in both passes.

The full squared norms are kept (rather than ``2 - 2 u.v``) so that the gradient matches the
reference ``torch.pdist`` formula for inputs off the sphere too: it carries the radial part.
"""

from __future__ import annotations

import torch

#: Rows per block. 1024^2 float32 values is 4 MiB: large enough for an efficient matmul on
#: CPU and GPU, small enough that memory stays flat in N.
DEFAULT_BLOCK = 1024


def _block_ranges(n: int, block: int) -> list[tuple[int, int]]:
    return [(a, min(a + block, n)) for a in range(0, n, block)]


def _block_exponents(
    x: torch.Tensor, sq: torch.Tensor, t: float, a: tuple[int, int], b: tuple[int, int]
) -> torch.Tensor:
    """``-t ||x_i - x_j||^2`` for rows i in block ``a`` and j in block ``b``; upper triangle
    only (others at -inf) when ``a`` is ``b``."""
    xi, xj = x[a[0] : a[1]], x[b[0] : b[1]]
    e = torch.addmm(sq[a[0] : a[1], None] + sq[None, b[0] : b[1]], xi, xj.T, beta=-t, alpha=2.0 * t)
    # rounding can make a squared distance slightly negative; distances are never negative
    e.clamp_(max=0.0)
    if a == b:
        keep = torch.ones(e.shape, dtype=torch.bool, device=e.device).triu_(1)
        e.masked_fill_(~keep, float("-inf"))
    return e


def _pairs(n: int, block: int):
    ranges = _block_ranges(n, block)
    for i, a in enumerate(ranges):
        for b in ranges[i:]:
            if a != b or a[1] - a[0] > 1:  # a one-row diagonal block holds no pair
                yield a, b


def pair_logsumexp(x: torch.Tensor, t: float, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """``log sum_{i<j} exp(-t ||x_i - x_j||^2)`` as a 0-d float64 tensor (no autograd)."""
    x = x.detach()
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
        sq = (x * x).sum(1)
        lse = lse.to(x.dtype)
        # d/dx_i of log sum_{i<j} exp(E_ij) = sum_j w_ij * (-2t)(x_i - x_j), w = softmax(E)
        acc = torch.zeros_like(x)
        for a, b in _pairs(x.shape[0], block):
            w = _block_exponents(x, sq, t, a, b).sub_(lse).exp_()
            xi, xj = x[a[0] : a[1]], x[b[0] : b[1]]
            acc[a[0] : a[1]] += w.sum(1, keepdim=True) * xi - w @ xj
            acc[b[0] : b[1]] += w.sum(0)[:, None] * xj - w.T @ xi
        return acc * (grad_out.to(x.dtype) * (-2.0 * t)), None, None


def log_mean_pair_potential(x: torch.Tensor, t: float, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """Differentiable ``log mean_{i<j} exp(-t ||x_i - x_j||^2)`` over the rows of ``x``.

    Inputs are assumed validated (2-D, floating, at least two rows); the computation runs
    in ``x``'s dtype, so callers upcast half precision first.
    """
    return _LogMeanPairPotential.apply(x, float(t), int(block))
