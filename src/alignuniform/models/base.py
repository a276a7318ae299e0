"""The encoder contract shared by every image model, and the projection heads they end in."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Encoder(nn.Module):
    """Base class: ``features`` -> ``head`` -> L2 normalisation.

    Subclasses build ``self.head`` (penultimate features -> ``feat_dim``) and implement
    ``feature_maps`` and ``features``; ``forward`` is shared so every encoder ends on the unit
    hypersphere the same way.

    Attributes:
        feat_dim: Dimension of the L2-normalised output of ``forward``.
        penultimate_dim: Dimension of ``features`` (the usual evaluation layer).
    """

    feat_dim: int
    penultimate_dim: int
    head: nn.Module

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Convolutional feature maps by stage name, in network order."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, shape ``(B, penultimate_dim)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings, shape ``(B, feat_dim)``."""
        return F.normalize(self.head(self.features(x)), dim=1)


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """SimCLR-style projection head: Linear -> BN -> ReLU -> Linear."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim, bias=False),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )


def check_positive_ints(**values: object) -> None:
    """Raise ValueError naming the first argument that is not a positive int."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_image_batch(x: torch.Tensor, in_channels: int, model: str) -> None:
    """Raise a clear error for anything but a float (B, C, H, W) batch with C channels."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{model} expects a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f"{model} expects a (B, {in_channels}, H, W) batch, got shape {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0) for a single image"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{model} expects a floating-point batch, got {x.dtype}; apply the recipe's "
            "transform (e.g. build_recipe('cifar10_eval')) to uint8 images first"
        )
