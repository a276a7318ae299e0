"""Data sets held in memory as one tensor: labelled items, and uint8 images."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset


class LabelledTensors(Dataset):
    """Items ``(transform(data[i]), labels[i])`` from tensors held in memory.

    Args:
        data: (N, ...) tensor of untransformed items.
        labels: (N,) integer labels (-1 for unlabelled items).
        classes: Class names, index = label.
        transform: Applied to each item when it is read.
    """

    def __init__(
        self,
        data: torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        classes: list[str],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.data = data
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.classes = list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item = self.data[index]
        if self.transform is not None:
            item = self.transform(item)
        return item, int(self.labels[index])


class ArrayDataset(LabelledTensors):
    """Items ``(transform(image), label)`` with ``image`` a (C, H, W) uint8 tensor.

    Args:
        images: (N, H, W, C) uint8 array (channels last, as decoders and torchvision give).
        labels: (N,) integer labels (-1 for unlabelled images).
        classes: Class names, index = label.
        transform: Applied to each (C, H, W) uint8 image, e.g. ``build_recipe("cifar10_eval")``.

    Attributes:
        images: (N, C, H, W) uint8 tensor (``data``), shared with workers without copies.
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
        chw = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
        super().__init__(chw, labels, classes, transform)

    @property
    def images(self) -> torch.Tensor:
        """(N, C, H, W) uint8 tensor, shared with worker processes without copies."""
        return self.data
