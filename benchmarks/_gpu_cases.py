"""The numeric cases of ``benchmarks.gpu_check``: every public loss and metric, called on
fixed seeded inputs, so that one call on the device can be compared with one on the CPU in
float64.

A case is a function ``fn(device, *inputs)`` of float64 CPU tensors made by ``inputs()``;
the check casts them to the dtype under test and moves them to the device. Its result is
turned into named numbers by :func:`numbers` (a tensor, a float, a dict of them, a
``UniformityEstimate``, a ``DenseUniformity``, or a ``LocationPairs`` as a set of pairs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import alignuniform as au
from alignuniform import dense, metrics

B, D, K = 48, 16, 96  # rows, dimension, queue length
MAP = (4, 8, 4, 4)  # dense maps (B, C, H, W)

#: public names that are not a loss or metric of tensors on a device: result types,
#: constants, crop geometry on the host, and the numpy statistics of ``dense``
HOST_ONLY = frozenset({
    "UniformityEstimate", "uniformity_bound", "LocationPairs", "PAIR_SCHEMES",
    "PIXPRO_THRESHOLD", "bin_centres", "location_pairs", "pair_precision_recall",
    "flatten_locations", "DenseUniformity", "AUCorrelation", "au_correlation",
    "dense_au_correlation", "SpectralState", "LidarState", "QUALITY_SCHEMES", "pair_quality",
})


@dataclasses.dataclass(frozen=True)
class Case:
    """``fn(device, *inputs())`` for public name ``covers``; ``grad``: also compare the
    gradient of the first input."""

    name: str
    covers: str
    fn: Callable[..., Any]
    inputs: Callable[[], tuple[torch.Tensor, ...]]
    grad: bool = False


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _unit(*shape: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=_gen(seed), dtype=torch.float64), dim=1)


def _views() -> tuple[torch.Tensor, ...]:
    x = _unit(B, D, seed=0)
    y = F.normalize(x + 0.3 * torch.randn(B, D, generator=_gen(1), dtype=torch.float64), dim=1)
    return x, y


def _triplets() -> tuple[torch.Tensor, ...]:
    return (*_views(), _unit(B, D, seed=2))


def _queue() -> tuple[torch.Tensor, ...]:
    return (*_views(), _unit(K, D, seed=3))


def _raw() -> tuple[torch.Tensor, ...]:
    # not unit rows: the metrics' normalisation is part of what is compared
    return (3 * torch.randn(B, D, generator=_gen(4), dtype=torch.float64),)


def _lidar_views() -> tuple[torch.Tensor, ...]:
    # 12 samples x 4 views: each sample's views scattered around its own centre
    centres = torch.randn(12, 1, D, generator=_gen(8), dtype=torch.float64)
    return (centres + 0.3 * torch.randn(12, 4, D, generator=_gen(9), dtype=torch.float64),)


def _maps() -> tuple[torch.Tensor, ...]:
    f1 = F.normalize(torch.randn(*MAP, generator=_gen(5), dtype=torch.float64), dim=1)
    noise = 0.3 * torch.randn(*MAP, generator=_gen(6), dtype=torch.float64)
    return f1, F.normalize(f1 + noise, dim=1)


def _maps_queue() -> tuple[torch.Tensor, ...]:
    return (*_maps(), _unit(K, MAP[1], seed=7))


def _pairs(device: torch.device) -> dense.LocationPairs:
    boxes1 = torch.tensor([[0.0, 0.0, 24.0, 24.0]] * MAP[0])
    boxes2 = torch.tensor([[8.0, 4.0, 32.0, 28.0]] * MAP[0])
    flips = torch.tensor([False, True, False, True])
    boxes1, boxes2, flips = (t.to(device) for t in (boxes1, boxes2, flips))
    return dense.geometric_pairs(boxes1, boxes2, MAP[2:], MAP[2:], flips, flips,
                                 image_size=(32, 32)).to(device)


def _metric(metric: Any, *batches: tuple[torch.Tensor, ...]) -> torch.Tensor:
    for batch in batches:
        metric.update(*batch)
    return metric.compute()


def _split(x: torch.Tensor) -> list[tuple[torch.Tensor]]:
    return [(x[: B // 3],), (x[B // 3:],)]


def _dense_global(dev, f1, f2, x, y):
    crit = dense.DenseLossCombination(w_align=1.0, w_uniform=1.0, w_contrastive=0.5,
                                      global_loss=au.LossCombination(w_align=1, w_uniform=1))
    return crit(f1, f2, _pairs(dev), x, y)


CASES: list[Case] = [
    # losses
    Case("align_loss", "align_loss", lambda dev, x, y: au.align_loss(x, y), _views, True),
    Case("align_loss.alpha1", "align_loss", lambda dev, x, y: au.align_loss(x, y, 1.0),
         _views, True),
    Case("uniform_loss", "uniform_loss", lambda dev, x, y: au.uniform_loss(x), _views, True),
    Case("uniform_loss.blocks", "uniform_loss",
         lambda dev, x, y: au.uniform_loss(x, 3.0, block_size=7), _views, True),
    Case("queue_uniform_loss", "queue_uniform_loss",
         lambda dev, x, y, q: au.queue_uniform_loss(x, q, 3.0), _queue, True),
    Case("queue_contrastive_loss", "queue_contrastive_loss",
         lambda dev, x, y, q: au.queue_contrastive_loss(x, y, q, 0.2), _queue, True),
    Case("contrastive_loss", "contrastive_loss",
         lambda dev, x, y: au.contrastive_loss(x, y, 0.07), _views, True),
    Case("contrastive_loss.negatives", "contrastive_loss",
         lambda dev, x, y, q: au.contrastive_loss(x, y, 0.2, q), _queue, True),
    Case("nt_xent_loss", "nt_xent_loss", lambda dev, x, y: au.nt_xent_loss(x, y), _views, True),
    Case("triplet_loss", "triplet_loss",
         lambda dev, a, p, n: au.triplet_loss(a, p, n, 0.5), _triplets, True),
    Case("LossCombination", "LossCombination",
         lambda dev, x, y: au.LossCombination(1.0, 0.2, 1.0, 2.0, 1.0, 2.0, 0.5)(x, y),
         _views, True),
    Case("AlignUniformLoss", "AlignUniformLoss",
         lambda dev, x, y: au.AlignUniformLoss()(x, y), _views, True),
    # metrics
    Case("alignment", "alignment", lambda dev, x, y: metrics.alignment(x, y), _views),
    Case("uniformity", "uniformity", lambda dev, x: metrics.uniformity(x), _raw),
    Case("uniformity.sampled", "uniformity",
         lambda dev, x: metrics.uniformity(x, n_pairs=500, seed=3), _raw),
    Case("Alignment", "Alignment",
         lambda dev, x, y: _metric(metrics.Alignment(), (x[:20], y[:20]), (x[20:], y[20:])),
         _views),
    Case("Uniformity", "Uniformity",
         lambda dev, x: _metric(metrics.Uniformity(), *_split(x)), _raw),
    # max_rows above the row count: the sampled mode's state, exact (see check_subset for
    # the pruned subset, whose draw is the device generator's)
    Case("Uniformity.max_rows", "Uniformity",
         lambda dev, x: _metric(metrics.Uniformity(max_rows=2 * B), *_split(x)), _raw),
    # dense
    Case("geometric_pairs", "geometric_pairs", lambda dev, f1, f2: _pairs(dev), _maps),
    *(Case(name, name, (lambda f: lambda dev, x: f(x))(getattr(metrics, name)), _raw)
      for name in ("rankme", "effective_rank", "stable_rank", "alpha_req",
                   "gaussian_w2_uniformity")),
    Case("lidar", "lidar", lambda dev, v: metrics.lidar(v), _lidar_views),
    *(Case(name, name, (lambda cls: lambda dev, x: _metric(cls(D).to(dev), *_split(x)))(
        getattr(metrics, name)), _raw)
      for name in ("RankMe", "EffectiveRank", "StableRank", "AlphaReQ", "GaussianW2")),
    Case("LiDAR", "LiDAR", lambda dev, v: _metric(metrics.LiDAR(D).to(dev), (v[:5],), (v[5:],)),
         _lidar_views),
    Case("feature_argmax_pairs", "feature_argmax_pairs",
         lambda dev, f1, f2: dense.feature_argmax_pairs(f1, f2), _maps),
    Case("mutual_nn_pairs", "mutual_nn_pairs",
         lambda dev, f1, f2: dense.mutual_nn_pairs(f1, f2, 0.5), _maps),
    Case("dense_alignment", "dense_alignment",
         lambda dev, f1, f2: dense.dense_alignment(f1, f2, _pairs(dev)), _maps),
    Case("dense_uniformity", "dense_uniformity",
         lambda dev, f1, f2: dense.dense_uniformity(f1), _maps),
    Case("dense_align_loss", "dense_align_loss",
         lambda dev, f1, f2: dense.dense_align_loss(f1, f2, _pairs(dev)), _maps, True),
    Case("dense_uniform_loss", "dense_uniform_loss",
         lambda dev, f1, f2: dense.dense_uniform_loss(f1), _maps, True),
    Case("dense_uniform_loss.cross_image", "dense_uniform_loss",
         lambda dev, f1, f2: dense.dense_uniform_loss(f1, exclude_same_image=True), _maps, True),
    Case("dense_queue_uniform_loss", "dense_queue_uniform_loss",
         lambda dev, f1, f2, q: dense.dense_queue_uniform_loss(f1, q, 3.0), _maps_queue, True),
    Case("dense_contrastive_loss", "dense_contrastive_loss",
         lambda dev, f1, f2: dense.dense_contrastive_loss(f1, f2, _pairs(dev)), _maps, True),
    Case("dense_contrastive_loss.negatives", "dense_contrastive_loss",
         lambda dev, f1, f2, q: dense.dense_contrastive_loss(f1, f2, _pairs(dev), 0.2, q),
         _maps_queue, True),
    Case("DenseLossCombination", "DenseLossCombination",
         lambda dev, f1, f2, q: dense.DenseLossCombination(
             w_align=1.0, w_uniform=1.0, w_contrastive=1.0)(f1, f2, _pairs(dev), negatives=q),
         _maps_queue, True),
    Case("DenseLossCombination.global", "DenseLossCombination",
         lambda dev, f1, f2: _dense_global(dev, f1, f2, f1.mean((2, 3)), f2.mean((2, 3))),
         _maps, True),
]


def uncovered() -> list[str]:
    """Public names of ``losses``, ``metrics`` and ``dense`` that no case covers."""
    from alignuniform import losses

    names = {n for module in (losses, metrics, dense) for n in getattr(module, "__all__", [])}
    return sorted(names - HOST_ONLY - {case.covers for case in CASES})


def numbers(out: Any) -> dict[str, Any]:
    """Named floats of a case's result (a ``LocationPairs`` is kept as a set of pairs)."""
    if isinstance(out, dense.LocationPairs):
        return {"pairs": out.as_set()}
    if isinstance(out, metrics.UniformityEstimate):
        return {"value": float(out), "low": out.low, "high": out.high}
    if isinstance(out, dense.DenseUniformity):
        return {"all_pairs": out.all_pairs, "cross_image": out.cross_image}
    if isinstance(out, dict):
        return {k: _float(v) for k, v in out.items()}
    return {"value": _float(out)}


def _float(value: Any) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def loss_of(out: Any) -> torch.Tensor:
    """The differentiable scalar of a loss case's result."""
    return out["loss"] if isinstance(out, dict) else out
