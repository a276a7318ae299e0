"""The dense part of a training step: views with geometry, location pairs, dense losses.

Used by the engine when a config's ``dense`` section has a weight (``DenseConfig.active``).
Each item of the data is a ``DenseTwoViews`` dict (two per-sample views of the recipe, each
with its crop box and flip); one backbone pass of both views through
``DenseEncoder.forward_dense`` gives the global embeddings, the backbone maps and the dense
head's maps. Positive location pairs come from ``dense.location_pairs(config.dense.scheme)``:
from the crop geometry, or from the backbone maps (DenseCL matches on the backbone, before
the dense head; the maps are detached, the argmax carries no gradient anyway). The loss is
``DenseLossCombination``: ``(1 - lam) * global + lam * dense`` with the global terms of the
``loss`` section on the global embeddings.

Under DDP the global terms see the gathered batch (``loss.global_batch``), the dense terms
each rank's own images: location pairs never cross images, and in-batch dense negatives are
the rank's other images.

With a MoCo queue (``queue.size > 0``) the step is DenseCL's (``DenseQueueStep``): view 1
through the model (queries), view 2 through the momentum key encoder (keys, backbone maps
for the pairs, dense key maps; no gradient); the global terms are ``QueueLoss``'s against the
global queue, the dense terms ``DenseLossCombination``'s with the dense queue as negatives
and uniformity bank; the step returns the global batch of keys and of dense keys
(``queue.dense_queue_keys``) for the engine to enqueue after the optimiser step.
"""

from __future__ import annotations

import dataclasses
from typing import cast

import torch
from torch import nn
from torch.utils.data import Dataset

from alignuniform import dense
from alignuniform.data import build_recipe
from alignuniform.data.dense_views import DenseTwoViews
from alignuniform.distributed import all_gather
from alignuniform.losses import LossCombination
from alignuniform.models.dense_head import DenseEncoder
from alignuniform.train.config import DataConfig, TrainConfig
from alignuniform.train.queue import (
    MomentumQueue,
    QueueLoss,
    dense_queue_keys,
    gather_in_sample_order,
)


def dense_views(images: Dataset, data: DataConfig) -> DenseTwoViews:
    """Two per-sample views of each image with their crop boxes and flips."""
    return DenseTwoViews(images, build_recipe(data.recipe, data.augment))


def dense_criterion(config: TrainConfig, *,
                    with_global: bool = True) -> dense.DenseLossCombination:
    """The ``DenseLossCombination`` of a config: its dense terms and (``with_global``) its
    global loss."""
    d = config.dense
    glob = (LossCombination(**{k: v for k, v in dataclasses.asdict(config.loss).items()
                               if k != "global_batch"}) if with_global else None)
    return dense.DenseLossCombination(
        w_align=d.w_align, alpha=d.alpha, w_uniform=d.w_uniform, t=d.t,
        w_contrastive=d.w_contrastive, tau=d.tau, exclude_same_image=d.exclude_same_image,
        global_loss=glob, lam=d.lam, intra_batch=config.queue.intra_batch,
    )


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


class DenseStep:
    """Computes a dense training step's loss terms (the engine does the backward pass).

    Args:
        config: The run's config (its ``dense`` section active).
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.criterion = dense_criterion(config)

    def __call__(self, net: nn.Module, model: nn.Module, batch: dict, device: torch.device,
                 amp_dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
        """``DenseLossCombination``'s dict for ``batch`` (``"loss"`` with its graph).

        Args:
            net: What runs the forward pass (the model, or its DDP wrapper).
            model: The bare ``DenseEncoder`` (its ``forward_dense``).
            batch: A collated ``DenseTwoViews`` batch.
            device: Where the model runs.
            amp_dtype: Autocast dtype of the forward pass (``None``: float32).
        """
        if not hasattr(model, "forward_dense"):
            raise TypeError(f"dense loss terms need a DenseEncoder, got {type(model).__name__}")
        views = torch.cat([batch["view1"], batch["view2"]]).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            # both views in one pass (shared BN statistics), through the DDP wrapper when
            # there is one so its gradient hooks fire
            out = _forward_dense(net, model, views)
        halves = {k: v.float().chunk(2) for k, v in out.items()}  # the losses run in float32
        out1 = {k: h[0] for k, h in halves.items()}
        out2 = {k: h[1] for k, h in halves.items()}
        x, y = out1["global"], out2["global"]
        if self.config.loss.global_batch:
            x, y = all_gather(x), all_gather(y)
        pairs = batch_pairs(self.config, batch, out1, out2)
        return self.criterion(out1["dense"], out2["dense"], pairs, x, y)


class DenseQueueStep:
    """DenseCL's step: queries, momentum keys, and the global and dense queues.

    Args:
        config: The run's config (dense section active, ``queue.size > 0``).
        mq: The key encoder and both queues (``MomentumQueue`` with ``dense_dim``).
        global_loss: The global terms against the global queue.
    """

    def __init__(self, config: TrainConfig, mq: MomentumQueue, global_loss: QueueLoss) -> None:
        self.config, self.mq, self.global_loss = config, mq, global_loss
        # the dense terms alone: they are mixed with QueueLoss's terms, not a LossCombination
        self.criterion = dense_criterion(config, with_global=False)

    def __call__(self, net: nn.Module, model: nn.Module, batch: dict, device: torch.device,
                 amp_dtype: torch.dtype | None,
                 shuffle: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The loss dict, as ``DenseStep``'s, plus ``"keys"`` and ``"dense_keys"``: the
        global batch's keys to enqueue once the optimiser has stepped.

        Args:
            net, model, batch, device, amp_dtype: As for ``DenseStep``.
            shuffle: The permutation generator of MoCo's shuffling BN (same on all ranks).
        """
        mq = self.mq
        mq.update_key_encoder(model)
        mq.key_encoder.train(net.training)
        v1 = batch["view1"].to(device, non_blocking=True)
        v2 = batch["view2"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            out1 = _forward_dense(net, model, v1)
            out2 = mq.dense_keys(v2, shuffle_bn=self.config.queue.shuffle_bn,
                                 generator=shuffle)
        out1 = {k: v.float() for k, v in out1.items()}  # the losses run in float32
        out2 = {k: v.float() for k, v in out2.items()}
        keys = gather_in_sample_order(out2["global"])
        q, k = out1["global"], out2["global"]
        if self.config.loss.global_batch:
            q, k = gather_in_sample_order(q), keys
        glob = self.global_loss(q, k, mq.queue)
        pairs = batch_pairs(self.config, batch, out1, out2)
        out = self.criterion(out1["dense"], out2["dense"], pairs, negatives=mq.dense_queue)
        lam = self.config.dense.lam
        out.update({f"global_{name}": v for name, v in glob.items() if name != "loss"})
        out["loss"] = (1.0 - lam) * glob["loss"] + lam * out["loss"]
        out["keys"] = keys
        out["dense_keys"] = gather_in_sample_order(dense_queue_keys(out2["dense"]))
        return out


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
