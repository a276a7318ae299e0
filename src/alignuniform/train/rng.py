"""The random state of a training run: per-epoch seeds, and the global generators' state.

Exact resume rests on these: the data order and every augmentation draw of an epoch are
functions of ``(seed, epoch, rank)`` only (:func:`epoch_seed`, :func:`seed_all` at the start
of each epoch), and a checkpoint stores the generators' state (:func:`rng_state`) for
:func:`set_rng_state` to put back.

Examples:
    >>> import torch
    >>> seed_all(epoch_seed(0, 1, 0))
    >>> state = rng_state()
    >>> a = torch.rand(2)
    >>> set_rng_state(state)
    >>> torch.equal(torch.rand(2), a)
    True
"""

from __future__ import annotations

import random

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of ``epoch`` on ``rank`` of a run seeded with ``seed``."""
    return (seed * 1_000_003 + epoch * 10_007 + rank) % 2**63


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The global generators' state as tensors and lists (what ``torch.save`` stores with
    ``weights_only`` loading)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),  # type: ignore[index]
        "numpy_pos": int(np_state[2]),  # type: ignore[index]
        "python": list(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put back a state from :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32),
                         state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
