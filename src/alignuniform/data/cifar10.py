"""CIFAR-10: torchvision's standard format, or a zip of class folders of JPEGs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from alignuniform.data.arrays import ArrayDataset
from alignuniform.data.split import SplitNotAvailable, holdout_indices
from alignuniform.data.zip_images import load_zip_cached, zip_classes

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
ZIP_NAME = "cifar10-train-jpeg.zip"
#: The test images (``test/<class>/NNNN.jpg``), read for split "test" when this zip lies
#: beside the training zip.
TEST_ZIP_NAME = "cifar10-test-jpeg.zip"
HOW_TO_GET = (
    "get CIFAR-10 with torchvision (build_dataset('cifar10', ROOT, 'train', download=True) "
    "downloads it into ROOT/cifar-10-batches-py), or pass the path of a zip of class folders "
    f"of JPEGs such as {ZIP_NAME}"
)


def _find_zip(root: Path) -> Path | None:
    if root.is_file() and root.suffix == ".zip":
        return root
    for candidate in (root / ZIP_NAME, root / "cifar10" / ZIP_NAME):
        if candidate.is_file():
            return candidate
    return None


def build_cifar10(
    root: str | Path | None,
    split: str = "train",
    *,
    val_fraction: float | None = None,
    split_seed: int = 0,
    download: bool = False,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    cache_dir: str | Path | None = None,
    skip_corrupt: bool = False,
    progress: bool = True,
) -> ArrayDataset:
    """CIFAR-10 from ``root``: a torchvision directory or a zip of class folders.

    ``root`` may be a directory holding ``cifar-10-batches-py`` (torchvision's format; has a
    test split), a ``.zip`` file, or a directory holding ``cifar10-train-jpeg.zip`` (the
    offline copy of the 50,000 training images: "val" is held out of "train", 10 % of each
    class by default, and "test" is read from ``cifar10-test-jpeg.zip`` beside the training
    zip when it is there).

    Args:
        root: See above.
        split: "train", "val" or "test".
        val_fraction: Fraction of each class of the training images held out as "val" (and
            removed from "train"); default 0.1 for the zip, 0 for torchvision's format.
        split_seed: Seed of the stratified val split.
        download: Download torchvision's format into ``root`` if it is missing.
        transform: Applied to each (3, 32, 32) uint8 image.
        cache_dir: Cache of the decoded zip (see ``zip_images.load_zip_cached``).
        skip_corrupt: Skip undecodable JPEGs of the zip (a warning reports the count).
        progress: Progress bar while decoding the zip.

    Returns:
        An ``ArrayDataset`` of ``(image, label)``.
    """
    if root is None:
        raise ValueError(f"cifar10 needs a root; {HOW_TO_GET}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"cifar10 split must be 'train', 'val' or 'test', got {split!r}")
    root = Path(root).expanduser()
    zip_path = _find_zip(root)
    if zip_path is not None:
        return build_cifar10_zip(zip_path, split, val_fraction=val_fraction,
                                 split_seed=split_seed,
                                 transform=transform, cache_dir=cache_dir,
                                 skip_corrupt=skip_corrupt, progress=progress)
    if not download and not (root / "cifar-10-batches-py").is_dir():
        raise FileNotFoundError(f"no CIFAR-10 data at {root}; {HOW_TO_GET}")
    from torchvision.datasets import CIFAR10

    base = CIFAR10(str(root), train=split != "test", download=download)
    images, labels = base.data, np.asarray(base.targets, dtype=np.int64)
    if split != "test":
        idx = holdout_indices(labels, split, val_fraction or 0.0, split_seed, "cifar10")
        images, labels = images[idx], labels[idx]
    return ArrayDataset(images, labels, list(base.classes), transform)


def build_cifar10_zip(
    root: str | Path | None,
    split: str = "train",
    *,
    val_fraction: float | None = None,
    split_seed: int = 0,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    cache_dir: str | Path | None = None,
    skip_corrupt: bool = False,
    progress: bool = True,
) -> ArrayDataset:
    """The offline CIFAR-10 zip (or any zip of 32x32 class folders); see ``build_cifar10``.

    ``root`` is the zip itself or a directory holding ``cifar10-train-jpeg.zip``; split
    "test" reads ``cifar10-test-jpeg.zip`` (same layout, ``test/<class>/NNNN.jpg``) from the
    training zip's folder, whole (``val_fraction`` applies to the training images only).

    Raises:
        SplitNotAvailable: "test" without a test zip beside the training zip.
        ValueError: The test zip's classes differ from the training zip's (its labels would
            not mean the same classes).
    """
    if root is None:
        raise ValueError(f"cifar10_zip needs root = the zip's path; {HOW_TO_GET}")
    zip_path = _find_zip(Path(root).expanduser())
    if zip_path is None:
        raise FileNotFoundError(f"no {ZIP_NAME} (or other .zip) at {root}; {HOW_TO_GET}")
    if split == "test":
        return _test_zip_dataset(zip_path, transform=transform, cache_dir=cache_dir,
                                 skip_corrupt=skip_corrupt, progress=progress)
    images, labels, classes, _ = load_zip_cached(
        zip_path, cache_dir=cache_dir, skip_corrupt=skip_corrupt, progress=progress
    )
    fraction = 0.1 if val_fraction is None else val_fraction
    idx = holdout_indices(labels, split, fraction, split_seed, "cifar10_zip")
    return ArrayDataset(images[idx], labels[idx], classes, transform)


def _test_zip_dataset(
    train_zip: Path,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None,
    cache_dir: str | Path | None,
    skip_corrupt: bool,
    progress: bool,
) -> ArrayDataset:
    """Every image of the test zip beside ``train_zip``, labelled by the training classes."""
    test_zip = train_zip.with_name(TEST_ZIP_NAME)
    if not test_zip.is_file():
        raise SplitNotAvailable(
            f"{train_zip.name} holds the training images only and there is no {TEST_ZIP_NAME} "
            f"beside it; use split='val' (held out of 'train', stratified and seeded), or put "
            f"the test images, as test/<class>/NNNN.jpg, in {test_zip}"
        )
    images, labels, classes, _ = load_zip_cached(
        test_zip, cache_dir=cache_dir, skip_corrupt=skip_corrupt, progress=progress
    )
    train_classes = zip_classes(train_zip)
    if classes != train_classes:
        raise ValueError(
            f"{test_zip} has classes {classes} but {train_zip} has {train_classes}; a label "
            "must name the same class in both: give both zips the same class folders"
        )
    return ArrayDataset(images, labels, classes, transform)
