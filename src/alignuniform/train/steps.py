"""Training steps as strategies: what one optimiser step computes, chosen once per run.

The engine (``train.engine``) owns the optimiser, the backward pass and the logs; a
:class:`TrainStep` owns the rest of a step: :meth:`TrainStep.loss` runs the forward passes
and returns the loss dict (``"loss"`` with its graph, one detached entry per logged term),
and :meth:`TrainStep.after_step` runs once the optimiser has stepped. Four kinds:

- :class:`PlainStep`: both views in one pass, ``LossCombination`` on the embeddings;
- :class:`QueueStep`: MoCo's step (key encoder, ``QueueLoss`` against the queue, the keys
  enqueued after the optimiser step, since the backward pass reads the old queue);
- ``train.dense_step.DenseStep`` and ``DenseQueueStep``: the same with dense terms.

:class:`StepContext` holds what every kind shares: the network, the device, mixed precision
and whether the global terms see the gathered (global) batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from alignuniform.distributed import all_gather
from alignuniform.losses import LossCombination
from alignuniform.train.queue import MomentumQueue, QueueLoss, gather_in_sample_order
from alignuniform.train.rng import epoch_seed

#: a recipe that augments a whole batch of images on the device (``data.batched_augment``)
BatchAugment = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class StepContext:
    """What every kind of step shares.

    Attributes:
        net: What runs the forward pass (the model, or its DDP wrapper).
        model: The bare model (its parameters; ``forward_dense`` for dense steps).
        device: Where the model runs.
        amp_dtype: Autocast dtype of the encoder's forward pass (``None``: float32).
        global_batch: The global terms see the batch gathered from all ranks.
        seed: The run's seed (MoCo's shuffling-BN permutations are drawn from it).
    """

    net: nn.Module
    model: nn.Module
    device: torch.device
    amp_dtype: torch.dtype | None
    global_batch: bool
    seed: int

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision of the forward pass (a no-op without ``amp_dtype``)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def shuffle_generator(self, step: int) -> torch.Generator:
        """MoCo's shuffling-BN permutation generator of step ``step`` (the steps done
        before it): the same on every rank, a function of (seed, step), so resume is exact."""
        return torch.Generator().manual_seed(epoch_seed(self.seed, step, 0))


class TrainStep:
    """One kind of training step; the engine calls :meth:`loss`, steps, then
    :meth:`after_step`."""

    def loss(self, batch: Any, step: int) -> dict[str, torch.Tensor]:
        """The loss dict of a loader batch (``step``: the steps done before this one)."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called once the optimiser has stepped on :meth:`loss`'s result."""


def two_views(batch: list, device: torch.device,
              batch_aug: BatchAugment | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader batch's two views on ``device``: the loader's, or with ``batch_aug`` two
    augmentations of its images made on the device."""
    if batch_aug is not None:
        images = batch[0].to(device, non_blocking=True)
        return batch_aug(images), batch_aug(images)
    return batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)


class PlainStep(TrainStep):
    """Both views in one pass (shared BatchNorm statistics), ``LossCombination`` on the
    embeddings (gathered from all ranks with ``global_batch``)."""

    def __init__(self, context: StepContext, criterion: LossCombination,
                 batch_aug: BatchAugment | None = None) -> None:
        self.context, self.criterion, self.batch_aug = context, criterion, batch_aug

    def loss(self, batch: Any, step: int) -> dict[str, torch.Tensor]:
        c = self.context
        v1, v2 = two_views(batch, c.device, self.batch_aug)
        with c.autocast():
            z = c.net(torch.cat([v1, v2]))
        x, y = z.float().chunk(2)
        if c.global_batch:
            x, y = all_gather(x), all_gather(y)
        return self.criterion(x, y)


class QueueStep(TrainStep):
    """MoCo's step: an EMA step of the key encoder, queries ``q = net(view1)`` and keys
    ``k = key_encoder(view2)`` (no gradient), ``QueueLoss`` against the queue as it was
    before the step, and once the optimiser has stepped the global batch of keys enqueued."""

    def __init__(self, context: StepContext, criterion: QueueLoss, mq: MomentumQueue,
                 shuffle_bn: bool,
                 batch_aug: BatchAugment | None = None) -> None:
        self.context, self.criterion, self.mq = context, criterion, mq
        self.shuffle_bn, self.batch_aug = shuffle_bn, batch_aug
        self._keys: torch.Tensor | None = None

    def loss(self, batch: Any, step: int) -> dict[str, torch.Tensor]:
        c, mq = self.context, self.mq
        v1, v2 = two_views(batch, c.device, self.batch_aug)
        mq.update_key_encoder(c.model)
        mq.key_encoder.train(c.net.training)
        with c.autocast():
            q = c.net(v1)
            k = mq.keys(v2, shuffle_bn=self.shuffle_bn, generator=c.shuffle_generator(step))
        q, k = q.float(), k.float()
        self._keys = keys = gather_in_sample_order(k)
        if c.global_batch:
            q, k = gather_in_sample_order(q), keys
        return self.criterion(q, k, mq.queue)

    def after_step(self) -> None:
        assert self._keys is not None, "after_step before loss"
        self.mq.enqueue(self._keys)
        self._keys = None
