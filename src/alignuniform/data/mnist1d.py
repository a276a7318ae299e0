"""MNIST-1D (Greydanus, 2020), generated locally, and its two-view augmentation.

The ``mnist1d`` package can download a pickled copy of the data set; here it is always
*generated* in memory with ``mnist1d.data.make_dataset`` (pure NumPy, about a second for
5,000 sequences), so nothing touches the network and any size can be asked for.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from alignuniform.data.arrays import LabelledTensors

SEQ_LEN = 40
NUM_CLASSES = 10
SPLITS = ("train", "val", "test")

# Defaults of the augmentation, chosen on held-out k-NN accuracy of a contrastive 1-D CNN
# (see ``mnist1d_view``); module-level so the report can state them.
VIEW_DEFAULTS: dict[str, Any] = {"max_shift": 20, "crop_scale": (0.7, 1.0), "shear": 1.0,
                 "amp_range": (0.8, 1.2), "noise_std": 0.1}


@functools.lru_cache(maxsize=4)
def _generate(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``num_samples`` sequences (a multiple of 10) with the package's recipe."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.train_split = 1.0  # the split is done by the caller, so all samples land in "x"
    args.seed = seed
    # make_dataset seeds NumPy's and Python's global generators; restore them so building a
    # data set does not change the random stream of the caller.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x = np.ascontiguousarray(data["x"], dtype=np.float32)
    y = np.ascontiguousarray(data["y"], dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


class MNIST1D(LabelledTensors):
    """One split of a locally generated MNIST-1D data set.

    Items are ``(transform(x), label)`` with ``x`` a float32 tensor of shape ``(1, 40)`` (one
    channel, ready for ``Conv1d``) and ``label`` an int in ``0..9``. The whole set is
    standardised to mean 0 and standard deviation 1 by the generator.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``; the three are disjoint slices of one
            generated, shuffled set of ``n_train + n_val + n_test`` sequences.
        n_train: Number of training sequences.
        n_test: Number of test sequences.
        n_val: Number of validation sequences (held out next to the training ones).
        seed: Seed of the generator; the same seed gives the same sequences.
        transform: Applied to each ``(1, 40)`` sequence when it is read.

    Attributes:
        data: ``(N, 1, 40)`` float32 tensor of the untransformed sequences.
        labels: ``(N,)`` int64 tensor.
        classes: Class names, index = label (the digits ``"0"``..``"9"``).
    """

    def __init__(self, split: str = "train", *, n_train: int = 4000, n_test: int = 1000,
                 n_val: int = 500, seed: int = 0,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        for name, n in (("n_train", n_train), ("n_test", n_test), ("n_val", n_val)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise TypeError(f"{name} must be a non-negative int, got {n!r}")
        sizes = {"train": n_train, "val": n_val, "test": n_test}
        if sizes[split] == 0:
            raise ValueError(f"split {split!r} is empty: set n_{split} > 0")
        total = n_train + n_val + n_test
        # the generator makes num_samples // 10 per class, so round up and drop the extra
        x, y = _generate(NUM_CLASSES * math.ceil(total / NUM_CLASSES), int(seed))
        start = {"train": 0, "val": n_train, "test": n_train + n_val}[split]
        stop = start + sizes[split]
        self.split = split
        super().__init__(
            torch.from_numpy(x[start:stop].copy()).unsqueeze(1),
            torch.from_numpy(y[start:stop].copy()),
            [str(c) for c in range(NUM_CLASSES)],
            transform,
        )


def build_dataset(root: str | None, split: str, *, n_train: int = 4000, n_test: int = 1000,
                  n_val: int = 500, seed: int = 0,
                  transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> MNIST1D:
    """Registry entry point for ``"mnist1d"``: see ``MNIST1D``.

    Args:
        root: Unused: the data are generated, never read from disk; accepted so every data
            set is built the same way.
        split: ``"train"``, ``"val"`` or ``"test"``.
        n_train: Number of training sequences (default 4,000).
        n_test: Number of test sequences (default 1,000).
        n_val: Number of validation sequences (default 500).
        seed: Generator seed.
        transform: Applied to each (1, 40) sequence.
    """
    return MNIST1D(split, n_train=n_train, n_test=n_test, n_val=n_val, seed=seed,
                   transform=transform)


def mnist1d_view(x: torch.Tensor, *, max_shift: int = VIEW_DEFAULTS["max_shift"],
                 crop_scale: tuple[float, float] = VIEW_DEFAULTS["crop_scale"],
                 shear: float = VIEW_DEFAULTS["shear"],
                 amp_range: tuple[float, float] = VIEW_DEFAULTS["amp_range"],
                 noise_std: float = VIEW_DEFAULTS["noise_std"]) -> torch.Tensor:
    """One random view of an MNIST-1D sequence (two calls give a positive pair).

    The nuisances are the ones MNIST-1D is generated with, so that two views differ in what
    the label does not depend on: a random crop of ``crop_scale`` of the length resized back to
    full length (time stretch), a circular shift by up to ``max_shift`` steps (the generator
    also shifts circularly), a linear trend of slope up to ``shear`` (the generator's shear),
    an amplitude factor drawn from ``amp_range``, and i.i.d. Gaussian noise of ``noise_std``.
    Random numbers come from torch's global generator, so a seeded run (and seeded DataLoader
    workers) reproduces the views; the arithmetic is NumPy because it is several times faster
    than torch for one 40-step sequence.

    Args:
        x: A sequence of shape ``(..., L)`` on the CPU; leading dims (channels) share one draw.
        max_shift: Largest circular shift in steps, either direction.
        crop_scale: Range of the kept fraction of the sequence.
        shear: Largest absolute change of the added trend over the whole sequence.
        amp_range: Range of the amplitude factor.
        noise_std: Standard deviation of the added noise (the data have std 1).

    Returns:
        A new float tensor of the same shape and dtype as ``x``.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or not x.is_floating_point():
        raise TypeError("mnist1d_view expects a floating tensor of shape (..., L)")
    lo, hi = crop_scale
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
    length = x.shape[-1]
    # two generator calls per view: this runs once per sample and view in the data loader,
    # where per-call overhead, not arithmetic, is the cost
    u = torch.rand(5, dtype=torch.float64).numpy()
    noise = torch.randn(x.shape, dtype=x.dtype)
    unit, steps = _grid(length)
    keep = (lo + (hi - lo) * u[0]) * (length - 1)
    grid = u[1] * (length - 1 - keep) + keep * unit
    shift = min(int(u[2] * (2 * max_shift + 1)), 2 * max_shift) - max_shift
    # a circular shift of the resampled sequence is a resampling at the rolled grid
    cut = length - shift % length
    grid = np.concatenate((grid[cut:], grid[:cut]))
    trend = shear * (2 * u[3] - 1) * (unit - 0.5)
    amp = amp_range[0] + (amp_range[1] - amp_range[0]) * u[4]
    seq = x.detach().cpu().numpy().reshape(-1, length)
    view = np.stack([(np.interp(grid, steps, row) + trend) * amp for row in seq])
    return torch.from_numpy(view.astype(np.float32)).to(x.dtype).reshape(x.shape) \
        + noise_std * noise


@functools.lru_cache(maxsize=8)
def _grid(length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(linspace(0, 1, length), arange(length))``, read-only and shared between calls."""
    unit, steps = np.linspace(0.0, 1.0, length), np.arange(length, dtype=np.float64)
    unit.setflags(write=False)
    steps.setflags(write=False)
    return unit, steps


def mnist1d_eval(x: torch.Tensor) -> torch.Tensor:
    """The evaluation transform of MNIST-1D: none (sequences are already standardised).

    Registered as ``"mnist1d_eval"`` next to ``"mnist1d"`` so evaluation code that pairs a
    training recipe with its ``"<name>_eval"`` transform works for MNIST-1D too.
    """
    return x
