"""Augmentation components: the named, switchable, parameterised pieces of a two-view recipe.

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

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

_GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, with torchvision's rounding


# ---------------------------------------------------------------------------------------------
# batched colour primitives (checked against torchvision per image in tests/test_data.py)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
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


def sobel(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the luma of (B, C, H, W) images in [0, 1], C in {1, 3}.

    The 3x3 Sobel responses (replicate padding) are combined as sqrt(gx² + gy²) / 4 and
    clipped to [0, 1] (a full-contrast step edge gives 1), then copied to all C channels.
    """
    g = _gray(x)
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


# ---------------------------------------------------------------------------------------------
# components


def _uniform(b: int, low: float, high: float, x: torch.Tensor, generator) -> torch.Tensor:
    u = torch.rand(b, device=x.device, generator=generator, dtype=x.dtype)
    return low + (high - low) * u


def _drawn(b: int, p: float, x: torch.Tensor, generator) -> torch.Tensor:
    """(B, 1, 1, 1) mask of the samples a component with probability ``p`` applies to."""
    return (torch.rand(b, device=x.device, generator=generator) < p).view(b, 1, 1, 1)


def _fail(component: str, message: str) -> ValueError:
    return ValueError(f"augmentation component {component!r}: {message}")


@dataclass(frozen=True)
class Component:
    """One augmentation. Subclasses are frozen dataclasses whose fields are the parameters.

    Class attributes: ``name`` (the config key), ``rgb`` (needs three channels) and
    ``stage`` ("uint8": before the per-sample pipeline converts to float, "float": after).
    """

    name: ClassVar[str] = ""
    rgb: ClassVar[bool] = False
    stage: ClassVar[str] = "float"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # YAML gives lists
                object.__setattr__(self, f.name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the component if a parameter is out of range."""

    def params(self) -> dict:
        """The parameters as a plain dict (tuples as lists, for configs and JSON)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def check_data(self, size: int, channels: int) -> None:
        """Raise ``ValueError`` if the component cannot apply to (channels, size, size)."""
        if self.rgb and channels != 3:
            raise _fail(self.name, f"needs RGB images (3 channels); this recipe's data have "
                                   f"{channels}")

    def per_sample(self, recipe: AugmentRecipe) -> list[Callable]:
        """The transforms of the per-sample executor (one (C, H, W) image per call)."""
        raise NotImplementedError

    def batch(self, x: torch.Tensor, generator, recipe: AugmentRecipe) -> torch.Tensor:
        """The batched executor on (B, C, size, size) floats in [0, 1]."""
        raise NotImplementedError

    # -- parameter checks shared by the subclasses --

    def _number(self, key: str, low: float, high: float, *, integer: bool = False) -> None:
        value = getattr(self, key)
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not low <= value <= high:
            kind = "an integer" if integer else "a number"
            raise _fail(self.name, f"{key} must be {kind} in [{low}, {high}], got {value!r}")

    def _range(self, key: str, low: float, high: float) -> None:
        value = getattr(self, key)
        if (not isinstance(value, tuple) or len(value) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
                or not low <= value[0] <= value[1] <= high):
            raise _fail(self.name, f"{key} must be [lo, hi] with {low} <= lo <= hi <= {high}, "
                                   f"got {value!r}")


@dataclass(frozen=True)
class Crop(Component):
    """Random resized crop (``v2.RandomResizedCrop``)."""

    name: ClassVar[str] = "crop"
    stage: ClassVar[str] = "uint8"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def validate(self) -> None:
        self._range("scale", 1e-6, 1.0)
        self._range("ratio", 1e-6, math.inf)

    def per_sample(self, recipe):
        return [v2.RandomResizedCrop(recipe.size, scale=self.scale, ratio=self.ratio,
                                     antialias=True)]


@dataclass(frozen=True)
class Flip(Component):
    """Horizontal flip with probability ``p``."""

    name: ClassVar[str] = "flip"
    stage: ClassVar[str] = "uint8"
    p: float = 0.5

    def validate(self) -> None:
        self._number("p", 0.0, 1.0)

    def per_sample(self, recipe):
        return [v2.RandomHorizontalFlip(p=self.p)]


@dataclass(frozen=True)
class ColorJitter(Component):
    """``v2.ColorJitter(brightness, contrast, saturation, hue)`` applied with probability p."""

    name: ClassVar[str] = "color_jitter"
    stage: ClassVar[str] = "uint8"
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    p: float = 0.8

    def validate(self) -> None:
        for key in ("brightness", "contrast", "saturation"):
            self._number(key, 0.0, 1e3)
        self._number("hue", 0.0, 0.5)
        self._number("p", 0.0, 1.0)

    @property
    def strengths(self) -> tuple[float, float, float, float]:
        return (self.brightness, self.contrast, self.saturation, self.hue)

    def check_data(self, size: int, channels: int) -> None:
        if channels != 3 and (self.saturation or self.hue):
            raise _fail(self.name, f"saturation and hue need RGB images (3 channels); this "
                                   f"recipe's data have {channels} (set them to 0)")

    def per_sample(self, recipe):
        if not any(self.strengths) or self.p <= 0:
            return []
        return [v2.RandomApply([v2.ColorJitter(*self.strengths)], p=self.p)]

    def batch(self, x, generator, recipe):
        b = x.shape[0]
        apply = torch.rand(b, device=x.device, generator=generator) < self.p

        def factor(strength: float, centre: float) -> torch.Tensor:
            low = max(0.0, centre - strength) if centre else -strength
            f = _uniform(b, low, centre + strength, x, generator)
            return torch.where(apply, f, torch.full_like(f, centre)).view(b, 1, 1, 1)

        ops = [
            (op, factor(strength, 0.0 if op is adjust_hue else 1.0))
            for op, strength in zip(_JITTER_OPS, self.strengths, strict=True)
            if strength
        ]
        for i in torch.randperm(len(ops), device=x.device, generator=generator).tolist():
            op, f = ops[i]
            x = op(x, f)
        return x


@dataclass(frozen=True)
class ColorDrop(Component):
    """Grayscale with probability ``p`` (``v2.RandomGrayscale``)."""

    name: ClassVar[str] = "color_drop"
    rgb: ClassVar[bool] = True
    stage: ClassVar[str] = "uint8"
    p: float = 0.2

    def validate(self) -> None:
        self._number("p", 0.0, 1.0)

    def per_sample(self, recipe):
        return [v2.RandomGrayscale(p=self.p)] if self.p > 0 else []

    def batch(self, x, generator, recipe):
        if self.p <= 0:
            return x
        gray = _drawn(x.shape[0], self.p, x, generator)
        return torch.where(gray, _gray(x).expand_as(x), x)


class _Rot90:
    """Per-sample rotation by an angle drawn from ``angles`` (multiples of 90)."""

    def __init__(self, angles: tuple[int, ...]) -> None:
        self.quarters = [a // 90 % 4 for a in angles]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        k = self.quarters[int(torch.randint(len(self.quarters), (1,)))]
        return torch.rot90(x, k, (-2, -1)) if k else x


@dataclass(frozen=True)
class Rotation(Component):
    """Rotation by an angle drawn uniformly from ``angles`` (multiples of 90 degrees)."""

    name: ClassVar[str] = "rotation"
    stage: ClassVar[str] = "uint8"
    angles: tuple[int, ...] = (0, 90, 180, 270)

    def validate(self) -> None:
        a = self.angles
        if (not isinstance(a, tuple) or not a
                or any(isinstance(v, bool) or not isinstance(v, int) or v % 90 for v in a)):
            raise _fail(self.name, f"angles must be a non-empty list of multiples of 90 "
                                   f"degrees, got {a!r}")

    def per_sample(self, recipe):
        return [_Rot90(self.angles)]

    def batch(self, x, generator, recipe):
        quarters = torch.tensor([a // 90 % 4 for a in self.angles], device=x.device)
        pick = torch.randint(len(self.angles), (x.shape[0],), device=x.device,
                             generator=generator)
        k = quarters[pick]
        out = x.clone()
        for r in (1, 2, 3):
            rows = k == r
            if rows.any():
                out[rows] = torch.rot90(x[rows], r, (2, 3))
        return out


class _Random:
    """Apply ``fn`` to a (C, H, W) float image with probability ``p`` (global generator)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], p: float) -> None:
        self.fn, self.p = fn, p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.p < 1 and not float(torch.rand(1)) < self.p:
            return x
        return self.fn(x)


@dataclass(frozen=True)
class GaussianBlur(Component):
    """Gaussian blur (``v2.GaussianBlur``) with probability ``p``."""

    name: ClassVar[str] = "gaussian_blur"
    sigma: tuple[float, float] = (0.1, 2.0)
    kernel: int = 0
    p: float = 0.5

    def validate(self) -> None:
        self._range("sigma", 1e-3, 1e3)
        self._number("kernel", 0, 1001, integer=True)
        if self.kernel and self.kernel % 2 == 0:
            raise _fail(self.name, f"kernel must be odd (or 0 for about a tenth of the image "
                                   f"size), got {self.kernel}")
        self._number("p", 0.0, 1.0)

    def kernel_size(self, size: int) -> int:
        return self.kernel or max(3, (size // 10) | 1)

    def check_data(self, size: int, channels: int) -> None:
        if self.kernel_size(size) // 2 >= size:
            raise _fail(self.name, f"kernel {self.kernel_size(size)} is too large for "
                                   f"{size}x{size} images")

    def per_sample(self, recipe):
        blur_op = v2.GaussianBlur(self.kernel_size(recipe.size), sigma=self.sigma)
        return [v2.RandomApply([blur_op], p=self.p)]

    def batch(self, x, generator, recipe):
        b = x.shape[0]
        apply = _drawn(b, self.p, x, generator)
        sigma = _uniform(b, *self.sigma, x, generator)
        return torch.where(apply, blur(x, sigma, self.kernel_size(recipe.size)), x)


def _sobel_one(x: torch.Tensor) -> torch.Tensor:
    return sobel(x.unsqueeze(0))[0]


@dataclass(frozen=True)
class Sobel(Component):
    """Sobel edge magnitude (see :func:`sobel`) with probability ``p``.

    The default is 0.5: Sobel is deterministic, so with ``p = 1`` both views of an image
    are the same edge map (alignment is trivially 0) and the encoder is evaluated on
    natural images it never saw in training (a pilot run collapsed that way).
    """

    name: ClassVar[str] = "sobel"
    p: float = 0.5

    def validate(self) -> None:
        self._number("p", 0.0, 1.0)

    def check_data(self, size: int, channels: int) -> None:
        if channels not in (1, 3):
            raise _fail(self.name, f"needs 1- or 3-channel images; this recipe's data have "
                                   f"{channels}")

    def per_sample(self, recipe):
        return [_Random(_sobel_one, self.p)]

    def batch(self, x, generator, recipe):
        return torch.where(_drawn(x.shape[0], self.p, x, generator), sobel(x), x)


class _Noise:
    def __init__(self, std: float) -> None:
        self.std = std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.std * torch.randn_like(x)).clamp(0, 1)


@dataclass(frozen=True)
class GaussianNoise(Component):
    """Additive Gaussian noise on [0, 1] pixels, clipped, with probability ``p``."""

    name: ClassVar[str] = "gaussian_noise"
    std: float = 0.1
    p: float = 1.0

    def validate(self) -> None:
        self._number("std", 0.0, 1e3)
        self._number("p", 0.0, 1.0)

    def per_sample(self, recipe):
        return [_Random(_Noise(self.std), self.p)]

    def batch(self, x, generator, recipe):
        apply = _drawn(x.shape[0], self.p, x, generator)
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return torch.where(apply, (x + self.std * noise).clamp(0, 1), x)


def _cutout_mask(h: int, w: int, cy: torch.Tensor, cx: torch.Tensor, side: int) -> torch.Tensor:
    """(B, 1, H, W) mask of squares of ``side`` centred at (cy, cx), clipped at the border."""
    y = torch.arange(h, device=cy.device).view(1, h, 1)
    x = torch.arange(w, device=cx.device).view(1, 1, w)
    lo_y, lo_x = (cy - side // 2).view(-1, 1, 1), (cx - side // 2).view(-1, 1, 1)
    return ((y >= lo_y) & (y < lo_y + side) & (x >= lo_x) & (x < lo_x + side)).unsqueeze(1)


class _Cutout:
    def __init__(self, side: float, fill: tuple[float, ...]) -> None:
        self.side, self.fill = side, fill

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        centre = torch.randint(h, (1,)), torch.randint(w, (1,))
        mask = _cutout_mask(h, w, *centre, round(self.side * min(h, w)))[0]
        fill = torch.tensor(self.fill, dtype=x.dtype).view(-1, 1, 1)
        return torch.where(mask, fill, x)


@dataclass(frozen=True)
class Cutout(Component):
    """Cutout (DeVries & Taylor 2017): one square of the mean colour, with probability p."""

    name: ClassVar[str] = "cutout"
    side: float = 0.5
    p: float = 1.0

    def validate(self) -> None:
        self._number("side", 0.0, 1.0)
        self._number("p", 0.0, 1.0)

    def per_sample(self, recipe):
        return [_Random(_Cutout(self.side, recipe.mean), self.p)]

    def batch(self, x, generator, recipe):
        b, _, h, w = x.shape
        apply = _drawn(b, self.p, x, generator)
        cy = (torch.rand(b, device=x.device, generator=generator) * h).long().clamp(max=h - 1)
        cx = (torch.rand(b, device=x.device, generator=generator) * w).long().clamp(max=w - 1)
        mask = _cutout_mask(h, w, cy, cx, round(self.side * min(h, w))) & apply
        fill = torch.tensor(recipe.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return torch.where(mask, fill, x)


# the order components run in, whatever order a config lists them in
COMPONENTS: dict[str, type[Component]] = {
    cls.name: cls
    for cls in (Crop, Flip, ColorJitter, ColorDrop, Rotation, GaussianBlur, Sobel,
                GaussianNoise, Cutout)
}
_ORDER = {name: i for i, name in enumerate(COMPONENTS)}


def make_component(name: str, params: Mapping | None = None) -> Component:
    """Component ``name`` with ``params`` (the others at their defaults).

    Raises:
        ValueError: An unknown name or parameter (listing the valid ones), or a bad value.
    """
    if name not in COMPONENTS:
        raise ValueError(f"unknown augmentation component {name!r}; valid components: "
                         f"{', '.join(COMPONENTS)}")
    cls, params = COMPONENTS[name], dict(params or {})
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise _fail(name, f"unknown parameter(s) {', '.join(map(repr, unknown))}; valid "
                          f"parameters: {', '.join(valid)}")
    return cls(**params)


def parse_augment(augment: Mapping, base: tuple[Component, ...] = ()) -> tuple[Component, ...]:
    """The components of a config's ``augment`` mapping applied on top of ``base``.

    Each entry ``name: {param: value}`` turns component ``name`` on, its parameters taken
    from the mapping, else from ``base``'s component of that name, else the defaults;
    ``name: true`` (or ``{}``) turns it on unchanged; ``name: false`` (or ``null``) turns it
    off. The reserved entry ``base: none`` starts from no component instead of ``base``
    (``base: recipe``, the default), so ``{base: none, crop: {}}`` is crop alone.

    Returns:
        The components in the fixed execution order (``COMPONENTS``).
    """
    if not isinstance(augment, Mapping):
        raise TypeError(f"augment must be a mapping of component name to parameters, got "
                        f"{type(augment).__name__}")
    augment = dict(augment)
    start = augment.pop("base", "recipe")
    if start not in ("recipe", "none"):
        raise ValueError(f"augment.base must be 'recipe' (start from the recipe's components) "
                         f"or 'none' (start from none), got {start!r}")
    current = {c.name: c for c in base} if start == "recipe" else {}
    for name, params in augment.items():
        if name not in COMPONENTS:
            raise ValueError(f"unknown augmentation component {name!r}; valid components: "
                             f"{', '.join(COMPONENTS)} (and 'base: none|recipe')")
        if params is False or params is None:
            current.pop(name, None)
            continue
        if params is True:
            params = {}
        if not isinstance(params, Mapping):
            raise TypeError(f"augment.{name} must be a mapping of parameters, true or false, "
                            f"got {params!r}")
        make_component(name, params)  # unknown parameters name themselves, not the merge
        inherited = asdict(current[name]) if name in current else {}
        current[name] = make_component(name, {**inherited, **params})
    return tuple(sorted(current.values(), key=lambda c: _ORDER[c.name]))


def describe(components: tuple[Component, ...]) -> dict:
    """``{name: params}`` of ``components``: what to record beside results."""
    return {c.name: c.params() for c in components}


@dataclass(frozen=True)
class AugmentRecipe:
    """A training recipe: components applied in order, then normalisation.

    Attributes:
        size: Output height and width (square views).
        components: Components in ``COMPONENTS`` order (see ``parse_augment``).
        mean, std: Normalisation per channel (their length is the number of channels).
        draw_jitter_mask: In the batched executor, draw the colour-jitter mask even when no
            ``color_jitter`` component is on. The executor before components did; presets
            set it so that seeded batched runs reproduce draw for draw.
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
        if len(set(names)) != len(names) or names != sorted(names, key=_ORDER.__getitem__):
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
                x = torch.where(_drawn(b, flip.p, x, generator), x.flip(-1), x)
            return x
        area = _uniform(b, crop.scale[0], crop.scale[1], x, generator) * height * width
        log_ratio = _uniform(b, math.log(crop.ratio[0]), math.log(crop.ratio[1]), x, generator)
        w = (area * log_ratio.exp()).sqrt().clamp(max=width)
        h = (area / log_ratio.exp()).sqrt().clamp(max=height)
        x0 = _uniform(b, 0, 1, x, generator) * (width - w)
        y0 = _uniform(b, 0, 1, x, generator) * (height - h)
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
