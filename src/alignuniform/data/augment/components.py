"""The augmentation components: named, switchable, parameterised pieces of a recipe.

Each component is a frozen dataclass whose fields are its parameters (the table in
:mod:`alignuniform.data.augment` lists them with their defaults). It validates them, says
whether it can apply to a recipe's data, and runs in both executors: ``per_sample`` gives
torchvision.transforms.v2 steps (torch's global generator), ``batch`` draws per-sample
parameters from ``generator`` and calls the operations of
:mod:`alignuniform.data.augment.ops`. ``COMPONENTS`` is the registry by config name, in the
fixed order components run in.

    >>> from alignuniform.data.augment.components import COMPONENTS, Flip, in_order
    >>> list(COMPONENTS)[:3]
    ['crop', 'flip', 'color_jitter']
    >>> [c.name for c in in_order([Flip(), COMPONENTS["crop"]()])]
    ['crop', 'flip']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, ClassVar

import torch
from torchvision.transforms import v2

from alignuniform.data.augment.ops import JITTER_OPS, adjust_hue, blur, grayscale, sobel

if TYPE_CHECKING:
    from alignuniform.data.augment.recipe import AugmentRecipe

__all__ = [
    "COMPONENTS",
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
    "describe",
    "in_order",
    "make_component",
]


def draw_uniform(b: int, low: float, high: float, x: torch.Tensor, generator) -> torch.Tensor:
    """(B,) draws uniform in [low, high), of ``x``'s dtype and device."""
    u = torch.rand(b, device=x.device, generator=generator, dtype=x.dtype)
    return low + (high - low) * u


def draw_mask(b: int, p: float, x: torch.Tensor, generator) -> torch.Tensor:
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
            f = draw_uniform(b, low, centre + strength, x, generator)
            return torch.where(apply, f, torch.full_like(f, centre)).view(b, 1, 1, 1)

        ops = [
            (op, factor(strength, 0.0 if op is adjust_hue else 1.0))
            for op, strength in zip(JITTER_OPS, self.strengths, strict=True)
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
        gray = draw_mask(x.shape[0], self.p, x, generator)
        return torch.where(gray, grayscale(x).expand_as(x), x)


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
        apply = draw_mask(b, self.p, x, generator)
        sigma = draw_uniform(b, *self.sigma, x, generator)
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
        return torch.where(draw_mask(x.shape[0], self.p, x, generator), sobel(x), x)


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
        apply = draw_mask(x.shape[0], self.p, x, generator)
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
        apply = draw_mask(b, self.p, x, generator)
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
_POSITION = {name: i for i, name in enumerate(COMPONENTS)}


def in_order(components: Iterable[Component]) -> tuple[Component, ...]:
    """``components`` sorted into the execution order of ``COMPONENTS``."""
    return tuple(sorted(components, key=lambda c: _POSITION[c.name]))


def describe(components: tuple[Component, ...]) -> dict:
    """``{name: params}`` of ``components``: what to record beside results."""
    return {c.name: c.params() for c in components}


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
