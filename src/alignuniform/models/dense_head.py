"""Dense projection heads: an encoder's conv map through 1x1 convolutions (DenseCL).

``DenseHead`` is DenseCL's dense projection head (Wang et al., CVPR 2021): a 1x1 conv, ReLU,
a 1x1 conv, then (ours, as every encoder here ends on the sphere) L2 normalisation over
channels at each location. ``DenseEncoder`` wraps any encoder of ``alignuniform.models``:
``forward``/``features`` are the encoder's (so image-level training and evaluation work
unchanged), and ``forward_dense`` returns, from one pass of the backbone, the global
embedding, the backbone's conv map (what DenseCL matches locations with) and the projected,
normalised dense map.

Examples:
    >>> from alignuniform.models import build_model
    >>> model = build_model("dense", backbone="small_cnn", feat_dim=128, dense_dim=128)
    >>> out = model.forward_dense(torch.randn(8, 3, 64, 64))
    >>> out["dense"].shape   # unit vectors over dim 1
    torch.Size([8, 128, 8, 8])
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from alignuniform.models.base import Encoder, check_positive_ints


class DenseHead(nn.Module):
    """``(B, C, H, W) -> (B, out_dim, H, W)``: 1x1 conv, ReLU, 1x1 conv, L2 normalisation
    over channels.

    Args:
        in_dim: Channels of the input map.
        hidden_dim: Channels of the hidden layer (default ``in_dim``, as DenseCL).
        out_dim: Channels of the output (DenseCL: 128).
        normalize: L2-normalise each location (default True).
    """

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int = 128,
                 normalize: bool = True) -> None:
        super().__init__()
        hidden_dim = in_dim if hidden_dim is None else hidden_dim
        check_positive_ints(in_dim=in_dim, hidden_dim=hidden_dim, out_dim=out_dim)
        self.net = nn.Sequential(
            nn.Conv2d(in_dim, hidden_dim, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, out_dim, 1),
        )
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return F.normalize(y, dim=1) if self.normalize else y


class DenseEncoder(Encoder):
    """An encoder with a dense projection head on one of its conv stages.

    Args:
        backbone: A model name of ``alignuniform.models`` or an ``Encoder`` instance.
        stage: Which ``feature_maps`` entry feeds the dense head (default the last one).
        dense_dim: Output channels of the dense head.
        dense_hidden_dim: Hidden channels of the dense head (default the stage's channels).
        in_channels: Input channels (used to find the stage's width).
        probe_size: Side of the dummy input used once to find the stage's width.
        **backbone_kwargs: Passed to ``build_model(backbone, ...)`` when it is a name.
    """

    def __init__(
        self,
        backbone: str | Encoder = "small_cnn",
        *,
        stage: str | None = None,
        dense_dim: int = 128,
        dense_hidden_dim: int | None = None,
        probe_size: int = 64,
        **backbone_kwargs,
    ) -> None:
        super().__init__()
        if isinstance(backbone, str):
            from alignuniform.models import build_model

            backbone = cast(Encoder, build_model(backbone, **backbone_kwargs))
        elif backbone_kwargs:
            raise TypeError(f"backbone_kwargs {sorted(backbone_kwargs)} need a backbone name")
        self.backbone = backbone
        self.feat_dim, self.penultimate_dim = backbone.feat_dim, backbone.penultimate_dim
        in_channels = getattr(backbone, "in_channels", 3)
        size = getattr(backbone, "image_size", probe_size)
        was_training = backbone.training
        backbone.eval()
        with torch.no_grad():
            maps = backbone.feature_maps(torch.zeros(2, in_channels, size, size))
        backbone.train(was_training)
        self.stage = stage if stage is not None else list(maps)[-1]
        if self.stage not in maps:
            raise ValueError(f"stage must be one of {list(maps)}, got {stage!r}")
        self.dense_head = DenseHead(maps[self.stage].shape[1], dense_hidden_dim, dense_dim)
        self.dense_dim = dense_dim

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.backbone.feature_maps(x)

    @property
    def head(self) -> nn.Module:  # type: ignore[override]
        """The backbone's projection head (so ``forward`` is the backbone's, one pass)."""
        return self.backbone.head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.features(x)

    def forward_dense(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"global": (B, feat_dim) embeddings, "backbone": the stage's map, "dense":
        (B, dense_dim, h, w) normalised map}`` from one pass of the backbone.

        The backbone's ``features`` calls its ``feature_maps`` (the encoder contract), which
        is intercepted here to keep the stage's map; an encoder that does not gets a second
        pass for the map.
        """
        captured: dict[str, torch.Tensor] = {}
        inner = self.backbone.feature_maps

        def capture(inp: torch.Tensor) -> dict[str, torch.Tensor]:
            maps = inner(inp)
            captured.update(maps)
            return maps

        self.backbone.feature_maps = capture  # type: ignore[assignment, method-assign]  # an instance attribute shadows the method
        try:
            glob = self.backbone(x)
        finally:
            del self.backbone.feature_maps
        fmap = captured.get(self.stage)
        if fmap is None:
            fmap = self.backbone.feature_maps(x)[self.stage]
        return {"global": glob, "backbone": fmap, "dense": self.dense_head(fmap)}

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised dense map only (one backbone pass up to the stage)."""
        return self.dense_head(self.backbone.feature_maps(x)[self.stage])
