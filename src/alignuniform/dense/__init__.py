"""Dense (per-location) alignment and uniformity: positive location pairs, metrics, losses.

Tensors only, like ``losses`` and ``metrics``. The package:

- :mod:`~alignuniform.dense.pairs`: :class:`LocationPairs`, the pair schemes, the flat
  order of a map's locations (:func:`flatten_locations`);
- :mod:`~alignuniform.dense.metrics`: :func:`dense_alignment`, :func:`dense_uniformity`
  (measurements, Python numbers);
- :mod:`~alignuniform.dense.losses`: the dense losses and :class:`DenseLossCombination`;
- ``_validate`` (input checks) and ``_cross_image`` (the same-image potential sums that
  the cross-image uniformity subtracts), private.

Every public name is importable from here (``from alignuniform.dense import X``). Whether
dense alignment and uniformity predict performance across encoders (the AU-correlation) is
:func:`alignuniform.predictivity.au_correlation`.

The definitions below are ours (the paper this line of work follows, Moon, Kim & Choi,
BMVC 2022, has no public body or code); each one names the public work it follows.

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

from alignuniform.dense.losses import (
    DenseLossCombination,
    dense_align_loss,
    dense_contrastive_loss,
    dense_queue_uniform_loss,
    dense_uniform_loss,
)
from alignuniform.dense.metrics import DenseUniformity, dense_alignment, dense_uniformity
from alignuniform.dense.pairs import (
    PAIR_SCHEMES,
    PIXPRO_THRESHOLD,
    QUALITY_SCHEMES,
    LocationPairs,
    bin_centres,
    feature_argmax_pairs,
    flatten_locations,
    geometric_pairs,
    location_pairs,
    mutual_nn_pairs,
    pair_precision_recall,
    pair_quality,
)

__all__ = [
    "LocationPairs",
    "bin_centres",
    "geometric_pairs",
    "feature_argmax_pairs",
    "mutual_nn_pairs",
    "pair_precision_recall",
    "pair_quality",
    "QUALITY_SCHEMES",
    "PAIR_SCHEMES",
    "location_pairs",
    "flatten_locations",
    "dense_alignment",
    "dense_uniformity",
    "DenseUniformity",
    "dense_align_loss",
    "dense_uniform_loss",
    "dense_queue_uniform_loss",
    "dense_contrastive_loss",
    "DenseLossCombination",
    "PIXPRO_THRESHOLD",
]
