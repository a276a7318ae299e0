"""torch.distributed helpers: rank queries, set-up from torchrun's environment, and an
autograd-aware all-gather.

The all-gather is what makes global-batch losses correct under DistributedDataParallel. Each
rank gathers every rank's embeddings and evaluates the loss on the whole global batch, so
the loss value is identical on every rank. In the backward pass each rank holds the
gradient of that loss with respect to *all* gathered rows, but only its own rows lead back
to its parameters; the gather's backward therefore sums the gradients over ranks
(all-reduce) and returns this rank's slice, i.e. ``world_size * dL/dx_local``. DDP then
averages parameter gradients over ranks (divides by ``world_size``), which gives exactly the
gradient of a single process on the concatenated batch. Forgetting the all-reduce, or
dividing by ``world_size`` a second time, are the usual bugs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from alignuniform.devices import default_device


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0: the process that logs and writes checkpoints."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for all ranks (a no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def all_gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0, differentiably.

    Rows come in rank order (rank 0's first). All ranks must pass tensors of the same shape.
    Not distributed: returns ``x`` unchanged.

    Args:
        x: (n, ...) tensor on this rank.

    Returns:
        (world_size * n, ...) tensor whose backward all-reduces and returns this rank's slice.
    """
    if not is_distributed() or get_world_size() == 1:
        return x
    return _AllGather.apply(x)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits: rank, world size, local rank, and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def init_from_env(device: str = "auto") -> DistributedContext:
    """Join the process group described by torchrun's environment, if there is one.

    With ``WORLD_SIZE > 1`` (set by ``torchrun``) this initialises ``torch.distributed``
    with NCCL on CUDA and gloo on CPU, and picks ``cuda:LOCAL_RANK`` as the device.
    Otherwise nothing is initialised.

    Args:
        device: "auto" (CUDA if available), "cpu", "cuda" or "cuda:N".
    """
    if device == "auto":
        device = default_device().type
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    on_cuda = device.startswith("cuda")
    if world_size > 1:
        if on_cuda:
            torch.cuda.set_device(local_rank)
            device = f"cuda:{local_rank}"
        if not is_distributed():
            dist.init_process_group(backend="nccl" if on_cuda else "gloo")
    return DistributedContext(get_rank(), get_world_size(), local_rank, torch.device(device))


def cleanup() -> None:
    """Leave the process group if one was joined."""
    if is_distributed():
        dist.destroy_process_group()
