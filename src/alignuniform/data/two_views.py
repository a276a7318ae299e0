"""Positive pairs: two independent random views of the same image."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset


class TwoViews(Dataset):
    """Wraps a data set of ``(image, label)`` into ``(view1, view2, label)``.

    Args:
        dataset: Yields ``(image, label)`` with untransformed images.
        recipe: Per-sample random augmentation, called once per view
            (e.g. ``build_recipe("stl10")``).
    """

    def __init__(self, dataset: Dataset, recipe: Callable[[torch.Tensor], torch.Tensor]) -> None:
        if not callable(recipe):
            raise TypeError(f"recipe must be callable, got {type(recipe).__name__}")
        self.dataset, self.recipe = dataset, recipe

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, label = self.dataset[index]
        return self.recipe(image), self.recipe(image), label
