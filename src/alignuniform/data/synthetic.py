"""A tiny synthetic image data set for tests and smoke runs (no files, no downloads)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from alignuniform.data.arrays import ArrayDataset

_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}


def build_synthetic(
    root: str | None = None,
    split: str = "train",
    *,
    n: int = 512,
    image_size: int = 32,
    num_classes: int = 10,
    seed: int = 0,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> ArrayDataset:
    """Noisy images whose mean colour and a bright square's position depend on the class.

    Args:
        root: Ignored (accepted for the common ``build_dataset`` signature).
        split: "train", "val" or "test" (disjoint draws of the same distribution).
        n: Number of images.
        image_size: Height and width.
        num_classes: Number of classes (labels cycle through them).
        seed: Seed of the draw.
        transform: Applied to each (3, H, W) uint8 image.
    """
    if split not in _SPLIT_OFFSET:
        raise ValueError(f"synthetic split must be 'train', 'val' or 'test', got {split!r}")
    rng = np.random.default_rng([seed, _SPLIT_OFFSET[split]])
    labels = np.arange(n) % num_classes
    palette = np.random.default_rng(seed).uniform(40, 215, size=(num_classes, 3))
    images = palette[labels][:, None, None, :] + rng.normal(0, 30, (n, image_size, image_size, 3))
    side = max(1, image_size // 4)
    for i, label in enumerate(labels):
        r = (label * side) % (image_size - side + 1)
        images[i, r : r + side, r : r + side] += 60
    return ArrayDataset(np.clip(images, 0, 255).astype(np.uint8), labels, [
        f"class{c}" for c in range(num_classes)
    ], transform)
