"""ResNet-18 for 32x32 inputs (3x3 stem, no max-pool) with a projection head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from alignuniform.models.base import Encoder, check_image_batch, check_positive_ints, mlp_head


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN and an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18Cifar(Encoder):
    """ResNet-18 (He et al., 2016) adapted to 32x32 images, as in SimCLR's CIFAR-10 setting.

    ``features`` is the 512-d globally pooled backbone output (the usual evaluation layer);
    the projection head maps it through a 512-d hidden layer to ``feat_dim``.

    Args:
        feat_dim: Output dimension.
        in_channels: Input channels.
        head_hidden_dim: Width of the projection head's hidden layer.
    """

    def __init__(
        self, feat_dim: int = 128, *, in_channels: int = 3, head_hidden_dim: int = 512
    ) -> None:
        super().__init__()
        check_positive_ints(
            feat_dim=feat_dim, in_channels=in_channels, head_hidden_dim=head_hidden_dim
        )
        self.feat_dim, self.penultimate_dim, self.in_channels = feat_dim, 512, in_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        stages, c_in = {}, 64
        for i, (c_out, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
            stages[f"layer{i}"] = nn.Sequential(
                BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)
            )
            c_in = c_out
        self.stages = nn.ModuleDict(stages)
        self.head = mlp_head(512, head_hidden_dim, feat_dim)

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Output of the stem and of each of the four residual stages."""
        check_image_batch(x, self.in_channels, "ResNet18Cifar")
        x = self.stem(x)
        maps = {"stem": x}
        for name, stage in self.stages.items():
            x = stage(x)
            maps[name] = x
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """512-d globally average-pooled ``layer4`` output."""
        return self.feature_maps(x)["layer4"].mean(dim=(2, 3))
