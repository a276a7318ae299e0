"""Losses on the unit hypersphere (Wang & Isola, ICML 2020) and their weighted combination.

Every loss is a plain differentiable function of tensors; ``LossCombination`` is the thin
``nn.Module`` that the training loop uses. ``align_loss``, ``uniform_loss`` and
``contrastive_loss`` use their inputs as given (the paper's encoders end in an L2
normalisation); ``nt_xent_loss`` and ``triplet_loss`` are defined with cosine similarity and
normalise internally. Half-precision inputs are computed in float32, also under autocast.

In a DDP loop of your own, pass ``gather_distributed=True`` (to ``uniform_loss``,
``contrastive_loss``, ``nt_xent_loss`` or ``LossCombination``): every process then gathers
all processes' rows with the autograd-aware :func:`alignuniform.distributed.all_gather`
(the one ``train`` uses), so the loss is the global-batch loss, equal on every process, and
DDP's gradient averaging gives exactly the gradient of one process on the whole batch.
Every process must pass the same number of rows (e.g. ``drop_last=True``). Without an
initialised process group it changes nothing.

Examples:
    >>> import torch, torch.nn.functional as F
    >>> from alignuniform import align_loss, uniform_loss
    >>> x = F.normalize(torch.randn(256, 128), dim=1)
    >>> y = F.normalize(x + 0.1 * torch.randn(256, 128), dim=1)
    >>> loss = align_loss(x, y) + (uniform_loss(x) + uniform_loss(y)) / 2
"""

from __future__ import annotations

import contextlib
import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from alignuniform import _checks, distributed
from alignuniform._kernel import DEFAULT_BLOCK, log_mean_pair_potential, log_sum_bank_potential

__all__ = [
    "align_loss",
    "uniform_loss",
    "queue_uniform_loss",
    "queue_contrastive_loss",
    "contrastive_loss",
    "nt_xent_loss",
    "triplet_loss",
    "LossCombination",
    "AlignUniformLoss",
]


_DROP_ZERO_ROWS = "drop such rows (e.g. padding) before the loss"


def _gather(enabled: bool, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """All processes' rows, differentiably, when ``enabled`` (see the module docstring)."""
    if not enabled:
        return tensors
    return tuple(distributed.all_gather(t) for t in tensors)


def _no_autocast(x: torch.Tensor):
    # autocast would re-cast the matmuls below to half precision, where exp(logits) overflows
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(device_type=x.device.type, enabled=False)
    return contextlib.nullcontext()


def align_loss(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Alignment: mean over positive pairs of ``||x_i - y_i||_2 ** alpha``.

    Where a pair coincides (``x_i == y_i``) the gradient is defined as 0, a subgradient of
    ``||x_i - y_i||^alpha`` there for every ``alpha`` (for ``alpha < 1`` the derivative is
    unbounded near 0, and autograd through ``norm().pow(alpha)`` would give NaN).

    Args:
        x: (N, d) embeddings of the first views.
        y: (N, d) embeddings of the second views; row i is the positive of ``x[i]``.
        alpha: exponent, > 0 (the paper's default is 2).

    Returns:
        A 0-d tensor.

    Examples:
        >>> align_loss(torch.eye(2), torch.eye(2).flip(0))  # orthogonal unit vectors
        tensor(2.)
    """
    alpha = _checks.positive(alpha, "alpha")
    x, y = _checks.pairs(x, y)
    with _no_autocast(x):
        sq = (x - y).pow(2).sum(1)
        if alpha == 2.0:
            return sq.mean()
        # the power is taken of 1 where sq == 0 and masked out, so no inf * 0 reaches autograd
        apart = sq > 0
        safe = torch.where(apart, sq, torch.ones_like(sq))
        return torch.where(apart, safe.pow(alpha / 2), torch.zeros_like(sq)).mean()


def uniform_loss(
    x: torch.Tensor,
    t: float = 2.0,
    *,
    block_size: int = DEFAULT_BLOCK,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """Uniformity: ``log`` of the mean of ``exp(-t ||x_i - x_j||^2)`` over pairs ``i < j``.

    For L2-normalised rows this equals the paper's
    ``torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()``, but it is computed block by
    block (a matrix product per block, a running log-sum-exp, and a backward pass that
    recomputes the blocks), so memory is O(N * block_size) rather than O(N^2) in both passes.

    The value is an estimate of the population ``L_uniform``; its minimum over distributions
    on S^{d-1} is ``metrics.uniformity_bound(d, t)``. With self-pairs excluded (as here and in
    the paper's code) a batch can give a value *below* that bound: e.g. two antipodal points
    give ``-4t``. That is a property of the estimator, not a bug. For B points the floor is
    ``max(-2tB/(B-1), log((B e^b - 1)/(B - 1)))`` with ``b`` the bound (the second term
    where ``B e^b > 1``); the regular simplex reaches ``-2tB/(B-1)`` when ``B <= d + 1``. The
    estimator *with* self-pairs, ``log((1 + (B-1) e^L)/B)``, never falls below ``b``. See
    ``alignuniform.theory.estimator_floor``.

    Args:
        x: (N, d) embeddings, N >= 2 (over all processes when gathering).
        t: kernel scale, > 0 (the paper's default is 2).
        block_size: rows per block; trades speed for memory.
        gather_distributed: the loss of all processes' rows (see the module docstring).

    Returns:
        A 0-d tensor.

    Examples:
        >>> uniform_loss(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), t=2.0)  # antipodal: -4t
        tensor(-8.)
    """
    t = _checks.positive(t, "t")
    x = _checks.embeddings(x, "x", min_rows=1 if gather_distributed else 2)
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    (x,) = _gather(gather_distributed, x)
    if x.shape[0] < 2:
        raise ValueError(f"x needs at least 2 rows over all processes, got {x.shape[0]}")
    with _no_autocast(x):
        return log_mean_pair_potential(x, t, block_size)


def _bank(queue: object, q: torch.Tensor, name: str = "queue") -> torch.Tensor:
    """A validated, detached (K, d) bank in ``q``'s dtype: no gradient flows into a queue.

    Checked for NaN/Inf 4,096 rows at a time: ``isfinite`` over the whole bank would hold
    several (K, d) temporaries (56 MiB for K = 65,536, d = 128), more than the loss needs.
    """
    queue = _checks.embeddings(queue, name, check_values=False).detach()
    if not _checks.all_finite(queue, block=4096 * queue.shape[1]):
        raise ValueError(f"{name} contains NaN or Inf values")
    if queue.shape[1] != q.shape[1]:
        raise ValueError(
            f"{name} must have d={q.shape[1]} columns like q, got {tuple(queue.shape)}"
        )
    return queue.to(q.dtype)


def queue_uniform_loss(
    q: torch.Tensor,
    queue: torch.Tensor,
    t: float = 2.0,
    *,
    intra_batch: bool = True,
    block_size: int = DEFAULT_BLOCK,
) -> torch.Tensor:
    """Uniformity of queries against a queue of keys (MoCo), as in Wang & Isola's MoCo fork.

    ``log mean exp(-t d2)`` over the ``B K`` query-queue pairs, where ``d2 = 2 - 2 q_i.k_j``
    (``||q_i - k_j||^2`` for unit rows), plus, with ``intra_batch`` (the fork's default),
    the ``B (B - 1) / 2`` query-query pairs ``i < j`` with ``d2 = ||q_i - q_j||^2``; the mean
    is over all those pairs together. The queue is detached (no gradient into it).

    Computed block by block (``_kernel.log_sum_bank_potential`` for the rectangular part,
    the square kernel of :func:`uniform_loss` for the in-batch part) so memory is
    O(B * block_size + K * d): no (B, K) matrix is held beyond one block.

    Args:
        q: (B, d) query embeddings (unit rows), B >= 1.
        queue: (K, d) keys, e.g. ``MomentumQueue.queue``.
        t: kernel scale, > 0 (the fork's ImageNet-100 setting is 3).
        intra_batch: include the query-query pairs (needs B >= 2 to add any).
        block_size: rows per block.

    Returns:
        A 0-d tensor.
    """
    t = _checks.positive(t, "t")
    q = _checks.embeddings(q, "q")
    queue = _bank(queue, q)
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    b, k = q.shape[0], queue.shape[0]
    with _no_autocast(q):
        lse = log_sum_bank_potential(q, queue, t, block_size)
        n_pairs = float(b * k)
        if intra_batch and b >= 2:
            in_batch = b * (b - 1) / 2
            lse = torch.logaddexp(lse, log_mean_pair_potential(q, t, block_size)
                                  + math.log(in_batch))
            n_pairs += in_batch
        return lse - math.log(n_pairs)


def queue_contrastive_loss(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, tau: float = 0.07
) -> torch.Tensor:
    """MoCo's InfoNCE: ``cross_entropy([q_i.k_i, q_i.queue] / tau, 0)``, queries as anchors.

    The positive logit is column 0 and the K queue entries are the negatives; the queue is
    detached. This is the query-anchored half of :func:`contrastive_loss` with
    ``negatives=queue``, which also scores ``k`` as the anchor and averages the two:
    ``contrastive_loss(q, k, tau, queue) == (queue_contrastive_loss(q, k, queue, tau) +
    queue_contrastive_loss(k, q, queue, tau)) / 2``.

    Args:
        q: (B, d) queries.
        k: (B, d) keys (the momentum encoder's; row i is the positive of ``q[i]``).
        queue: (K, d) negatives.
        tau: temperature, > 0.

    Returns:
        A 0-d tensor.
    """
    tau = _checks.positive(tau, "tau")
    q, k = _checks.pairs(q, k)
    queue = _bank(queue, q)
    with _no_autocast(q):
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / tau
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def _info_nce(anchor: torch.Tensor, candidates: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean cross-entropy where row i of ``anchor`` must pick column i of ``candidates``."""
    logits = anchor @ candidates.T / tau
    return F.cross_entropy(logits, torch.arange(anchor.shape[0], device=anchor.device))


def contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    tau: float = 0.07,
    negatives: torch.Tensor | None = None,
    *,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """The paper's ``L_contrastive`` (InfoNCE) with temperature ``tau``.

    ``-log( e^{x_i.y_i/tau} / (e^{x_i.y_i/tau} + sum_{n in negatives} e^{x_i.n/tau}) )``,
    averaged over pairs and symmetrised (``x`` as anchor, then ``y`` as anchor).

    Without ``negatives`` the negatives are in-batch: ``x_i`` scores ``y_i`` against
    ``{y_j : j != i}`` and ``y_i`` scores ``x_i`` against ``{x_j : j != i}``
    (M = N - 1). With ``negatives`` (an (M, d) bank, e.g. a queue), every pair is scored
    against those same M negatives, matching the definition with M iid negatives.

    Args:
        x: (N, d) embeddings.
        y: (N, d) embeddings; row i is the positive of ``x[i]``.
        tau: temperature, > 0.
        negatives: optional (M, d) negatives shared by all pairs (not gathered: a bank
            such as a queue is already shared).
        gather_distributed: the loss of all processes' pairs (see the module docstring).

    Returns:
        A 0-d tensor.
    """
    tau = _checks.positive(tau, "tau")
    x, y = _gather(gather_distributed, *_checks.pairs(x, y))
    with _no_autocast(x):
        if negatives is None:
            if x.shape[0] < 2:
                raise ValueError("in-batch contrastive_loss needs at least 2 pairs for negatives")
            return (_info_nce(x, y, tau) + _info_nce(y, x, tau)) / 2
        negatives = _checks.embeddings(negatives, "negatives")
        if negatives.shape[1] != x.shape[1]:
            raise ValueError(
                f"negatives must have d={x.shape[1]} columns like x, got {tuple(negatives.shape)}"
            )
        x, y, negatives = _checks.common_dtype(x, y, negatives)
        pos = (x * y).sum(1, keepdim=True) / tau
        zeros = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        loss_x = F.cross_entropy(torch.cat([pos, x @ negatives.T / tau], 1), zeros)
        loss_y = F.cross_entropy(torch.cat([pos, y @ negatives.T / tau], 1), zeros)
        return (loss_x + loss_y) / 2


def nt_xent_loss(
    x: torch.Tensor, y: torch.Tensor, tau: float = 0.5, *, gather_distributed: bool = False
) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views, with cosine similarity.

    Each of the 2N views has one positive (its partner) and 2N - 2 negatives (every other
    view); the loss is the mean cross-entropy over the 2N views. Equals lightly's
    ``NTXentLoss`` and pytorch-metric-learning's ``NTXentLoss`` with ``SelfSupervisedLoss``.

    Args:
        x: (N, d) first views, N >= 2 (with one pair there is no negative, as in
            :func:`contrastive_loss`).
        y: (N, d) second views.
        tau: temperature, > 0.
        gather_distributed: the loss of all processes' pairs (see the module docstring).

    Returns:
        A 0-d tensor.

    Raises:
        ValueError: a row is zero (it has no direction for the cosine similarity).
    """
    tau = _checks.positive(tau, "tau")
    x, y = _checks.pairs(x, y)
    _checks.normalisable(x, "x", _DROP_ZERO_ROWS)
    _checks.normalisable(y, "y", _DROP_ZERO_ROWS)
    x, y = _gather(gather_distributed, x, y)
    if x.shape[0] < 2:
        raise ValueError("nt_xent_loss needs at least 2 pairs for negatives")
    with _no_autocast(x):
        z = F.normalize(torch.cat([x, y]), dim=1)
        n = x.shape[0]
        logits = (z @ z.T / tau).fill_diagonal_(float("-inf"))
        target = torch.arange(2 * n, device=z.device).roll(n)
        return F.cross_entropy(logits, target)


def triplet_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.2
) -> torch.Tensor:
    """Mean of ``max(0, cos(a, n) - cos(a, p) + margin)`` over triplets.

    Args:
        anchor, positive, negative: (N, d) embeddings; row i forms one triplet.
        margin: required gap between positive and negative similarity (>= 0).

    Returns:
        A 0-d tensor.

    Raises:
        ValueError: a row is zero (it has no direction for the cosine similarity).
    """
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    a = _checks.embeddings(anchor, "anchor")
    p = _checks.embeddings(positive, "positive")
    n = _checks.embeddings(negative, "negative")
    _checks.same_shape(a, p, "anchor and positive")
    _checks.same_shape(a, n, "anchor and negative")
    for v, name in ((a, "anchor"), (p, "positive"), (n, "negative")):
        _checks.normalisable(v, name, _DROP_ZERO_ROWS)
    a, p, n = _checks.common_dtype(a, p, n)
    with _no_autocast(a):
        a, p, n = (F.normalize(v, dim=1) for v in (a, p, n))
        return F.relu((a * n).sum(1) - (a * p).sum(1) + margin).mean()


class LossCombination(nn.Module):
    """``w_c L_contrastive(tau) + w_a L_align(alpha) + w_u L_uniform(t) + w_n NT-Xent(tau_nt)``.

    The space of the paper's sweep of encoders: any weights (zero switches a term off).
    Uniformity is applied to each view and averaged, as in the paper's code.
    ``forward(x, y)`` returns a dict with ``"loss"`` (the weighted total) and one detached
    entry per active term (``"contrastive"``, ``"align"``, ``"uniform"``, ``"nt_xent"``)
    for logging. With ``gather_distributed=True`` every term is of all processes' pairs,
    gathered once (see the module docstring); ``train`` gathers itself and leaves it off.

    Examples:
        >>> x = F.normalize(torch.randn(64, 16), dim=1).requires_grad_()
        >>> y = F.normalize(torch.randn(64, 16), dim=1)
        >>> crit = LossCombination(w_contrastive=1.0, tau=0.2, w_uniform=0.5)
        >>> out = crit(x, y)
        >>> out["loss"].backward()
    """

    def __init__(
        self,
        w_contrastive: float = 0.0,
        tau: float = 0.07,
        w_align: float = 0.0,
        alpha: float = 2.0,
        w_uniform: float = 0.0,
        t: float = 2.0,
        w_nt_xent: float = 0.0,
        tau_nt_xent: float = 0.5,
        *,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.gather_distributed = bool(gather_distributed)
        weights = _checks.loss_weights({"w_contrastive": w_contrastive, "w_align": w_align,
                                        "w_uniform": w_uniform, "w_nt_xent": w_nt_xent})
        self.w_contrastive, self.w_align = weights["w_contrastive"], weights["w_align"]
        self.w_uniform, self.w_nt_xent = weights["w_uniform"], weights["w_nt_xent"]
        self.tau = _checks.positive(tau, "tau")
        self.alpha = _checks.positive(alpha, "alpha")
        self.t = _checks.positive(t, "t")
        self.tau_nt_xent = _checks.positive(tau_nt_xent, "tau_nt_xent")

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.gather_distributed:  # checked here, before a collective could hang on it
            x, y = _gather(True, *_checks.pairs(x, y))
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        if self.w_contrastive:
            terms["contrastive"] = (self.w_contrastive, contrastive_loss(x, y, self.tau))
        if self.w_align:
            terms["align"] = (self.w_align, align_loss(x, y, self.alpha))
        if self.w_uniform:
            uniform = (uniform_loss(x, self.t) + uniform_loss(y, self.t)) / 2
            terms["uniform"] = (self.w_uniform, uniform)
        if self.w_nt_xent:
            terms["nt_xent"] = (self.w_nt_xent, nt_xent_loss(x, y, self.tau_nt_xent))
        out = {"loss": cast(torch.Tensor, sum(w * value for w, value in terms.values()))}
        out.update({name: value.detach() for name, (_, value) in terms.items()})
        return out

    def extra_repr(self) -> str:
        parts = []
        if self.w_contrastive:
            parts.append(f"{self.w_contrastive:g}*contrastive(tau={self.tau:g})")
        if self.w_align:
            parts.append(f"{self.w_align:g}*align(alpha={self.alpha:g})")
        if self.w_uniform:
            parts.append(f"{self.w_uniform:g}*uniform(t={self.t:g})")
        if self.w_nt_xent:
            parts.append(f"{self.w_nt_xent:g}*nt_xent(tau={self.tau_nt_xent:g})")
        gathered = ", gathered over processes" if self.gather_distributed else ""
        return " + ".join(parts) + gathered


class AlignUniformLoss(LossCombination):
    """The paper's objective ``w_a L_align(alpha) + w_u L_uniform(t)`` (default 1, 2, 1, 2)."""

    def __init__(
        self,
        w_align: float = 1.0,
        alpha: float = 2.0,
        w_uniform: float = 1.0,
        t: float = 2.0,
        *,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(
            w_align=w_align, alpha=alpha, w_uniform=w_uniform, t=t,
            gather_distributed=gather_distributed,
        )
