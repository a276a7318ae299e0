"""A small 1-D CNN encoder for MNIST-1D-like sequences, sized to train in seconds on a CPU."""

from __future__ import annotations

import torch
from torch import nn

from alignuniform.models.base import Encoder, check_positive_ints


def _block(c_in: int, c_out: int, stride: int, padding_mode: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, 5, stride=stride, padding=2, bias=False,
                                   padding_mode=padding_mode),  # type: ignore[arg-type]
                         nn.BatchNorm1d(c_out), nn.ReLU(inplace=True))


class Conv1dEncoder(Encoder):
    """Three conv blocks, a hidden layer, and an L2-normalised linear output.

    With ``pool="flatten"`` the last conv maps are flattened, keeping where each feature sits;
    with ``"max"`` or ``"avg"`` they are pooled over time and the convs pad circularly, which
    makes the encoder (nearly, given the strided convs) invariant to circular shifts, the
    nuisance MNIST-1D is generated with.

    Args:
        feat_dim: Output (embedding) dimension; 2 puts the embeddings on the circle S^1.
        in_length: Length of the input sequences.
        in_channels: Channels of the input sequences.
        width: Channels of the first conv block (doubled in the later ones).
        hidden_dim: Width of the penultimate layer (``features``).
        pool: ``"flatten"``, ``"max"`` or ``"avg"`` (see above).

    Attributes:
        feat_dim: Embedding dimension.
        penultimate_dim: Dimension of ``features``.
    """

    def __init__(self, feat_dim: int = 32, in_length: int = 40, *, in_channels: int = 1,
                 width: int = 32, hidden_dim: int = 128, pool: str = "flatten") -> None:
        super().__init__()
        check_positive_ints(feat_dim=feat_dim, in_length=in_length, in_channels=in_channels,
                            width=width, hidden_dim=hidden_dim)
        if in_length < 8:
            raise ValueError(f"in_length must be at least 8 (two stride-2 convs), got {in_length}")
        if pool not in ("flatten", "max", "avg"):
            raise ValueError(f"pool must be 'flatten', 'max' or 'avg', got {pool!r}")
        self.feat_dim = feat_dim
        self.penultimate_dim = hidden_dim
        self.in_length = in_length
        self.in_channels = in_channels
        padding_mode = "zeros" if pool == "flatten" else "circular"
        self.conv1 = _block(in_channels, width, 1, padding_mode)
        self.conv2 = _block(width, 2 * width, 2, padding_mode)
        self.conv3 = _block(2 * width, 2 * width, 2, padding_mode)
        if pool == "flatten":
            out_length = (((in_length - 1) // 2 + 1) - 1) // 2 + 1
            reduce: nn.Module = nn.Flatten()
        else:
            out_length = 1
            pooling = nn.AdaptiveMaxPool1d(1) if pool == "max" else nn.AdaptiveAvgPool1d(1)
            reduce = nn.Sequential(pooling, nn.Flatten())
        self.hidden = nn.Sequential(reduce, nn.Linear(2 * width * out_length, hidden_dim),
                                    nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(hidden_dim, feat_dim)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"Conv1dEncoder expects a torch.Tensor, got {type(x).__name__}")
        if x.ndim == 2 and self.in_channels == 1:
            x = x.unsqueeze(1)  # (B, L) sequences are one-channel
        if x.ndim != 3 or x.shape[1] != self.in_channels or x.shape[2] != self.in_length:
            raise ValueError(f"Conv1dEncoder expects (B, {self.in_channels}, {self.in_length}) "
                             f"input, got {tuple(x.shape)}")
        return x

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs of the three conv blocks by name (``"conv1"``..``"conv3"``)."""
        maps, h = {}, self._check(x)
        for name in ("conv1", "conv2", "conv3"):
            h = maps[name] = getattr(self, name)(h)
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, shape ``(B, penultimate_dim)``."""
        return self.hidden(self.conv3(self.conv2(self.conv1(self._check(x)))))
