"""The dense training steps: views with geometry, location pairs, dense losses.

Two ``train.steps.TrainStep`` kinds, chosen by the engine when a config's ``dense``
section has a weight (``DenseConfig.active``). Each item of the data is a
``DenseTwoViews`` dict (two per-sample views of the recipe, each with its crop box and
flip); one backbone pass of both views through ``DenseEncoder.forward_dense`` gives the
global embeddings, the backbone maps and the dense head's maps. Positive location pairs
come from ``dense.location_pairs(config.dense.scheme)``: from the crop geometry, or from
the backbone maps (DenseCL matches on the backbone, before the dense head; the maps are
detached, the argmax carries no gradient anyway). The loss is ``DenseLossCombination``:
``(1 - lam) * global + lam * dense`` with the global terms of the ``loss`` section on the
global embeddings. With ``dense.pair_quality_every``, every so many steps the loss dict
also holds how well each pair scheme finds the crops' correspondence on the batch
(:func:`pair_quality_terms`, from the backbone maps of the step: no extra forward pass).

Under DDP the global terms see the gathered batch (``global_batch``), the dense terms
each rank's own images: location pairs never cross images, and in-batch dense negatives are
the rank's other images.

With a MoCo queue (``queue.size > 0``) the step is DenseCL's (``DenseQueueStep``): view 1
through the model (queries), view 2 through the momentum key encoder (keys, backbone maps
for the pairs, dense key maps; no gradient); the global terms are ``QueueLoss``'s against the
global queue, the dense terms ``DenseLossCombination``'s with the dense queue as negatives
and uniformity bank; the global batch of keys and of dense keys
(``queue.dense_queue_keys``) is enqueued once the optimiser has stepped.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import Dataset

from alignuniform import dense
from alignuniform.data import build_recipe
from alignuniform.data.dense_views import DenseTwoViews
from alignuniform.distributed import all_gather
from alignuniform.models.dense_head import DenseEncoder
from alignuniform.train.config import DataConfig, TrainConfig
from alignuniform.train.queue import (
    MomentumQueue,
    QueueLoss,
    dense_queue_keys,
    gather_in_sample_order,
)
from alignuniform.train.steps import StepContext, TrainStep


def dense_views(images: Dataset, data: DataConfig) -> DenseTwoViews:
    """Two per-sample views of each image with their crop boxes and flips."""
    return DenseTwoViews(images, build_recipe(data.recipe, data.augment))


def batch_pairs(config: TrainConfig, batch: dict, out1: dict, out2: dict) -> dense.LocationPairs:
    """Positive location pairs of a batch under the config's scheme (on the maps' device)."""
    d = config.dense
    shape1, shape2 = tuple(out1["dense"].shape[-2:]), tuple(out2["dense"].shape[-2:])
    pairs = dense.location_pairs(
        d.scheme, boxes1=batch["box1"], boxes2=batch["box2"], flips1=batch["flip1"],
        flips2=batch["flip2"], shape1=shape1, shape2=shape2, image_size=batch["size"],
        g1=out1["backbone"].detach().float(), g2=out2["backbone"].detach().float(),
        threshold=d.threshold,
    )
    return pairs.to(out1["dense"].device)


def pair_quality_terms(config: TrainConfig, batch: dict, out1: dict, out2: dict,
                       step: int) -> dict[str, torch.Tensor]:
    """On every ``dense.pair_quality_every``-th step (``step`` counts the steps done
    before this one), ``pairs_<scheme>_precision`` and ``pairs_<scheme>_recall`` of each
    scheme of ``dense.pair_quality`` on the batch's backbone maps; else nothing. The
    config's threshold applies to the scheme it trains with, the defaults to the others."""
    d = config.dense
    if not d.pair_quality_every or (step + 1) % d.pair_quality_every:
        return {}
    with torch.no_grad():
        quality = dense.pair_quality(
            out1["backbone"].detach().float(), out2["backbone"].detach().float(),
            boxes1=batch["box1"], boxes2=batch["box2"], flips1=batch["flip1"],
            flips2=batch["flip2"], image_size=batch["size"],
            thresholds=None if d.threshold is None else {d.scheme: d.threshold})
    return {f"pairs_{scheme}_{number}": torch.tensor(quality[scheme][number],
                                                     dtype=torch.float64)
            for scheme in dense.QUALITY_SCHEMES for number in ("precision", "recall")}


class DenseStep(TrainStep):
    """A dense step without a queue: ``DenseLossCombination`` (global and dense terms).

    Args:
        context: The network, device and precision of the run.
        config: The run's config (its ``dense`` section active).
    """

    def __init__(self, context: StepContext, config: TrainConfig) -> None:
        self.context, self.config = context, config
        self.criterion = config.dense_criterion()

    def loss(self, batch: Any, step: int) -> dict[str, torch.Tensor]:
        """``DenseLossCombination``'s dict for a collated ``DenseTwoViews`` batch."""
        c = self.context
        if not hasattr(c.model, "forward_dense"):
            raise TypeError(f"dense loss terms need a DenseEncoder, got {type(c.model).__name__}")
        views = torch.cat([batch["view1"], batch["view2"]]).to(c.device, non_blocking=True)
        with c.autocast():
            # both views in one pass (shared BN statistics), through the DDP wrapper when
            # there is one so its gradient hooks fire
            out = _forward_dense(c.net, c.model, views)
        halves = {k: v.float().chunk(2) for k, v in out.items()}  # the losses run in float32
        out1 = {k: h[0] for k, h in halves.items()}
        out2 = {k: h[1] for k, h in halves.items()}
        x, y = out1["global"], out2["global"]
        if c.global_batch:
            x, y = all_gather(x), all_gather(y)
        pairs = batch_pairs(self.config, batch, out1, out2)
        out = self.criterion(out1["dense"], out2["dense"], pairs, x, y)
        out.update(pair_quality_terms(self.config, batch, out1, out2, step))
        return out


class DenseQueueStep(TrainStep):
    """DenseCL's step: queries, momentum keys, and the global and dense queues; both
    batches of keys are enqueued once the optimiser has stepped.

    Args:
        context: The network, device and precision of the run.
        config: The run's config (dense section active, ``queue.size > 0``).
        mq: The key encoder and both queues (``MomentumQueue`` with ``dense_dim``).
        global_loss: The global terms against the global queue.
    """

    def __init__(self, context: StepContext, config: TrainConfig, mq: MomentumQueue,
                 global_loss: QueueLoss) -> None:
        self.context, self.config, self.mq, self.global_loss = context, config, mq, global_loss
        # the dense terms alone: they are mixed with QueueLoss's terms
        self.criterion = config.dense_criterion()
        self._keys: tuple[torch.Tensor, torch.Tensor] | None = None

    def loss(self, batch: Any, step: int) -> dict[str, torch.Tensor]:
        """The loss dict, as ``DenseStep``'s, with the global terms prefixed ``global_``."""
        c, mq = self.context, self.mq
        mq.update_key_encoder(c.model)
        mq.key_encoder.train(c.net.training)
        v1 = batch["view1"].to(c.device, non_blocking=True)
        v2 = batch["view2"].to(c.device, non_blocking=True)
        with c.autocast():
            out1 = _forward_dense(c.net, c.model, v1)
            out2 = mq.dense_keys(v2, shuffle_bn=self.config.queue.shuffle_bn,
                                 generator=c.shuffle_generator(step))
        out1 = {k: v.float() for k, v in out1.items()}  # the losses run in float32
        out2 = {k: v.float() for k, v in out2.items()}
        keys = gather_in_sample_order(out2["global"])
        q, k = out1["global"], out2["global"]
        if c.global_batch:
            q, k = gather_in_sample_order(q), keys
        glob = self.global_loss(q, k, mq.queue)
        pairs = batch_pairs(self.config, batch, out1, out2)
        out = self.criterion(out1["dense"], out2["dense"], pairs, negatives=mq.dense_queue)
        lam = self.config.dense.lam
        out.update({f"global_{name}": v for name, v in glob.items() if name != "loss"})
        out["loss"] = (1.0 - lam) * glob["loss"] + lam * out["loss"]
        out.update(pair_quality_terms(self.config, batch, out1, out2, step))
        self._keys = keys, gather_in_sample_order(dense_queue_keys(out2["dense"]))
        return out

    def after_step(self) -> None:
        assert self._keys is not None, "after_step before loss"
        self.mq.enqueue(*self._keys)
        self._keys = None


def _forward_dense(net: nn.Module, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``model.forward_dense(x)``, run through ``net`` when ``net`` wraps ``model`` (DDP
    registers its gradient hooks in its own ``forward``)."""
    dense_model = cast(DenseEncoder, model)
    if net is model:
        return dense_model.forward_dense(x)
    model.forward = dense_model.forward_dense  # DDP calls module.forward
    try:
        return net(x)
    finally:
        del model.forward
