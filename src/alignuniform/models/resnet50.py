"""ResNet-50 from torchvision (random init) with MoCo's head: the ImageNet-100 encoder."""

from __future__ import annotations

import torch
from torch import nn

from alignuniform.models.base import Encoder, check_image_batch, check_positive_ints


class ResNet50(Encoder):
    """torchvision's ResNet-50 (no pretrained weights), its ``fc`` replaced by a head to
    ``feat_dim``: a linear layer as in MoCo v1 and Wang & Isola's fork, or with ``mlp`` MoCo
    v2's 2048-2048-ReLU-``feat_dim`` head. ``features`` is the 2048-d pooled output.

    Args:
        feat_dim: Output dimension (128 in MoCo).
        mlp: Use the MLP head.
    """

    def __init__(self, feat_dim: int = 128, *, mlp: bool = False) -> None:
        super().__init__()
        from torchvision.models import resnet50

        check_positive_ints(feat_dim=feat_dim)
        self.feat_dim, self.penultimate_dim = feat_dim, 2048
        backbone = resnet50(weights=None)
        backbone.fc = nn.Identity()
        self.backbone = backbone
        linear = nn.Linear(2048, feat_dim)
        self.head = nn.Sequential(nn.Linear(2048, 2048), nn.ReLU(inplace=True), linear) \
            if mlp else linear

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image_batch(x, 3, "ResNet50")
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        maps = {}
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(b, name)(x)
            maps[name] = x
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, 3, "ResNet50")
        return self.backbone(x)
