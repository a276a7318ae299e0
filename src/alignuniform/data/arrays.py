"""A data set of images held in memory as one uint8 array."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset


class ArrayDataset(Dataset):
    """Items ``(transform(image), label)`` with ``image`` a (C, H, W) uint8 tensor.

    Args:
        images: (N, H, W, C) uint8 array (channels last, as decoders and torchvision give).
        labels: (N,) integer labels (-1 for unlabelled images).
        classes: Class names, index = label.
        transform: Applied to each (C, H, W) uint8 image, e.g. ``build_recipe("cifar10_eval")``.

    Attributes:
        images: (N, C, H, W) uint8 tensor, shared with worker processes without copies.
        labels: (N,) int64 tensor.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        classes: list[str],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be (N, H, W, C) uint8, got {images.dtype} {images.shape}"
            )
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        self.images = self.images.contiguous()
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.classes = list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
