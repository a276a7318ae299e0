"""``torchmetrics.Metric`` classes of alignment and uniformity: streaming over batches,
merged across DDP processes, through ``update``/``compute`` or ``forward``."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from alignuniform import _checks
from alignuniform._kernel import DEFAULT_BLOCK
from alignuniform.distributed import get_rank
from alignuniform.metrics.functional import (
    _alignment_terms,
    _exact_uniformity,
)

__all__ = ["Alignment", "Uniformity"]


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
