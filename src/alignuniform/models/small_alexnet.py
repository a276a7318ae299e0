"""The paper's SmallAlexNet (Wang & Isola, 2020, Appendix B / their reference code)."""

from __future__ import annotations

import torch
from torch import nn

from alignuniform.models.base import Encoder, check_image_batch, check_positive_ints


def _conv_block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(3, 2))
    return nn.Sequential(*layers)


def _pooled_size(size: int) -> int:
    # three MaxPool2d(3, 2) layers without padding: 64 -> 31 -> 15 -> 7
    for _ in range(3):
        size = (size - 3) // 2 + 1
    return size


class SmallAlexNet(Encoder):
    """conv 3->96->192->384->384->192 (3x3, BN, ReLU; max-pool after conv1, 2, 5),
    fc6 192*7*7->4096 and fc7 4096->4096 (BN, ReLU), fc8 4096->feat_dim, L2-normalised.

    Weights are drawn from N(0, 0.02) and BatchNorm starts at (1, 0), as in the paper's code.
    ``features`` is fc7 (after BN and ReLU), the paper's evaluation layer.

    Args:
        feat_dim: Output dimension (128 in the paper; 2 for the S^1 figure).
        in_channels: Input channels.
        image_size: Input height and width (64 for the paper's STL-10 crops; 32 also works).
    """

    def __init__(self, feat_dim: int = 128, *, in_channels: int = 3, image_size: int = 64) -> None:
        super().__init__()
        check_positive_ints(feat_dim=feat_dim, in_channels=in_channels, image_size=image_size)
        if _pooled_size(image_size) < 1:
            raise ValueError(
                f"image_size must be at least 15 (three 3x3/2 max-pools), got {image_size}"
            )
        self.feat_dim, self.penultimate_dim = feat_dim, 4096
        self.in_channels, self.image_size = in_channels, image_size
        self.convs = nn.ModuleDict(
            {
                "conv1": _conv_block(in_channels, 96, pool=True),
                "conv2": _conv_block(96, 192, pool=True),
                "conv3": _conv_block(192, 384, pool=False),
                "conv4": _conv_block(384, 384, pool=False),
                "conv5": _conv_block(384, 192, pool=True),
            }
        )
        side = _pooled_size(image_size)
        self.fc6 = nn.Sequential(
            nn.Flatten(),
            nn.Linear(192 * side * side, 4096, bias=False),
            nn.BatchNorm1d(4096),
            nn.ReLU(inplace=True),
        )
        self.fc7 = nn.Sequential(
            nn.Linear(4096, 4096, bias=False), nn.BatchNorm1d(4096), nn.ReLU(inplace=True)
        )
        self.head = nn.Linear(4096, feat_dim)
        self.apply(_init)

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Output of each conv block (after its max-pool, where it has one)."""
        check_image_batch(x, self.in_channels, "SmallAlexNet")
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"SmallAlexNet was built for {self.image_size}x{self.image_size} inputs, got "
                f"{tuple(x.shape[-2:])}; build it with image_size={x.shape[-1]}"
            )
        maps = {}
        for name, block in self.convs.items():
            x = block(x)
            maps[name] = x
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """fc7 activations (4096-d, after BN and ReLU)."""
        return self.fc7(self.fc6(self.feature_maps(x)["conv5"]))


def _init(m: nn.Module) -> None:
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
