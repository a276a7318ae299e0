"""Multi-object scenes with per-pixel labels, built from small labelled images (CIFAR-10).

A dense task that runs on CPU from real images. Each scene is a square canvas (64x64 by
default) whose background is a blurred, enlarged crop of one image of the pool, with objects
pasted on top: each object is one image of the pool resized to a random side and cut out by
the ellipse inscribed in it (CIFAR-10 objects sit mostly in the centre of their images).
Objects are pasted in order, so a later one hides an earlier one where they overlap. The
label map is known by construction: the class of the object visible at each pixel, or
``background`` (= the number of classes, 10 for CIFAR-10) elsewhere.

Two variants:

- ``"single"``: one object of side 32-56 px (64 px canvas; scaled with the canvas);
- ``"multi"``: 1-4 objects of side 16-36 px.

Scenes are generated on the fly from ``(seed, index)`` alone (NumPy's ``default_rng([seed,
index])``), so scene ``i`` is the same whatever order or worker reads it; ``cache()`` holds
them all in memory. The pool of images decides what a model has seen: build evaluation
scenes from the validation hold-out (``build_scenes(root, "val")``), which training never
saw. A training run's ``data.scenes`` builds its training scenes from its own training
images (``pool_tensors`` of the subset it trains on).

Examples:
    Needs the CIFAR-10 data on disk, so it is not run as a test:

    >>> from alignuniform.data.scenes import build_scenes
    >>> scenes = build_scenes("../shared/data/cifar10/cifar10-train-jpeg.zip", "val",
    ...                       variant="multi", n_scenes=1000, seed=0)  # doctest: +SKIP
    >>> image, labels = scenes[0]  # doctest: +SKIP

    ``image`` is (3, 64, 64) uint8, ``labels`` (64, 64) int64 in 0..10.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision.transforms.v2 import functional as TF

VARIANTS = {
    # name: (min objects, max objects, min side, max side) at a 64 px canvas
    "single": (1, 1, 32, 56),
    "multi": (1, 4, 16, 36),
}


@dataclass(frozen=True)
class PastedObject:
    """One object of a scene: its class, the pool image it came from, its square box
    ``(x0, y0, side)`` on the canvas and its full (unoccluded) boolean mask on the canvas."""

    label: int
    source: int
    x0: int
    y0: int
    side: int
    mask: torch.Tensor


@dataclass(frozen=True)
class Scene:
    image: torch.Tensor  # (3, S, S) uint8
    labels: torch.Tensor  # (S, S) int64
    objects: tuple[PastedObject, ...]


def _ellipse(side: int) -> torch.Tensor:
    r = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1
    return (r[:, None] ** 2 + r[None, :] ** 2) <= 0.95**2


class SceneDataset(Dataset):
    """``(image, label_map)`` scenes from a pool of labelled images.

    Args:
        images: ``(N, 3, h, w)`` uint8 pool (objects and backgrounds come from it).
        labels: ``(N,)`` class of each pool image, in ``0 .. num_classes - 1``.
        n_scenes: Number of scenes.
        variant: ``"single"`` or ``"multi"``.
        canvas: Side of the square canvas (64 or 96, any >= 16).
        num_classes: Number of object classes; the background label is ``num_classes``.
        seed: Seed; scene ``i`` depends on ``(seed, i)`` only.
        transform: Applied to each uint8 image (the label map is returned unchanged).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | np.ndarray,
        n_scenes: int,
        variant: str = "multi",
        *,
        canvas: int = 64,
        num_classes: int = 10,
        seed: int = 0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("images must be an (N, 3, h, w) uint8 tensor")
        if len(images) < 2:
            raise ValueError("the pool needs at least 2 images (objects and backgrounds)")
        if canvas < 16:
            raise ValueError(f"canvas must be >= 16 px, got {canvas}")
        self.images = images
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if len(self.labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(self.labels)} labels")
        if int(self.labels.min()) < 0 or int(self.labels.max()) >= num_classes:
            raise ValueError(f"labels must lie in 0..{num_classes - 1}")
        self.n_scenes, self.variant, self.canvas = int(n_scenes), variant, int(canvas)
        self.num_classes, self.background = num_classes, num_classes
        self.seed, self.transform = int(seed), transform
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.n_scenes

    def scene(self, index: int) -> Scene:
        """Scene ``index`` with its objects (for tests and figures)."""
        if not 0 <= index < self.n_scenes:
            raise IndexError(f"scene {index} out of range (0..{self.n_scenes - 1})")
        rng = np.random.default_rng([self.seed, index])
        s = self.canvas
        k_min, k_max, side_min, side_max = VARIANTS[self.variant]
        side_min, side_max = round(side_min * s / 64), round(side_max * s / 64)
        n_pool = len(self.images)
        # background: a blurred, enlarged crop (half to all of the image) of one pool image
        bg_idx = int(rng.integers(n_pool))
        h, w = self.images.shape[-2:]
        ch, cw = (int(rng.integers(max(1, d // 2), d + 1)) for d in (h, w))
        top, left = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        bg = self.images[bg_idx, :, top : top + ch, left : left + cw]
        bg = TF.resize(bg, [s, s], antialias=True)
        image = TF.gaussian_blur(bg, kernel_size=[2 * (s // 16) + 1] * 2, sigma=[s / 16] * 2)
        image = image.clone()
        labels = torch.full((s, s), self.background, dtype=torch.int64)
        objects = []
        for _ in range(int(rng.integers(k_min, k_max + 1))):
            src = int(rng.integers(n_pool))
            side = int(rng.integers(side_min, side_max + 1))
            x0, y0 = int(rng.integers(s - side + 1)), int(rng.integers(s - side + 1))
            obj = TF.resize(self.images[src], [side, side], antialias=True)
            local = _ellipse(side)
            mask = torch.zeros(s, s, dtype=torch.bool)
            mask[y0 : y0 + side, x0 : x0 + side] = local
            window = image[:, y0 : y0 + side, x0 : x0 + side]
            window[:, local] = obj[:, local]
            labels[mask] = int(self.labels[src])
            objects.append(PastedObject(int(self.labels[src]), src, x0, y0, side, mask))
        return Scene(image, labels, tuple(objects))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is not None:
            image, labels = self._cache[0][index], self._cache[1][index]
        else:
            scene = self.scene(index)
            image, labels = scene.image, scene.labels
        if self.transform is not None:
            image = self.transform(image)
        return image, labels

    def cache(self) -> SceneDataset:
        """Generate every scene once and keep them in memory (returns self)."""
        if self._cache is None:
            scenes = [self.scene(i) for i in range(self.n_scenes)]
            self._cache = (torch.stack([sc.image for sc in scenes]),
                           torch.stack([sc.labels for sc in scenes]))
        return self

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All scenes as ``(N, 3, S, S)`` uint8 images and ``(N, S, S)`` label maps."""
        return self.cache()._cache  # type: ignore[return-value]


def pool_tensors(pool: Dataset) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(images, labels, num_classes)`` of an in-memory image data set (an
    ``ArrayDataset``, or ``torch.utils.data.Subset`` s of one): the pool of
    :class:`SceneDataset`.

    Raises:
        ValueError: ``pool`` holds no ``images``/``labels``/``classes`` tensors (e.g. a data
            set read from files one by one, or 1-D signals).

    >>> from alignuniform.data.synthetic import build_synthetic
    >>> from torch.utils.data import Subset
    >>> images, labels, k = pool_tensors(Subset(build_synthetic(n=20), [3, 7]))
    >>> tuple(images.shape), labels.tolist(), k
    ((2, 3, 32, 32), [3, 7], 10)
    """
    index: torch.Tensor | None = None
    base = pool
    while isinstance(base, Subset):  # outermost first: the inner subset's indices compose
        inner = torch.as_tensor(base.indices, dtype=torch.int64)
        index = inner if index is None else inner[index]
        base = base.dataset
    images, labels = getattr(base, "images", None), getattr(base, "labels", None)
    classes = getattr(base, "classes", None)
    if not (isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor)
            and classes is not None):
        raise ValueError(f"scenes need an in-memory image data set (images, labels and "
                         f"classes, as cifar10 or synthetic have), got {type(base).__name__}")
    if index is not None:
        images, labels = images[index], labels[index]
    return images, labels, len(classes)


def build_scenes(
    root: str | Path | None,
    split: str = "val",
    *,
    variant: str = "multi",
    n_scenes: int = 1000,
    canvas: int = 64,
    seed: int = 0,
    dataset: str = "cifar10",
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    **dataset_kwargs,
) -> SceneDataset:
    """Scenes whose objects and backgrounds come from ``split`` of a labelled image set.

    Use ``split="val"`` (the seeded stratified hold-out of CIFAR-10 training images) for
    evaluation scenes and ``"train"`` for training scenes: the two pools are disjoint.
    ``dataset_kwargs`` go to ``build_dataset`` (e.g. ``val_fraction``, ``split_seed``).
    """
    from alignuniform.data import build_dataset

    images, labels, num_classes = pool_tensors(
        build_dataset(dataset, root, split, **dataset_kwargs))  # type: ignore[arg-type]
    return SceneDataset(images, labels, n_scenes, variant, canvas=canvas,
                        num_classes=num_classes, seed=seed, transform=transform)
