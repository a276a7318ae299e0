"""Dense (per-location) alignment and uniformity: positive location pairs, metrics, losses.

Tensors only, like ``losses`` and ``metrics``. The definitions below are ours (the paper this
line of work follows, Moon, Kim & Choi, BMVC 2022, has no public body or code); each one
names the public work it follows.

Dense features
    A map ``(B, C, H, W)``; location ``(r, c)`` of image ``b`` is the vector ``f[b, :, r, c]``,
    flattened as index ``r * W + c``. Losses use maps as given (a dense head ends in an L2
    normalisation over C, like the global encoders); metrics L2-normalise over C by default.

Crop geometry (for ``geometric_pairs``)
    Each view is the crop ``box = (x0, y0, x1, y1)`` of the original image (pixel units,
    continuous coordinates: pixel ``k`` covers ``[k, k + 1)``, x along the width), resized to
    the view size and then, if ``flip``, mirrored left-right. A map of ``H x W`` bins tiles
    the view evenly, so bin ``(r, c)`` has its centre at view fraction
    ``u = (c + 0.5) / W`` (``1 - u`` in the crop when flipped), ``v = (r + 0.5) / H``, i.e.
    at ``(x0 + u (x1 - x0), y0 + v (y1 - y0))`` in the original image, and its diagonal there
    is ``hypot((x1 - x0) / W, (y1 - y0) / H)``.

Positive location pairs (a :class:`LocationPairs`: image, view-1 location, view-2 location,
weight), one function per scheme:

1. ``geometric_pairs(mode="threshold")`` (PixPro, Xie et al., CVPR 2021): ``(i, j)`` is
   positive when the distance between the two bin centres in the original image, divided by
   the larger of the two views' bin diagonals, is below ``threshold`` (PixPro's 0.7). A
   location may have several positives.
   ``geometric_pairs(mode="nearest")``: each view-1 location whose centre lies inside view
   2's crop box is paired with the one view-2 location whose centre is nearest (one partner
   per view-1 location; a view-2 location may be the partner of several when view 1 is the
   more zoomed-in one). Crops that do not overlap give no pairs, never an error.
2. ``feature_argmax_pairs`` (DenseCL, Wang et al., CVPR 2021): every view-1 location is
   paired with the view-2 location of highest cosine similarity, in the features given
   (DenseCL uses the backbone's, before the dense head).
3. ``mutual_nn_pairs``: ``(i, j)`` when each is the other's most similar location (cosine)
   and their similarity is at least ``threshold``.

Metrics (no gradient, Python numbers, L2-normalised by default)
    ``dense_alignment``: the weighted mean over positive pairs of ``||f1_i - f2_j||^alpha``.
    ``dense_uniformity``: ``log mean exp(-t ||u - v||^2)`` over pairs of locations, exact,
    through the core kernel, over all ``B H W`` locations or a seeded sample of them. Two
    values: over all pairs, and over pairs from different images only (locations of one image
    are not independent samples), the latter from the all-pair sum minus the same-image sums
    (computed in float64).

Losses (differentiable tensors)
    ``dense_align_loss``, ``dense_uniform_loss`` (both as the metrics, on maps as given),
    ``dense_queue_uniform_loss`` (query locations against a queue of keys, as
    ``queue_uniform_loss``) and ``dense_contrastive_loss`` (DenseCL's dense InfoNCE,
    temperature 0.2: anchor ``q_i``, positive ``k_j``, negatives a queue ``(M, C)`` or,
    without one, every view-2 location of the other images of the batch). A batch with no
    positive pair gives a loss of exactly 0 that is still connected to the graph
    (``on_empty="zero"``, the default) or raises (``on_empty="raise"``): never NaN.
    :class:`DenseLossCombination` weights the dense terms and, optionally, a global
    ``LossCombination`` as DenseCL does (``(1 - lam) L_global + lam L_dense``, lam = 0.5).

The AU-correlation scalar (ours; the BMVC 2022 paper's own is not public)
    Over a set of encoders with alignment ``a_k``, uniformity ``u_k`` and downstream
    performance ``p_k`` (e.g. dense mIoU): fit ``p = b0 + b1 a + b2 u`` by least squares
    leaving each encoder out in turn and predict it; the scalar is the Pearson (or Spearman)
    correlation between these leave-one-out predictions and ``p``. It is 1 when the two
    metrics predict performance perfectly and near 0 (or negative) when they carry no
    information out of sample; with only 3 fitted numbers it does not reward overfitting the
    way the in-sample multiple R does (reported too, with the cross-validated
    ``Q^2 = 1 - PRESS / TSS``). A 95% percentile bootstrap interval resamples encoders with
    replacement (leave-one-out then leaves out every copy of an encoder).

Examples:
    >>> import torch, torch.nn.functional as F
    >>> from alignuniform import dense
    >>> f1 = F.normalize(torch.randn(8, 32, 7, 7), dim=1)
    >>> f2 = F.normalize(torch.randn(8, 32, 7, 7), dim=1)
    >>> boxes1 = torch.tensor([[0.0, 0.0, 24.0, 24.0]] * 8)
    >>> boxes2 = torch.tensor([[8.0, 8.0, 32.0, 32.0]] * 8)
    >>> pairs = dense.geometric_pairs(boxes1, boxes2, (7, 7), (7, 7), image_size=(32, 32))
    >>> loss = dense.dense_align_loss(f1, f2, pairs) + dense.dense_uniform_loss(f1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alignuniform import _checks
from alignuniform.losses import LossCombination, queue_uniform_loss, uniform_loss
from alignuniform.metrics import uniformity

__all__ = [
    "LocationPairs",
    "bin_centres",
    "geometric_pairs",
    "feature_argmax_pairs",
    "mutual_nn_pairs",
    "pair_precision_recall",
    "PAIR_SCHEMES",
    "location_pairs",
    "flatten_locations",
    "dense_alignment",
    "dense_uniformity",
    "DenseUniformity",
    "dense_align_loss",
    "dense_uniform_loss",
    "dense_contrastive_loss",
    "DenseLossCombination",
    "PIXPRO_THRESHOLD",
    "AUCorrelation",
    "au_correlation",
    "dense_au_correlation",
]

#: PixPro's positive-pair threshold on the normalised bin-centre distance.
PIXPRO_THRESHOLD = 0.7


# ---------------------------------------------------------------------------- validation


def _check_map(f: object, name: str) -> torch.Tensor:
    if not isinstance(f, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(f).__name__}")
    if not f.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {f.dtype}")
    if f.ndim != 4:
        raise ValueError(
            f"{name} must be a dense map (B, C, H, W), got shape {tuple(f.shape)}; "
            "a global (B, d) embedding is f[:, :, None, None]"
        )
    if min(f.shape) == 0:
        raise ValueError(f"{name} has an empty dimension (shape {tuple(f.shape)})")
    if not bool(torch.isfinite(f).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    if f.dtype in (torch.float16, torch.bfloat16):
        f = f.float()
    return f


def _check_size(size: object, name: str) -> tuple[int, int]:
    ok = isinstance(size, (tuple, list, torch.Size)) and len(size) == 2
    if not ok or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):  # type: ignore[attr-defined]
        raise ValueError(f"{name} must be (H, W) with positive ints, got {size!r}")
    return int(size[0]), int(size[1])  # type: ignore[index]


def _check_boxes(
    boxes: object, name: str, image_size: tuple[int, int] | torch.Tensor | None
) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor):
        boxes = torch.as_tensor(boxes, dtype=torch.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must be (B, 4) boxes (x0, y0, x1, y1), got {tuple(boxes.shape)}")
    boxes = boxes.detach().to(torch.float64)
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    bad = ((width <= 0) | (height <= 0)).nonzero().flatten()
    if len(bad):
        k = int(bad[0])
        raise ValueError(
            f"{name}[{k}] = {boxes[k].tolist()} has zero or negative area; boxes are "
            "(x0, y0, x1, y1) with x1 > x0 and y1 > y0"
        )
    tol = 1e-6
    outside = (boxes[:, 0] < -tol) | (boxes[:, 1] < -tol)
    if image_size is not None:
        size = torch.as_tensor(image_size, dtype=torch.float64, device=boxes.device)
        size = size.expand(boxes.shape[0], 2) if size.ndim == 1 else size
        if size.shape != (boxes.shape[0], 2):
            raise ValueError(f"image_size must be (H, W) or (B, 2), got {tuple(size.shape)}")
        outside |= (boxes[:, 2] > size[:, 1] + tol) | (boxes[:, 3] > size[:, 0] + tol)
    bad = outside.nonzero().flatten()
    if len(bad):
        k = int(bad[0])
        raise ValueError(
            f"{name}[{k}] = {boxes[k].tolist()} lies outside the image"
            + (f" of size (H, W) = {tuple(image_size)}" if image_size is not None else "")
            + "; crop boxes are in original-image pixels"
        )
    return boxes


def _check_flips(flips: object, n: int, name: str) -> torch.Tensor:
    if flips is None:
        return torch.zeros(n, dtype=torch.bool)
    flips = torch.as_tensor(flips).detach().flatten()
    if flips.shape[0] != n:
        raise ValueError(f"{name} must have one entry per box ({n}), got {flips.shape[0]}")
    return flips.bool()


# ---------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class LocationPairs:
    """Positive location pairs between two views of each image of a batch.

    Pair ``p`` joins location ``i[p]`` (flat index ``r * W1 + c``) of view 1 of image
    ``batch[p]`` with location ``j[p]`` of view 2 of the same image, with weight
    ``weight[p]`` (1 unless a scheme says otherwise). ``len(pairs) == 0`` is a valid, empty
    result (e.g. crops that do not overlap).
    """

    batch: torch.Tensor
    i: torch.Tensor
    j: torch.Tensor
    weight: torch.Tensor
    shape1: tuple[int, int]
    shape2: tuple[int, int]
    batch_size: int

    def __len__(self) -> int:
        return int(self.batch.shape[0])

    @property
    def is_empty(self) -> bool:
        return len(self) == 0

    def to(self, device: torch.device | str) -> LocationPairs:
        return LocationPairs(self.batch.to(device), self.i.to(device), self.j.to(device),
                             self.weight.to(device), self.shape1, self.shape2, self.batch_size)

    def check_maps(self, f1: torch.Tensor, f2: torch.Tensor) -> None:
        """Raise ValueError unless ``f1``/``f2`` have this batch size and these map sizes."""
        for name, f, shape in (("f1", f1, self.shape1), ("f2", f2, self.shape2)):
            if f.shape[0] != self.batch_size or tuple(f.shape[-2:]) != shape:
                raise ValueError(
                    f"{name} has shape {tuple(f.shape)} but the pairs were built for a batch "
                    f"of {self.batch_size} maps of (H, W) = {shape}"
                )
        if f1.shape[1] != f2.shape[1]:
            raise ValueError(f"f1 and f2 have {f1.shape[1]} and {f2.shape[1]} channels")

    def gather(self, f1: torch.Tensor, f2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The paired vectors, two ``(P, C)`` tensors (row p of one pairs with row p of the
        other)."""
        self.check_maps(f1, f2)
        a = f1.flatten(2)[self.batch.to(f1.device), :, self.i.to(f1.device)]
        b = f2.flatten(2)[self.batch.to(f2.device), :, self.j.to(f2.device)]
        return a, b

    def as_set(self) -> set[tuple[int, int, int]]:
        """``{(image, i, j)}``, for comparisons."""
        return set(zip(self.batch.tolist(), self.i.tolist(), self.j.tolist(), strict=True))


def _pairs_from_mask(mask: torch.Tensor, shape1, shape2) -> LocationPairs:
    b, i, j = mask.nonzero(as_tuple=True)
    weight = torch.ones(b.shape[0], dtype=torch.float32, device=mask.device)
    return LocationPairs(b, i, j, weight, tuple(shape1), tuple(shape2), mask.shape[0])


def bin_centres(
    boxes: torch.Tensor, flips: torch.Tensor | None, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin centres of an ``(H, W)`` map of each view in original-image coordinates.

    Returns:
        ``(centres, diagonals)``: ``(B, H*W, 2)`` (x, y) per location in flat order, and the
        ``(B,)`` bin diagonal of each view, both float64.
    """
    h, w = _check_size(size, "size")
    boxes = _check_boxes(boxes, "boxes", None)
    flips = _check_flips(flips, boxes.shape[0], "flips").to(boxes.device)
    u = (torch.arange(w, dtype=torch.float64, device=boxes.device) + 0.5) / w
    v = (torch.arange(h, dtype=torch.float64, device=boxes.device) + 0.5) / h
    u = torch.where(flips[:, None], 1.0 - u[None], u[None])  # (B, W)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    xs = boxes[:, 0:1] + u * bw[:, None]  # (B, W)
    ys = boxes[:, 1:2] + v[None] * bh[:, None]  # (B, H)
    centres = torch.stack(
        [xs[:, None, :].expand(-1, h, -1), ys[:, :, None].expand(-1, -1, w)], dim=-1
    ).reshape(boxes.shape[0], h * w, 2)
    return centres, torch.hypot(bw / w, bh / h)


def geometric_pairs(
    boxes1: torch.Tensor,
    boxes2: torch.Tensor,
    shape1: tuple[int, int],
    shape2: tuple[int, int],
    flips1: torch.Tensor | None = None,
    flips2: torch.Tensor | None = None,
    *,
    image_size: tuple[int, int] | torch.Tensor | None = None,
    mode: str = "threshold",
    threshold: float = PIXPRO_THRESHOLD,
) -> LocationPairs:
    """Positive pairs from the two crops' geometry (PixPro's rule, or nearest bin).

    Args:
        boxes1, boxes2: ``(B, 4)`` crop boxes ``(x0, y0, x1, y1)`` in original-image pixels.
        shape1, shape2: ``(H, W)`` of each view's feature map.
        flips1, flips2: ``(B,)`` bools, True where the view was mirrored left-right.
        image_size: ``(H, W)`` (or ``(B, 2)``) of the original images; when given, boxes
            reaching outside them are an error.
        mode: ``"threshold"`` (pairs whose normalised centre distance is below
            ``threshold``) or ``"nearest"`` (each view-1 location inside crop 2 with its
            nearest view-2 location). See the module docstring.
        threshold: PixPro's 0.7 by default; used by ``"threshold"`` only.

    Raises:
        ValueError: Zero-area boxes, boxes outside the image, mismatched batch sizes.
    """
    boxes1 = _check_boxes(boxes1, "boxes1", image_size)
    boxes2 = _check_boxes(boxes2, "boxes2", image_size)
    if boxes1.shape[0] != boxes2.shape[0]:
        raise ValueError(f"boxes1 and boxes2 hold {boxes1.shape[0]} and {boxes2.shape[0]} views")
    if mode not in ("threshold", "nearest"):
        raise ValueError(f"mode must be 'threshold' or 'nearest', got {mode!r}")
    threshold = _checks.positive(threshold, "threshold")
    shape1, shape2 = _check_size(shape1, "shape1"), _check_size(shape2, "shape2")
    c1, d1 = bin_centres(boxes1, flips1, shape1)
    c2, d2 = bin_centres(boxes2, flips2, shape2)
    dist = torch.cdist(c1, c2)  # (B, HW1, HW2)
    if mode == "threshold":
        mask = dist < threshold * torch.maximum(d1, d2)[:, None, None]
        return _pairs_from_mask(mask, shape1, shape2)
    b2 = boxes2[:, None, :]
    inside = ((c1[..., 0] >= b2[..., 0]) & (c1[..., 0] <= b2[..., 2])
              & (c1[..., 1] >= b2[..., 1]) & (c1[..., 1] <= b2[..., 3]))  # (B, HW1)
    nearest = dist.argmin(dim=2)
    b, i = inside.nonzero(as_tuple=True)
    j = nearest[b, i]
    weight = torch.ones(b.shape[0], device=boxes1.device)
    return LocationPairs(b, i, j, weight, shape1, shape2, boxes1.shape[0])


def _similarity(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    g1, g2 = _check_map(g1, "g1"), _check_map(g2, "g2")
    if g1.shape[:2] != g2.shape[:2]:
        raise ValueError(
            f"g1 and g2 must share batch size and channels, got {tuple(g1.shape)} and "
            f"{tuple(g2.shape)}"
        )
    with torch.no_grad():
        a = F.normalize(g1.detach().flatten(2), dim=1)
        b = F.normalize(g2.detach().flatten(2), dim=1)
        return torch.einsum("bci,bcj->bij", a, b)  # (B, HW1, HW2) cosine similarities


def feature_argmax_pairs(g1: torch.Tensor, g2: torch.Tensor) -> LocationPairs:
    """DenseCL's pairs: each view-1 location with its most similar view-2 location.

    Args:
        g1, g2: ``(B, C, H, W)`` maps used for matching (DenseCL: the backbone's); their
            spatial sizes may differ. Ties go to the lowest index.
    """
    sim = _similarity(g1, g2)
    bsz, n1, _ = sim.shape
    j = sim.argmax(dim=2).flatten()
    b = torch.arange(bsz, device=sim.device).repeat_interleave(n1)
    i = torch.arange(n1, device=sim.device).repeat(bsz)
    return LocationPairs(b, i, j, torch.ones(b.shape[0], device=sim.device),
                         tuple(g1.shape[-2:]), tuple(g2.shape[-2:]), bsz)  # type: ignore[arg-type]


def mutual_nn_pairs(g1: torch.Tensor, g2: torch.Tensor, threshold: float = 0.5) -> LocationPairs:
    """Mutual nearest neighbours (cosine) whose similarity is at least ``threshold``.

    Args:
        g1, g2: ``(B, C, H, W)`` maps used for matching.
        threshold: minimum cosine similarity in [-1, 1] (our default 0.5).
    """
    if not -1.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold!r}")
    sim = _similarity(g1, g2)
    fwd = sim.argmax(dim=2)  # (B, HW1): best j of each i
    bwd = sim.argmax(dim=1)  # (B, HW2): best i of each j
    n1 = sim.shape[1]
    ar = torch.arange(n1, device=sim.device)
    mutual = bwd.gather(1, fwd) == ar[None]
    best = sim.gather(2, fwd[..., None])[..., 0]
    b, i = (mutual & (best >= threshold)).nonzero(as_tuple=True)
    return LocationPairs(b, i, fwd[b, i], torch.ones(b.shape[0], device=sim.device),
                         tuple(g1.shape[-2:]), tuple(g2.shape[-2:]), sim.shape[0])  # type: ignore[arg-type]


#: Scheme names accepted by :func:`location_pairs` (and, later, by training configs).
PAIR_SCHEMES = ("geometric", "geometric_nearest", "feature_argmax", "mutual_nn")


def location_pairs(
    scheme: str,
    *,
    boxes1: torch.Tensor | None = None,
    boxes2: torch.Tensor | None = None,
    flips1: torch.Tensor | None = None,
    flips2: torch.Tensor | None = None,
    shape1: tuple[int, int] | None = None,
    shape2: tuple[int, int] | None = None,
    image_size: tuple[int, int] | torch.Tensor | None = None,
    g1: torch.Tensor | None = None,
    g2: torch.Tensor | None = None,
    threshold: float | None = None,
) -> LocationPairs:
    """Pairs by scheme name: one entry point for configs.

    ``"geometric"`` (PixPro threshold, default 0.7) and ``"geometric_nearest"`` need the
    boxes, flips and map shapes; ``"feature_argmax"`` and ``"mutual_nn"`` (default threshold
    0.5) need the matching maps ``g1``, ``g2``.
    """
    if scheme in ("geometric", "geometric_nearest"):
        if boxes1 is None or boxes2 is None or shape1 is None or shape2 is None:
            raise ValueError(f"scheme {scheme!r} needs boxes1, boxes2, shape1 and shape2")
        mode = "threshold" if scheme == "geometric" else "nearest"
        return geometric_pairs(boxes1, boxes2, shape1, shape2, flips1, flips2,
                               image_size=image_size, mode=mode,
                               threshold=PIXPRO_THRESHOLD if threshold is None else threshold)
    if scheme in ("feature_argmax", "mutual_nn"):
        if g1 is None or g2 is None:
            raise ValueError(f"scheme {scheme!r} needs the matching maps g1 and g2")
        if scheme == "feature_argmax":
            return feature_argmax_pairs(g1, g2)
        return mutual_nn_pairs(g1, g2, 0.5 if threshold is None else threshold)
    raise ValueError(f"scheme must be one of {PAIR_SCHEMES}, got {scheme!r}")


def pair_precision_recall(pred: LocationPairs, truth: LocationPairs) -> tuple[float, float]:
    """Precision and recall of predicted pairs against ground-truth pairs (as sets; weights
    ignored). An empty prediction has precision 1 by convention; empty truth, recall 1."""
    p, t = pred.as_set(), truth.as_set()
    hit = len(p & t)
    return (hit / len(p) if p else 1.0), (hit / len(t) if t else 1.0)


# ---------------------------------------------------------------------------- metrics


def flatten_locations(
    f: torch.Tensor, n_locations: int | None = None, seed: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, C)`` location vectors and their ``(N,)`` image index: all ``B H W`` of them, or
    ``n_locations`` drawn without replacement (seeded by ``seed``, or ``generator``)."""
    f = _check_map(f, "f")
    bsz, c, h, w = f.shape
    x = f.permute(0, 2, 3, 1).reshape(bsz * h * w, c)
    image = torch.arange(bsz, device=f.device).repeat_interleave(h * w)
    if n_locations is None or n_locations >= x.shape[0]:
        return x, image
    if isinstance(n_locations, bool) or not isinstance(n_locations, int) or n_locations < 2:
        raise ValueError(f"n_locations must be an int >= 2, got {n_locations!r}")
    gen = generator or torch.Generator(device="cpu").manual_seed(seed)
    idx = torch.randperm(x.shape[0], generator=gen)[:n_locations].sort().values.to(f.device)
    return x[idx], image[idx]


def _within_image_sum(x: torch.Tensor, image: torch.Tensor, t: float) -> tuple[torch.Tensor, int]:
    """``sum exp(-t ||x_i - x_j||^2)`` over pairs ``i < j`` of the same image (float64,
    differentiable) and the number of such pairs."""
    counts = torch.bincount(image)
    counts = counts[counts > 0]
    n_within = int((counts * (counts - 1) // 2).sum())
    if n_within == 0:
        return x.new_zeros((), dtype=torch.float64), 0
    order = torch.argsort(image, stable=True)
    xs = x[order].double()
    g, m = counts.shape[0], int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(x.shape[0], device=x.device) - starts.repeat_interleave(counts)
    group = torch.arange(g, device=x.device).repeat_interleave(counts)
    padded = xs.new_zeros(g, m, x.shape[1]).index_put((group, rank), xs)
    valid = torch.zeros(g, m, dtype=torch.bool, device=x.device)
    valid[group, rank] = True
    sq = (padded * padded).sum(2)
    d2 = (sq[:, :, None] + sq[:, None, :] - 2 * padded @ padded.transpose(1, 2)).clamp(min=0)
    keep = valid[:, :, None] & valid[:, None, :]
    keep &= torch.ones(m, m, dtype=torch.bool, device=x.device).triu(1)[None]
    return torch.exp(-t * d2)[keep].sum(), n_within


def _n_pairs(n: int) -> int:
    return n * (n - 1) // 2


@dataclass(frozen=True)
class DenseUniformity:
    """Dense uniformity, both ways.

    Attributes:
        all_pairs: ``log mean exp(-t||u - v||^2)`` over all pairs of the locations.
        cross_image: the same over pairs from different images only; ``None`` when every
            location comes from one image (no such pair).
        n_locations, n_images: how many locations (and images they came from) were used.
        t: the kernel scale.
    """

    all_pairs: float
    cross_image: float | None
    n_locations: int
    n_images: int
    t: float

    def __float__(self) -> float:
        return self.all_pairs


def _cross_from_total(
    log_mean_all: torch.Tensor, within: torch.Tensor, n: int, n_within: int
) -> torch.Tensor:
    n_all = _n_pairs(n)
    total = torch.exp(log_mean_all.double() + math.log(n_all))
    cross = total - within
    if not bool(cross > 0):
        raise ArithmeticError(
            "the cross-image potential sum rounded to <= 0 (same-image pairs dominate the "
            "all-pair sum so far that float rounding ate the rest); use float64 features"
        )
    return torch.log(cross) - math.log(n_all - n_within)


@torch.no_grad()
def dense_uniformity(
    f: torch.Tensor,
    t: float = 2.0,
    normalize: bool = True,
    *,
    n_locations: int | None = None,
    seed: int = 0,
) -> DenseUniformity:
    """Exact uniformity over the locations of a dense map, all pairs and cross-image pairs.

    The all-pair value goes through the core kernel (``metrics.uniformity``) in float64;
    the cross-image value subtracts the same-image sums (float64) from that total.

    Args:
        f: ``(B, C, H, W)`` features.
        t: kernel scale, > 0.
        normalize: L2-normalise over C first (default True).
        n_locations: use this many locations drawn (seeded) from all ``B H W``; default all.
        seed: seed of that draw.
    """
    t = _checks.positive(t, "t")
    x, image = flatten_locations(f.detach(), n_locations, seed)
    if x.shape[0] < 2:
        raise ValueError(f"dense_uniformity needs at least 2 locations, got {x.shape[0]}")
    x = x.double()
    if normalize:
        x = F.normalize(x, dim=1)
    log_mean = torch.tensor(uniformity(x, t, normalize=False), dtype=torch.float64)
    within, n_within = _within_image_sum(x, image, t)
    cross = None
    if n_within < _n_pairs(x.shape[0]):
        cross = float(_cross_from_total(log_mean, within, x.shape[0], n_within))
    return DenseUniformity(float(log_mean), cross, x.shape[0], int(image.unique().numel()), t)


@torch.no_grad()
def dense_alignment(
    f1: torch.Tensor, f2: torch.Tensor, pairs: LocationPairs, alpha: float = 2.0,
    normalize: bool = True,
) -> float:
    """Weighted mean over positive pairs of ``||f1_i - f2_j||^alpha``, as a float.

    Raises:
        ValueError: ``pairs`` is empty (there is nothing to average), or the maps do not
            match the pairs.
    """
    alpha = _checks.positive(alpha, "alpha")
    f1, f2 = _check_map(f1, "f1").detach(), _check_map(f2, "f2").detach()
    if pairs.is_empty:
        raise ValueError("dense_alignment: no positive location pairs (e.g. crops that do "
                         "not overlap); there is no alignment to measure")
    a, b = pairs.gather(f1, f2)
    a, b = a.double(), b.double()
    if normalize:
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    w = pairs.weight.to(a.device).double()
    return float((w * (a - b).norm(dim=1).pow(alpha)).sum() / w.sum())


# ---------------------------------------------------------------------------- losses


def _empty(f1: torch.Tensor, f2: torch.Tensor, on_empty: str, what: str) -> torch.Tensor:
    if on_empty == "raise":
        raise ValueError(f"{what}: no positive location pairs in this batch")
    # exactly 0, still connected to the graph so backward() and optimisers work
    return (f1.sum() + f2.sum()) * 0.0


def _check_on_empty(on_empty: str) -> None:
    if on_empty not in ("zero", "raise"):
        raise ValueError(f"on_empty must be 'zero' or 'raise', got {on_empty!r}")


def dense_align_loss(
    f1: torch.Tensor, f2: torch.Tensor, pairs: LocationPairs, alpha: float = 2.0,
    *, on_empty: str = "zero",
) -> torch.Tensor:
    """Dense alignment loss: weighted mean of ``||f1_i - f2_j||^alpha`` over pairs.

    Maps are used as given (a dense head L2-normalises them). With no pair, the loss is
    exactly 0 and connected to the graph (``on_empty="zero"``) or an error (``"raise"``).
    """
    alpha = _checks.positive(alpha, "alpha")
    _check_on_empty(on_empty)
    f1, f2 = _check_map(f1, "f1"), _check_map(f2, "f2")
    pairs.check_maps(f1, f2)
    if pairs.is_empty:
        return _empty(f1, f2, on_empty, "dense_align_loss")
    a, b = pairs.gather(f1, f2)
    w = pairs.weight.to(a)
    d = (a - b).pow(2).sum(1) if alpha == 2.0 else (a - b).norm(dim=1).pow(alpha)
    return (w * d).sum() / w.sum()


def dense_uniform_loss(
    f: torch.Tensor,
    t: float = 2.0,
    *,
    exclude_same_image: bool = False,
    n_locations: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Dense uniformity loss over the locations of ``f`` (as given), through the core kernel.

    ``exclude_same_image=True`` averages over pairs from different images only: the
    all-pair sum of the kernel minus the same-image sums (float64). Its relative rounding
    error is about ``eps(f.dtype) * total / cross``, harmless unless same-image pairs
    dominate the sum by orders of magnitude.

    Args:
        f: ``(B, C, H, W)`` features.
        t: kernel scale, > 0.
        exclude_same_image: see above.
        n_locations: a random subset of this many locations (drawn with ``generator``, or
            the global RNG); default all.
    """
    t = _checks.positive(t, "t")
    f = _check_map(f, "f")
    if n_locations is not None and generator is None:
        seed = int(torch.randint(0, 2**62, (1,)))
        generator = torch.Generator().manual_seed(seed)
    x, image = flatten_locations(f, n_locations, generator=generator)
    if x.shape[0] < 2:
        raise ValueError(f"dense_uniform_loss needs at least 2 locations, got {x.shape[0]}")
    log_mean = uniform_loss(x, t)
    if not exclude_same_image:
        return log_mean
    within, n_within = _within_image_sum(x, image, t)
    if n_within == _n_pairs(x.shape[0]):
        raise ValueError("exclude_same_image=True needs locations from at least 2 images")
    return _cross_from_total(log_mean, within, x.shape[0], n_within).to(x.dtype)


def dense_queue_uniform_loss(
    f: torch.Tensor, queue: torch.Tensor, t: float = 2.0, *, intra_batch: bool = True
) -> torch.Tensor:
    """Dense uniformity against a queue: :func:`alignuniform.queue_uniform_loss` with the
    ``B H W`` locations of ``f`` (as given) as the queries and ``queue`` (e.g. DenseCL's
    dense keys, detached) as the bank; ``intra_batch`` also counts the location-location
    pairs.

    Args:
        f: ``(B, C, H, W)`` query maps.
        queue: ``(K, C)`` keys.
        t: kernel scale, > 0.
        intra_batch: include the pairs of locations of ``f`` (of any images).
    """
    x, _ = flatten_locations(_check_map(f, "f"))
    return queue_uniform_loss(x, queue, t, intra_batch=intra_batch)


def dense_contrastive_loss(
    q: torch.Tensor,
    k: torch.Tensor,
    pairs: LocationPairs,
    tau: float = 0.2,
    negatives: torch.Tensor | None = None,
    *,
    on_empty: str = "zero",
) -> torch.Tensor:
    """DenseCL's dense InfoNCE: ``-log e^{q_i.k_j/tau} / (e^{q_i.k_j/tau} + sum_n e^{q_i.n/tau})``.

    Averaged over pairs (weighted). One direction (view 1 anchors); call it again with the
    views swapped to symmetrise.

    Args:
        q: ``(B, C, H1, W1)`` view-1 maps (anchors), as given (L2-normalised by a dense head).
        k: ``(B, C, H2, W2)`` view-2 maps (positives; DenseCL: a momentum encoder's, detached).
        pairs: positive pairs (any scheme).
        tau: temperature (DenseCL: 0.2).
        negatives: optional ``(M, C)`` queue shared by all anchors. Without it, the
            negatives of an anchor of image ``b`` are all view-2 locations of the other
            images of the batch (memory ``O(P * B H2 W2)``; needs ``B >= 2``).
        on_empty: ``"zero"`` (a graph-connected 0 when there is no pair) or ``"raise"``.
    """
    tau = _checks.positive(tau, "tau")
    _check_on_empty(on_empty)
    q, k = _check_map(q, "q"), _check_map(k, "k")
    pairs.check_maps(q, k)
    if negatives is None and q.shape[0] < 2:
        raise ValueError("in-batch dense_contrastive_loss needs >= 2 images (or a negatives "
                         "queue)")
    if pairs.is_empty:
        return _empty(q, k, on_empty, "dense_contrastive_loss")
    a, p = pairs.gather(q, k)
    pos = (a * p).sum(1, keepdim=True) / tau
    if negatives is not None:
        negatives = _checks.embeddings(negatives, "negatives").to(a)
        if negatives.shape[1] != a.shape[1]:
            raise ValueError(f"negatives must have C={a.shape[1]} columns, got "
                             f"{tuple(negatives.shape)}")
        neg = a @ negatives.T / tau
    else:
        bsz, c, h2, w2 = k.shape
        keys = k.permute(0, 2, 3, 1).reshape(-1, c)
        key_image = torch.arange(bsz, device=k.device).repeat_interleave(h2 * w2)
        neg = (a @ keys.T / tau).masked_fill(
            key_image[None, :] == pairs.batch.to(k.device)[:, None], float("-inf"))
    logits = torch.cat([pos, neg], 1)
    nll = torch.logsumexp(logits, 1) - logits[:, 0]
    w = pairs.weight.to(nll)
    return (w * nll).sum() / w.sum()


class DenseLossCombination(nn.Module):
    """Weighted dense terms, optionally mixed with a global ``LossCombination``.

    ``dense = w_align L_dense_align(alpha) + w_uniform L_dense_uniform(t) +
    w_contrastive L_dense_contrastive(tau)`` (uniformity averaged over the two views'
    maps). With a queue of dense keys (``negatives`` in ``forward``, DenseCL's), ``f2``
    holds the key maps: the contrastive term takes the queue as its negatives and
    uniformity is ``dense_queue_uniform_loss(f1, queue)`` (``intra_batch``: with the pairs
    of query locations), the queries only, as MoCo's ``queue_uniform_loss``. With
    ``global_loss`` the total is ``(1 - lam) * global + lam * dense`` (DenseCL's lam = 0.5),
    else ``dense``. ``forward`` returns ``{"loss", "dense_<term>"...,
    "global_<term>"...}`` with every term detached except ``"loss"``, and ``"dense_pairs"``
    (the number of positive pairs).
    """

    def __init__(
        self,
        w_align: float = 0.0,
        alpha: float = 2.0,
        w_uniform: float = 0.0,
        t: float = 2.0,
        w_contrastive: float = 0.0,
        tau: float = 0.2,
        *,
        exclude_same_image: bool = False,
        global_loss: LossCombination | None = None,
        lam: float = 0.5,
        intra_batch: bool = True,
    ) -> None:
        super().__init__()
        weights = _checks.loss_weights(
            {"w_align": w_align, "w_uniform": w_uniform, "w_contrastive": w_contrastive},
            "dense weight")
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {lam!r}")
        self.w_align, self.w_uniform = weights["w_align"], weights["w_uniform"]
        self.w_contrastive = weights["w_contrastive"]
        self.alpha, self.t = _checks.positive(alpha, "alpha"), _checks.positive(t, "t")
        self.tau = _checks.positive(tau, "tau")
        self.exclude_same_image, self.lam = exclude_same_image, float(lam)
        self.global_loss, self.intra_batch = global_loss, intra_batch

    def forward(
        self,
        f1: torch.Tensor,
        f2: torch.Tensor,
        pairs: LocationPairs,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        negatives: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        terms = []
        if self.w_align:
            terms.append(("align", self.w_align, dense_align_loss(f1, f2, pairs, self.alpha)))
        if self.w_uniform:
            terms.append(("uniform", self.w_uniform, self._uniform(f1, f2, negatives)))
        if self.w_contrastive:
            c = dense_contrastive_loss(f1, f2, pairs, self.tau, negatives)
            terms.append(("contrastive", self.w_contrastive, c))
        dense = sum(w * v for _, w, v in terms)
        out = {f"dense_{name}": v.detach() for name, _, v in terms}
        out["dense_pairs"] = torch.tensor(len(pairs))
        if self.global_loss is None:
            out["loss"] = dense  # type: ignore[assignment]
            return out
        if x is None or y is None:
            raise ValueError("this DenseLossCombination has a global_loss: pass x and y")
        glob = self.global_loss(x, y)
        out.update({f"global_{k}": v for k, v in glob.items() if k != "loss"})
        out["loss"] = (1.0 - self.lam) * glob["loss"] + self.lam * dense
        return out

    def _uniform(self, f1: torch.Tensor, f2: torch.Tensor,
                 queue: torch.Tensor | None) -> torch.Tensor:
        """In-batch: the mean of both views' dense uniformity; with a queue: the query
        maps' against it (the key maps ``f2`` carry no gradient)."""
        if queue is None:
            return (dense_uniform_loss(f1, self.t, exclude_same_image=self.exclude_same_image)
                    + dense_uniform_loss(f2, self.t,
                                         exclude_same_image=self.exclude_same_image)) / 2
        if self.exclude_same_image:
            raise ValueError("exclude_same_image does not apply with a queue (its keys are "
                             "past batches'); intra_batch=False keeps the query-queue pairs "
                             "only")
        return dense_queue_uniform_loss(f1, queue, self.t, intra_batch=self.intra_batch)


# ---------------------------------------------------------------------------- the scalar


@dataclass(frozen=True)
class AUCorrelation:
    """The AU-correlation of a set of encoders (see the module docstring).

    Attributes:
        value: correlation between leave-one-out predictions and performance.
        low, high: 95% percentile bootstrap interval of ``value``.
        q2: cross-validated ``1 - PRESS / TSS``.
        r_in_sample: multiple correlation of the fit on all encoders.
        coef: ``(b0, b_align, b_uniform)`` of the fit on all encoders.
        n_encoders: how many encoders.
        n_boot: bootstrap resamples that gave a value (degenerate ones are skipped).
        method: "pearson" or "spearman".
    """

    value: float
    low: float
    high: float
    q2: float
    r_in_sample: float
    coef: tuple[float, float, float]
    n_encoders: int
    n_boot: int
    method: str

    def __float__(self) -> float:
        return self.value

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _as_vector(v: object, name: str) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one number per encoder, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def _corr(x: np.ndarray, y: np.ndarray, method: str) -> float | None:
    if method == "spearman":
        from scipy.stats import rankdata

        x, y = rankdata(x), rankdata(y)
    sx, sy = x.std(), y.std()
    if sx < 1e-12 * max(1.0, abs(x).max()) or sy < 1e-12 * max(1.0, abs(y).max()):
        return None
    return float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy))


def _loo_predictions(design: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray | None:
    pred = np.empty_like(y)
    for g in np.unique(groups):
        out = groups == g
        train = ~out
        if len(np.unique(groups[train])) < design.shape[1] + 1:
            return None
        coef, *_ = np.linalg.lstsq(design[train], y[train], rcond=None)
        pred[out] = design[out] @ coef
    return pred


def au_correlation(
    align: Sequence[float] | np.ndarray | torch.Tensor,
    uniform: Sequence[float] | np.ndarray | torch.Tensor,
    performance: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    method: str = "pearson",
    n_boot: int = 1000,
    seed: int = 0,
) -> AUCorrelation:
    """How well (alignment, uniformity) predict performance across encoders: the
    leave-one-out correlation of a linear model, with a bootstrap interval.

    Args:
        align, uniform, performance: one number per encoder (at least 5 encoders).
        method: correlation of predictions with performance, "pearson" or "spearman".
        n_boot: bootstrap resamples (0 for none: the interval is then ``(nan, nan)``).
        seed: seed of the resampling.

    Raises:
        ValueError: fewer than 5 encoders, lengths that differ, constant performance or
            constant leave-one-out predictions (no correlation is defined).
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    a, u = _as_vector(align, "align"), _as_vector(uniform, "uniform")
    p = _as_vector(performance, "performance")
    if not len(a) == len(u) == len(p):
        raise ValueError(f"align, uniform, performance have {len(a)}, {len(u)}, {len(p)} values")
    n = len(p)
    if n < 5:
        raise ValueError(f"au_correlation needs at least 5 encoders (3 coefficients), got {n}")
    design = np.stack([np.ones(n), a, u], 1)

    def stat(idx: np.ndarray) -> tuple[float | None, np.ndarray | None]:
        pred = _loo_predictions(design[idx], p[idx], idx)
        return (None, None) if pred is None else (_corr(pred, p[idx], method), pred)

    value, pred = stat(np.arange(n))
    if value is None:
        raise ValueError("performance (or its leave-one-out prediction) is constant across "
                         "encoders: no correlation is defined")
    press = float(((pred - p) ** 2).sum())
    q2 = 1.0 - press / float(((p - p.mean()) ** 2).sum())
    coef, *_ = np.linalg.lstsq(design, p, rcond=None)
    r_in = _corr(design @ coef, p, "pearson")
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(int(n_boot)):
        v, _ = stat(np.sort(rng.integers(0, n, n)))
        if v is not None:
            boots.append(v)
    low, high = (np.percentile(boots, [2.5, 97.5]) if boots else (math.nan, math.nan))
    return AUCorrelation(value, float(low), float(high), q2,
                         math.nan if r_in is None else r_in,
                         tuple(float(c) for c in coef), n, len(boots), method)  # type: ignore[arg-type]


def dense_au_correlation(
    results: Sequence[Mapping[str, float]],
    performance: str = "miou",
    align: str = "dense_alignment",
    uniform: str = "dense_uniformity",
    **kwargs,
) -> AUCorrelation:
    """:func:`au_correlation` over a list of encoder results (one mapping per encoder).

    Examples:
        >>> dense_au_correlation([{"dense_alignment": 0.4, "dense_uniformity": -3.1,
        ...                        "miou": 0.31}, ...], performance="miou")  # doctest: +SKIP
    """
    for k, r in enumerate(results):
        missing = [key for key in (performance, align, uniform) if key not in r]
        if missing:
            raise KeyError(f"result {k} has no {missing}; it has {sorted(r)}")
    return au_correlation([r[align] for r in results], [r[uniform] for r in results],
                          [r[performance] for r in results], **kwargs)
