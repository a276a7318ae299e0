"""Positive location pairs between two views, and the flat order of a map's locations.

A map ``(B, C, H, W)`` has its location ``(r, c)`` of image ``b`` at flat index
``r * W + c`` (:func:`flatten_locations` lists all ``B H W`` of them in this order). A
:class:`LocationPairs` joins view-1 locations with view-2 locations of the same image; one
function per scheme builds them (see :mod:`alignuniform.dense` for the rules):
:func:`geometric_pairs` (PixPro's threshold, or the nearest bin, from the crop boxes),
:func:`feature_argmax_pairs` (DenseCL), :func:`mutual_nn_pairs`, and
:func:`location_pairs` by scheme name. :func:`pair_precision_recall` scores one set of
pairs against another, :func:`pair_quality` each scheme against the crops' ground truth.

Examples:
    >>> import torch
    >>> from alignuniform.dense import geometric_pairs
    >>> boxes1 = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    >>> boxes2 = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    >>> pairs = geometric_pairs(boxes1, boxes2, (2, 2), (2, 2), mode="nearest")
    >>> sorted(pairs.as_set())
    [(0, 0, 0), (0, 1, 1), (0, 2, 2), (0, 3, 3)]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from alignuniform import _checks
from alignuniform.dense import _validate

__all__ = [
    "PIXPRO_THRESHOLD",
    "LocationPairs",
    "bin_centres",
    "geometric_pairs",
    "feature_argmax_pairs",
    "mutual_nn_pairs",
    "PAIR_SCHEMES",
    "location_pairs",
    "pair_precision_recall",
    "QUALITY_SCHEMES",
    "pair_quality",
    "flatten_locations",
]

#: PixPro's positive-pair threshold on the normalised bin-centre distance.
PIXPRO_THRESHOLD = 0.7


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
    h, w = _validate.check_size(size, "size")
    boxes = _validate.check_boxes(boxes, "boxes", None)
    flips = _validate.check_flips(flips, boxes.shape[0], "flips").to(boxes.device)
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
    boxes1 = _validate.check_boxes(boxes1, "boxes1", image_size)
    boxes2 = _validate.check_boxes(boxes2, "boxes2", image_size)
    if boxes1.shape[0] != boxes2.shape[0]:
        raise ValueError(f"boxes1 and boxes2 hold {boxes1.shape[0]} and {boxes2.shape[0]} views")
    if mode not in ("threshold", "nearest"):
        raise ValueError(f"mode must be 'threshold' or 'nearest', got {mode!r}")
    threshold = _checks.positive(threshold, "threshold")
    shape1, shape2 = _validate.check_size(shape1, "shape1"), _validate.check_size(shape2, "shape2")
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
    g1, g2 = _validate.check_map(g1, "g1"), _validate.check_map(g2, "g2")
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


#: Scheme names accepted by :func:`location_pairs` and by a training config's
#: ``dense.scheme``.
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


#: The schemes :func:`pair_quality` scores (the ground truth, "geometric_nearest", is not).
QUALITY_SCHEMES = ("geometric", "feature_argmax", "mutual_nn")


def pair_quality(
    g1: torch.Tensor,
    g2: torch.Tensor,
    *,
    boxes1: torch.Tensor,
    boxes2: torch.Tensor,
    flips1: torch.Tensor | None = None,
    flips2: torch.Tensor | None = None,
    image_size: tuple[int, int] | torch.Tensor | None = None,
    thresholds: dict[str, float] | None = None,
    schemes: tuple[str, ...] = QUALITY_SCHEMES,
) -> dict[str, dict[str, float]]:
    """How well each pair scheme finds the crops' correspondence: its precision and recall
    against ``geometric_pairs(mode="nearest")`` on the grid of the matching maps.

    Args:
        g1, g2: The matching maps ``(B, C, H, W)`` of the two views (the backbone's, as
            DenseCL matches); the geometric schemes use only their shapes.
        boxes1, boxes2, flips1, flips2, image_size: The views' crop geometry.
        thresholds: A threshold per scheme name (a scheme not given: its default, PixPro's
            0.7 for "geometric", 0.5 for "mutual_nn").
        schemes: The schemes scored (``PAIR_SCHEMES`` names).

    Returns:
        ``{scheme: {"precision", "recall", "pairs"}}`` and ``"truth_pairs": {"pairs"}``.

    Examples:
        Features equal to each location's position find every true partner of two
        identical crops:

        >>> import torch
        >>> g = torch.eye(4).reshape(1, 4, 2, 2)
        >>> box = torch.tensor([[0.0, 0.0, 8.0, 8.0]])
        >>> q = pair_quality(g, g, boxes1=box, boxes2=box, image_size=(8, 8))
        >>> q["feature_argmax"]
        {'precision': 1.0, 'recall': 1.0, 'pairs': 4}
    """
    geometry = {"boxes1": boxes1, "boxes2": boxes2, "flips1": flips1, "flips2": flips2,
                "shape1": tuple(g1.shape[-2:]), "shape2": tuple(g2.shape[-2:]),
                "image_size": image_size}
    truth = location_pairs("geometric_nearest", **geometry)  # type: ignore[arg-type]
    out: dict[str, dict[str, float]] = {}
    for scheme in schemes:
        pred = location_pairs(scheme, **geometry, g1=g1, g2=g2,  # type: ignore[arg-type]
                              threshold=(thresholds or {}).get(scheme))
        precision, recall = pair_precision_recall(pred, truth)
        out[scheme] = {"precision": precision, "recall": recall, "pairs": len(pred)}
    out["truth_pairs"] = {"pairs": len(truth)}
    return out



def flatten_locations(
    f: torch.Tensor, n_locations: int | None = None, seed: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, C)`` location vectors and their ``(N,)`` image index: all ``B H W`` of them, or
    ``n_locations`` drawn without replacement (seeded by ``seed``, or ``generator``)."""
    f = _validate.check_map(f, "f")
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

