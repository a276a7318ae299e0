"""Two-view augmentation recipes: the paper's presets, built from augmentation components.

A ``RecipeSpec`` holds the numbers of a recipe (crop size and scale, jitter strengths,
probabilities, normalisation). A training spec is a preset of the components of
``alignuniform.data.augment`` (crop, flip, colour jitter, colour drop):
``spec.augment_recipe(augment)`` gives those components, changed by a config's ``augment``
mapping (``{name: {params}}``, see ``parse_augment``), as an ``AugmentRecipe``.
``per_sample`` turns a spec into a torchvision.transforms.v2 pipeline for DataLoader workers
(one image at a time, uint8 (C, H, W) in, float out); ``BatchAugment`` runs the same recipe
on a (B, C, H, W) batch on the training device with per-sample random parameters. See
``benchmarks/bench_data.py`` for which is faster where. tests/test_augment.py pins the
presets' seeded views.

Differences of the batched executor, by design: the crop is resampled bilinearly with
``grid_sample`` (no antialiasing) and a crop that does not fit is clipped rather than
redrawn; the four colour-jitter operations run in one random order per batch rather than
per image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from alignuniform.data.augment import (
    AugmentRecipe,
    BatchAugment,
    ColorDrop,
    ColorJitter,
    Component,
    Crop,
    Flip,
    parse_augment,
)

STL10_MEAN, STL10_STD = (0.4409, 0.4279, 0.3868), (0.2683, 0.2610, 0.2687)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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

    def components(self) -> tuple[Component, ...]:
        """The augmentation components this training spec is a preset of."""
        out: list[Component] = [Crop(scale=self.scale, ratio=self.ratio)]
        if self.flip:
            out.append(Flip(p=0.5))
        if any(self.jitter):  # with p_jitter = 0 still run (as a no-op) by the batched form
            out.append(ColorJitter(*self.jitter, p=self.p_jitter))
        if self.p_gray > 0:
            out.append(ColorDrop(p=self.p_gray))
        return tuple(out)

    def augment_recipe(self, augment: Mapping | None = None) -> AugmentRecipe:
        """The training recipe as components, changed by a config's ``augment`` mapping.

        Args:
            augment: ``{component: {param: value} | true | false}`` and optionally
                ``base: none`` (see ``parse_augment``); ``None`` or ``{}``: the preset.

        Raises:
            ValueError: An unknown component or parameter (listing the valid ones), a bad
                value, or a component that cannot apply to this recipe's images.
        """
        if not self.train:
            raise ValueError("an evaluation recipe is deterministic: it has no augmentation "
                             "components (use the training recipe of the same name)")
        if not augment:
            return AugmentRecipe(self.size, self.components(), self.mean, self.std,
                                 draw_jitter_mask=True)
        return AugmentRecipe(self.size, parse_augment(augment, self.components()), self.mean,
                             self.std)

    def per_sample(self) -> v2.Compose:
        """The recipe as a torchvision.transforms.v2 pipeline (uint8 image -> float)."""
        if not self.train:
            ops = [v2.Resize(self.resize, antialias=True)] if self.resize else []
            ops.append(v2.CenterCrop(self.size))
            return v2.Compose([*ops, *self._to_float()])
        return self.augment_recipe().per_sample()

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
