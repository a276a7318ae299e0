"""Frozen copy of ``alignuniform.data.recipes`` as it was before recipes were built from
components (commit 06a4c03): the reference that the presets must reproduce draw for draw.

Do not edit: tests/test_augment.py compares today's presets with these executors, same seed,
identical tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

STL10_MEAN, STL10_STD = (0.4409, 0.4279, 0.3868), (0.2683, 0.2610, 0.2687)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, with torchvision's rounding


@dataclass(frozen=True)
class RecipeSpec:
    """The parameters of an augmentation recipe.

    Attributes:
        size: Output height and width.
        train: Random training views if True; else the deterministic evaluation transform
            (resize the shorter side to ``resize`` if set, centre-crop ``size``).
        scale: RandomResizedCrop area range.
        ratio: RandomResizedCrop aspect-ratio range.
        flip: Random horizontal flip with probability 0.5.
        jitter: ColorJitter (brightness, contrast, saturation, hue) strengths.
        p_jitter: Probability of applying the colour jitter.
        p_gray: Probability of converting to grayscale.
        mean: Normalisation mean per channel.
        std: Normalisation standard deviation per channel.
        resize: Shorter-side resize of the evaluation transform.
    """

    size: int
    train: bool = True
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.4)
    p_jitter: float = 1.0
    p_gray: float = 0.2
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: int | None = None

    def per_sample(self) -> v2.Compose:
        """The recipe as a torchvision.transforms.v2 pipeline (uint8 image -> float)."""
        if not self.train:
            ops = [v2.Resize(self.resize, antialias=True)] if self.resize else []
            ops.append(v2.CenterCrop(self.size))
            return v2.Compose([*ops, *self._to_float()])
        ops = [v2.RandomResizedCrop(self.size, scale=self.scale, ratio=self.ratio, antialias=True)]
        if self.flip:
            ops.append(v2.RandomHorizontalFlip())
        if any(self.jitter) and self.p_jitter > 0:
            ops.append(v2.RandomApply([v2.ColorJitter(*self.jitter)], p=self.p_jitter))
        if self.p_gray > 0:
            ops.append(v2.RandomGrayscale(p=self.p_gray))
        return v2.Compose([*ops, *self._to_float()])

    def batched(self) -> BatchAugment:
        """The recipe as a batched executor (see ``BatchAugment``)."""
        return BatchAugment(self)

    def _to_float(self) -> list:
        return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]


# The paper's STL-10 recipe (Wang & Isola 2020, Appendix B) and its evaluation transform.
STL10 = RecipeSpec(size=64, scale=(0.08, 1.0), mean=STL10_MEAN, std=STL10_STD)
STL10_EVAL = RecipeSpec(size=64, train=False, resize=70, mean=STL10_MEAN, std=STL10_STD)
# CIFAR-10 at 32x32, SimCLR-style jitter (0.4, 0.4, 0.4, 0.1) applied with p = 0.8.
CIFAR10 = RecipeSpec(size=32, scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), p_jitter=0.8,
                     mean=CIFAR10_MEAN, std=CIFAR10_STD)
CIFAR10_EVAL = RecipeSpec(size=32, train=False, mean=CIFAR10_MEAN, std=CIFAR10_STD)
# ImageFolder trees (ImageNet-100 and the like) at 224x224.
IMAGEFOLDER = RecipeSpec(size=224, scale=(0.08, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), p_jitter=0.8)
IMAGEFOLDER_EVAL = RecipeSpec(size=224, train=False, resize=256)
# No augmentation: both views equal the image (for tests; alignment is then trivially 0).
IDENTITY = RecipeSpec(size=32, train=False, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
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
    mean = _gray(x).mean((1, 2, 3), keepdim=True)
    return (factor * x + (1 - factor) * mean).clamp(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-sample saturation: blend with the grayscale image."""
    return (factor * x + (1 - factor) * _gray(x)).clamp(0, 1)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-sample hue rotation by ``factor`` turns (in [-0.5, 0.5])."""
    hsv = rgb_to_hsv(x)
    hue = torch.remainder(hsv[:, :1] + factor, 1.0)
    return hsv_to_rgb(torch.cat([hue, hsv[:, 1:]], 1))


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


class BatchAugment:
    """A training ``RecipeSpec`` applied to a batch, with per-sample random parameters.

    Call it on a (B, C, H, W) uint8 (or [0, 1] float) batch on any device; it returns
    normalised float views of shape (B, C, size, size). Randomness comes from torch's
    global generator of the batch's device, or ``generator`` when given.
    """

    def __init__(self, spec: RecipeSpec) -> None:
        self.spec = spec
        self.eval_transform = None if spec.train else spec.per_sample()

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"BatchAugment expects (B, C, H, W), got {tuple(images.shape)}")
        if self.eval_transform is not None:
            return self.eval_transform(images)  # deterministic: one transform fits the batch
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        x = self.crop_flip(x, generator)
        x = self.color(x, generator)
        mean = torch.tensor(self.spec.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.spec.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def _uniform(self, n: int, low: float, high: float, x: torch.Tensor, generator) -> torch.Tensor:
        u = torch.rand(n, device=x.device, generator=generator, dtype=x.dtype)
        return low + (high - low) * u

    def crop_flip(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """RandomResizedCrop (clipped to the image) and horizontal flip via one affine grid."""
        spec, (b, c, height, width) = self.spec, x.shape
        area = self._uniform(b, *spec.scale, x, generator) * height * width
        log_ratio = self._uniform(b, math.log(spec.ratio[0]), math.log(spec.ratio[1]), x,
                                  generator)
        w = (area * log_ratio.exp()).sqrt().clamp(max=width)
        h = (area / log_ratio.exp()).sqrt().clamp(max=height)
        x0 = self._uniform(b, 0, 1, x, generator) * (width - w)
        y0 = self._uniform(b, 0, 1, x, generator) * (height - h)
        sign = torch.ones(b, device=x.device, dtype=x.dtype)
        if spec.flip:
            flip = torch.rand(b, device=x.device, generator=generator) < 0.5
            sign = torch.where(flip, -sign, sign)
        theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
        # grid coordinates are in [-1, 1] over the full image (align_corners=False)
        theta[:, 0, 0] = sign * w / width
        theta[:, 0, 2] = 2 * (x0 + w / 2) / width - 1
        theta[:, 1, 1] = h / height
        theta[:, 1, 2] = 2 * (y0 + h / 2) / height - 1
        grid = F.affine_grid(theta, [b, c, spec.size, spec.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)

    def color(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """ColorJitter (applied with ``p_jitter``) then RandomGrayscale, per sample."""
        spec, b = self.spec, x.shape[0]
        apply = torch.rand(b, device=x.device, generator=generator) < spec.p_jitter

        def factor(strength: float, centre: float) -> torch.Tensor:
            low = max(0.0, centre - strength) if centre else -strength
            f = self._uniform(b, low, centre + strength, x, generator)
            return torch.where(apply, f, torch.full_like(f, centre)).view(b, 1, 1, 1)

        ops = [
            (op, factor(strength, 0.0 if op is adjust_hue else 1.0))
            for op, strength in zip(_JITTER_OPS, spec.jitter, strict=True)
            if strength
        ]
        for i in torch.randperm(len(ops), device=x.device, generator=generator).tolist():
            op, f = ops[i]
            x = op(x, f)
        if spec.p_gray > 0:
            gray = torch.rand(b, device=x.device, generator=generator) < spec.p_gray
            x = torch.where(gray.view(b, 1, 1, 1), _gray(x).expand_as(x), x)
        return x
