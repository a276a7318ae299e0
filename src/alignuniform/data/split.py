"""Seeded, stratified hold-out of a validation split from a training set."""

from __future__ import annotations

import numpy as np


class SplitNotAvailable(ValueError):
    """The data on disk have no such split (e.g. no test images): evaluation falls back on
    the "val" hold-out (``build_run_splits``); any other error while reading a split is
    raised, never taken for a missing split."""


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, val), taking ``val_fraction`` of every class into val.

    Each class contributes ``round(val_fraction * count)`` samples (at least one when the
    fraction is positive and the class has two or more), chosen by a NumPy generator seeded
    with ``seed``, so the split is the same on every machine.

    Args:
        labels: (N,) integer class labels.
        val_fraction: Fraction in [0, 1) held out for validation.
        seed: Seed of the split.

    Returns:
        Sorted train indices and sorted val indices; together they cover ``range(N)``.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        take = round(val_fraction * len(members))
        if val_fraction > 0 and len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        val.append(rng.permutation(members)[:take])
    val_idx = np.sort(np.concatenate(val)) if val else np.empty(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def holdout_indices(
    labels: np.ndarray, split: str, val_fraction: float, seed: int, dataset: str
) -> np.ndarray:
    """Indices of ``split`` ("train" or "val") of a training set after holding out val.

    Raises:
        ValueError: "val" asked for with ``val_fraction == 0``, or another split name.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val' here, got {split!r}")
    if split == "val" and val_fraction == 0:
        raise ValueError(
            f"{dataset}: split 'val' needs val_fraction > 0 (e.g. val_fraction=0.1), "
            "which holds that fraction of every class out of 'train'"
        )
    train_idx, val_idx = stratified_split(labels, val_fraction, seed)
    return train_idx if split == "train" else val_idx
