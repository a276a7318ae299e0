"""Dense losses: differentiable tensors on maps as given (a dense head L2-normalises them).

:func:`dense_align_loss` and :func:`dense_uniform_loss` (the metrics' definitions),
:func:`dense_queue_uniform_loss` (query locations against a queue of keys),
:func:`dense_contrastive_loss` (DenseCL's dense InfoNCE) and :class:`DenseLossCombination`,
which weights them and optionally mixes in a global ``LossCombination``. A batch with no
positive pair gives exactly 0, still connected to the graph (``on_empty="zero"``), or an
error (``on_empty="raise"``): never NaN.

Examples:
    >>> import torch
    >>> from alignuniform.dense import DenseLossCombination, feature_argmax_pairs
    >>> f1 = torch.nn.functional.normalize(torch.randn(2, 8, 3, 3), dim=1)
    >>> f2 = torch.nn.functional.normalize(torch.randn(2, 8, 3, 3), dim=1)
    >>> out = DenseLossCombination(w_align=1.0, w_uniform=1.0)(f1, f2, feature_argmax_pairs(f1, f2))
    >>> sorted(out)
    ['dense_align', 'dense_pairs', 'dense_uniform', 'loss']
"""

from __future__ import annotations

import torch
from torch import nn

from alignuniform import _checks
from alignuniform.dense import _cross_image, _validate
from alignuniform.dense.pairs import LocationPairs, flatten_locations
from alignuniform.losses import LossCombination, queue_uniform_loss, uniform_loss

__all__ = [
    "dense_align_loss",
    "dense_uniform_loss",
    "dense_queue_uniform_loss",
    "dense_contrastive_loss",
    "DenseLossCombination",
]

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
    f1, f2 = _validate.check_map(f1, "f1"), _validate.check_map(f2, "f2")
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
    f = _validate.check_map(f, "f")
    if n_locations is not None and generator is None:
        seed = int(torch.randint(0, 2**62, (1,)))
        generator = torch.Generator().manual_seed(seed)
    x, image = flatten_locations(f, n_locations, generator=generator)
    if x.shape[0] < 2:
        raise ValueError(f"dense_uniform_loss needs at least 2 locations, got {x.shape[0]}")
    log_mean = uniform_loss(x, t)
    if not exclude_same_image:
        return log_mean
    within, n_within = _cross_image.within_image_sum(x, image, t)
    if n_within == _cross_image.n_pairs(x.shape[0]):
        raise ValueError("exclude_same_image=True needs locations from at least 2 images")
    return _cross_image.cross_from_total(log_mean, within, x.shape[0], n_within).to(x.dtype)


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
    x, _ = flatten_locations(_validate.check_map(f, "f"))
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
    q, k = _validate.check_map(q, "q"), _validate.check_map(k, "k")
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

