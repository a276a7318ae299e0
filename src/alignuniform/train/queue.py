"""Negatives beyond the batch: MoCo's momentum key encoder and queue of keys.

``MomentumQueue`` holds the key encoder (an exponential moving average of the query
encoder's parameters, ``k <- m k + (1 - m) q``) and a FIFO queue of K past keys, enqueued and
dequeued exactly as MoCo does: a pointer advances by the global batch each step and the
oldest keys are overwritten, so K must be a multiple of the global batch. Under DDP the keys
of all ranks are gathered before they are enqueued, in the order of the samples in the
single-process batch, so a K-process run holds the same queue as one process.

``QueueLoss`` is the loss layer's view of the paper's MoCo variant (Wang & Isola's public
fork): ``w_c L_contrastive(q, k; queue) + w_a L_align(q, k) + w_u L_uniform(q; queue)``
with MoCo's InfoNCE (``alignuniform.queue_contrastive_loss``) and the fork's uniformity over
query-queue plus query-query pairs (``alignuniform.queue_uniform_loss``).

With dense loss terms (``train.dense_step.DenseQueueStep``) the queue also holds DenseCL's
dense keys: per image, the spatial mean of the key encoder's normalised dense map,
re-normalised (:func:`dense_queue_keys`), enqueued with the global keys at the same pointer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from alignuniform import _checks
from alignuniform.distributed import all_gather, get_rank, get_world_size
from alignuniform.losses import align_loss, queue_contrastive_loss, queue_uniform_loss
from alignuniform.models.dense_head import DenseEncoder

#: the loss terms that can use a queue of negatives, and what they do with it
QUEUE_TERMS = {
    "w_contrastive": "MoCo's InfoNCE, the queue as negatives",
    "w_uniform": "uniformity over query-queue (and query-query) pairs",
}


def nearest_queue_sizes(size: int, batch: int) -> tuple[int, int]:
    """The multiples of ``batch`` just below (at least ``batch``) and above ``size``."""
    below = max(size // batch, 1) * batch
    return below, (size // batch + 1) * batch


def gather_in_sample_order(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows (differentiably), ordered as the samples of the single-process batch.

    ``DistributedSampler`` deals the single-process permutation out round-robin: row j of
    rank r is sample ``j * world_size + r`` of the global batch. Not distributed: ``x``.
    """
    world = get_world_size()
    if world == 1:
        return x
    gathered = all_gather(x)
    return gathered.view(world, x.shape[0], *x.shape[1:]).transpose(0, 1).reshape(
        world * x.shape[0], *x.shape[1:])


def dense_queue_keys(maps: torch.Tensor) -> torch.Tensor:
    """DenseCL's dense key of each image: the (B, C) re-normalised spatial mean of the key
    encoder's normalised ``(B, C, H, W)`` dense maps (one queue entry per image)."""
    return F.normalize(maps.mean(dim=(2, 3)), dim=1)


def _unshuffle(x: torch.Tensor, perm: torch.Tensor, rank: int, n: int) -> torch.Tensor:
    """This rank's rows of the key encoder's outputs on the shuffled global batch, in the
    order of its own samples."""
    return all_gather(x)[torch.argsort(perm)][rank * n : (rank + 1) * n]


class MomentumQueue(nn.Module):
    """MoCo's key encoder and queue.

    Args:
        encoder: The query encoder; the key encoder starts as a copy of it.
        size: K, the number of keys held.
        dim: Embedding dimension.
        momentum: m in ``k <- m k + (1 - m) q``, in [0, 1) (0.999 in MoCo and the fork).
        seed: Seed of the initial queues (random unit vectors, as in MoCo and DenseCL).
        dense_dim: Channels of the dense maps: also hold a queue of K dense keys (DenseCL);
            ``None``: none.

    Attributes:
        key_encoder: Updated only by :meth:`update_key_encoder`, never by gradients.
        queue: (K, dim) keys; ``ptr`` is the row the next batch is written at.
        dense_queue: (K, dense_dim) dense keys (only with ``dense_dim``), written at the
            same rows as ``queue``.
    """

    def __init__(self, encoder: nn.Module, size: int, dim: int, momentum: float = 0.999,
                 seed: int = 0, dense_dim: int | None = None) -> None:
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if size < 1:
            raise ValueError(f"the queue size must be >= 1, got {size}")
        self.momentum, self.size = float(momentum), int(size)
        self.key_encoder = copy.deepcopy(encoder)
        for p in self.key_encoder.parameters():
            p.requires_grad_(False)
        device = next(encoder.parameters()).device
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("queue", F.normalize(torch.randn(size, dim, generator=g), dim=1)
                             .to(device))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long, device=device))
        self.dense = dense_dim is not None
        if dense_dim is not None:  # drawn after the global queue, so the global keys are
            # the same with or without it
            self.register_buffer("dense_queue", F.normalize(
                torch.randn(size, dense_dim, generator=g), dim=1).to(device))

    @torch.no_grad()
    def update_key_encoder(self, encoder: nn.Module) -> None:
        """One EMA step of the key encoder's parameters towards ``encoder``'s (MoCo updates
        before computing the keys of a step). Buffers (BatchNorm statistics) are the key
        encoder's own, from its forward passes, as in MoCo."""
        for pk, pq in zip(self.key_encoder.parameters(), encoder.parameters(), strict=True):
            pk.mul_(self.momentum).add_(pq.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def keys(self, images: torch.Tensor, shuffle_bn: bool = False,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """The key encoder's embeddings of this rank's ``images``.

        With ``shuffle_bn`` under DDP (MoCo's shuffling BN), the global batch is permuted
        (``generator``: the same permutation on every rank) and dealt out before the
        forward pass and the keys put back afterwards, so BatchNorm statistics on a rank
        mix samples whose queries lie on other ranks. One process: a no-op.
        """
        return self._shuffled(self.key_encoder, images, shuffle_bn, generator)

    @torch.no_grad()
    def dense_keys(self, images: torch.Tensor, shuffle_bn: bool = False,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The key encoder's ``forward_dense`` of this rank's ``images`` (global keys,
        backbone and dense maps), with MoCo's shuffling BN as in :meth:`keys`."""
        forward = cast(DenseEncoder, self.key_encoder).forward_dense
        return self._shuffled(forward, images, shuffle_bn, generator)

    def _shuffled(self, forward: Callable[[torch.Tensor], Any], images: torch.Tensor,
                  shuffle_bn: bool, generator: torch.Generator | None) -> Any:
        """``forward(images)`` (a tensor or a dict of tensors, one row per image), through
        MoCo's shuffled global batch when ``shuffle_bn`` and under DDP."""
        world = get_world_size()
        if not shuffle_bn or world == 1:
            return forward(images)
        n, rank = images.shape[0], get_rank()
        everything = all_gather(images)
        perm = torch.randperm(world * n, generator=generator).to(images.device)
        out = forward(everything[perm.view(world, n)[rank]])
        if isinstance(out, dict):
            return {k: _unshuffle(v, perm, rank, n) for k, v in out.items()}
        return _unshuffle(out, perm, rank, n)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, dense_keys: torch.Tensor | None = None) -> None:
        """Write the global batch of ``keys`` (and with a dense queue, of ``dense_keys``,
        one per image) at the pointer, overwriting the oldest, and advance it, as MoCo's
        ``_dequeue_and_enqueue`` (DenseCL's ``_dequeue_and_enqueue2`` for the dense keys)."""
        n = keys.shape[0]
        if self.size % n:
            raise ValueError(f"the queue size {self.size} is not a multiple of the global "
                             f"batch {n}")
        if (dense_keys is not None) != self.dense:
            raise ValueError("dense_keys must be given exactly when the queue holds dense "
                             f"keys (dense_dim given: {self.dense})")
        if dense_keys is not None and dense_keys.shape[0] != n:
            raise ValueError(f"{dense_keys.shape[0]} dense keys for a batch of {n} keys")
        queue, pointer = cast(torch.Tensor, self.queue), cast(torch.Tensor, self.ptr)
        ptr = int(pointer)
        queue[ptr : ptr + n] = keys.detach().to(queue.dtype)
        if dense_keys is not None:
            dense_queue = cast(torch.Tensor, self.dense_queue)
            dense_queue[ptr : ptr + n] = dense_keys.detach().to(dense_queue.dtype)
        pointer.fill_((ptr + n) % self.size)


class QueueLoss(nn.Module):
    """``w_c L_contrastive(q, k; queue) + w_a L_align(q, k) + w_u L_uniform(q; queue)``.

    ``forward(q, k, queue)`` returns a dict like ``LossCombination``'s: ``"loss"`` and one
    detached entry per active term (``"contrastive"``, ``"align"``, ``"uniform"``).
    """

    def __init__(self, w_contrastive: float = 0.0, tau: float = 0.07, w_align: float = 0.0,
                 alpha: float = 2.0, w_uniform: float = 0.0, t: float = 2.0,
                 intra_batch: bool = True) -> None:
        super().__init__()
        if not (w_contrastive or w_uniform):
            raise ValueError(
                "no loss term uses negatives (loss.w_align compares positive pairs only); "
                "give a weight to a term that uses the queue: "
                + "; ".join(f"loss.{k} ({v})" for k, v in QUEUE_TERMS.items())
                + "; or use no queue"
            )
        weights = _checks.loss_weights({"w_contrastive": w_contrastive, "w_align": w_align,
                                        "w_uniform": w_uniform})
        self.w_contrastive, self.tau = weights["w_contrastive"], _checks.positive(tau, "tau")
        self.w_align, self.alpha = weights["w_align"], _checks.positive(alpha, "alpha")
        self.w_uniform, self.t = weights["w_uniform"], _checks.positive(t, "t")
        self.intra_batch = intra_batch

    def forward(self, q: torch.Tensor, k: torch.Tensor,
                queue: torch.Tensor) -> dict[str, torch.Tensor]:
        k = k.detach()
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        if self.w_contrastive:
            terms["contrastive"] = (self.w_contrastive,
                                    queue_contrastive_loss(q, k, queue, self.tau))
        if self.w_align:
            terms["align"] = (self.w_align, align_loss(q, k, self.alpha))
        if self.w_uniform:
            terms["uniform"] = (self.w_uniform, queue_uniform_loss(
                q, queue, self.t, intra_batch=self.intra_batch))
        out = {"loss": cast(torch.Tensor, sum(w * value for w, value in terms.values()))}
        out.update({name: value.detach() for name, (_, value) in terms.items()})
        return out
