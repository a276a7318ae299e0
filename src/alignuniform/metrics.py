"""Evaluation-side alignment and uniformity: no gradients, exact, streaming over batches.

The functions (:func:`alignment`, :func:`uniformity`, :func:`uniformity_bound`) are the
primitives; :class:`Alignment` and :class:`Uniformity` are ``torchmetrics.Metric`` classes
built on them, for streaming, DDP, Lightning and ``MetricCollection``.

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

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from alignuniform import _checks
from alignuniform._kernel import DEFAULT_BLOCK, pair_logsumexp
from alignuniform.distributed import get_rank

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
    if not normalize:
        return x
    _checks.normalisable(x, name, "drop such rows, or pass normalize=False to measure raw vectors")
    return F.normalize(x, dim=1)


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
    alpha = _checks.positive(alpha, "alpha")
    x, y = _prepare(x, "x", normalize), _prepare(y, "y", normalize)
    _checks.same_shape(x, y)
    return float(_alignment_terms(x, y, alpha).mean())


def _alignment_terms(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """``||x_i - y_i||^alpha`` per row, in float64."""
    return torch.linalg.vector_norm(x.double() - y.double(), dim=1).pow(alpha)


@dataclass(frozen=True)
class UniformityEstimate:
    """A sampled uniformity estimate with its 95% confidence interval.

    ``float(estimate)`` is the value: the log of the mean of the sampled pair terms
    ``exp(-t d^2)``, computed in log space (the mean is unbiased; its log is not).

    The interval holds whatever the distribution of the pair terms, which matters: at a
    large ``t`` the pair mean is dominated by a few close pairs that a sample usually
    misses, and the normal interval then covers the exact value in as few as 1 case in 5.
    Every term lies in [0, 1], so the empirical Bernstein bound (Maurer & Pontil 2009,
    Thm. 4, each side at level 2.5%) bounds the mean from both sides; the lower end is
    also at least the largest sampled term over the number of pairs (a certain bound:
    that pair is in the population). Both are mapped through ``log``. Where the sample
    cannot pin the value down, the interval says so by being wide (its upper end
    reaches ``log(7 ln(80) / (3 (n_pairs - 1)))`` when the terms are tiny): compute the
    exact value, or sample more pairs, then. Where the normal interval would be right
    (small ``t``) this one is wider: 5 times at 20,000 pairs (t = 2, d = 64), where its
    range term ``7 ln(80) / (3 n)`` dominates, falling towards ``sqrt(2 ln 80) / 1.96 = 1.5``
    times as ``n_pairs`` grows.
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
        return float(_exact_uniformity(x, t, block_size))
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 2:
        raise ValueError(
            f"n_pairs must be an integer >= 2 (for a confidence interval), got {n_pairs!r}"
        )
    gen = torch.Generator(device="cpu").manual_seed(seed)
    # log space throughout: with a large t or raw features every exp(-t d^2) can underflow,
    # so the sums are of exp(e - shift) with shift the largest exponent seen so far
    shift = torch.tensor(-math.inf, dtype=torch.float64, device=x.device)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    total_sq = torch.zeros((), dtype=torch.float64, device=x.device)
    chunk = 1 << 16
    for start in range(0, n_pairs, chunk):
        k = min(chunk, n_pairs - start)
        i = torch.randint(n, (k,), generator=gen)
        j = torch.randint(n - 1, (k,), generator=gen)
        j += (j >= i).long()  # uniform over j != i
        i, j = i.to(x.device), j.to(x.device)
        e = (x[i] - x[j]).double().pow(2).sum(1).mul_(-t)
        new_shift = torch.maximum(shift, e.max())
        rescale = torch.exp(shift - new_shift)
        v = torch.exp(e - new_shift)
        total = total * rescale + v.sum()
        total_sq = total_sq * rescale * rescale + v.pow(2).sum()
        shift = new_shift
    return _sampled_estimate(float(shift), float(total), float(total_sq), n_pairs, n)


def _exact_uniformity(x: torch.Tensor, t: float, block_size: int) -> torch.Tensor:
    """Exact uniformity of prepared rows as a 0-d float64 tensor on ``x``'s device."""
    n = x.shape[0]
    return pair_logsumexp(x, t, block_size) - math.log(n * (n - 1) / 2)


def _sampled_estimate(
    shift: float, total: float, total_sq: float, n_pairs: int, n: int
) -> UniformityEstimate:
    """The estimate from ``n_pairs`` sampled exponents ``e`` among the pairs of ``n`` rows,
    given ``shift = max e``, ``total = sum exp(e - shift)`` and ``total_sq`` likewise of
    ``exp(2 (e - shift))``; see :class:`UniformityEstimate` for the interval."""
    value = shift + math.log(total / n_pairs)
    # the terms themselves, in [0, 1]: exp(shift) may underflow, and then so do they
    scale = math.exp(shift)
    mean = scale * total / n_pairs
    var = max(scale * scale * total_sq / n_pairs - mean * mean, 0.0) * n_pairs / (n_pairs - 1)
    log_term = math.log(4 / 0.05)  # two sides at 2.5% each
    half = math.sqrt(2 * var * log_term / n_pairs) + 7 * log_term / (3 * (n_pairs - 1))
    # the largest sampled term is one pair's: the pair mean is at least it over all pairs
    low = shift - math.log(n * (n - 1) / 2)
    if mean > half:
        low = max(low, math.log(mean - half))
    high = math.log(min(mean + half, 1.0))
    # with more draws than pairs the certain bound can pass the sample mean
    return UniformityEstimate(value, min(low, value), high, n_pairs)


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


#: Counts the sampled updates of every :class:`Uniformity` in the process: each draws its
#: keys from a seed no other update shares.
_KEY_DRAWS = itertools.count()


def _flag_rows(batch: object, name: str, normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepare a batch without reading its values on the host.

    Returns the (normalised) rows and a boolean mask of the bad rows: a NaN or Inf entry
    or, when normalising, a zero norm or one beyond the dtype's range (dividing by an
    infinite norm would give a zero row). The caller counts them in a state and refuses
    them at ``compute``. Without normalisation a large finite row is measured as given
    (the kernel works in float64 where float32 would overflow), so only its entries are
    checked: ``x.abs().amax(1)`` is NaN or Inf exactly where an entry is (the norm would
    also be Inf for a row of finite entries beyond 1e19), at 0.4 times the cost of
    ``torch.isfinite(x).all(1)`` on a CPU.
    """
    x = _checks.embeddings(batch, name, check_values=False).detach()
    if not normalize:
        return x, ~torch.isfinite(x.abs().amax(1))
    norm = torch.linalg.vector_norm(x, dim=1)
    bad = ~torch.isfinite(norm) | (norm <= _checks.NORM_EPS)
    return x / norm.clamp_min(_checks.NORM_EPS)[:, None], bad  # what F.normalize computes


def _check_state(metric: Alignment | Uniformity, count: torch.Tensor) -> None:
    """The one host read of a metric's ``compute``: any rows at all, and any bad ones?

    Reads the (synced or merged) states, so a metric filled only by ``merge_state`` counts.
    """
    n_bad, n = torch.stack([metric.invalid, count]).tolist()
    name = type(metric).__name__
    if n == 0:
        raise ValueError(f"{name}.compute() called before any update()")
    if n_bad:
        zero = (
            " or had a zero norm (no direction) or one beyond the dtype's range, so they "
            "cannot be L2-normalised" if metric.normalize else ""
        )
        raise ValueError(
            f"{name}: {n_bad} rows given to update() were NaN/Inf{zero}; "
            f"metrics.{name.lower()}() on a batch names the first such row"
        )


class _RowMetric(Metric):
    """A metric of (N, d) rows whose width ``d`` is fixed from the first update (or merge)
    to the next ``reset``: a batch of another width is refused when it arrives, whether it
    comes through ``update``, ``forward`` or ``merge_state``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._dim: int | None = None

    def _check_width(self, width: int | None, what: str) -> None:
        if width is None:
            return
        if self._dim is not None and width != self._dim:
            raise ValueError(
                f"{type(self).__name__}: {what} has {width} dimensions but earlier batches "
                f"had {self._dim}"
            )
        self._dim = width

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        # torchmetrics resets the state (and with it the width) before the batch's update
        x = args[0] if args else kwargs.get("x")
        if isinstance(x, torch.Tensor) and x.ndim == 2:
            self._check_width(x.shape[1], "x")
        return super().forward(*args, **kwargs)

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        if isinstance(incoming_state, _RowMetric):
            width = incoming_state._dim
        else:  # a state dict: its rows, where it holds them
            rows = incoming_state.get("rows") if isinstance(incoming_state, dict) else None
            chunks = [rows] if isinstance(rows, torch.Tensor) else list(rows or [])
            width = chunks[0].shape[1] if chunks and chunks[0].ndim == 2 else None
        self._check_width(width, "the merged state")
        super().merge_state(incoming_state)

    def reset(self) -> None:
        super().reset()
        self._dim = None


class Alignment(_RowMetric):
    """Alignment as a ``torchmetrics.Metric``: the mean of ``||x_i - y_i||^alpha`` over
    every positive pair given to ``update``, as :func:`alignment` computes it.

    State: a float64 sum, a pair count and a count of bad rows, all summed across
    processes by torchmetrics (so ``compute`` under DDP, ``merge_state``, Lightning's
    ``self.log(name, metric)`` and ``MetricCollection`` all work). ``update`` never reads
    values on the host (no GPU synchronisation): NaN/Inf rows, and zero rows when
    normalising, are counted on the device and refused by ``compute``.

    Args:
        alpha: exponent, > 0.
        normalize: L2-normalise rows first (default True).
        **kwargs: ``torchmetrics.Metric`` options (``sync_on_compute``, ``process_group``...).

    Examples:
        >>> import torch
        >>> metric = Alignment()
        >>> x = torch.ones(4, 3)
        >>> y = torch.tensor([[1.0, 1, 1], [1, 1, 1], [1, 1, -1], [1, 1, -1]])
        >>> for xb, yb in [(x[:2], y[:2]), (x[2:], y[2:])]:  # batch by batch
        ...     metric.update(xb, yb)
        >>> metric.compute()  # a 0-d float64 tensor
        tensor(0.6667, dtype=torch.float64)
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    total: torch.Tensor
    count: torch.Tensor
    invalid: torch.Tensor

    def __init__(self, alpha: float = 2.0, normalize: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = _checks.positive(alpha, "alpha")
        self.normalize = normalize
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("invalid", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch of positive pairs: row i of ``y`` is the positive of row i of ``x``."""
        x, bad_x = _flag_rows(x, "x", self.normalize)
        y, bad_y = _flag_rows(y, "y", self.normalize)
        _checks.same_shape(x, y)
        self._check_width(x.shape[1], "x")
        self.total += _alignment_terms(x, y, self.alpha).sum()
        self.count += x.shape[0]
        self.invalid += (bad_x | bad_y).sum()

    def compute(self) -> torch.Tensor:
        """The alignment of every pair seen, a 0-d float64 tensor."""
        _check_state(self, self.count)
        return self.total / self.count


class Uniformity(_RowMetric):
    """Uniformity as a ``torchmetrics.Metric``: :func:`uniformity` of every row given to
    ``update`` (not a mean of per-batch values: it is the log of a mean over all pairs).

    Two modes:

    - exact (``max_rows=None``, the default): the (normalised) rows are a "cat" state and
      ``compute`` runs the exact block-wise sum over all of them. Memory: N x d values of
      the input dtype on the metric's device (pass ``compute_on_cpu=True`` to keep them
      in host memory), plus one concatenated copy at ``compute``; under DDP every process
      gathers all N rows.
    - sampled (``max_rows=K``): a bounded-memory uniform random subset of K of the rows,
      and ``compute`` is the exact uniformity of that subset. Each row gets an i.i.d.
      uniform key and the rows with the K smallest keys are kept (a bottom-K sample): a
      uniform sample without replacement whatever the order or size of the batches, which
      merges exactly (the bottom-K of a union is the bottom-K of the parts' bottom-K), so
      the state syncs as two "cat" states of at most K rows per process. The mean of the
      pair terms over a uniformly random subset is an unbiased estimate of the mean over
      all pairs (a U-statistic); its log, the value, is biased low by about
      ``var / (2 mean^2)`` of that estimate (Jensen). While at most K rows have been seen
      it is exact. Memory: at most 2K x (d + 2) values per process (the subset is pruned
      back to K once 2K rows are held, after ``update``, ``forward`` and ``merge_state``
      alike, so that an update costs O(batch), not O(K)). The keys come from a generator
      seeded by ``(seed, rank, n)`` with ``n`` counting the sampled updates of every
      ``Uniformity`` in the process: no two updates draw the same keys, whatever the
      metric, so shards merge as independent samples, and ``forward`` (which
      torchmetrics runs on a reset state) draws fresh ones each batch; the global random
      state is untouched, and a script that makes the same calls is reproducible. For a
      confidence interval, use ``uniformity(x, n_pairs=...)`` on stored embeddings.

    ``update`` never reads values on the host; NaN/Inf rows (and zero rows when
    normalising) are counted on the device and refused by ``compute``.

    Args:
        t: kernel scale, > 0.
        normalize: L2-normalise rows first (default True).
        max_rows: None for the exact mode, else K >= 2 rows kept for the sampled mode.
        seed: seed of the sampled mode's keys.
        block_size: rows per block of the exact pair sum.
        **kwargs: ``torchmetrics.Metric`` options (``compute_on_cpu``, ``process_group``...).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    rows: list[torch.Tensor]
    keys: list[torch.Tensor]
    seen: torch.Tensor
    invalid: torch.Tensor

    def __init__(
        self,
        t: float = 2.0,
        normalize: bool = True,
        *,
        max_rows: int | None = None,
        seed: int = 0,
        block_size: int = DEFAULT_BLOCK,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.t = _checks.positive(t, "t")
        self.normalize = normalize
        if max_rows is not None and (isinstance(max_rows, bool) or not max_rows >= 2):
            raise ValueError(f"max_rows must be None (exact) or an integer >= 2, got {max_rows!r}")
        self.max_rows = None if max_rows is None else int(max_rows)
        self.seed, self.block_size = int(seed), int(block_size)
        self.add_state("rows", [], dist_reduce_fx="cat")
        self.add_state("keys", [], dist_reduce_fx="cat")
        self.add_state("seen", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("invalid", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, x: torch.Tensor) -> None:
        """Add a batch of embeddings (N, d)."""
        x, bad = _flag_rows(x, "x", self.normalize)
        self._check_width(x.shape[1], "x")
        self.seen += x.shape[0]
        self.invalid += bad.sum()
        self.rows.append(x)
        if self.max_rows is None:
            return
        gen = torch.Generator(device=x.device).manual_seed(self._key_seed())
        keys = torch.rand(x.shape[0], generator=gen, device=x.device, dtype=torch.float64)
        self.keys.append(keys)
        self._prune()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        value = super().forward(*args, **kwargs)
        self._prune()  # torchmetrics appends the batch's rows to the held ones
        return value

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        if isinstance(incoming_state, Uniformity) and (
            (incoming_state.max_rows is None) != (self.max_rows is None)
        ):
            raise ValueError(
                "Uniformity.merge_state: cannot merge an exact-mode state (max_rows=None) "
                "with a sampled one: the exact rows carry no sampling keys"
            )
        super().merge_state(incoming_state)
        self._prune()

    def _key_seed(self) -> int:
        state = np.random.SeedSequence([self.seed, get_rank(), next(_KEY_DRAWS)])
        return int(state.generate_state(1)[0])

    def _prune(self) -> None:
        """Keep the bottom K of the held rows once more than 2K are held (sampled mode):
        O(batch) per update, amortised."""
        if self.max_rows is None or sum(k.shape[0] for k in self.keys) <= 2 * self.max_rows:
            return
        # with compute_on_cpu=True the held chunks live on the CPU, the newest may not
        device = self.keys[-1].device
        rows = torch.cat([r.to(device) for r in self.rows])
        keys = torch.cat([k.to(device) for k in self.keys])
        self.rows, self.keys = self._bottom(rows, keys)

    def _bottom(
        self, rows: torch.Tensor, keys: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if self.max_rows is not None and keys.shape[0] > self.max_rows:
            keys, keep = torch.topk(keys, self.max_rows, largest=False, sorted=False)
            rows = rows[keep]
        return [rows], [keys]

    def subset(self) -> torch.Tensor:
        """The rows ``compute`` measures: all of them (exact mode), or the kept uniform
        random subset of at most ``max_rows`` (sampled mode; after a sync, of all
        processes' rows)."""
        rows = dim_zero_cat(self.rows)
        if self.max_rows is not None:
            rows = self._bottom(rows, dim_zero_cat(self.keys))[0][0]
        return rows

    def compute(self) -> torch.Tensor:
        """Uniformity of everything seen (exact mode) or of the kept subset (sampled mode),
        a 0-d float64 tensor."""
        _check_state(self, self.seen)
        rows = self.subset()
        if rows.shape[0] < 2:
            raise ValueError(f"Uniformity needs at least 2 rows, got {rows.shape[0]}")
        return _exact_uniformity(rows, self.t, self.block_size)
