"""A small CNN that trains on CIFAR-10-sized images in minutes on two CPU cores."""

from __future__ import annotations

import torch
from torch import nn

from alignuniform.models.base import Encoder, check_image_batch, check_positive_ints


class SmallCNN(Encoder):
    """Three conv stages (width, 2*width, 4*width; 3x3, BN, ReLU, 2x2 max-pool), global
    average pooling, a hidden fc layer (the penultimate features), and a linear head.

    Args:
        feat_dim: Output dimension.
        in_channels: Input channels.
        width: Channels of the first stage.
        hidden_dim: Width of the penultimate layer.
        batch_norm: Use BatchNorm; ``False`` gives a model whose output for a sample does not
            depend on the rest of the batch (used to compare DDP and single-process training
            step for step without SyncBatchNorm).
    """

    def __init__(
        self,
        feat_dim: int = 128,
        *,
        in_channels: int = 3,
        width: int = 32,
        hidden_dim: int = 256,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        check_positive_ints(
            feat_dim=feat_dim, in_channels=in_channels, width=width, hidden_dim=hidden_dim
        )
        self.feat_dim, self.penultimate_dim, self.in_channels = feat_dim, hidden_dim, in_channels

        def norm2d(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if batch_norm else nn.Identity()

        stages, c_in = {}, in_channels
        for i, c_out in enumerate([width, 2 * width, 4 * width], start=1):
            stages[f"conv{i}"] = nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm),
                norm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )
            c_in = c_out
        self.stages = nn.ModuleDict(stages)
        self.hidden = nn.Sequential(
            nn.Linear(4 * width, hidden_dim, bias=not batch_norm),
            nn.BatchNorm1d(hidden_dim) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(hidden_dim, feat_dim)

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Output of each conv stage (after its max-pool)."""
        check_image_batch(x, self.in_channels, "SmallCNN")
        maps = {}
        for name, stage in self.stages.items():
            x = stage(x)
            maps[name] = x
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden-layer activations after global average pooling of the last conv stage."""
        return self.hidden(self.feature_maps(x)["conv3"].mean(dim=(2, 3)))
