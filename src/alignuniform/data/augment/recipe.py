"""``AugmentRecipe`` (components + normalisation) and its two executors.

``AugmentRecipe.per_sample()`` is a torchvision.transforms.v2 pipeline for DataLoader
workers (one uint8 (C, H, W) image at a time, torch's global generator); ``BatchAugment``
runs the recipe on a (B, C, H, W) batch on the training device with per-sample random
parameters. Both give the same distribution of views; the batched crop is bilinear without
antialiasing and jitter runs in one random order per batch (see
``alignuniform.data.recipes``).

    >>> import torch
    >>> from alignuniform.data.augment.components import Crop, Flip
    >>> from alignuniform.data.augment.recipe import AugmentRecipe
    >>> recipe = AugmentRecipe(8, (Crop(), Flip()), mean=(0.5,), std=(0.5,))
    >>> images = torch.zeros(4, 1, 12, 12, dtype=torch.uint8)
    >>> recipe.batched()(images, torch.Generator().manual_seed(0)).shape
    torch.Size([4, 1, 8, 8])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from alignuniform.data.augment.components import (
    COMPONENTS,
    Component,
    describe,
    draw_mask,
    draw_uniform,
    in_order,
)

__all__ = ["AugmentRecipe", "BatchAugment"]


@dataclass(frozen=True)
class AugmentRecipe:
    """A training recipe: components applied in order, then normalisation.

    Attributes:
        size: Output height and width (square views).
        components: Components in ``COMPONENTS`` order (see ``parse_augment``).
        mean, std: Normalisation per channel (their length is the number of channels).
        draw_jitter_mask: In the batched executor, draw the colour-jitter mask (one uniform
            per sample) even when no ``color_jitter`` component is on, so that a preset
            without jitter consumes the generator as one with jitter does: the presets set
            it (``RecipeSpec.augment_recipe``), which keeps their seeded views fixed.
    """

    size: int
    components: tuple[Component, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    draw_jitter_mask: bool = False

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} channels but std {len(self.std)}")
        names = [c.name for c in self.components]
        if len(set(names)) != len(names) or names != [c.name for c in in_order(self.components)]:
            raise ValueError(f"components must be distinct and in the order "
                             f"{', '.join(COMPONENTS)}; got {', '.join(names)}")
        for c in self.components:
            c.check_data(self.size, len(self.mean))

    def get(self, name: str) -> Component | None:
        """The component called ``name``, or ``None`` when it is off."""
        return next((c for c in self.components if c.name == name), None)

    def describe(self) -> dict:
        return describe(self.components)

    def per_sample(self) -> v2.Compose:
        """The recipe as a torchvision.transforms.v2 pipeline (uint8 image -> float)."""
        ops: list = []
        if self.get("crop") is None:
            ops += [v2.Resize(self.size, antialias=True), v2.CenterCrop(self.size)]
        for stage in ("uint8", "float"):
            for c in self.components:
                if c.stage == stage:
                    ops += c.per_sample(self)
            if stage == "uint8":
                ops.append(v2.ToDtype(torch.float32, scale=True))
        ops.append(v2.Normalize(self.mean, self.std))
        return v2.Compose(ops)

    def batched(self) -> BatchAugment:
        """The recipe as a batched executor (see ``BatchAugment``)."""
        return BatchAugment(self)


class BatchAugment:
    """A training recipe applied to a batch, with per-sample random parameters.

    Call it on a (B, C, H, W) uint8 (or [0, 1] float) batch on any device; it returns
    normalised float views of shape (B, C, size, size). Randomness comes from torch's
    global generator of the batch's device, or ``generator`` when given.

    Args:
        recipe: An ``AugmentRecipe``, or a ``RecipeSpec`` (an evaluation spec runs its
            deterministic transform on the whole batch).
    """

    def __init__(self, recipe) -> None:
        self.spec, self.eval_transform = recipe, None
        if not isinstance(recipe, AugmentRecipe):  # a RecipeSpec
            if recipe.train:
                recipe = recipe.augment_recipe()
            else:
                self.eval_transform, recipe = recipe.per_sample(), None
        self.recipe = recipe

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"BatchAugment expects (B, C, H, W), got {tuple(images.shape)}")
        if self.eval_transform is not None:
            return self.eval_transform(images)  # deterministic: one transform fits the batch
        recipe = self.recipe
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        x = self.crop_flip(x, generator)
        jitter = recipe.get("color_jitter")
        if jitter is None and recipe.draw_jitter_mask:
            torch.rand(x.shape[0], device=x.device, generator=generator)
        for c in recipe.components:
            if c.name not in ("crop", "flip"):
                x = c.batch(x, generator, recipe)
        mean = torch.tensor(recipe.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(recipe.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def crop_flip(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """RandomResizedCrop (clipped to the image) and horizontal flip via one affine grid;
        without a crop, a centre square resized to ``size`` (antialiased) and the flip."""
        recipe, (b, c, height, width) = self.recipe, x.shape
        crop, flip = recipe.get("crop"), recipe.get("flip")
        if crop is None:
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            x = x[:, :, top : top + side, left : left + side]
            if side != recipe.size:
                x = F.interpolate(x, size=(recipe.size, recipe.size), mode="bilinear",
                                  antialias=True, align_corners=False)
            if flip is not None:
                x = torch.where(draw_mask(b, flip.p, x, generator), x.flip(-1), x)
            return x
        area = draw_uniform(b, crop.scale[0], crop.scale[1], x, generator) * height * width
        log_ratio = draw_uniform(b, math.log(crop.ratio[0]), math.log(crop.ratio[1]), x, generator)
        w = (area * log_ratio.exp()).sqrt().clamp(max=width)
        h = (area / log_ratio.exp()).sqrt().clamp(max=height)
        x0 = draw_uniform(b, 0, 1, x, generator) * (width - w)
        y0 = draw_uniform(b, 0, 1, x, generator) * (height - h)
        sign = torch.ones(b, device=x.device, dtype=x.dtype)
        if flip is not None:
            flipped = torch.rand(b, device=x.device, generator=generator) < flip.p
            sign = torch.where(flipped, -sign, sign)
        theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
        # grid coordinates are in [-1, 1] over the full image (align_corners=False)
        theta[:, 0, 0] = sign * w / width
        theta[:, 0, 2] = 2 * (x0 + w / 2) / width - 1
        theta[:, 1, 1] = h / height
        theta[:, 1, 2] = 2 * (y0 + h / 2) / height - 1
        grid = F.affine_grid(theta, [b, c, recipe.size, recipe.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)
