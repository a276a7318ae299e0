"""Block-wise Gaussian-potential sums: the one hot spot of the library.

``log_mean_pair_potential(x, t)`` computes ``log( mean_{i<j} exp(-t ||x_i - x_j||^2) )``
without ever holding the N x N matrix: only blocks on or above the diagonal are visited, no
block outlives its loop iteration, and memory is O(N * d + block^2) in both passes.

The full squared norms are kept (``||u - v||^2 = ||u||^2 + ||v||^2 - 2 u.v``, rather than
``2 - 2 u.v``) so that the gradient matches the reference ``torch.pdist`` formula for inputs
off the sphere too: it carries the radial part.

Fast path. ``exp(-t||x_i - x_j||^2) = a_i a_j exp(2t x_i.x_j)`` with ``a_i = exp(-t||x_i||^2)``,
so a block costs one matrix product, one in-place ``exp`` and a matrix-vector product. This
is exact algebra but needs every factor in float range, which holds when
``t max_i ||x_i||^2 <= 20`` (always for points on the sphere with t <= 20). The pair terms
are then absolute, not relative to a running maximum, so when a gradient is needed it is
accumulated in the same pass (one product with the (d + 1) columns ``[a, a x]`` per side of
a block, whose first column also gives the block's sum) and scaled by the total at the end:
forward and backward together cost three products per block and one ``exp``.

General path, for anything else (raw features of large norm): a per-block max-shifted
log-sum-exp, and a backward pass that recomputes the blocks. Nothing overflows.

Centring. Both paths expand ``||u||^2 + ||v||^2 - 2 u.v``, which cancels catastrophically
for points far from the origin relative to their spread (float32 points of spread 0.3 at
offset 1000 gave -1.59 instead of -4.18). Every pair term depends only on differences, so
the rows are first centred (computed and subtracted in float64, then cast back): the value
is unchanged in exact arithmetic, and so is the gradient (a translation has unit Jacobian),
while the expansion now works on norms comparable to the distances. The centre is the
coordinate-wise median (of at most :data:`_CENTRE_ROWS` evenly spaced rows, so that it
costs O(d) sorts of a small sample, not of N): a mean is dragged towards a single far
row (one row at 1e6 among 2,000 rows of spread 0.3 moves it 500 away from all the
others, and the float32 value became -3.80 instead of -4.35), a median is not moved by
any minority of far rows.

Precision. The expansion's rounding error in an exponent is about
``t eps (||x_i||^2 + ||x_j||^2)``: small next to ``t d^2`` wherever the distances are
comparable to the norms, as in a cloud around its centre. For a single far row it is
harmless too: its distance to every other row is as large as its norm, so the error is
relative to ``t d^2`` and its terms stay negligible. Two or more far rows may be close to
each other (a far cluster), and then their pair terms would be wrong: where more than one
row lies over 4 times the median distance from the centre (:data:`_FAR` in squares) with
``t eps ||x_i||^2 > 1e-3`` (:data:`_ROUNDING`; for float32 at t = 2, a norm above 90), the
computation runs in float64.

Range. The expansion forms values up to ``4 t max ||x_i||^2``; where that would overflow
the input's dtype (a float32 row of norm 1e19 or more, after centring), the computation
runs in float64, and where it would overflow float64 too, a ``ValueError`` names the row.
The result is never a NaN from ``inf - inf``.
"""

from __future__ import annotations

import math

import torch

#: Rows per block. 1024^2 float32 values is 4 MiB: large enough for an efficient matmul on
#: CPU and GPU, small enough that memory stays flat in N.
DEFAULT_BLOCK = 1024

#: Rows sampled (evenly spaced) for the median that centres the rows.
_CENTRE_ROWS = 1024

#: Two or more rows with a rounding error ``t eps ||x_i||^2`` (in an exponent) above
#: ``_ROUNDING`` and a squared distance from the centre above ``_FAR`` times the median one
#: make the computation run in float64.
_ROUNDING = 1e-3
_FAR = 16.0

#: Largest ``t ||x||^2`` for the fast path. Then every factor lies in [e^-40, e^40] and
#: every pair term ``exp(-t ||x_i - x_j||^2) >= e^-80``, all normal float32 numbers.
_SAFE_EXPONENT = 20.0


def _pairs(n: int, block: int):
    """Row ranges ``(a, b)`` of the blocks on and above the diagonal that hold a pair."""
    ranges = [(s, min(s + block, n)) for s in range(0, n, block)]
    for i, a in enumerate(ranges):
        for b in ranges[i:]:
            if a != b or a[1] - a[0] > 1:
                yield a, b


def _centred(x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``x`` minus a robust centre and the rows' squared norms, in a dtype where every
    exponent of the expansion is finite and precise (``x``'s own where that holds, else
    float64; see the module docstring), and the largest squared norm. One host read.

    Raises:
        ValueError: a row is so far from the others that ``t ||x_i - c||^2`` overflows
            float64.
    """
    x64 = x.double()
    n = x.shape[0]
    pick = torch.linspace(0, n - 1, min(n, _CENTRE_ROWS), device=x.device).long()
    x64 = x64 - x64[pick].median(0).values
    sq64 = (x64 * x64).sum(1)
    typical = sq64[pick].median()
    limit = typical.new_tensor(_ROUNDING / (t * torch.finfo(x.dtype).eps))
    far = (sq64 > torch.maximum(limit, _FAR * typical)).sum()
    top, n_far = torch.stack([sq64.max(), far.double()]).tolist()
    for dtype in (x.dtype, torch.float64):
        # every exponent lies within 4 t max ||x_i||^2 of 0 (Cauchy-Schwarz); 4x headroom
        fits = math.isfinite(top) and 16.0 * t * top < torch.finfo(dtype).max
        if fits and (dtype == torch.float64 or n_far <= 1):
            return x64.to(dtype), sq64.to(dtype), top
    row = int(sq64.argmax())
    raise ValueError(
        f"row {row} of x is too far from the other rows (largest entry "
        f"{float(x[row].abs().max()):.3g}): t * ||x_{row} - centre||^2 overflows float64, "
        "so its Gaussian potential exp(-t d^2) cannot be formed; rescale the rows"
    )


def _fast_scales(sq: torch.Tensor, top: float, t: float) -> torch.Tensor | None:
    """``a = exp(-t ||x_i||^2)`` from the squared norms (``top`` their maximum) when the fast
    path is safe, else None."""
    return torch.exp(-t * sq) if top * t <= _SAFE_EXPONENT else None


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


def _lse_general(x: torch.Tensor, sq: torch.Tensor, t: float, block: int) -> torch.Tensor:
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


def _fast_pass(
    x: torch.Tensor, scales: torch.Tensor, t: float, block: int, with_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``sum_{i<j} exp(-t ||x_i - x_j||^2)`` (float64) and, if asked, the unnormalised
    ``sum_j exp(-t ||x_i - x_j||^2) (x_i - x_j)`` for every row."""
    x2t = x * (2.0 * t)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    ax = torch.cat([scales[:, None], scales[:, None] * x], 1) if with_grad else None
    acc = torch.zeros_like(x) if with_grad else None
    for i, j in _pairs(x.shape[0], block):
        ai, aj = scales[i[0] : i[1]], scales[j[0] : j[1]]
        p = torch.mm(x2t[i[0] : i[1]], x[j[0] : j[1]].T).exp_()
        if i == j:
            # zeroed, not subtracted afterwards: the self-terms are the largest of the block
            # and subtracting them would cancel the small ones
            p.fill_diagonal_(0.0)
        if with_grad:
            assert ax is not None and acc is not None
            rows = p @ ax[j[0] : j[1]]  # column 0 is p @ a_j: the block sum comes for free
            s = ai @ rows[:, 0]
            xi, xj = x[i[0] : i[1]], x[j[0] : j[1]]
            acc[i[0] : i[1]] += ai[:, None] * (rows[:, :1] * xi - rows[:, 1:])
            if i != j:  # a diagonal block is complete: both orders of each pair are in p
                cols = p.T @ ax[i[0] : i[1]]
                acc[j[0] : j[1]] += aj[:, None] * (cols[:, :1] * xj - cols[:, 1:])
        else:
            s = ai @ (p @ aj)
        total = total + (s.double() / 2 if i == j else s.double())
    return total, acc


def pair_logsumexp(x: torch.Tensor, t: float, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """``log sum_{i<j} exp(-t ||x_i - x_j||^2)`` as a 0-d float64 tensor (no autograd)."""
    x, sq, top = _centred(x.detach(), t)
    scales = _fast_scales(sq, top, t)
    if scales is None:
        return _lse_general(x, sq, t, block)
    return torch.log(_fast_pass(x, scales, t, block, with_grad=False)[0])


def _grad_general(
    x: torch.Tensor, sq: torch.Tensor, lse: torch.Tensor, t: float, block: int
) -> torch.Tensor:
    acc = torch.zeros_like(x)
    for a, b in _pairs(x.shape[0], block):
        w = _block_exponents(x, sq, t, a, b).sub_(lse).exp_()
        xi, xj = x[a[0] : a[1]], x[b[0] : b[1]]
        acc[a[0] : a[1]] += w.sum(1, keepdim=True) * xi - w @ xj
        acc[b[0] : b[1]] += w.sum(0)[:, None] * xj - w.T @ xi
    return acc


class _LogMeanPairPotential(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, t: float, block: int) -> torch.Tensor:
        n, dtype = x.shape[0], x.dtype
        x, sq, top = _centred(x.detach(), t)
        scales = _fast_scales(sq, top, t)
        grad = None
        if scales is None:
            lse = _lse_general(x, sq, t, block)
        else:
            total, acc = _fast_pass(x, scales, t, block, with_grad=ctx.needs_input_grad[0])
            lse = torch.log(total)
            if acc is not None:  # d/dx of log(total): the softmax-weighted differences
                grad = acc.div_(total.to(acc.dtype))
        ctx.save_for_backward(x, sq, lse, grad)
        ctx.t, ctx.block, ctx.dtype = t, block, dtype
        n_pairs = n * (n - 1) / 2
        return (lse - torch.log(torch.tensor(n_pairs, dtype=torch.float64))).to(dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, sq, lse, grad = ctx.saved_tensors
        t, block = ctx.t, ctx.block
        if grad is None:  # the general path recomputes its blocks
            grad = _grad_general(x, sq, lse.to(x.dtype), t, block)
        # d/dx_i of log sum_{i<j} exp(E_ij) = -2t sum_j w_ij (x_i - x_j), w = softmax(E)
        grad = grad * (grad_out.to(x.dtype) * (-2.0 * t))
        return grad.to(ctx.dtype), None, None


def log_mean_pair_potential(x: torch.Tensor, t: float, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """Differentiable ``log mean_{i<j} exp(-t ||x_i - x_j||^2)`` over the rows of ``x``.

    Inputs are assumed validated (2-D, floating, at least two rows); the computation runs
    in ``x``'s dtype, so callers upcast half precision first.
    """
    return _LogMeanPairPotential.apply(x, float(t), int(block))


# ---------------------------------------------------------------------------------------------
# rectangular: queries against a bank (a MoCo queue), as the fork of Wang & Isola writes it


def _bank_exponent_shift(q: torch.Tensor, bank: torch.Tensor, t: float, block: int) -> torch.Tensor:
    """A shift ``c >= max_ij 2t q_i.b_j`` such that ``exp(2t q_i.b_j - c)`` neither overflows
    nor loses the largest terms: the Cauchy-Schwarz bound ``2t max|q| max|b|`` when the spread
    ``4t max|q| max|b|`` fits float range (always for unit rows with t <= 20), else the exact
    maximum, found by one extra pass of products (no host synchronisation)."""
    # vector_norm reduces without a (K, d) temporary
    norms = [float(torch.linalg.vector_norm(v, dim=1).max()) for v in (q, bank)]
    bound = 2.0 * t * norms[0] * norms[1]
    if 2.0 * bound <= 4.0 * _SAFE_EXPONENT:
        return torch.tensor(bound, dtype=q.dtype, device=q.device)
    top = torch.tensor(float("-inf"), dtype=q.dtype, device=q.device)
    for s in range(0, bank.shape[0], block):
        for r in range(0, q.shape[0], block):
            top = torch.maximum(top, torch.mm(q[r : r + block], bank[s : s + block].T).max())
    return top * (2.0 * t)


def _bank_pass(
    q: torch.Tensor, bank: torch.Tensor, t: float, block: int, with_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log sum_ij exp(-t (2 - 2 q_i.b_j))`` (0-d float64) and, if asked, its gradient in q.

    One pass over (block x block) tiles: a product, an in-place ``exp``, a sum and (for the
    gradient) a product ``p @ b`` accumulating the unnormalised ``sum_j p_ij b_j`` per row.
    No (B, K) matrix, and no copy of the bank, is ever held.
    """
    shift = _bank_exponent_shift(q, bank, t, block)
    q2t = q * (2.0 * t)
    total = torch.zeros((), dtype=torch.float64, device=q.device)
    acc = torch.zeros_like(q) if with_grad else None
    for r in range(0, q.shape[0], block):
        for s in range(0, bank.shape[0], block):
            tile = bank[s : s + block]
            p = torch.mm(q2t[r : r + block], tile.T).sub_(shift).exp_()
            total = total + p.sum(dtype=torch.float64)
            if acc is not None:
                acc[r : r + block].addmm_(p, tile)
    lse = torch.log(total) + shift.double() - 2.0 * t
    if acc is not None:  # d/dq_i = 2t sum_j softmax_ij b_j
        acc.mul_((2.0 * t) / total.to(acc.dtype))
    return lse, acc


class _LogSumBankPotential(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, bank: torch.Tensor, t: float, block: int) -> torch.Tensor:
        lse, grad = _bank_pass(q.detach(), bank.detach(), t, block, ctx.needs_input_grad[0])
        ctx.save_for_backward(grad)
        return lse.to(q.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_out.to(grad.dtype), None, None, None


def log_sum_bank_potential(
    q: torch.Tensor, bank: torch.Tensor, t: float, block: int = DEFAULT_BLOCK
) -> torch.Tensor:
    """Differentiable (in ``q`` only) ``log sum_{i,j} exp(-t (2 - 2 q_i.b_j))``.

    The rectangular counterpart of :func:`log_mean_pair_potential` for queries ``q`` (B, d)
    against a bank ``b`` (K, d), e.g. a MoCo queue: ``2 - 2 q.b`` is the fork's transcription
    of ``||q - b||^2``, equal to it for unit rows. Memory is O(block^2 + B d) in both passes
    (the gradient is accumulated during the forward pass); no gradient flows into the bank.
    Inputs are assumed validated; the computation runs in ``q``'s dtype.
    """
    return _LogSumBankPotential.apply(q, bank, float(t), int(block))
