"""Batched image operations behind the augmentation components: tensors in, tensors out.

Each function works on a (B, C, H, W) float batch in [0, 1] with per-sample parameters
(``factor`` and ``sigma`` have one entry per image) and draws nothing at random: the
components of :mod:`alignuniform.data.augment.components` draw the parameters and call
these. The colour operations match torchvision's per-image functions (checked image by
image in tests/test_data.py).

    >>> import torch
    >>> from alignuniform.data.augment.ops import adjust_brightness, grayscale
    >>> x = torch.full((2, 3, 4, 4), 0.5)
    >>> adjust_brightness(x, torch.tensor([0.5, 3.0]).view(2, 1, 1, 1))[:, 0, 0, 0]
    tensor([0.2500, 1.0000])
    >>> grayscale(x).shape
    torch.Size([2, 1, 4, 4])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "JITTER_OPS",
    "LUMA",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "blur",
    "gaussian_kernels",
    "grayscale",
    "hsv_to_rgb",
    "rgb_to_hsv",
    "sobel",
]

LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma weights, with torchvision's rounding


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luma of (B, 3, H, W) RGB (``LUMA`` weights); one channel is returned as is."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] to HSV with hue in [0, 1)."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    delta = maxc - minc
    flat = delta == 0
    s = delta / torch.where(flat, torch.ones_like(maxc), maxc)
    d = torch.where(flat, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(flat, torch.zeros_like(h), h)
    return torch.stack([torch.fmod(h / 6.0 + 1.0, 1.0), s, maxc], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of ``rgb_to_hsv``."""
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p = (v * (1 - s)).clamp(0, 1)
    q = (v * (1 - s * f)).clamp(0, 1)
    t = (v * (1 - s * (1 - f))).clamp(0, 1)
    # sector i of the hue circle picks which of (v, q, p, t) go to r, g and b
    table = torch.stack([
        torch.stack([v, q, p, p, t, v], 1),
        torch.stack([t, v, v, q, p, p], 1),
        torch.stack([p, p, t, v, v, q], 1),
    ], 1)  # (B, 3, 6, H, W)
    index = i.unsqueeze(1).unsqueeze(2).expand(-1, 3, 1, -1, -1)
    return table.gather(2, index).squeeze(2)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-sample brightness: ``factor`` is (B, 1, 1, 1); as torchvision's adjust_brightness."""
    return (x * factor).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-sample contrast: blend with the image's mean gray level."""
    mean = grayscale(x).mean((1, 2, 3), keepdim=True)
    return (factor * x + (1 - factor) * mean).clamp(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-sample saturation: blend with the grayscale image."""
    return (factor * x + (1 - factor) * grayscale(x)).clamp(0, 1)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-sample hue rotation by ``factor`` turns (in [-0.5, 0.5])."""
    hsv = rgb_to_hsv(x)
    hue = torch.remainder(hsv[:, :1] + factor, 1.0)
    return hsv_to_rgb(torch.cat([hue, hsv[:, 1:]], 1))


#: The colour-jitter operations, in torchvision's order (the component shuffles them).
JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def sobel(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the luma of (B, C, H, W) images in [0, 1], C in {1, 3}.

    The 3x3 Sobel responses (replicate padding) are combined as sqrt(gx² + gy²) / 4 and
    clipped to [0, 1] (a full-contrast step edge gives 1), then copied to all C channels.
    """
    g = grayscale(x)
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                     dtype=x.dtype, device=x.device)
    padded = F.pad(g, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, k.view(1, 1, 3, 3))
    gy = F.conv2d(padded, k.T.reshape(1, 1, 3, 3))
    return ((gx.square() + gy.square()).sqrt() / 4).clamp(0, 1).expand_as(x)


def gaussian_kernels(sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """(B, kernel) normalised 1-D Gaussian weights for per-sample ``sigma`` (B,), laid out as
    torchvision's ``gaussian_blur``."""
    half = (kernel - 1) * 0.5
    t = torch.linspace(-half, half, kernel, dtype=sigma.dtype, device=sigma.device)
    w = torch.exp(-0.5 * (t.unsqueeze(0) / sigma.unsqueeze(1)).square())
    return w / w.sum(1, keepdim=True)


def blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with per-sample ``sigma``, reflect padding."""
    b, c, h, w = x.shape
    weights = gaussian_kernels(sigma.to(x.dtype), kernel).repeat_interleave(c, 0)  # (B*C, K)
    pad = kernel // 2
    y = F.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, weights.view(b * c, 1, 1, kernel), groups=b * c)
    y = F.conv2d(y, weights.view(b * c, 1, kernel, 1), groups=b * c)
    return y.view(b, c, h, w)
