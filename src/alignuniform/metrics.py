"""Evaluation-side alignment and uniformity: no gradients, exact, streaming over batches.

All metrics L2-normalise their inputs by default (``normalize=True``): the paper's
quantities are defined on the unit hypersphere, and raw features give meaningless values
(alignment in the hundreds, uniformity near zero). Pass ``normalize=False`` only for
embeddings that are already on the sphere or when you want the raw-vector quantities.

Examples:
    >>> import torch
    >>> from alignuniform import metrics
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(2_000, 128)
    >>> round(metrics.uniformity(x), 3)   # exact over all 1,999,000 pairs, memory-bounded
    -3.938
    >>> round(metrics.uniformity_bound(128), 4)   # the value of the uniform distribution
    -3.9375
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special

from alignuniform import _checks
from alignuniform._kernel import DEFAULT_BLOCK, pair_logsumexp

__all__ = [
    "alignment",
    "uniformity",
    "uniformity_bound",
    "UniformityEstimate",
    "Alignment",
    "Uniformity",
]


def _prepare(x: torch.Tensor, name: str, normalize: bool, min_rows: int = 1) -> torch.Tensor:
    x = _checks.embeddings(x, name, min_rows=min_rows).detach()
    return F.normalize(x, dim=1) if normalize else x


@torch.no_grad()
def alignment(
    x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0, normalize: bool = True
) -> float:
    """Mean of ``||x_i - y_i||^alpha`` over positive pairs, as a Python float.

    Args:
        x, y: (N, d) embeddings; row i of ``y`` is the positive of row i of ``x``.
        alpha: exponent, > 0.
        normalize: L2-normalise rows first (default True).
    """
    metric = Alignment(alpha=alpha, normalize=normalize)
    metric.update(x, y)
    return metric.compute()


@dataclass(frozen=True)
class UniformityEstimate:
    """A sampled uniformity estimate with its 95% confidence interval.

    ``float(estimate)`` is the value. The interval is the normal interval of the pair mean
    (which is unbiased), mapped through ``log``.
    """

    value: float
    low: float
    high: float
    n_pairs: int

    def __float__(self) -> float:
        return self.value


@torch.no_grad()
def uniformity(
    x: torch.Tensor,
    t: float = 2.0,
    normalize: bool = True,
    *,
    n_pairs: int | None = None,
    seed: int = 0,
    block_size: int = DEFAULT_BLOCK,
) -> float | UniformityEstimate:
    """``log mean_{i<j} exp(-t ||x_i - x_j||^2)`` over all pairs of rows.

    Exact by default: every pair is visited block by block (memory O(N * block_size)), with
    float64 accumulation. For very large N pass ``n_pairs`` to estimate it from that many
    uniformly drawn pairs ``i != j`` instead; that returns a :class:`UniformityEstimate`.

    Args:
        x: (N, d) embeddings, N >= 2.
        t: kernel scale, > 0.
        normalize: L2-normalise rows first (default True).
        n_pairs: if given, sample this many pairs rather than computing exactly.
        seed: seed of the pair sampler.
        block_size: rows per block of the exact computation.
    """
    t = _checks.positive(t, "t")
    x = _prepare(x, "x", normalize, min_rows=2)
    n = x.shape[0]
    if n_pairs is None:
        lse = pair_logsumexp(x, t, block_size)
        return float(lse) - math.log(n * (n - 1) / 2)
    if n_pairs < 2:
        raise ValueError(f"n_pairs must be >= 2 for a confidence interval, got {n_pairs}")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    total, total_sq, chunk = 0.0, 0.0, 1 << 16
    for start in range(0, n_pairs, chunk):
        k = min(chunk, n_pairs - start)
        i = torch.randint(n, (k,), generator=gen)
        j = torch.randint(n - 1, (k,), generator=gen)
        j += (j >= i).long()  # uniform over j != i
        i, j = i.to(x.device), j.to(x.device)
        v = torch.exp(-t * (x[i] - x[j]).pow(2).sum(1)).double()
        total += float(v.sum())
        total_sq += float(v.pow(2).sum())
    mean = total / n_pairs
    sd = math.sqrt(max(total_sq / n_pairs - mean * mean, 0.0) * n_pairs / (n_pairs - 1))
    half = 1.959963984540054 * sd / math.sqrt(n_pairs)
    low = math.log(mean - half) if mean > half else -math.inf
    return UniformityEstimate(math.log(mean), low, math.log(mean + half), n_pairs)


def uniformity_bound(dim: int, t: float = 2.0) -> float:
    """The minimum of ``L_uniform`` on S^{dim-1}: its value for the uniform distribution.

    ``-2t + log 0F1(; dim/2; t^2)`` (e.g. -3.9375 for dim=128, t=2; -1.5750 for dim=2).
    Where ``0F1`` overflows, the equivalent Bessel form
    ``log Gamma(dim/2) - (dim/2 - 1) log t + log(I_{dim/2-1}(2t) e^{-2t})`` is used.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    t = _checks.positive(t, "t")
    value = special.hyp0f1(dim / 2, t * t)
    if np.isfinite(value) and value > 0:
        return float(-2 * t + math.log(value))
    nu = dim / 2 - 1
    return float(special.gammaln(dim / 2) - nu * math.log(t) + math.log(special.ive(nu, 2 * t)))


def _all_gather(obj):
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


class Alignment:
    """Streaming alignment: ``update`` with batches of pairs, ``compute`` at the end.

    State is a float64 sum and a count, so ``merge`` (another instance) and ``sync``
    (across ``torch.distributed`` processes) are exact.
    """

    def __init__(self, alpha: float = 2.0, normalize: bool = True) -> None:
        self.alpha = _checks.positive(alpha, "alpha")
        self.normalize = normalize
        self.total, self.count = 0.0, 0

    @torch.no_grad()
    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x = _prepare(x, "x", self.normalize)
        y = _prepare(y, "y", self.normalize)
        _checks.same_shape(x, y)
        self.total += float((x - y).double().norm(dim=1).pow(self.alpha).sum())
        self.count += x.shape[0]

    def merge(self, other: Alignment) -> Alignment:
        self.total += other.total
        self.count += other.count
        return self

    def sync(self) -> Alignment:
        """Sum the state over all distributed processes (a no-op without one)."""
        parts = _all_gather((self.total, self.count))
        self.total, self.count = sum(p[0] for p in parts), sum(p[1] for p in parts)
        return self

    def compute(self) -> float:
        if self.count == 0:
            raise ValueError("Alignment.compute() called before any update()")
        return self.total / self.count


class Uniformity:
    """Streaming exact uniformity over every embedding seen by ``update``.

    Uniformity is the log of a mean over all pairs, so it is not an average of per-batch
    values: the state is the (normalised) embeddings themselves, kept on ``store_device``
    (default CPU), and ``compute`` runs the exact block-wise sum once over all of them.
    """

    def __init__(
        self, t: float = 2.0, normalize: bool = True, store_device: str | torch.device = "cpu"
    ) -> None:
        self.t = _checks.positive(t, "t")
        self.normalize = normalize
        self.store_device = torch.device(store_device)
        self.chunks: list[torch.Tensor] = []

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = _prepare(x, "x", self.normalize)
        if self.chunks and x.shape[1] != self.chunks[0].shape[1]:
            raise ValueError(
                f"x has {x.shape[1]} dimensions but earlier batches had {self.chunks[0].shape[1]}"
            )
        self.chunks.append(x.to(self.store_device))

    def merge(self, other: Uniformity) -> Uniformity:
        self.chunks.extend(other.chunks)
        return self

    def sync(self) -> Uniformity:
        """Gather the embeddings of all distributed processes (a no-op without one)."""
        local = torch.cat(self.chunks).cpu() if self.chunks else None
        self.chunks = [c.to(self.store_device) for c in _all_gather(local) if c is not None]
        return self

    def compute(self, **kwargs) -> float | UniformityEstimate:
        """Uniformity of everything seen; ``kwargs`` go to :func:`uniformity`."""
        if not self.chunks:
            raise ValueError("Uniformity.compute() called before any update()")
        return uniformity(torch.cat(self.chunks), self.t, normalize=False, **kwargs)
