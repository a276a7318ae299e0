"""Any tree of class folders of images (ImageNet-100, users' own data), decoded lazily."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.transforms.v2.functional import pil_to_tensor

from alignuniform.data.split import SplitNotAvailable, holdout_indices

SPLITS = ("train", "val", "test")


def _read(path: str) -> torch.Tensor:
    try:
        with Image.open(path) as img:
            return pil_to_tensor(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(
            f"cannot decode image {path}: {err}; replace or remove it, or pass "
            "skip_corrupt=True to check every image up front and skip unreadable ones"
        ) from err


def _readable(path: str) -> bool:
    try:
        with Image.open(path) as img:
            img.verify()  # checks headers and structure without decoding all pixels
        return True
    except (OSError, SyntaxError, ValueError):
        return False


class ImageFolderDataset(Dataset):
    """Items ``(transform(image), label)``, image a (3, H, W) uint8 tensor read on access.

    Args:
        samples: (path, label) pairs.
        classes: Class names, index = label.
        transform: Applied to each uint8 image (sizes vary, so training needs a cropping
            recipe and evaluation a resizing one, e.g. "imagefolder_eval").
    """

    def __init__(
        self,
        samples: list[tuple[str, int]],
        classes: list[str],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.samples, self.classes, self.transform = samples, classes, transform
        self.labels = torch.tensor([label for _, label in samples], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = _read(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def build_imagefolder(
    root: str | Path | None,
    split: str = "train",
    *,
    val_fraction: float | None = None,
    split_seed: int = 0,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    skip_corrupt: bool = False,
) -> ImageFolderDataset:
    """Class folders under ``root/<split>/`` if ``root`` has split folders, else directly
    under ``root``.

    With split folders (any of ``root/train``, ``root/val``, ``root/test``) each split is
    read as is: ``train/`` with ``test/`` and/or ``val/``. Without them, ``root`` is the
    training set and "val" is held out of it, stratified and seeded (10 % of each class by
    default). Evaluation (``build_run_splits``) scores on "test" where there is one, else
    on "val".

    Args:
        root: The tree's top directory.
        split: "train", "val" or "test".
        val_fraction: Held-out fraction when ``root`` has no split folders.
        split_seed: Seed of that split.
        transform: Applied to each (3, H, W) uint8 image.
        skip_corrupt: Verify every image up front and drop unreadable ones (a warning says
            how many); without it an unreadable image raises an error naming it when read.

    Raises:
        SplitNotAvailable: No folder for ``split`` (or "test" without split folders).
    """
    if root is None:
        raise ValueError("imagefolder needs root = a directory of class folders")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"no directory {root}; imagefolder expects ROOT/<class>/<image> or "
            "ROOT/<split>/<class>/<image> (e.g. ImageNet-100 extracted from ImageNet)"
        )
    if split not in SPLITS:
        raise ValueError(f"imagefolder split must be 'train', 'val' or 'test', got {split!r}")
    # any split folder counts: with test/ alone, "train" and "test" must not become classes
    split_dirs = [name for name in SPLITS if (root / name).is_dir()]
    if split_dirs and split not in split_dirs:
        raise SplitNotAvailable(
            f"{root} has split folders {', '.join(d + '/' for d in split_dirs)} but no "
            f"{split}/ folder; add {root / split}/<class>/<image> files"
        )
    if not split_dirs and split == "test":
        raise SplitNotAvailable(
            f"{root} has no test/ folder; use split='val' (held out of train), or put the "
            "images in train/<class>/ and test/<class>/ under it"
        )
    tree = root / split if split_dirs else root
    classes, class_to_idx = find_classes(str(tree))
    if split != "train" and "train" in split_dirs:
        train_classes = find_classes(str(root / "train"))[0]
        if classes != train_classes:
            raise ValueError(
                f"{tree} has classes {classes} but {root / 'train'} has {train_classes}; a "
                "label must name the same class in every split: give them the same folders"
            )
    samples = make_dataset(str(tree), class_to_idx, extensions=IMG_EXTENSIONS)
    if not split_dirs:
        labels = np.array([label for _, label in samples])
        fraction = 0.1 if val_fraction is None else val_fraction
        keep = holdout_indices(labels, split, fraction, split_seed, str(root))
        samples = [samples[i] for i in keep]
    if skip_corrupt:
        good = [s for s in samples if _readable(s[0])]
        if len(good) < len(samples):
            warnings.warn(
                f"skipped {len(samples) - len(good)} unreadable image(s) under {tree}",
                stacklevel=2,
            )
        samples = good
    return ImageFolderDataset(samples, classes, transform)
