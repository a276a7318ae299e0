"""Alignment, uniformity, its bound, the spectral metrics and leave-one-out 5-NN of any set
of embeddings.

:func:`measure` takes arrays (a numpy memmap of a large ``.npy`` is streamed, never held
twice), :func:`measure_files` reads them first (:mod:`alignuniform.data.embedding_files`).
Every number comes from the functional :mod:`alignuniform.metrics`; this module only
streams, checks and composes. The ``alignuniform measure`` command prints and writes what
they return.

Sizes and costs:

- Rows are read in chunks of :data:`CHUNK_ROWS`, checked (NaN/Inf, zero rows) and
  L2-normalised into one float32 (N, d) tensor: memory about ``4 N d`` bytes. Pages of a
  memory-mapped file are released as soon as their rows are copied.
- Uniformity is exact (every pair, block-wise) up to :data:`EXACT_MAX_ROWS` rows, about
  25 s on the project's 2-core CPU at d = 128 (N = 65,536 takes 9.8 s); beyond that, or
  with ``sample=``, it is estimated from :data:`DEFAULT_SAMPLE_PAIRS` (or ``sample``)
  uniformly drawn pairs with a 95% confidence interval.
- Alignment averages over every positive pair (exact at any size, streamed in chunks).
- RankMe, effective rank, stable rank, alpha-ReQ and the W2 uniformity
  (:mod:`alignuniform.evaluate.spectral_numbers`) come from a
  :class:`~alignuniform.metrics.SpectralState` updated with each chunk as it is read:
  a d x d float64 Gram matrix (a second one with ``normalize=False``: the W2 uniformity is
  of the normalised rows), no second copy of the rows. LiDAR needs (n, q, d) views (``views=``),
  streamed :data:`CHUNK_ROWS` rows of views at a time into a
  :class:`~alignuniform.metrics.LidarState`.
- k-NN accuracy is leave-one-out 5-NN by cosine similarity: every row is a query when there
  are at most :data:`KNN_MAX_QUERIES` rows; beyond that a seeded sample of that many
  queries, each against all rows (cost ``KNN_MAX_QUERIES x N x d``).

Examples:
    >>> import numpy as np
    >>> from alignuniform.evaluate.measurement import measure
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((5000, 64), dtype=np.float32)
    >>> m = measure(x, second=x + 0.1 * rng.standard_normal((5000, 64), dtype=np.float32))
    >>> round(m.summary["alignment"], 3), round(m.summary["uniformity"], 2)
    (0.02, -3.87)
    >>> m.summary["uniformity_method"]
    'exact'
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from alignuniform import metrics
from alignuniform.evaluate.spectral_numbers import SPECTRAL_KEYS, spectral_numbers

__all__ = [
    "CHUNK_ROWS",
    "DEFAULT_SAMPLE_PAIRS",
    "EXACT_MAX_ROWS",
    "FIGURE_POINTS",
    "KNN_MAX_QUERIES",
    "PAIR_CHUNK",
    "SUMMARY_KEYS",
    "Measurement",
    "load_rows",
    "loo_knn_accuracy",
    "measure",
    "measure_files",
]

#: exact uniformity up to this many rows (about 25 s at d = 128 here), sampled beyond
EXACT_MAX_ROWS = 100_000
#: pairs drawn for sampled uniformity unless ``sample`` says otherwise
DEFAULT_SAMPLE_PAIRS = 1_000_000
#: leave-one-out k-NN queries at most (a seeded sample beyond)
KNN_MAX_QUERIES = 10_000
#: rows read, checked and normalised at a time
CHUNK_ROWS = 16_384
#: positive pairs per call of ``metrics.alignment``
PAIR_CHUNK = 16_384
#: rows projected for the angle figure at most (a seeded sample beyond)
FIGURE_POINTS = 20_000
#: rows whose norm is within this of 1 count as unit norm
UNIT_NORM_TOL = 1e-3

#: the keys of ``Measurement.summary`` (= ``measure.json``), in order
SUMMARY_KEYS = (
    "n", "dim", "normalized", "alignment", "n_pairs", "uniformity", "uniformity_bound",
    "uniformity_method", "uniformity_ci95", "knn_accuracy", "t", "alpha", "seed",
    *SPECTRAL_KEYS,
)


@dataclass
class Measurement:
    """What :func:`measure` found.

    Attributes:
        summary: exactly :data:`SUMMARY_KEYS` (``alignment`` and ``knn_accuracy`` are None
            without positives / labels; ``n_pairs`` is the number of positive pairs, 0
            without; ``uniformity_ci95`` is ``[low, high]`` when sampled, else None; the
            spectral metrics are of the rows as measured, ``gaussian_w2`` of the normalised
            rows, and None where undefined (see ``spectral_reasons``); ``lidar`` is None
            without views).
        pos_dist: ``||x_i - y_i||`` of every positive pair (None without positives).
        angles: angles of a seeded random 2-D projection of (up to :data:`FIGURE_POINTS`)
            rows, for the vMF density figure.
        angle_labels: the labels of those rows (None without labels).
        norm_min, norm_max: the smallest and largest row norm of EMB as given.
        uniformity_pairs: pairs drawn when uniformity was sampled, else None.
        knn_queries: leave-one-out queries behind ``knn_accuracy`` (None without labels).
        notes: sentences worth telling the user (e.g. that the rows were not unit norm).
        spectral_reasons: why each spectral metric that is None is undefined (e.g.
            alpha-ReQ of a collapsed spectrum), by key.
        views_shape: ``(n, q, d)`` of the views behind ``lidar``, None without.
    """

    summary: dict
    pos_dist: np.ndarray | None
    angles: np.ndarray
    angle_labels: np.ndarray | None
    norm_min: float
    norm_max: float
    uniformity_pairs: int | None = None
    knn_queries: int | None = None
    notes: list[str] = field(default_factory=list)
    spectral_reasons: dict[str, str] = field(default_factory=dict)
    views_shape: tuple[int, int, int] | None = None


def _as_array(x: object, name: str, ndim: int = 2) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        x = x.numpy()
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold numbers, got dtype {x.dtype}")
    if x.ndim != ndim:
        what = "2-D (N rows x d dimensions)" if ndim == 2 else "3-D (n samples x q views x d)"
        raise ValueError(f"{name} must be {what}, got shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    return x


def _release_pages(a: np.ndarray, stop: int) -> None:
    """Let the OS drop the memory-mapped pages of rows ``[0, stop)`` from our resident set
    (they stay in the page cache); a no-op for arrays that are not a C-order memmap."""
    mm = getattr(a, "_mmap", None)
    if not isinstance(a, np.memmap) or mm is None or not a.flags.c_contiguous:
        return
    head = a.offset % mmap.ALLOCATIONGRANULARITY  # where the array starts inside the map
    end = head + stop * a.strides[0]
    end -= end % mmap.PAGESIZE
    if end > 0:
        try:
            mm.madvise(mmap.MADV_DONTNEED, 0, end)
        except (AttributeError, OSError, ValueError):
            pass


def load_rows(
    a: object, name: str = "EMB", *, normalize: bool = True, chunk_rows: int = CHUNK_ROWS,
    states: Sequence[metrics.SpectralState] = (),
) -> tuple[torch.Tensor, float, float]:
    """Copy (N, d) rows into one float32 tensor, chunk by chunk, checking and normalising.

    Args:
        a: array-like (a numpy memmap is read once, in order, and its pages released).
        name: what to call it in errors.
        normalize: L2-normalise each row (norms computed in float64).
        chunk_rows: rows per chunk.
        states: spectral states updated with each chunk of rows as stored (checked and,
            with ``normalize``, normalised), in the same pass.

    Returns:
        ``(rows, smallest norm, largest norm)``, norms of the rows as given.

    Raises:
        ValueError: rows with NaN or Inf (naming the first and the count); all-zero rows
            when normalising (they cannot be normalised); values beyond float32 without it.
    """
    a = _as_array(a, name)
    n, d = a.shape
    out = torch.empty(n, d, dtype=torch.float32)
    bad_count, bad_first, zero_count, zero_first = 0, -1, 0, -1
    norm_min, norm_max = math.inf, 0.0
    wide = a.dtype == np.float64  # checked and normalised in float64: may exceed float32
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        if wide:
            c = torch.from_numpy(np.array(a[start:stop], dtype=np.float64))
        else:  # straight into the result, cast on the way (float16, integers)
            c = out[start:stop]
            c.numpy()[...] = a[start:stop]
        finite = torch.isfinite(c).all(dim=1)
        if not bool(finite.all()):
            bad = (~finite).nonzero()[:, 0]
            bad_first = int(bad[0]) + start if bad_first < 0 else bad_first
            bad_count += len(bad)
        if bad_count:  # keep counting, skip the work
            _release_pages(a, stop)
            continue
        norms = torch.linalg.vector_norm(c, dim=1)
        scaled = None
        if not bool(torch.isfinite(norms).all()):  # the sum of squares overflows: scale rows
            scale = c.abs().amax(dim=1).double().clamp_min(1e-300)
            scaled = c.double() / scale[:, None]
            scaled_norms = torch.linalg.vector_norm(scaled, dim=1)
            norms = scaled_norms * scale
        norm_min = min(norm_min, float(norms.min()))
        norm_max = max(norm_max, float(norms.max()))
        if normalize:
            zero = norms == 0
            if bool(zero.any()):
                z = zero.nonzero()[:, 0]
                zero_first = int(z[0]) + start if zero_first < 0 else zero_first
                zero_count += len(z)
            if scaled is None:
                c = c.div_(torch.where(zero, torch.ones_like(norms), norms)[:, None])
            else:
                ones = torch.ones_like(scaled_norms)
                c = scaled / torch.where(zero, ones, scaled_norms)[:, None]
        if c.data_ptr() != out[start:stop].data_ptr():
            out[start:stop] = c
            if not bool(torch.isfinite(out[start:stop]).all()):
                raise ValueError(
                    f"{name} has values beyond the float32 range (row {start} onwards); "
                    "rescale them or let them be normalised"
                )
        for state in states:
            state.update(out[start:stop])
        _release_pages(a, stop)
    if bad_count:
        raise ValueError(
            f"{name} has {bad_count} row{'s' if bad_count > 1 else ''} with NaN or Inf values "
            f"(first: row {bad_first}); drop or fix them"
        )
    if zero_count:
        raise ValueError(
            f"{name} has {zero_count} all-zero row{'s' if zero_count > 1 else ''} (first: row "
            f"{zero_first}): a zero vector cannot be normalised to unit length; drop them, "
            "or pass --no-normalize (normalize=False) to measure the raw vectors"
        )
    return out, norm_min, norm_max


@torch.no_grad()
def loo_knn_accuracy(
    x: torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    k: int = 5,
    max_queries: int = KNN_MAX_QUERIES,
    seed: int = 0,
    chunk_size: int = 4096,
) -> tuple[float, int]:
    """Leave-one-out k-NN accuracy by cosine similarity: each query row is classified by
    majority vote of its k nearest *other* rows (ties to the class met nearest first, as in
    :func:`alignuniform.evaluate.knn_predict`).

    Returns ``(accuracy, number of queries)``: all rows when ``N <= max_queries``, else a
    seeded sample of ``max_queries`` rows, each against all N.
    """
    from alignuniform.evaluate.knn import _topk_similar

    y = torch.as_tensor(np.array(labels, dtype=np.int64))
    n = x.shape[0]
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(y.shape)}")
    if n <= k:
        raise ValueError(f"leave-one-out {k}-NN needs more than {k} rows, got {n}")
    refs = F.normalize(x, dim=1)
    if n <= max_queries:
        queries = torch.arange(n)
    else:
        gen = torch.Generator().manual_seed(seed)
        queries = torch.randperm(n, generator=gen)[:max_queries].sort().values
    num_classes = int(y.max()) + 1
    correct = 0
    for start in range(0, len(queries), chunk_size):
        q = queries[start : start + chunk_size]
        sim, idx = _topk_similar(refs[q], refs, k + 1, chunk_size)
        sim = sim.masked_fill(idx == q[:, None], -math.inf)  # leave the query itself out
        sim, pos = sim.topk(k, dim=1)
        near = y[idx.gather(1, pos)]
        votes = torch.zeros(len(q), num_classes)
        votes.scatter_add_(1, near, torch.ones(near.shape))
        rank = torch.arange(k, 0, -1, dtype=torch.float32).expand(near.shape)
        first = torch.zeros_like(votes).scatter_reduce_(1, near, rank, "amax")
        pred = (votes * (k + 1) + first).argmax(dim=1)
        correct += int((pred == y[q]).sum())
    return correct / len(queries), len(queries)


def _alignment(
    x: torch.Tensor, y: torch.Tensor | None, pairs: np.ndarray | None, alpha: float,
    chunk_rows: int,
) -> tuple[float, np.ndarray, int]:
    """Mean of ``||a - b||^alpha`` over all positive pairs, chunk by chunk, via
    :func:`metrics.alignment`, and every pair's distance."""
    k = x.shape[0] if pairs is None else len(pairs)
    total, dists = 0.0, []
    for start in range(0, k, chunk_rows):
        stop = min(k, start + chunk_rows)
        if pairs is None:
            assert y is not None  # positives come from --second when there are no pairs
            a, b = x[start:stop], y[start:stop]
        else:
            p = torch.from_numpy(np.array(pairs[start:stop], dtype=np.int64))
            a, b = x[p[:, 0]], x[p[:, 1]]
        total += metrics.alignment(a, b, alpha=alpha, normalize=False) * (stop - start)
        dists.append((a - b).norm(dim=1).numpy())
    return total / k, np.concatenate(dists), k


def _lidar_state(views: np.ndarray, normalize: bool, chunk_rows: int) -> metrics.LidarState:
    """The LiDAR state of (n, q, d) views, about ``chunk_rows`` view rows at a time, each
    chunk checked for NaN/Inf and, with ``normalize``, L2-normalised."""
    n, q, d = views.shape
    state = metrics.LidarState(d)
    step = max(1, chunk_rows // q)
    for start in range(0, n, step):
        c = torch.from_numpy(np.array(views[start : start + step], dtype=np.float64))
        if not bool(torch.isfinite(c).all()):
            first = start + int((~torch.isfinite(c)).flatten(1).any(1).nonzero()[0, 0])
            raise ValueError(
                f"VIEWS has NaN or Inf values (first: sample {first}); drop or fix them"
            )
        state.update(F.normalize(c, dim=2) if normalize else c)
        _release_pages(views, min(n, start + step))
    return state


def measure(
    x: object,
    *,
    second: object | None = None,
    pairs: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    views: object | None = None,
    t: float = 2.0,
    alpha: float = 2.0,
    sample: int | None = None,
    normalize: bool = True,
    seed: int = 0,
    exact_max_rows: int = EXACT_MAX_ROWS,
    chunk_rows: int = CHUNK_ROWS,
) -> Measurement:
    """Alignment, uniformity (exact or sampled), its bound, the spectral metrics and
    leave-one-out 5-NN accuracy.

    Args:
        x: (N, d) embeddings: numpy array (a memmap is streamed), torch tensor or nested list.
        second: (N, d) embeddings; row i is the positive of row i of ``x``.
        pairs: (K, 2) integer row indices into ``x``: each row a positive pair. At most one
            of ``second`` and ``pairs``.
        labels: (N,) integer class labels, for leave-one-out 5-NN accuracy.
        views: (n, q >= 2, d) embeddings, q augmented views of each of n samples (any n,
            not necessarily the rows of ``x``), for LiDAR; normalised like ``x``.
        t, alpha: the uniformity kernel scale and the alignment exponent.
        sample: estimate uniformity from this many sampled pairs, whatever N.
        normalize: L2-normalise rows first (default; the paper's quantities live on the
            sphere). ``False`` measures the vectors as given.
        seed: seeds the pair sampler, the k-NN query sample and the figure's projection.
        exact_max_rows: exact uniformity up to this many rows, sampled beyond.
        chunk_rows: rows streamed at a time.

    Raises:
        ValueError: bad rows (see :func:`load_rows`), mismatched shapes of ``x`` and
            ``second``, pair indices out of range, labels of the wrong length, fewer than
            two rows, views that are not (n >= 2, q >= 2, d) or hold NaN/Inf, or
            non-positive ``t``/``alpha``/``sample``. A spectral metric that the spectrum
            leaves undefined is None, not an error.
    """
    t, alpha = float(t), float(alpha)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"t must be a positive number, got {t}")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive number, got {alpha}")
    if sample is not None and (isinstance(sample, bool) or int(sample) != sample or sample < 2):
        raise ValueError(f"sample must be an integer >= 2 (pairs to draw), got {sample}")
    if second is not None and pairs is not None:
        raise ValueError("give positives either as a second set (second=) or as pairs=, not both")
    x = _as_array(x, "EMB")
    n, d = x.shape
    if n < 2:
        raise ValueError(f"EMB needs at least 2 rows for uniformity, got {n}")
    if second is not None:
        second = _as_array(second, "EMB2")
        if second.shape != x.shape:
            raise ValueError(
                f"EMB and EMB2 must have the same shape (row i of EMB2 is the positive of row i "
                f"of EMB), got {x.shape} and {second.shape}"
            )
    if pairs is not None:
        pairs = np.asarray(pairs)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
            raise ValueError(f"pairs must have shape (K, 2) with K >= 1, got {pairs.shape}")
        if pairs.dtype.kind not in "iu":
            raise ValueError(f"pairs must be integer row indices, got dtype {pairs.dtype}")
        bad = ((pairs < 0) | (pairs >= n)).any(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{int(bad.sum())} pairs hold indices out of range [0, {n - 1}] "
                f"(first: pair {row} = {pairs[row].tolist()})"
            )
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(f"labels must be one per row: {n} expected, got shape {labels.shape}")
        if labels.dtype.kind not in "iu" or (labels < 0).any():
            raise ValueError("labels must be non-negative integers")
    if views is not None:
        views = _as_array(views, "VIEWS", ndim=3)
        if views.shape[0] < 2 or views.shape[1] < 2:
            raise ValueError(
                "VIEWS must hold q >= 2 views of n >= 2 samples (LiDAR's classes), got shape "
                f"{views.shape}"
            )

    # rows load_rows normalised are on the sphere already: one Gram matrix serves both
    state = metrics.SpectralState(d)
    sphere = (metrics.SpectralState.wrap(state.count, state.total, state.gram, normalize=True)
              if normalize else metrics.SpectralState(d, normalize=True))
    rows, norm_min, norm_max = load_rows(x, "EMB", normalize=normalize, chunk_rows=chunk_rows,
                                         states=(state,) if normalize else (state, sphere))
    lidar = None if views is None else _lidar_state(views, normalize, chunk_rows)
    spectral, reasons = spectral_numbers(state, sphere, lidar)
    del state, sphere
    notes = []
    unit = abs(norm_min - 1) <= UNIT_NORM_TOL and abs(norm_max - 1) <= UNIT_NORM_TOL
    if not unit:
        span = f"norms {norm_min:.4g} to {norm_max:.4g}"
        notes.append(
            f"EMB rows were not unit norm ({span}): L2-normalised them (pass --no-normalize "
            "to measure the raw vectors)" if normalize else
            f"EMB rows are not unit norm ({span}) and are measured as given: the uniformity "
            "bound holds for unit vectors only"
        )

    alignment, pos_dist, n_pairs = None, None, 0
    if second is not None:
        rows2, _, _ = load_rows(second, "EMB2", normalize=normalize, chunk_rows=chunk_rows)
        alignment, pos_dist, n_pairs = _alignment(rows, rows2, None, alpha, PAIR_CHUNK)
        del rows2
    elif pairs is not None:
        alignment, pos_dist, n_pairs = _alignment(rows, None, pairs, alpha, PAIR_CHUNK)

    ci, drawn = None, None
    if sample is None and n <= exact_max_rows:
        method = "exact"
        uniformity = metrics.uniformity(rows, t, normalize=False)
    else:
        method = "sampled"
        drawn = int(sample) if sample is not None else DEFAULT_SAMPLE_PAIRS
        est = cast(metrics.UniformityEstimate, metrics.uniformity(
            rows, t, normalize=False, n_pairs=drawn, seed=seed))
        uniformity = est.value
        ci = [est.low if math.isfinite(est.low) else None, est.high]

    knn, queries = None, None
    if labels is not None:
        knn, queries = loo_knn_accuracy(rows, labels, k=5, seed=seed)

    gen = torch.Generator().manual_seed(seed)
    # orthonormal columns: a uniform set projects to an isotropic one (flat angle density)
    proj = torch.linalg.qr(torch.randn(d, 2, generator=gen))[0] if d >= 2 else torch.ones(1, 2)
    pick = None
    if n > FIGURE_POINTS:
        pick = torch.randperm(n, generator=gen)[:FIGURE_POINTS].sort().values
    shown = rows if pick is None else rows[pick]
    xy = shown @ proj
    angles = torch.atan2(xy[:, 1], xy[:, 0]).numpy().astype(np.float64)
    angle_labels = None
    if labels is not None:
        angle_labels = labels if pick is None else labels[pick.numpy()]

    summary = {
        "n": n, "dim": d, "normalized": bool(normalize), "alignment": alignment,
        "n_pairs": n_pairs, "uniformity": float(uniformity),
        "uniformity_bound": metrics.uniformity_bound(d, t), "uniformity_method": method,
        "uniformity_ci95": ci, "knn_accuracy": knn, "t": t, "alpha": alpha, "seed": seed,
        **spectral,
    }
    return Measurement(
        summary=summary, pos_dist=pos_dist, angles=angles, angle_labels=angle_labels,
        norm_min=norm_min, norm_max=norm_max, uniformity_pairs=drawn, knn_queries=queries,
        notes=notes, spectral_reasons=reasons,
        views_shape=None if views is None else cast(tuple[int, int, int], views.shape),
    )


def measure_files(
    emb: str | Path,
    *,
    second: str | Path | None = None,
    pairs: str | Path | None = None,
    labels: str | Path | None = None,
    key: str | None = None,
    pairs_key: str | None = None,
    labels_key: str | None = None,
    views: str | Path | None = None,
    views_key: str | None = None,
    **kwargs,
) -> Measurement:
    """:func:`measure` of embedding files (formats: :mod:`alignuniform.data.embedding_files`).

    ``key`` picks the entry of EMB and EMB2 in multi-array files; ``pairs_key``,
    ``labels_key`` and ``views_key`` those of the pairs, labels and (n, q, d) views files.
    Other arguments go to :func:`measure`.
    """
    from alignuniform.data.embedding_files import (
        read_embeddings,
        read_labels,
        read_pairs,
        read_views,
    )

    if second is not None and pairs is not None:
        raise ValueError("give positives either as --second EMB2 or as --pairs PAIRS, not both")
    x = read_embeddings(emb, key, what="EMB")
    y = read_embeddings(second, key, what="EMB2") if second is not None else None
    p = read_pairs(pairs, x.shape[0], pairs_key) if pairs is not None else None
    lab = read_labels(labels, x.shape[0], labels_key) if labels is not None else None
    if y is not None and y.shape != x.shape:
        raise ValueError(
            f"EMB {emb} and EMB2 {second} must have the same shape (row i of EMB2 is the "
            f"positive of row i of EMB), got {x.shape} and {y.shape}"
        )
    v = read_views(views, views_key) if views is not None else None
    return measure(x, second=y, pairs=p, labels=lab, views=v, **kwargs)
