"""Two views with their crop geometry, for dense (per-location) positive pairs.

Any torchvision.transforms.v2 pipeline (e.g. ``RecipeSpec.per_sample()``) is run on the
image together with two ``tv_tensors.BoundingBoxes`` in float coordinates and without
clamping: the whole image frame ``(0, 0, W, H)``, its left half ``(0, 0, W / 2, H)`` and its
top half ``(0, 0, W, H / 2)`` (which catches vertical flips).
The geometric transforms move the boxes exactly as they move the pixels (colour transforms
leave them alone), so after the pipeline

- the view was mirrored left-right when the left-half box ends up right of the frame's
  centre;
- the frame box, in view pixels ``(a0, b0, a1, b1)``, gives the crop of the original image
  that the view shows: ``(-l / sx, -b0 / sy, (S_w - l) / sx, (S_h - b0) / sy)`` with
  ``sx = (a1 - a0) / W``, ``sy = (b1 - b0) / H`` (view size ``S_h x S_w``) and ``l`` where
  the image's left edge would be before the mirroring: ``a0``, or ``S_w - a1`` when
  mirrored.

Box and flip follow ``alignuniform.dense``'s convention (original-image pixels, flip applied
after the crop), so ``dense.geometric_pairs(box1, box2, ...)`` gives the ground-truth
correspondence of the two views. Supported: crops, resizes and horizontal flips (every
recipe in ``data.recipes``); rotations, affine warps and vertical flips are not (an error
says so when the boxes show one).

Examples:
    With ``scenes`` a data set of scenes (``alignuniform.data.scenes``; not run as a test):

    >>> from alignuniform.data.dense_views import DenseTwoViews
    >>> from alignuniform.data.recipes import RecipeSpec, CIFAR10_MEAN, CIFAR10_STD
    >>> spec = RecipeSpec(size=64, scale=(0.2, 1.0), mean=CIFAR10_MEAN, std=CIFAR10_STD)
    >>> pairs = DenseTwoViews(scenes, spec)  # doctest: +SKIP
    >>> item = pairs[0]  # doctest: +SKIP

    ``item`` is a dict: view1, view2, box1, box2, flip1, flip2, size, target.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from alignuniform.data.recipes import RecipeSpec

#: Rounding tolerance, in original pixels, for a recovered box touching the image border.
_TOL = 1e-3


class DenseViewRecipe:
    """One random view and its geometry: ``recipe(image) -> (view, box, flip)``.

    Args:
        transform: A ``RecipeSpec`` (its ``per_sample()`` pipeline is used) or any
            transforms.v2 callable taking ``(image, boxes)``.

    Returns (from a call):
        ``view`` as the pipeline makes it, ``box`` a float32 ``(4,)`` tensor ``(x0, y0, x1,
        y1)`` in original pixels, ``flip`` a bool tensor.
    """

    def __init__(self, transform: RecipeSpec | Callable) -> None:
        self.transform = transform.per_sample() if isinstance(transform, RecipeSpec) else transform

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, w = image.shape[-2:]
        marks = tv_tensors.BoundingBoxes(
            torch.tensor([[0.0, 0.0, w, h], [0.0, 0.0, w / 2, h], [0.0, 0.0, w, h / 2]],
                         dtype=torch.float64),
            format="XYXY", canvas_size=(h, w), clamping_mode=None,
        )
        view, out = self.transform(image, marks)
        if not isinstance(out, tv_tensors.BoundingBoxes):
            raise TypeError("the transform dropped the boxes; it must take (image, boxes)")
        box, flip = recover_crop(out.as_subclass(torch.Tensor), (h, w), tuple(view.shape[-2:]))
        return view, box, flip


def recover_crop(
    marks: torch.Tensor, image_size: tuple[int, int], view_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(box, flip)`` from the frame, left-half and top-half boxes after the transforms.

    Raises:
        ValueError: the boxes show a transform other than crop, resize and horizontal flip.
    """
    h, w = image_size
    sh, sw = view_size
    f, half, top = marks[0].double(), marks[1].double(), marks[2].double()
    sx, sy = (f[2] - f[0]) / w, (f[3] - f[1]) / h
    # the left half keeps the frame's height and half its width under crop/resize/hflip
    ok = (
        float(sx) > 0 and float(sy) > 0
        and torch.allclose(half[[1, 3]], f[[1, 3]], atol=1e-3)
        and abs(float(half[2] - half[0]) - float(sx) * w / 2) < 1e-3 * max(1.0, float(sx) * w)
        and torch.allclose(top[[0, 1, 2]], f[[0, 1, 2]], atol=1e-3)  # not flipped vertically
    )
    if not ok:
        raise ValueError(
            f"the view transform is not a crop/resize/horizontal flip (frame {f.tolist()}, "
            f"left half {half.tolist()}): dense pairs need axis-aligned geometry"
        )
    flip = (half[0] + half[2]) > (f[0] + f[2])
    # where the image's left edge (x = 0) sits in the view: f[0], or f[2] once mirrored
    left = (sw - f[2]) if bool(flip) else f[0]
    box = torch.stack([-left / sx, -f[1] / sy, (sw - left) / sx, (sh - f[1]) / sy])
    # float rounding can put a border a hair outside the image
    limits = torch.tensor([w, h, w, h], dtype=torch.float64)
    near = (box.abs() < _TOL) | ((box - limits).abs() < _TOL)
    box = torch.where(near & (box < 0), torch.zeros_like(box), box)
    box = torch.where(near & (box > limits), limits, box)
    return box.float(), flip


class DenseTwoViews(Dataset):
    """Two random views of each item, with each view's crop box and flip.

    Items of ``dataset`` are ``(image, target)`` (``target`` may be a class or a label
    map; it is passed through untouched). Returns a dict ``view1, view2`` (as the recipe
    makes them), ``box1, box2`` (float32 ``(4,)``, original pixels), ``flip1, flip2``
    (bool), ``size`` (the original ``(H, W)``) and ``target``: default collation stacks them.
    """

    def __init__(self, dataset: Dataset, recipe: RecipeSpec | Callable) -> None:
        self.dataset = dataset
        self.recipe = recipe if isinstance(recipe, DenseViewRecipe) else DenseViewRecipe(recipe)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, target = self.dataset[index]
        v1, b1, f1 = self.recipe(image)
        v2, b2, f2 = self.recipe(image)
        return {"view1": v1, "view2": v2, "box1": b1, "box2": b2, "flip1": f1, "flip2": f2,
                "size": torch.tensor(tuple(image.shape[-2:])), "target": target}
