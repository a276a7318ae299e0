"""Augmentation components: the named, switchable, parameterised pieces of a two-view recipe.

The package in four modules: :mod:`~alignuniform.data.augment.ops` (the batched tensor
operations), :mod:`~alignuniform.data.augment.components` (the components and their
registry), :mod:`~alignuniform.data.augment.parse` (a config's ``augment`` mapping to
components) and :mod:`~alignuniform.data.augment.recipe` (``AugmentRecipe`` and its two
executors). Their public names are importable from here.

A recipe is an ``AugmentRecipe``: an output size, a normalisation and a tuple of
components, always applied in this fixed order (whatever order a config lists them in):

=================  ==========================================================  ============
component          what it does (parameters, defaults)                         data
=================  ==========================================================  ============
``crop``           random crop of ``scale`` of the area with aspect ratio in    2-D images
                   ``ratio``, resized to the output size (0.08–1, 3/4–4/3);
                   when absent, a deterministic resize + centre crop
``flip``           horizontal flip with probability ``p`` (0.5)                 2-D images
``color_jitter``   brightness, contrast, saturation, hue jitter (0.4, 0.4,      RGB
                   0.4, 0.1) applied with probability ``p`` (0.8)
``color_drop``     convert to grayscale with probability ``p`` (0.2)            RGB
``rotation``       rotate by an angle drawn uniformly from ``angles`` (0, 90,   2-D images
                   180, 270; multiples of 90 only)
``gaussian_blur``  Gaussian blur, sigma uniform in ``sigma`` (0.1–2.0), odd     2-D images
                   ``kernel`` (0: about a tenth of the size), probability ``p``
                   (0.5)
``sobel``          Sobel gradient magnitude of the luma (edges), divided by     1 or 3
                   4 and clipped to [0, 1], copied to every channel, with       channels
                   probability ``p`` (0.5: at 1 both views are the same edge
                   map and the encoder never sees a natural image)
``gaussian_noise`` add N(0, ``std``²) to [0, 1] pixels (0.1), clip, with        2-D images
                   probability ``p`` (1.0)
``cutout``         fill a square of side ``side`` × the image side (0.5) at a   2-D images
                   uniform centre (clipped at the border) with the mean
                   colour, with probability ``p`` (1.0)
=================  ==========================================================  ============

``parse_augment`` turns a config mapping ``{name: {param: value}}`` into components on top
of a preset's (``true``/``{}`` enables with the preset's or default parameters, ``false``
removes, ``base: none`` starts from no component); unknown names and parameters, and
components that cannot apply to the data (colour on single-channel images, anything on
non-image recipes), are errors when the recipe is built, before any DataLoader worker.

Two executors run a recipe: ``AugmentRecipe.per_sample()`` (torchvision.transforms.v2, one
image at a time, torch's global generator) and ``BatchAugment`` (a (B, C, H, W) batch on the
training device, per-sample random parameters). Both give the same distribution of views;
the batched crop is bilinear without antialiasing and jitter runs in one random order per
batch (see ``alignuniform.data.recipes``).
"""

from alignuniform.data.augment.components import (
    COMPONENTS,
    ColorDrop,
    ColorJitter,
    Component,
    Crop,
    Cutout,
    Flip,
    GaussianBlur,
    GaussianNoise,
    Rotation,
    Sobel,
    describe,
    in_order,
    make_component,
)
from alignuniform.data.augment.ops import (
    JITTER_OPS,
    LUMA,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    blur,
    gaussian_kernels,
    grayscale,
    hsv_to_rgb,
    rgb_to_hsv,
    sobel,
)
from alignuniform.data.augment.parse import parse_augment
from alignuniform.data.augment.recipe import AugmentRecipe, BatchAugment

__all__ = [
    "COMPONENTS",
    "JITTER_OPS",
    "LUMA",
    "AugmentRecipe",
    "BatchAugment",
    "ColorDrop",
    "ColorJitter",
    "Component",
    "Crop",
    "Cutout",
    "Flip",
    "GaussianBlur",
    "GaussianNoise",
    "Rotation",
    "Sobel",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "blur",
    "describe",
    "gaussian_kernels",
    "grayscale",
    "hsv_to_rgb",
    "in_order",
    "make_component",
    "parse_augment",
    "rgb_to_hsv",
    "sobel",
]
